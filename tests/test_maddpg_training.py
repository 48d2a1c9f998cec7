"""MADDPG trained for real (local Ray, RLlib env runner, mpe2), a few tiny iterations.

What is checked is the plumbing of the off-policy loop: counters, logged terms,
checkpoint weights, resume, evaluation (function and CLI), soft Gumbel-softmax actions on
Box spaces, and the configs MADDPG refuses. Learning itself is not checked here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from ray.rllib.core.rl_module.multi_rl_module import MultiRLModule

from marl.algorithms.maddpg.algorithm import REPLAY_BUFFER_FILE

from marl.core.keys import BOOTSTRAP_DISCOUNT, MADDPG_TERMS
from marl.errors import ConfigError
from marl.evaluation import RL_MODULE_PATH, CheckpointPolicies, evaluate
from marl.rllib.acting import EpisodeRandomness
from marl.training.checkpoints import latest_checkpoint, read_meta
from marl.training.runner import ray_session, resume, train
from tests.conftest import REPO, metrics_rows, tiny_config

AGENTS = ["agent_0", "agent_1", "agent_2"]
STEPS_PER_ITERATION = 200  # tiny_overrides("maddpg")


def test_train_checkpoint_resume_and_evaluate(tmp_path):
    config = tiny_config("maddpg_simple_spread")
    lines: list[str] = []
    run_dir = train(config, runs_root=tmp_path, echo=lines.append, max_iterations=3)

    rows = metrics_rows(run_dir)
    assert [int(r["iteration"]) for r in rows] == [1, 2, 3]
    assert [int(r["env_steps"]) for r in rows] == [STEPS_PER_ITERATION * k for k in (1, 2, 3)]
    for row in rows:  # learning_starts (100) < one iteration's steps: updates from iteration 1 on
        for agent in AGENTS:
            for term in MADDPG_TERMS:
                assert np.isfinite(float(row[f"{agent}/{term}"])), f"{agent}/{term}"
    assert any(line.startswith("iter ") and "steps/s" in line for line in lines)
    checkpoint = latest_checkpoint(run_dir)
    assert read_meta(checkpoint)["env_steps"] == 3 * STEPS_PER_ITERATION
    assert read_meta(checkpoint)["normalize_actions"] is False

    _assert_restore_loads_the_checkpoint_weights(config, checkpoint)
    assert (checkpoint / REPLAY_BUFFER_FILE).is_file()  # inside the atomically renamed directory

    resume(run_dir, echo=lambda _: None, max_iterations=2)
    rows = metrics_rows(run_dir)
    assert [int(r["iteration"]) for r in rows] == [1, 2, 3, 4, 5]
    assert [int(r["env_steps"]) for r in rows] == [STEPS_PER_ITERATION * k for k in range(1, 6)]

    result = evaluate(run_dir, episodes=2)
    assert len(result.team_returns) == 2 and set(result.agent_returns) == set(AGENTS)
    assert all(np.isfinite(result.team_returns))
    assert "collisions" in result.summary()["metrics"]
    assert len(evaluate(run_dir, episodes=1, explore=True).team_returns) == 1

    cli = subprocess.run(
        [sys.executable, "-m", "marl.cli", "evaluate", str(run_dir), "--episodes", "2"],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout.strip().splitlines()[-1])["episodes"] == 2


def _assert_restore_loads_the_checkpoint_weights(config, checkpoint):
    """Algorithm.restore_from_path (what resume does) brings back every network, targets included, and the replay buffer."""
    saved = MultiRLModule.from_checkpoint(str(checkpoint / RL_MODULE_PATH))
    with ray_session(None):
        algo = config.training.to_rllib(config, num_gpus_per_learner=0).build_algo()
        try:
            fresh = algo.learner_group._learner.module
            assert not _same_weights(fresh["agent_0"], saved["agent_0"]), "a fresh algorithm already has these weights"
            assert len(algo.replay_buffer) == 0
            algo.restore_from_path(str(checkpoint))
            for agent in AGENTS:
                assert _same_weights(algo.learner_group._learner.module[agent], saved[agent]), agent
            # The replay buffer too (off-policy resume loses nothing; the round trip itself, ring
            # position and sampling generator included, is tested in test_maddpg_replay.py).
            assert len(algo.replay_buffer) == read_meta(checkpoint)["env_steps"]
            with np.load(checkpoint / REPLAY_BUFFER_FILE) as saved_rows:
                for agent in AGENTS:
                    for field, columns in algo.replay_buffer._storage[agent].items():
                        np.testing.assert_array_equal(columns[: len(algo.replay_buffer)], saved_rows[f"{agent}/{field}"])
            assert not np.all(algo.replay_buffer._storage["agent_0"]["obs"][: len(algo.replay_buffer)] == 0)
            algo.train()
            assert len(algo.replay_buffer) == read_meta(checkpoint)["env_steps"] + STEPS_PER_ITERATION
        finally:
            algo.stop()


def _same_weights(module, other) -> bool:
    state, other_state = module.state_dict(), other.state_dict()
    assert state.keys() == other_state.keys()
    assert {"critic", "target_actor", "target_critic"} <= {key.split(".")[0] for key in state}
    return all(torch.equal(state[key].cpu(), other_state[key].cpu()) for key in state)


def test_soft_gumbel_softmax_on_continuous_actions(tmp_path):
    """The reference's variant: the env gets the soft sample (a point of the simplex), unrescaled."""
    config = tiny_config("maddpg_simple_spread", "scenario.kwargs.continuous_actions=true", "training.hard=false")
    run_dir = train(config, runs_root=tmp_path, echo=lambda _: None, max_iterations=2)
    assert float(metrics_rows(run_dir)[-1]["agent_0/critic_loss"]) >= 0

    policies = CheckpointPolicies.from_checkpoint(latest_checkpoint(run_dir))
    env = policies.make_env(seed=0)
    try:
        observations, _ = env.reset(seed=0)
        policies.start_episode(EpisodeRandomness.from_seed(0))
        for explore in (False, True):
            actions = policies.act(observations, env.action_spaces, explore=explore).actions
            for action in actions.values():
                assert action.shape == (5,) and np.all(action >= 0)
                assert action.sum() == pytest.approx(1.0, abs=1e-5)  # not rescaled from [-1, 1]
    finally:
        env.close()
    assert len(evaluate(run_dir, episodes=1).team_returns) == 1


def test_configs_maddpg_cannot_run_are_rejected_before_ray():
    with pytest.raises(ConfigError, match="training.ensemble_size.*scenario.backend: pettingzoo"):
        tiny_config("maddpg_simple_spread", "scenario.backend=vectorized", "training.ensemble_size=2")
    config = tiny_config("maddpg_simple_spread", "training.hard=false")  # soft samples, integer actions
    with pytest.raises(ConfigError, match="training.hard"):
        config.training.to_rllib(config, num_gpus_per_learner=0)


def _first_iterations(config, iterations: int) -> list:
    algo = config.training.to_rllib(config, num_gpus_per_learner=0).build_algo()
    try:
        results = [algo.train() for _ in range(iterations)]
        learned = [{(agent, term): float(r["learners"][agent][term]) for agent in AGENTS for term in MADDPG_TERMS} for r in results]
        returns = [r["env_runners"]["episode_return_mean"] for r in results]
        return [returns, learned, algo.replay_buffer.sample(len(algo.replay_buffer))]
    finally:
        algo.stop()


def test_the_same_seed_gives_the_same_first_iterations():
    """Sampling on a remote env runner (Gumbel noise from each module's own generator) and updating."""
    config = tiny_config("maddpg_simple_spread")  # 1 remote env runner
    with ray_session(None):
        first, second = _first_iterations(config, 2), _first_iterations(config, 2)
    assert first[:2] == second[:2]
    for agent in AGENTS:
        for field, columns in first[2][agent].items():
            np.testing.assert_array_equal(columns, second[2][agent][field], err_msg=f"{agent}/{field}")


def test_initial_weights_do_not_depend_on_the_python_hash_seed():
    """RLlib builds modules in the order of `config.policies`: a set there made agent_0's weights depend on PYTHONHASHSEED."""
    script = (
        "from tests.conftest import local_learner, tiny_config\n"
        "c = tiny_config('maddpg_simple_spread'); l = local_learner(c.training.to_rllib(c, num_gpus_per_learner=0))\n"
        "print([round(float(sum(p.sum() for p in l.module[a].actor.parameters())), 5) for a in ('agent_0', 'agent_1', 'agent_2')])\n"
    )
    sums = [
        subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=REPO,
                       env={**os.environ, "PYTHONHASHSEED": str(hash_seed), "PYTHONPATH": str(REPO)}).stdout.strip().splitlines()[-1]
        for hash_seed in (1, 2)
    ]
    assert sums[0] == sums[1]


@pytest.mark.parametrize("backend", ["vectorized", "pettingzoo"])
def test_n_step_returns_fill_the_buffer_with_their_discounts(tmp_path, backend):
    """training.n_step: the replay rows carry gamma^m with m <= n, nearly all full windows."""
    config = tiny_config(
        "maddpg_simple_speaker_listener", "training.n_step=3", "checkpoint.every_iterations=1", f"scenario.backend={backend}"
    )
    run_dir = train(config, runs_root=tmp_path, echo=lambda _: None, max_iterations=2)
    assert np.isfinite(float(metrics_rows(run_dir)[-1]["listener_0/critic_loss"]))
    gamma = config.training.gamma
    with np.load(latest_checkpoint(run_dir) / REPLAY_BUFFER_FILE) as saved:
        discounts = saved[f"listener_0/{BOOTSTRAP_DISCOUNT}"]
        rewards = saved["listener_0/rewards"]
    sampled = 2 * STEPS_PER_ITERATION
    # Rows of running episodes wait for their next chunk: at most n - 1 per env.
    assert sampled - 2 * config.resources.num_envs_per_env_runner <= len(discounts) <= sampled
    windows = np.array([gamma**m for m in (1, 2, 3)], np.float32)
    assert np.isclose(discounts[:, None], windows[None]).any(axis=1).all()
    assert np.mean(np.isclose(discounts, gamma**3)) > 0.8  # 25-step episodes: windows end early on 2 of 25 steps
    assert (rewards < 0).all()  # sums of negative squared distances
