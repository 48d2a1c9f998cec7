"""MADDPG as an RLlib Algorithm: sample, store joint transitions, update on joint batches.

One `training_step` (one `algo.train()` iteration):
1. sample episodes synchronously from the env runners (each samples
   rollout_fragment_length x num_envs_per_env_runner env steps; the env runner's module
   returns Gumbel-softmax ACTIONS itself);
2. add them as joint rows (every agent at the same env step) to the `JointReplayBuffer`
   the algorithm holds in the driver;
3. once the buffer holds `learning_starts` rows (and at least one batch), run
   `updates_per_iteration` learner updates, each on a fresh joint sample of `batch_size`
   rows (layout: `learner.joint_train_batch`); with a policy ensemble of K, each agent's
   module gets batch_size rows from each of its K sub-policy buffers D_i^(k) (and updates
   wait until every one holds a batch);
4. send the actors' new weights to the env runners.

The env-step counters are RLlib's own (env runner metrics), so `stop.env_steps`, the
progress line and checkpoints count sampled env steps as for PPO. The replay buffer is
part of the checkpoint (`replay_buffer.npz` next to RLlib's components, written inside
the same directory, so the project's atomic rename covers it): a resumed run continues
with the rows, ring position and sampling generator it had.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from ray.rllib.algorithms.algorithm import Algorithm
from ray.rllib.algorithms.algorithm_config import AlgorithmConfig
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.rllib.execution.rollout_ops import synchronous_parallel_sample
from ray.rllib.utils.annotations import override
from ray.rllib.utils.metrics import (
    ENV_RUNNER_RESULTS,
    LEARNER_RESULTS,
    NUM_AGENT_STEPS_SAMPLED_LIFETIME,
    NUM_ENV_STEPS_SAMPLED_LIFETIME,
)

from marl.algorithms.common import learner_settings
from marl.algorithms.maddpg.learner import MADDPGTorchLearner, joint_train_batch, joint_train_batch_per_module
from marl.algorithms.maddpg.module import MADDPGModule
from marl.algorithms.maddpg.replay import JointReplayBuffer, action_vector_dim, concat_rows, make_action_to_vector

REPLAY_BUFFER_FILE = "replay_buffer.npz"


class MADDPGRLlibConfig(AlgorithmConfig):
    """RLlib's AlgorithmConfig plus the replay settings and the joint agent layout (`replay()`)."""

    def __init__(self, algo_class=None):
        super().__init__(algo_class=algo_class or MADDPG)
        self.buffer_capacity = 1_000_000
        self.learning_starts = 1024 * 25
        self.updates_per_iteration = 1
        self.ensemble_size = 1
        self.n_step = 1
        self.joint_agents: list[str] = []
        self.joint_observation_dims: dict[str, int] = {}
        self.joint_action_spaces: dict[str, gym.Space] = {}

    def replay(
        self,
        *,
        buffer_capacity: int,
        learning_starts: int,
        updates_per_iteration: int,
        agents: list[str],
        ensemble_size: int = 1,
        n_step: int = 1,
        observation_dims: dict[str, int],
        action_spaces: dict[str, gym.Space],
    ) -> "MADDPGRLlibConfig":
        """The joint replay buffer's size and layout, and how often to update."""
        self.buffer_capacity = buffer_capacity
        self.learning_starts = learning_starts
        self.updates_per_iteration = updates_per_iteration
        self.ensemble_size = ensemble_size
        self.n_step = n_step
        self.joint_agents = list(agents)
        self.joint_observation_dims = dict(observation_dims)
        self.joint_action_spaces = dict(action_spaces)
        return self

    @override(AlgorithmConfig)
    def get_default_rl_module_spec(self) -> RLModuleSpec:
        return RLModuleSpec(module_class=MADDPGModule)

    @override(AlgorithmConfig)
    def get_default_learner_class(self) -> type[MADDPGTorchLearner]:
        return MADDPGTorchLearner


class MADDPG(Algorithm):
    """MADDPG (Lowe et al. 2017) on RLlib's new API stack; see the module docstring."""

    @classmethod
    @override(Algorithm)
    def get_default_config(cls) -> MADDPGRLlibConfig:
        return MADDPGRLlibConfig()

    @override(Algorithm)
    def setup(self, config: AlgorithmConfig) -> None:
        super().setup(config)
        agents = self.config.joint_agents
        self.replay_buffer = JointReplayBuffer(
            self.config.buffer_capacity,
            agents,
            self.config.joint_observation_dims,
            {agent: action_vector_dim(space) for agent, space in self.config.joint_action_spaces.items()},
            np.random.default_rng(self.config.seed),
            with_subpolicy=self.config.ensemble_size > 1,
            n_step=self.config.n_step,
            gamma=self.config.gamma,
        )
        self._action_to_vector = make_action_to_vector(self.config.joint_action_spaces)
        self._module_ids = sorted(set(learner_settings(self.config).policy_of.values()))
        # The env runners' modules start with weights of their own: from the first step on, act
        # with the actors the learner trains.
        self.env_runner_group.sync_weights(
            from_worker_or_learner_group=self.learner_group, policies=self._module_ids, inference_only=True
        )

    @override(Algorithm)
    def save_to_path(self, path=None, **kwargs) -> str:
        """RLlib's checkpoint plus the replay buffer (off-policy: resuming without it would lose the data)."""
        path = super().save_to_path(path, **kwargs)
        self.replay_buffer.save(Path(path) / REPLAY_BUFFER_FILE)
        return path

    @override(Algorithm)
    def restore_from_path(self, path, *args, **kwargs) -> None:
        super().restore_from_path(path, *args, **kwargs)
        saved = Path(path) / REPLAY_BUFFER_FILE
        if kwargs.get("component") is None and saved.is_file():  # checkpoints from before this file: start empty
            self.replay_buffer.load(saved)

    @override(Algorithm)
    def training_step(self) -> None:
        self._sample_into_replay()
        if not self._ready_to_learn():
            return
        for _ in range(self.config.updates_per_iteration):
            results = self.learner_group.update(batch=self._train_batch(), timesteps=self._timesteps())
            self.metrics.aggregate(results, key=LEARNER_RESULTS)
        self.env_runner_group.sync_weights(
            from_worker_or_learner_group=self.learner_group, policies=self._module_ids, inference_only=True
        )

    def _ready_to_learn(self) -> bool:
        batch_size = self.config.train_batch_size_per_learner
        if len(self.replay_buffer) < max(self.config.learning_starts, batch_size):
            return False
        if self.config.ensemble_size == 1:
            return True
        return all(
            len(self.replay_buffer.rows_acted_by(agent, k)) >= batch_size
            for agent in self.config.joint_agents
            for k in range(self.config.ensemble_size)
        )

    def _train_batch(self):
        batch_size = self.config.train_batch_size_per_learner
        if self.config.ensemble_size == 1:  # one joint sample for every agent
            return joint_train_batch(self.replay_buffer.sample(batch_size), self._module_ids)
        # policies.sharing: per_agent, so module id = agent: each sub-policy its own rows.
        return joint_train_batch_per_module({
            agent: concat_rows([self.replay_buffer.sample(batch_size, acted_by=(agent, k)) for k in range(self.config.ensemble_size)])
            for agent in self.config.joint_agents
        })

    def _sample_into_replay(self) -> None:
        episodes, runner_metrics = synchronous_parallel_sample(
            worker_set=self.env_runner_group,
            concat=True,
            sample_timeout_s=self.config.sample_timeout_s,
            _uses_new_env_runners=True,
            _return_metrics=True,
        )
        self.metrics.aggregate(runner_metrics, key=ENV_RUNNER_RESULTS)
        self.replay_buffer.add_episodes(episodes, self._action_to_vector)

    def _timesteps(self) -> dict[str, Any]:
        return {
            NUM_ENV_STEPS_SAMPLED_LIFETIME: self.metrics.peek((ENV_RUNNER_RESULTS, NUM_ENV_STEPS_SAMPLED_LIFETIME), default=0),
            NUM_AGENT_STEPS_SAMPLED_LIFETIME: self.metrics.peek((ENV_RUNNER_RESULTS, NUM_AGENT_STEPS_SAMPLED_LIFETIME), default={}),
        }
