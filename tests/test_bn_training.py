"""BN-MAPPO for real: a local Ray, RLlib's PPO machinery with the BN module and learner, the
coordination game, two tiny iterations, a checkpoint, and evaluation with both graphs.
(Rollouts on Aloha and with fixed graphs run on RLlib's env runner in tests/test_bn_module.py.)"""

from __future__ import annotations

import json
import math

import pytest

from marl.cli import main
from marl.core.keys import (
    ALPHA,
    EDGE_DENSITY,
    GRAPH_TERMS,
    PG_LOSS,
    PROGRESS,
    SPARSITY_PENALTY,
    SURROGATE_LOSS,
    TAU,
    edge_frequency_key,
)
from marl.experiment import load_config
from marl.evaluation import evaluate, one_torch_thread
from marl.training.checkpoints import latest_checkpoint, read_meta
from marl.training.runner import train
from tests.conftest import REPO, metrics_rows

TINY = [
    "resources.num_env_runners=0",
    "resources.num_envs_per_env_runner=2",
    "training.train_batch_size=200",
    "training.num_epochs=2",
    "stop.env_steps=400",  # two iterations: the annealing schedule runs from start to end
]


@pytest.fixture(autouse=True)
def single_torch_thread():
    """The driver samples (0 env runners) and learns with tiny networks: extra threads only contend."""
    with one_torch_thread():
        yield


def _rows(run_dir):
    """metrics.csv as numbers (empty cells left out)."""
    return [{k: float(v) for k, v in row.items() if v != ""} for row in metrics_rows(run_dir)]


def test_train_checkpoint_and_evaluate_with_sampled_and_empty_graphs(tmp_path, capsys):
    config = load_config(REPO / "configs" / "bn_mappo_coordination_game.yaml", TINY)
    run_dir = train(config, runs_root=tmp_path, echo=lambda _: None, max_iterations=2)

    rows = _rows(run_dir)
    assert [int(r["iteration"]) for r in rows] == [1, 2]
    last = rows[-1]
    assert math.isfinite(last["episode_return_mean"])
    # Graph statistics every iteration, under stable keys.
    for row in rows:
        for key in (*GRAPH_TERMS, SURROGATE_LOSS, edge_frequency_key(0, 1), edge_frequency_key(2, 0)):
            assert f"team/{key}" in row, key
        assert 0.0 <= row[f"team/{EDGE_DENSITY}"] <= 1.0
        assert row[f"team/{PG_LOSS}"] == pytest.approx(row[f"team/{SURROGATE_LOSS}"] + row[f"team/{SPARSITY_PENALTY}"], abs=1e-5)
    assert last[f"team/{PROGRESS}"] == 1.0 and last[f"team/{TAU}"] == 0.0 and last[f"team/{ALPHA}"] == pytest.approx(1.0)

    checkpoint = latest_checkpoint(run_dir)
    assert read_meta(checkpoint)["env_class"] == "marl.envs.team:TeamMultiAgentEnv"
    for graph in ("sampled", "empty"):
        result = evaluate(run_dir, episodes=2, dag=graph)
        assert len(result.team_returns) == 2 and result.summary()["dag"] == graph
        # 25 steps, 3 agents, reward in [0, 3] per agent and step.
        assert all(0 <= value <= 25 * 3 * 3 for value in result.team_returns)

    capsys.readouterr()
    assert main(["evaluate", str(run_dir), "--episodes", "1"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [line["dag"] for line in lines] == ["sampled", "empty"]
