"""The PPO family's RLlib algorithm config: RLlib's PPO with one counting rule changed."""

from __future__ import annotations

from ray.rllib.algorithms.ppo import PPOConfig
from ray.rllib.utils.annotations import override


class PPOFamilyRLlibConfig(PPOConfig):
    """RLlib's PPOConfig, with `minibatch_size` counted in rows of one policy's batch.

    RLlib splits each policy's batch into minibatches of `minibatch_size` rows, but
    validates it against the train batch counted in env steps. Under parameter
    sharing a policy's batch has one row per agent and env step, so a single
    full-batch minibatch (MAPPO's MPE setting) is larger than the env-step count.
    """

    @override(PPOConfig)
    def validate(self) -> None:
        requested = self.minibatch_size
        self.minibatch_size = min(requested, self.train_batch_size_per_learner)
        try:
            super().validate()
        finally:
            self.minibatch_size = requested
