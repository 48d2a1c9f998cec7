"""The same seed gives the same run on the pettingzoo backend (RLlib's stock env runner).

Two `marl train` processes with one seed, differing only in Python's hash salt
(PYTHONHASHSEED), which RLlib's sets of agent ids used to leak into action sampling and
minibatches (marl/rllib/ordering.py): before the fix the first iteration's returns
already differed. The two salts are chosen so that the scenario's agents really come
out of a set in different orders, or the test could not fail.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path
from tests.conftest import REPO

AGENTS = "{'agent_0', 'agent_1', 'agent_2'}"
TIMING = {"time_total_s", "steps_per_s"}  # wall-clock, the only columns allowed to differ


def set_order(hash_seed: int) -> str:
    return subprocess.run(
        [sys.executable, "-c", f"print(list({AGENTS}))"], capture_output=True, text=True, check=True,
        env={**os.environ, "PYTHONHASHSEED": str(hash_seed)},
    ).stdout


def two_salts_that_reorder_the_agents() -> tuple[int, int]:
    orders = {seed: set_order(seed) for seed in range(1, 8)}
    first = 1
    second = next(seed for seed, order in orders.items() if order != orders[first])
    return first, second


def train_rows(tmp_path: Path, hash_seed: int, num_env_runners: int) -> list[dict[str, str]]:
    cwd = tmp_path / f"salt{hash_seed}-runners{num_env_runners}"
    cwd.mkdir()
    command = [
        sys.executable, "-m", "marl.cli", "train", str(REPO / "configs" / "mappo_simple_spread.yaml"),
        "scenario.backend=pettingzoo", f"resources.num_env_runners={num_env_runners}", "resources.num_envs_per_env_runner=2",
        "training.train_batch_size=200", "training.num_epochs=2", "checkpoint.every_iterations=100", "seed=7",
        "--runs-dir", "runs", "--max-iterations", "2",
    ]
    env = {**os.environ, "PYTHONHASHSEED": str(hash_seed)}
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=cwd, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = (cwd / "runs").iterdir()
    with (run_dir / "metrics.csv").open() as handle:
        return [{key: value for key, value in row.items() if key not in TIMING} for row in csv.DictReader(handle)]


def test_same_seed_same_run_with_a_remote_env_runner(tmp_path):
    first_salt, second_salt = two_salts_that_reorder_the_agents()
    first, second = train_rows(tmp_path, first_salt, 1), train_rows(tmp_path, second_salt, 1)
    assert [row["iteration"] for row in first] == ["1", "2"]
    assert {"episode_return_mean", "agent_0/pg_loss", "agent_2/vf_loss"} <= set(first[0])
    for iteration, (one, two) in enumerate(zip(first, second), start=1):
        differing = {key: (one[key], two[key]) for key in one if one[key] != two.get(key)}
        assert not differing, f"iteration {iteration} differs: {differing}"
