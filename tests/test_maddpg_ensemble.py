"""Policy ensembles (training.ensemble_size: K): the mechanics.

- the actor of row b is sub-policy subpolicy[b]; each sub-policy's gradient comes only from
  its own rows, and a module's batch holds batch_size rows of each sub-policy's buffer;
- the env runner draws one sub-policy per agent and episode (constant over the episode's
  chunks, different across episodes), and the replay buffer's D_i^(k) holds only the rows
  in which agent i acted with sub-policy k;
- K = 1 keeps the plain layout (no connector, no extra field, one MLP actor).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from ray.rllib.core.columns import Columns

from marl.algorithms.maddpg.ensemble import ActorEnsemble
from marl.algorithms.maddpg.learner import MADDPGTorchLearner, joint_train_batch, split_joint_columns
from marl.algorithms.maddpg.replay import FIELDS, JointReplayBuffer
from marl.core.keys import SUBPOLICY
from marl.errors import ConfigError
from marl.evaluation import CheckpointPolicies
from marl.rllib.acting import EpisodeRandomness
from marl.training.runner import ray_session
from tests.conftest import AGENTS, GAMMA, LOGITS_REG, ROWS, build_maddpg_learner, hand_rows, tiny_config

K = 2
# Sub-policies are drawn by an env-to-module connector, which only RLlib's own env runner runs.
ENSEMBLE_BACKEND = ("scenario.backend=pettingzoo",)


def ensemble_rows(seed: int = 0):
    """hand_rows plus each agent's sub-policy: agent_0 uses 0 in the first half, 1 in the second."""
    rows = hand_rows(seed)
    for index, agent in enumerate(AGENTS):
        subpolicy = (np.arange(ROWS) >= ROWS // 2).astype(np.float32) if index == 0 else np.full(ROWS, index % K, np.float32)
        rows[agent][SUBPOLICY] = subpolicy * rows[agent]["mask"]
    return rows


def test_actor_ensemble_answers_each_row_with_its_sub_policy():
    members = [torch.nn.Linear(4, 3) for _ in range(3)]
    ensemble = ActorEnsemble(members)
    observations = torch.randn(5, 4)
    index = torch.tensor([2, 0, 1, 1, 0])
    logits = ensemble(observations, index)
    for row in range(5):
        torch.testing.assert_close(logits[row], members[int(index[row])](observations[row]))
    torch.testing.assert_close(ensemble(observations), members[0](observations))  # no index: sub-policy 0


def test_each_sub_policy_learns_only_from_its_own_rows():
    learner, rllib_config = build_maddpg_learner(f"training.ensemble_size={K}", *ENSEMBLE_BACKEND)
    module = learner.module["agent_0"].unwrapped()
    assert isinstance(module.actor, ActorEnsemble) and len(module.actor) == K

    def actor_grads(rows):
        batch = {key: torch.as_tensor(value) for key, value in joint_train_batch(rows, ["agent_0"]).policy_batches["agent_0"].items()}
        joint = split_joint_columns(batch, AGENTS)
        module.zero_grad(set_to_none=True)
        torch.manual_seed(5)  # the same Gumbel noise for both batches
        with torch.no_grad():
            next_actions = learner.target_actions(joint)
        MADDPGTorchLearner.agent_terms(module, "agent_0", joint, next_actions, gamma=GAMMA, logits_reg=LOGITS_REG)["actor_loss"].backward()
        return [[p.grad.clone() for p in member.parameters()] for member in module.actor.members]

    rows = ensemble_rows()
    changed = ensemble_rows()
    changed["agent_0"]["obs"][: ROWS // 2] += 1.0  # only rows of sub-policy 0
    before, after = actor_grads(rows), actor_grads(changed)
    assert all(g.abs().sum() > 0 for member in before for g in member)  # both sub-policies learn
    assert any(not torch.equal(a, b) for a, b in zip(before[0], after[0]))
    for a, b in zip(before[1], after[1]):
        torch.testing.assert_close(a, b)  # sub-policy 1 never saw those rows


def test_sub_policy_buffers_hold_only_their_own_rows():
    rows = ensemble_rows()
    buffer = JointReplayBuffer(100, AGENTS, {a: 18 for a in AGENTS}, {a: 5 for a in AGENTS}, np.random.default_rng(0), with_subpolicy=True)
    buffer.add(rows)
    np.testing.assert_array_equal(buffer.rows_acted_by("agent_0", 0), np.arange(ROWS // 2))
    np.testing.assert_array_equal(buffer.rows_acted_by("agent_0", 1), np.arange(ROWS // 2, ROWS))
    assert len(buffer.rows_acted_by("agent_2", 0)) == ROWS - 2  # agent_2 is absent (masked) in the last 2 rows
    batch = buffer.sample(ROWS // 2, acted_by=("agent_0", 1))
    assert np.all(batch["agent_0"][SUBPOLICY] == 1)
    with pytest.raises(ValueError, match="batch_size"):
        buffer.sample(ROWS // 2 + 1, acted_by=("agent_0", 1))
    plain = JointReplayBuffer(10, AGENTS, {a: 18 for a in AGENTS}, {a: 5 for a in AGENTS}, np.random.default_rng(0))
    assert plain.fields == FIELDS
    with pytest.raises(ValueError, match="ensembles"):
        plain.rows_acted_by("agent_0", 0)


def test_ensembles_need_one_policy_per_agent():
    with pytest.raises(ConfigError, match="ensemble_size"):
        tiny_config("maddpg_simple_spread", "training.ensemble_size=3", "policies.sharing=shared", *ENSEMBLE_BACKEND)


def test_env_runner_draws_one_sub_policy_per_agent_and_episode():
    # With inferred policies as well: both of the paper's features in one real training loop.
    config = tiny_config(
        "maddpg_simple_spread", f"training.ensemble_size={K + 1}", "training.infer_policies=true", *ENSEMBLE_BACKEND,
        "resources.num_env_runners=0", "training.batch_size=16",
    )
    with ray_session(None):
        algo = config.training.to_rllib(config, num_gpus_per_learner=0).build_algo()
        try:
            draws: dict[tuple[str, str], set[int]] = {}
            for _ in range(2):  # 2 x 100 steps in 2 envs: sample() cuts the running episodes into chunks
                for episode in algo.env_runner.sample(num_timesteps=100, explore=True):
                    for agent, agent_episode in episode.agent_episodes.items():
                        chosen = np.asarray(agent_episode.get_extra_model_outputs(SUBPOLICY)).tolist()
                        draws.setdefault((episode.id_, agent), set()).update(chosen)
            assert all(len(chosen) == 1 for chosen in draws.values()), "a sub-policy changed within an episode"
            assert len(draws) == 3 * 8  # 8 episodes of 3 agents
            # 24 independent draws of one of 3: all are drawn (a miss has probability < 1e-3; the seed is fixed)
            assert set().union(*draws.values()) == set(range(K + 1))
            assert len({frozenset(c) for (_, agent), c in draws.items() if agent == "agent_0"}) > 1  # not one draw for all

            for _ in range(2):
                algo.train()
            buffer = algo.replay_buffer
            for agent in AGENTS:  # D_i^(k) partitions the rows agent i acted in
                parts = [buffer.rows_acted_by(agent, k) for k in range(K + 1)]
                assert sum(len(p) for p in parts) == len(buffer)
                assert all(np.all(buffer._storage[agent][SUBPOLICY][p] == k) for k, p in enumerate(parts))
            batch = algo._train_batch()
            for agent in AGENTS:  # batch_size rows of each sub-policy, per agent's module
                column = batch.policy_batches[agent][f"{SUBPOLICY}/{agent}"]
                assert np.bincount(column.astype(int), minlength=K + 1).tolist() == [16] * (K + 1)
            learners = algo.train()["learners"]  # updates run once every sub-buffer holds a batch
            assert all(float(learners[agent]["approx_loss"]) > 0 for agent in AGENTS)

            module = algo.env_runner.module["agent_0"]
            out = module.forward_inference({Columns.OBS: torch.zeros(2, 18)})
            assert SUBPOLICY not in out  # evaluation: no column, sub-policy 0
        finally:
            algo.stop()


def test_a_single_policy_keeps_the_plain_layout():
    config = tiny_config("maddpg_simple_spread")
    rllib_config = config.training.to_rllib(config, num_gpus_per_learner=0)
    assert rllib_config._env_to_module_connector is None and rllib_config.ensemble_size == 1
    learner, _ = build_maddpg_learner()
    assert isinstance(learner.module["agent_0"].unwrapped().actor, torch.nn.Sequential)


def test_evaluation_draws_a_sub_policy_per_agent_and_episode_and_acts_with_it():
    learner, _ = build_maddpg_learner("training.ensemble_size=3", *ENSEMBLE_BACKEND)
    policies = CheckpointPolicies(
        {agent: learner.module[agent].unwrapped() for agent in AGENTS}, {agent: agent for agent in AGENTS}, normalize_actions=False
    )
    spaces = {agent: gym.spaces.Discrete(5) for agent in AGENTS}
    observations = {agent: np.random.default_rng(1).normal(size=18).astype(np.float32) for agent in AGENTS}
    drawn = []
    for episode in range(12):
        policies.start_episode(EpisodeRandomness.from_seed(episode))
        for step in range(2):  # drawn at the agent's first step, kept for the episode
            actions = policies.act(observations, spaces, explore=False).actions
            if step == 0:
                drawn.append(dict(policies._memory))
            assert policies._memory == drawn[-1]
            for agent in AGENTS:
                member = policies.modules[agent].actor.members[drawn[-1][agent]]
                assert actions[agent] == int(member(torch.as_tensor(observations[agent])).argmax())
    assert {index for draw in drawn for index in draw.values()} == {0, 1, 2}
