"""Sampling overlapped with learning (`training.overlap_sampling`, marl/rllib/overlap.py): the
PPO family trains on both backends, counts env steps and episodes as before, and its env
runners sample with weights at most one update old; off is PPO's synchronous step.
(Real local Ray, real RLlib, tiny budgets.)"""

from __future__ import annotations

import math

import numpy as np
import pytest
from ray.rllib.utils.metrics import WEIGHTS_SEQ_NO

from marl.core.keys import SAMPLED_WEIGHTS_LAG
from marl.errors import find_scenario_fault
from marl.rllib.overlap import learner_weights
from marl.training.metrics import flatten_result
from tests.conftest import REPO, tiny_config

ITERATIONS = 3
BATCH = 200  # TINY_PPO_TRAINING's train_batch_size: one round of every runner's rollouts
FAULTY = "tests.scenarios_for_tests:faulty_spread"  # simple_spread with one planted fault


@pytest.fixture(scope="module")
def ray_local():
    import ray

    if ray.is_initialized():  # an earlier test's build_algo() started one with other settings
        ray.shutdown()
    # The planted-fault scenario imports from the repository root, in the env runners too.
    ray.init(address="local", num_cpus=4, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(REPO)}})
    try:
        yield ray
    finally:
        ray.shutdown()


def build(config_name: str, backend: str, runners: int, overlap: str, *extra: str):
    config = tiny_config(
        config_name, f"scenario.backend={backend}", f"resources.num_env_runners={runners}", f"training.overlap_sampling={overlap}",
        *extra,
    )
    return config.training.to_rllib(config, num_gpus_per_learner=0).build_algo()


def runner_state(algo) -> tuple[int, dict]:
    """The first remote runner's weights version and module weights (asked after its pending sample)."""
    [(version, state)] = algo.env_runner_group.foreach_env_runner(
        lambda runner: (runner._weights_seq_no, runner.module.get_state(inference_only=True)),
        local_env_runner=False,
        remote_worker_ids=[1],
    )
    return version, state


def same_weights(state: dict, other: dict) -> bool:
    """Equal on every parameter both inference-only module states hold."""
    return all(
        np.array_equal(np.asarray(state[policy][name]), np.asarray(other[policy][name]))
        for policy in state
        for name in set(state[policy]) & set(other[policy])
    )


def train(algo) -> list[dict]:
    return [algo.train() for _ in range(ITERATIONS)]


@pytest.mark.parametrize(
    "config_name, backend, runners",
    [("mappo_simple_spread", "pettingzoo", 1), ("mappo_simple_spread", "vectorized", 2), ("ippo_simple_spread", "vectorized", 1)],
)
def test_overlap_trains_with_weights_one_update_old(ray_local, config_name, backend, runners):
    algo = build(config_name, backend, runners, "true")
    try:
        assert algo.config.overlap_sampling
        results = train(algo)
        before_last = learner_weights(algo.learner_group)
        results.append(algo.train())
        learner = learner_weights(algo.learner_group)
        version, runner = runner_state(algo)
    finally:
        algo.stop()
    rows = [flatten_result(result) for result in results]
    # Only gathered batches count: the one still in flight at the end of an iteration does not.
    assert [row["env_steps"] for row in rows] == [BATCH * i for i in range(1, ITERATIONS + 2)]
    assert all(math.isfinite(row["episode_return_mean"]) for row in rows[1:])
    assert any(key.endswith("/pg_loss") for key in rows[-1]), "the learner's metrics reach the row"
    # The first batch waits for the runners (lag 0), every later one was sampled during the previous update.
    assert [result[SAMPLED_WEIGHTS_LAG] for result in results] == [0] + [1] * ITERATIONS
    # Now a runner samples the next batch with the weights the learner had before its last update.
    assert learner[WEIGHTS_SEQ_NO] - version == 1
    assert same_weights(runner, before_last["rl_module"]) and not same_weights(runner, learner["rl_module"])


def test_off_is_the_synchronous_step(ray_local):
    algo = build("mappo_simple_spread", "pettingzoo", 1, "false")
    try:
        assert not algo.config.overlap_sampling
        rows = [flatten_result(result) for result in train(algo)]
        assert all(SAMPLED_WEIGHTS_LAG not in result for result in [algo.train()])
        learner = learner_weights(algo.learner_group)
        version, runner = runner_state(algo)
    finally:
        algo.stop()
    assert [row["env_steps"] for row in rows] == [BATCH * i for i in range(1, ITERATIONS + 1)]
    assert learner[WEIGHTS_SEQ_NO] == version and same_weights(runner, learner["rl_module"])


def test_resolution_without_ray():
    """`auto` is off (it cost learning on simple_spread, docs/performance.md); `true` is on with
    remote env runners for every algorithm of the family, and falls back to the synchronous step
    without them."""
    def resolved(config_name: str, *overrides: str) -> bool:
        config = tiny_config(config_name, *overrides)
        return config.training.overlaps_sampling(config)

    assert not resolved("mappo_simple_spread") and not resolved("ippo_simple_spread")
    assert all(resolved(name, "training.overlap_sampling=true") for name in ("mappo_simple_spread", "ippo_simple_spread",
                                                                             "dpo_simple_spread", "bn_mappo_simple_spread"))
    assert not resolved("mappo_simple_spread", "resources.num_env_runners=0", "training.overlap_sampling=true")
    assert not resolved("mappo_simple_spread", "training.overlap_sampling=false")


def test_scenario_fault_in_overlapped_sampling_stops_training(ray_local):
    """A fault in the scenario while a runner samples ahead still stops the run (marl/rllib/faults.py)."""
    algo = build("mappo_simple_spread", "pettingzoo", 1, "true", f"scenario.name={FAULTY}",
                 "scenario.kwargs={fault: step_raises, episode: 6, step: 3}")
    try:
        with pytest.raises(Exception) as raised:
            for _ in range(10):
                algo.train()
    finally:
        algo.stop()
    fault = find_scenario_fault(raised.value)
    assert fault is not None and "planted step fault (step 3)" in str(fault), raised.value
