"""Training on a multi-node Ray cluster, and surviving what a cluster does to it.

One local cluster (ray.cluster_utils.Cluster) serves every test here: a head without
CPUs and two worker nodes of one CPU each, so anything needing a CPU lands on a worker
node and two one-CPU actors can only land on different nodes. Batches are tiny; what is
checked is placement, data-parallel learners, and recovery from killed processes.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from marl.experiment import load_config
from marl.training.checkpoints import latest_checkpoint, read_meta
from marl.training.runner import env_runner_nodes, train
from marl.training.sweep import sweep
from tests.conftest import REPO, metrics_rows

SPREAD = REPO / "configs" / "mappo_simple_spread.yaml"
# 200 env steps per iteration on RLlib's stock env runner.
TINY = [
    "scenario.backend=pettingzoo",
    "resources.num_envs_per_env_runner=1",
    "training.train_batch_size=200",
    "training.num_epochs=2",
    "stop.env_steps=100000",
]


@pytest.fixture(scope="module")
def cluster():
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    for _ in range(2):
        cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    try:
        yield cluster
    finally:
        cluster.shutdown()


def test_env_runners_spread_over_nodes_and_training_progresses(tmp_path, cluster):
    config = load_config(SPREAD, TINY + ["resources.num_env_runners=2"])
    nodes: list[list[str]] = []
    lines: list[str] = []
    run_dir = train(
        config, runs_root=tmp_path, address=cluster.address, echo=lines.append, max_iterations=2,
        on_iteration=lambda algo, row: nodes.append(env_runner_nodes(algo)),
    )
    worker_nodes = {node.node_id for node in cluster.worker_nodes}
    assert len(nodes[0]) == 2 and len(set(nodes[0])) == 2, f"both env runners on one node: {nodes[0]}"
    assert set(nodes[0]) <= worker_nodes
    assert "env runners on 2 of the cluster's 3 node(s)" in lines
    rows = metrics_rows(run_dir)
    assert [int(r["iteration"]) for r in rows] == [1, 2]
    assert [int(r["env_steps"]) for r in rows] == [200, 400]
    losses = [float(value) for r in rows for key, value in r.items() if key.endswith("/total_loss")]
    assert losses and all(np.isfinite(losses))


def _learner_state(learner) -> dict[str, np.ndarray]:
    """Every module's weights and buffers, plus DPO's adaptive coefficients where there are any."""
    state = {
        f"{module_id}/{key}": value.detach().cpu().numpy()
        for module_id in learner.module.keys()
        for key, value in learner.module[module_id].state_dict().items()
    }
    for name in ("beta_kl_per_module", "beta_sqrt_kl_per_module"):
        for module_id, value in getattr(learner, name, {}).items():
            state[f"{module_id}/{name}"] = value.detach().cpu().numpy()
    return state


@pytest.mark.parametrize("config_name", ["mappo_simple_spread", "dpo_simple_spread"])
def test_two_data_parallel_learners_keep_the_same_state(tmp_path, cluster, config_name):
    """Each learner updates on its own half of the batch: only all-reduced gradients (and, for
    MAPPO's value normaliser and DPO's coefficients, all-reduced statistics) keep them equal."""
    config = load_config(REPO / "configs" / f"{config_name}.yaml", TINY + ["resources.num_env_runners=0", "resources.num_learners=2"])
    states, learner_nodes = [], []

    def record(algo, row):
        states.append([result.get() for result in algo.learner_group.foreach_learner(_learner_state)])
        if not learner_nodes:
            import ray

            learner_nodes.extend(
                r.get() for r in algo.learner_group.foreach_learner(lambda _: ray.get_runtime_context().get_node_id())
            )

    train(config, runs_root=tmp_path, address=cluster.address, echo=lambda _: None, max_iterations=2, on_iteration=record)
    assert len(set(learner_nodes)) == 2, "the two learners should sit on the two one-CPU nodes"
    for first, second in states:
        assert first.keys() == second.keys()
        for key in first:
            np.testing.assert_array_equal(first[key], second[key], err_msg=f"learners disagree on {key}")
    (before, _), (after, _) = states
    changed = {key for key in before if not np.array_equal(before[key], after[key])}
    assert any("value_normalizer" not in key and "beta" not in key for key in changed), "weights never changed"
    if config_name == "dpo_simple_spread":
        assert any("beta" in key for key in changed), "coefficients never adapted: their sync went unchecked"


@pytest.mark.parametrize("backend", ["pettingzoo", "vectorized"])
def test_killed_env_runner_is_replaced_while_training_continues(tmp_path, cluster, backend):
    config = load_config(SPREAD, TINY + ["resources.num_env_runners=2", f"scenario.backend={backend}"])
    seen: list[tuple[list[int], dict]] = []

    def kill_one_then_wait_for_its_return(algo, row):
        pids = algo.env_runner_group.foreach_env_runner(lambda runner: os.getpid(), local_env_runner=False)
        seen.append((pids, row))
        if int(row["iteration"]) == 1:
            os.kill(pids[0], signal.SIGKILL)
        time.sleep(1)  # let Ray bring the process back between iterations
        return row["env_runner_restarts"] >= 1 and len(pids) == 2 and pids[0] != seen[0][0][0]

    run_dir = train(
        config, runs_root=tmp_path, address=cluster.address, echo=lambda _: None, max_iterations=12,
        on_iteration=kill_one_then_wait_for_its_return,
    )
    (first_pids, _), (last_pids, last) = seen[0], seen[-1]
    assert len(seen) < 12, f"the killed env runner never came back: {[(p, r['env_runners_healthy']) for p, r in seen]}"
    assert last["env_runners_healthy"] == 2 and last_pids[1] == first_pids[1]
    assert any(r["env_runners_healthy"] == 1 for _, r in seen), "the kill went unnoticed: nothing was checked"
    rows = metrics_rows(run_dir)
    assert [int(r["iteration"]) for r in rows] == list(range(1, len(seen) + 1))
    assert [int(r["env_steps"]) for r in rows] == [200 * (i + 1) for i in range(len(seen))], "every iteration sampled a full batch"


def test_driver_killed_by_sigkill_resumes_from_last_checkpoint(tmp_path, cluster):
    """`marl train` SIGKILLed mid-run; `marl train --resume` continues with the checkpoint's counters."""
    command = [sys.executable, "-m", "marl.cli", "train", str(SPREAD), *TINY, "resources.num_env_runners=1",
               "checkpoint.every_iterations=1", "--address", cluster.address, "--runs-dir", "runs"]
    driver = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path)
    output, checkpoints = [], 0
    try:
        for line in driver.stdout:
            output.append(line)
            checkpoints += line.startswith("checkpoint:")
            if checkpoints == 2:
                driver.send_signal(signal.SIGKILL)
                break
    finally:
        driver.kill()
        driver.wait(timeout=60)
    assert checkpoints == 2, "".join(output)
    run_dir = Path(next(line.split(": ", 1)[1].strip() for line in output if line.startswith("run directory:")))
    meta = read_meta(latest_checkpoint(run_dir))
    assert meta["iteration"] >= 2

    resumed = subprocess.run(
        [sys.executable, "-m", "marl.cli", "train", "--resume", str(run_dir), "--address", cluster.address,
         "--max-iterations", "1"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"resumed from iter_{meta['iteration']:06d} (iteration {meta['iteration']}, {meta['env_steps']:,} env steps)" in resumed.stdout
    rows = metrics_rows(run_dir)
    assert [int(r["iteration"]) for r in rows] == list(range(1, meta["iteration"] + 2)), "one row per iteration, none twice"
    assert int(rows[-1]["env_steps"]) == meta["env_steps"] + 200
    assert read_meta(latest_checkpoint(run_dir))["iteration"] == meta["iteration"] + 1


def test_sweep_runs_trials_side_by_side_on_the_cluster(tmp_path, cluster):
    """Two settings x one seed as Tune trials: each a `marl train` run, one per one-CPU node."""
    import yaml

    lines: list[str] = []
    result = sweep(
        SPREAD, TINY + ["resources.num_env_runners=0"], ["training.lr=1e-3,3e-4"], [0],
        address=cluster.address, out=tmp_path / "sweep", max_iterations=2, echo=lines.append,
    )
    assert not result.failed
    assert [(row["setting"], row["seeds"]) for row in result.summary] == [("training.lr=1e-3", 1), ("training.lr=3e-4", 1)]
    with (tmp_path / "sweep" / "summary.csv").open() as handle:
        assert [row["training.lr"] for row in csv.DictReader(handle)] == ["1e-3", "3e-4"]
    assert (tmp_path / "sweep" / "curves.png").stat().st_size > 1000
    assert any(line.startswith("setting") and "95% CI" in line for line in lines)

    worker_nodes = {node.node_id for node in cluster.worker_nodes}
    assert {trial["node_id"] for trial in result.trials} == worker_nodes, "each one-CPU trial on its own node"
    for trial, lr in zip(result.trials, (1e-3, 3e-4)):
        run_dir = Path(trial["run_dir"])
        rows = metrics_rows(run_dir)
        assert [int(r["iteration"]) for r in rows] == [1, 2] and trial["iterations"] == 2
        assert float(rows[-1]["episode_return_mean"]) == pytest.approx(trial["final_return"])
        assert yaml.safe_load((run_dir / "config.yaml").read_text())["training"]["lr"] == lr
        assert latest_checkpoint(run_dir) is not None, "a trial writes its run directory as `marl train` does"


def test_local_learner_stays_on_cpu_when_the_gpu_is_on_another_node(tmp_path, cluster):
    """`num_gpus_per_learner: auto` with the cluster's only GPU on a worker node: the driver's
    learner cannot use it, so it trains on the CPU instead of failing (or waiting forever)."""
    gpu_node = cluster.add_node(num_cpus=0, num_gpus=1)  # a GPU as Ray sees it; nothing here uses it
    try:
        cluster.wait_for_nodes()
        lines: list[str] = []
        config = load_config(SPREAD, TINY + ["resources.num_env_runners=0"])
        run_dir = train(config, runs_root=tmp_path, address=cluster.address, echo=lines.append, max_iterations=1)
    finally:
        cluster.remove_node(gpu_node)
    assert any("learner on CPU" in line for line in lines), lines
    assert [int(r["iteration"]) for r in metrics_rows(run_dir)] == [1]
