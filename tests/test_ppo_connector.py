"""The PPO family's one-pass train batch equals RLlib's learner pipeline, column by column.

- `marl.core.gae.value_targets` equals RLlib's `compute_value_targets` on random rows with
  random termination / truncation patterns (pure, no Ray);
- `PPOTrainBatch` (training.learner_connector: vectorized) and RLlib's default pipeline
  (training.learner_connector: rllib) turn the same sampled episodes into the same batch:
  same columns, same rows (compared after sorting: RLlib orders agents by a set, we by
  name), same GAE and value targets on the rows the loss uses (see ORDER_DEPENDENT),
  vf_preds, loss mask — for both runners, shared and per-agent
  policies, discrete and Box actions, agents that leave early, and time limits recorded
  as terminations or as truncations.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.env.multi_agent_env_runner import MultiAgentEnvRunner
from ray.rllib.evaluation.postprocessing import Postprocessing
from ray.rllib.utils.postprocessing.value_predictions import compute_value_targets

from marl.experiment import build_config, load_config
from marl.core.gae import reverse_scan, standardize, value_targets
from marl.rllib.vectorized_env_runner import VectorizedMultiAgentEnvRunner
from tests.conftest import REPO
from tests.conftest import local_learner


def naive_reverse_scan(x, decay):
    y, carry = np.zeros_like(x), 0.0
    for t in reversed(range(len(x))):
        carry = x[t] + decay[t] * carry
        y[t] = carry
    return y


@pytest.mark.parametrize("seed", range(5))
def test_reverse_scan_matches_the_loop(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 300))
    x = rng.normal(size=n)
    decay = rng.choice([0.0, 0.5, 0.9405], size=n, p=[0.1, 0.2, 0.7])
    np.testing.assert_allclose(reverse_scan(x, decay), naive_reverse_scan(x, decay), rtol=1e-12, atol=1e-12)


def test_reverse_scan_without_any_break_and_empty():
    x = np.arange(5.0)
    np.testing.assert_allclose(reverse_scan(x, np.full(5, 0.5)), naive_reverse_scan(x, np.full(5, 0.5)))
    assert reverse_scan(np.zeros(0), np.zeros(0)).shape == (0,)


@pytest.mark.parametrize("seed", range(5))
def test_value_targets_equal_rllibs_compute_value_targets(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 400))
    values = rng.normal(size=n).astype(np.float32)
    rewards = rng.normal(size=n).astype(np.float32)
    terminateds = rng.random(n) < 0.05
    truncateds = rng.random(n) < 0.08
    expected = compute_value_targets(values, rewards, terminateds.astype(np.float32), truncateds.astype(np.float32), 0.99, 0.95)
    np.testing.assert_allclose(value_targets(values, rewards, terminateds, truncateds, 0.99, 0.95), expected, rtol=1e-5, atol=1e-5)


def _rllib(config, builder: str):
    return config.training.model_copy(update={"learner_connector": builder}).to_rllib(config, num_gpus_per_learner=0)


def _batches(config, runner_class, steps: int):
    """The same sampled episodes through our builder and through RLlib's pipeline."""
    ours, stock = local_learner(_rllib(config, "vectorized")), local_learner(_rllib(config, "rllib"))
    stock.module.set_state(ours.module.get_state())
    runner = runner_class(config=_rllib(config, "vectorized"), worker_index=1)
    try:
        runner.module.set_state(ours.module.get_state(inference_only=True))
        runner.sample(num_timesteps=steps, explore=True)  # start mid-episode: chunks that continue
        episodes = runner.sample(num_timesteps=steps, explore=True)
    finally:
        runner.stop()
    # RLlib's pipeline extends the episodes in place; give each pipeline its own copy.
    call = lambda learner: learner._learner_connector(
        rl_module=learner.module, batch={}, episodes=copy.deepcopy(episodes), shared_data={}, metrics=None
    )
    return call(ours), call(stock)


def _sorted_rows(columns: dict) -> dict[str, np.ndarray]:
    arrays = {k: v.numpy() for k, v in columns.items() if isinstance(v, torch.Tensor)}
    # Rows are identified by their observation, action, logp and loss mask (a chunk's bootstrap
    # row repeats the last action next to the final observation).
    keys = [arrays[Columns.OBS], arrays[Columns.ACTIONS].reshape(len(arrays[Columns.OBS]), -1),
            arrays[Columns.ACTION_LOGP][:, None], arrays[Columns.LOSS_MASK][:, None]]
    order = np.lexsort(np.concatenate(keys, axis=1).T)
    return {k: v[order] for k, v in arrays.items()}


# A bootstrap row (loss mask False) carries no episode flag, so its GAE runs on into whichever
# trajectory follows it in the module's batch; both pipelines standardise advantages over all
# rows, bootstrap rows included. So these two columns depend on the trajectories' order, which
# is RLlib's set of agent ids (salted per process) on one side and agent names on ours.
ORDER_DEPENDENT = (Postprocessing.ADVANTAGES, Postprocessing.VALUE_TARGETS)


def _assert_same_batches(ours: dict, stock: dict) -> None:
    """Every column equal; the order-dependent two equal on the rows the loss uses, and each
    side's advantages the standardised (targets - values) of its own rows."""
    assert ours.keys() == stock.keys()
    for module_id in stock:
        got, expected = _sorted_rows(ours[module_id]), _sorted_rows(stock[module_id])
        assert got.keys() == expected.keys(), module_id
        for key in expected:
            assert got[key].dtype == expected[key].dtype, (module_id, key)
            if key not in ORDER_DEPENDENT:
                np.testing.assert_allclose(got[key], expected[key], rtol=1e-5, atol=1e-5, err_msg=f"{module_id}/{key}")
        real = expected[Columns.LOSS_MASK]
        target = Postprocessing.VALUE_TARGETS
        np.testing.assert_allclose(got[target][real], expected[target][real], rtol=1e-5, atol=1e-5, err_msg=f"{module_id}/{target}")
        for side in (got, expected):
            raw = side[target] - side[Columns.VF_PREDS]
            np.testing.assert_allclose(side[Postprocessing.ADVANTAGES], standardize(raw), rtol=1e-4, atol=1e-4, err_msg=module_id)


CASES = {
    "mappo_spread_shared_fast_path": ("mappo_simple_spread.yaml", ["policies.sharing=shared", "scenario.bootstrap_at_time_limit=false"], VectorizedMultiAgentEnvRunner),
    "mappo_spread_per_agent_bootstrap_at_time_limit": ("mappo_simple_spread.yaml", [], VectorizedMultiAgentEnvRunner),
    "dpo_spread_per_agent": ("dpo_simple_spread.yaml", [], VectorizedMultiAgentEnvRunner),
    "ippo_spread_continuous": ("mappo_simple_spread_continuous.yaml", ["algorithm=ippo"], VectorizedMultiAgentEnvRunner),
    "mappo_speaker_listener_stock_runner": ("mappo_simple_speaker_listener.yaml", ["scenario.backend=pettingzoo"], MultiAgentEnvRunner),
}


@pytest.mark.parametrize("case", list(CASES))
def test_train_batch_equals_rllibs_pipeline(case):
    file, overrides, runner_class = CASES[case]
    config = load_config(REPO / "configs" / file, [*overrides, "resources.num_env_runners=1", "resources.num_envs_per_env_runner=3", "seed=3"])
    ours, stock = _batches(config, runner_class, steps=3 * 40)
    _assert_same_batches(ours, stock)


def test_train_batch_equals_rllibs_pipeline_when_agents_leave_early():
    config = build_config(
        {
            "algorithm": "mappo",
            "scenario": {"name": "tests.scenarios_for_tests:leaving_agents_env"},
            "policies": {"sharing": "shared"},
            "resources": {"num_env_runners": 1, "num_envs_per_env_runner": 2},
            "stop": {"env_steps": 1000},
        }
    )
    ours, stock = _batches(config, MultiAgentEnvRunner, steps=2 * 7)
    _assert_same_batches(ours, stock)
    # a1 leaves after 2 of the 5 steps: fewer of its rows than of a0's.
    assert (ours["shared"][Columns.LOSS_MASK]).sum() < 3 * 14
