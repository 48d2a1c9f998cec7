"""The PPO family's RLlib algorithm: RLlib's PPO with one counting rule changed, and a training
step that can sample the next batch while the learner updates (`training.overlap_sampling`)."""

from __future__ import annotations

from ray.rllib.algorithms.ppo import PPO, PPOConfig
from ray.rllib.core.learner.learner import ALL_MODULES
from ray.rllib.utils.annotations import override
from ray.rllib.utils.metrics import (
    ENV_RUNNER_RESULTS,
    ENV_RUNNER_SAMPLING_TIMER,
    LEARNER_RESULTS,
    LEARNER_UPDATE_TIMER,
    NUM_ENV_STEPS_SAMPLED_LIFETIME,
    NUM_MODULE_STEPS_TRAINED_LIFETIME,
    SYNCH_WORKER_WEIGHTS_TIMER,
    TIMERS,
    WEIGHTS_SEQ_NO,
)

from marl.core.keys import SAMPLED_WEIGHTS_LAG
from marl.rllib.overlap import OverlappedSampler, learner_weights, put


class PPOFamilyAlgorithm(PPO):
    """RLlib's PPO; with `overlap_sampling` and remote env runners, sampling overlaps learning.

    Each training step (marl/rllib/overlap.py for why the weights ride on the requests):
    1. gather the batch the runners sampled during the previous update (the first step, or
       one after runners failed, waits for a fresh one, as PPO does);
    2. launch the next batch on every healthy runner, with the current weights;
    3. update on the gathered batch: values and GAE come from the learner connector with
       the current critic, the ratio divides by the behaviour policy's stored logp;
    4. take the new weights for the next launch, and give them to the local env runner
       (RLlib restores restarted runners from it).
    Without remote env runners there is nothing to overlap: PPO's synchronous step.
    """

    @classmethod
    @override(PPO)
    def get_default_config(cls) -> PPOFamilyRLlibConfig:
        return PPOFamilyRLlibConfig()

    @override(PPO)
    def setup(self, config) -> None:
        super().setup(config)
        self._sampler = OverlappedSampler(
            self.env_runner_group,
            train_batch_env_steps=self.config.total_train_batch_size,
            rollout_env_steps=self.config.get_rollout_fragment_length() * self.config.num_envs_per_env_runner,
            timeout_s=self.config.sample_timeout_s,
        )
        self._runner_weights = None  # None: the runners keep theirs (RLlib synced them at build)

    @override(PPO)
    def set_state(self, state) -> None:
        super().set_state(state)
        self._runner_weights = None  # RLlib synced the restored weights; ours are older

    @override(PPO)
    def training_step(self) -> None:
        if not (self.config.overlap_sampling and self.env_runner_group.num_remote_env_runners()):
            super().training_step()
            return
        with self.metrics.log_time((TIMERS, ENV_RUNNER_SAMPLING_TIMER)):
            batch = self._sampler.collect(self._runner_weights)
            self._sampler.launch(self._runner_weights)  # the next batch samples while we learn
            if not batch.episodes:  # every runner failed: RLlib restores them before the next step
                return
            self.metrics.aggregate(batch.metrics, key=ENV_RUNNER_RESULTS)
        learner_results = self._update(batch.episodes)
        with self.metrics.log_time((TIMERS, SYNCH_WORKER_WEIGHTS_TIMER)):
            version = self._publish_weights(set(learner_results[0]) - {ALL_MODULES})
        # The learner learned from `version - 1` (its update just added one).
        self.metrics.log_value(SAMPLED_WEIGHTS_LAG, version - 1 - min(batch.weights_versions), reduce="max", window=1)

    def _update(self, episodes: list) -> list[dict]:
        """PPO's learner update on `episodes`, with PPO's timesteps and metrics."""
        with self.metrics.log_time((TIMERS, LEARNER_UPDATE_TIMER)):
            learner_results = self.learner_group.update(
                episodes=episodes,
                timesteps={
                    NUM_ENV_STEPS_SAMPLED_LIFETIME: self.metrics.peek((ENV_RUNNER_RESULTS, NUM_ENV_STEPS_SAMPLED_LIFETIME)),
                    NUM_MODULE_STEPS_TRAINED_LIFETIME: self.metrics.peek(
                        (LEARNER_RESULTS, ALL_MODULES, NUM_MODULE_STEPS_TRAINED_LIFETIME), default=0
                    ),
                },
                num_epochs=self.config.num_epochs,
                minibatch_size=self.config.minibatch_size,
                shuffle_batch_per_epoch=self.config.shuffle_batch_per_epoch,
            )
            self.metrics.aggregate(learner_results, key=LEARNER_RESULTS)
        return learner_results

    def _publish_weights(self, policies: set[str]) -> int:
        """The learner's new weights for the next launch and on the local env runner; their version."""
        weights = learner_weights(self.learner_group, policies)
        if self.env_runner is not None:
            self.env_runner.set_state(weights)
        self._runner_weights = put(weights)
        return weights[WEIGHTS_SEQ_NO]


class PPOFamilyRLlibConfig(PPOConfig):
    """RLlib's PPOConfig for `PPOFamilyAlgorithm`, with `minibatch_size` counted in rows of one
    policy's batch, and whether sampling overlaps learning.

    RLlib splits each policy's batch into minibatches of `minibatch_size` rows, but
    validates it against the train batch counted in env steps. Under parameter
    sharing a policy's batch has one row per agent and env step, so a single
    full-batch minibatch (MAPPO's MPE setting) is larger than the env-step count.
    """

    def __init__(self, algo_class=None):
        super().__init__(algo_class=algo_class or PPOFamilyAlgorithm)
        self.overlap_sampling = False
        """Resolved `training.overlap_sampling` (marl/algorithms/ppo/config.py)."""

    @override(PPOConfig)
    def validate(self) -> None:
        requested = self.minibatch_size
        self.minibatch_size = min(requested, self.train_batch_size_per_learner)
        try:
            super().validate()
        finally:
            self.minibatch_size = requested
