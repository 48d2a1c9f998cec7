"""Typed hyperparameters of the PPO family: IPPO (local critics) and MAPPO (centralised critic).

Defaults follow MAPPO's reference MPE settings (Yu et al. 2022, appendix, and the released
code, marlbenchmark/on-policy): lr 7e-4, 10 epochs, clip 0.2, Huber value loss,
value normalisation, gradient-norm clip 10.
"""

from __future__ import annotations

import math
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import gymnasium as gym
from pydantic import Field

from marl.algorithms.common import PolicyInfo, ScenarioProbe, apply_common_settings, probe_scenario
from marl.config import AlgorithmSettings
from marl.errors import ConfigError

if TYPE_CHECKING:
    from ray.rllib.core.learner.learner import Learner
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    from marl.algorithms.ppo.algorithm import PPOFamilyRLlibConfig
    from marl.config import ExperimentConfig

# RLlib, torch and the learners are imported inside the methods that build the RLlib config:
# validating a config (the first thing `marl train` does) must not wait for them.


class ActorCriticConfig(AlgorithmSettings):
    """What every on-policy actor-critic on ActorCriticModule shares (IPPO, MAPPO, DPO):
    the hyperparameters below and the RLlib builder `to_rllib`.

    Subclasses pick their learner with `learner_class` (which reads these settings, frozen,
    through `marl.algorithms.common.learner_settings`) and add `rllib_training_settings()`
    (extra `PPOConfig.training` arguments); an algorithm with other modules or another view
    of the scenario overrides `probe()` and `module_spec()` (BN-MAPPO).
    """

    lr: float = Field(7e-4, gt=0)
    """Adam learning rate of actor and critic."""
    gamma: float = Field(0.99, ge=0, le=1)
    """Discount factor."""
    gae_lambda: float = Field(0.95, ge=0, le=1)
    """GAE lambda."""
    train_batch_size: int = Field(2048, gt=0)
    """Env steps (joint steps) per update, summed over all env runners."""
    num_epochs: int = Field(10, ge=1)
    """Passes over each train batch."""
    num_minibatches: int = Field(1, ge=1)
    """Minibatches per epoch (each policy's batch is split into this many)."""
    value_clip_param: float | None = Field(0.2, gt=0)
    """Clip of the value change per update (MAPPO's clipped value loss); null disables."""
    huber_delta: float | None = Field(10.0, gt=0)
    """Huber loss delta of the value loss; null uses the squared error."""
    value_normalization: bool = True
    """Normalise value targets with running statistics (GAE uses de-normalised values)."""
    vf_loss_coeff: float = Field(1.0, ge=0)
    """Weight of the value loss."""
    entropy_coeff: float = Field(0.01, ge=0)
    """Weight of the entropy bonus."""
    grad_clip: float | None = Field(10.0, gt=0)
    """Global gradient-norm clip; null disables."""
    initial_log_std: float = 0.0
    """Continuous actions: initial log standard deviation of the Gaussian policy."""
    learner_connector: Literal["vectorized", "rllib"] = "vectorized"
    """How the learner turns sampled episodes into the train batch (critic values, GAE, value
    targets). `vectorized`: one pass of array operations (marl/algorithms/ppo/connector.py;
    the same batch as RLlib's pipeline, tested, at a fraction of the cost); `rllib`: RLlib's
    default learner connector pipeline with its GeneralAdvantageEstimation piece."""
    overlap_sampling: bool | Literal["auto"] = "auto"
    """Sample the next train batch while the learner updates on the last one
    (marl/rllib/overlap.py): the remote env runners then sample with weights one update old,
    which the ratio corrects for (it divides by the behaviour policy's logp, stored at
    sampling), and values and GAE still come from the current critic. Needs remote env
    runners: with `resources.num_env_runners: 0` the driver samples and nothing overlaps
    (PPO's synchronous step). `auto`: off, for now. Measured on 2 cores (docs/performance.md,
    "Sampling overlapped with learning"): MAPPO equal-work samples 1.12-1.50x faster with it
    (1-2 runners, both backends), but the shipped MAPPO config on simple_spread (15 epochs
    per batch) learned less per env step in each of 3 seeds (mean return over the run -72.4
    vs -66.3, final -64.2 vs -61.0) and no faster per second: the clip is centred on the
    one-update-old behaviour policy, which 15 epochs have already moved away from. `true`
    turns it on (ippo, mappo, dpo, bn_mappo alike)."""

    @classmethod
    def learner_class(cls) -> type[Learner]:
        """The RLlib Learner that computes this algorithm's loss."""
        from marl.algorithms.ppo.learner import PPOFamilyTorchLearner

        return PPOFamilyTorchLearner

    def overlaps_sampling(self, experiment: ExperimentConfig) -> bool:
        """`overlap_sampling` resolved for this experiment's env runners (resolved, not `auto`)."""
        # auto is off: it did not keep learning within seed noise (field docstring).
        return self.overlap_sampling is True and experiment.resources.num_env_runners != 0

    @classmethod
    def supports_image_encoder(cls) -> bool:
        return True

    def uses_image_encoder(self, info: PolicyInfo, experiment: ExperimentConfig) -> bool:
        """Whether this policy's networks put a convolutional encoder before their MLPs."""
        from marl.core.shapes import is_image

        encoder = experiment.model.encoder
        return encoder == "cnn" or (encoder == "auto" and self.supports_image_encoder() and is_image(info.layout.obs_shape))

    def check_compatible(self, experiment: ExperimentConfig) -> None:
        """Checks that need the whole experiment but not the scenario."""
        if self.train_batch_size < self.num_minibatches:
            raise ConfigError("training.num_minibatches: more minibatches than env steps in training.train_batch_size")

    def rllib_training_settings(self) -> dict[str, Any]:
        """Extra keyword arguments for RLlib's `PPOConfig.training`."""
        return {}

    def _learner_connector_settings(self) -> dict[str, Any]:
        if self.learner_connector == "rllib":
            return {}
        from marl.algorithms.ppo.connector import PPOTrainBatch

        return {
            "add_default_connectors_to_learner_pipeline": False,
            "learner_connector": partial(PPOTrainBatch, gamma=self.gamma, lambda_=self.gae_lambda),
        }

    def probe(self, experiment: ExperimentConfig) -> ScenarioProbe:
        """The scenario's policies and spaces as this algorithm's env runners will see them."""
        from marl.core.shapes import is_image

        probe = probe_scenario(experiment, global_state=self.uses_centralized_critic())
        if any(is_image(info.layout.obs_shape) for info in probe.policies.values()):
            probe = self._with_frames_handled(probe, experiment)
        for info in probe.policies.values():
            if not isinstance(info.action_space, (gym.spaces.Discrete, gym.spaces.Box)):
                raise ConfigError(
                    f"scenario: policy {info.policy_id!r} has action space {info.action_space}; "
                    f"{experiment.algorithm} supports Discrete and Box actions"
                )
            if info.layout.peers and self.learner_connector == "rllib":
                raise ConfigError(
                    "training.learner_connector: rllib cannot give a centralised critic over image observations the "
                    "other agents' frames (the learner connector builds them); use learner_connector: vectorized"
                )
            if self.uses_image_encoder(info, experiment):
                self._check_image_policy(info)
        return probe

    def _with_frames_handled(self, probe: ScenarioProbe, experiment: ExperimentConfig) -> ScenarioProbe:
        """The probe of a scenario with frames, with the adapter told how to treat them
        (marl.envs.scenario.IMAGES_KEY): pooled within `model.image_size`, uint8 kept, and a
        centralised critic's frames kept out of the per-agent state."""
        from dataclasses import replace

        from marl.envs.adapter import PettingZooMultiAgentEnv
        from marl.envs.scenario import AUTO_IMAGE_SIDE, IMAGES_KEY

        size = experiment.model.image_size
        max_side = AUTO_IMAGE_SIDE if size == "auto" else None if size == "full" else int(size)
        env_config = {**probe.env_config, IMAGES_KEY: {"max_side": max_side, "peers_apart": self.uses_centralized_critic()}}
        env = PettingZooMultiAgentEnv(env_config)
        try:
            policies = {
                policy_id: replace(info, observation_space=env.observation_spaces[info.agents[0]], layout=env.layouts[info.agents[0]])
                for policy_id, info in probe.policies.items()
            }
        finally:
            env.close()
        for policy_id, info in policies.items():
            _announce_frames(experiment, probe.policies[policy_id].layout.obs_shape, info.layout.obs_shape)
        return replace(probe, env_config=env_config, policies=policies)

    def _check_image_policy(self, info: PolicyInfo) -> None:
        """A convolutional encoder needs frames, and a centralised one every agent's frame."""
        from marl.core.shapes import is_image

        layout = info.layout
        if not is_image(layout.obs_shape):
            raise ConfigError(
                f"model.encoder: cnn needs image observations (height, width, channels), but policy {info.policy_id!r} "
                f"observes shape {layout.obs_shape}; use model.encoder: auto or mlp"
            )
        if self.uses_centralized_critic() and not layout.peers:
            raise ConfigError(
                "scenario.global_state: a centralised critic over image observations encodes each agent's frame, so "
                "it reads the agents' frames, not the scenario's state(); set scenario.global_state: observations "
                "(and give every agent frames of one shape)"
            )

    def module_spec(self, info: PolicyInfo, experiment: ExperimentConfig, probe: ScenarioProbe) -> RLModuleSpec:
        """The RLModule of one policy (`probe`: the scenario as `probe()` saw it)."""
        from ray.rllib.core.rl_module.rl_module import RLModuleSpec

        from marl.algorithms.ppo.module import ActorCriticModule

        return RLModuleSpec(
            module_class=ActorCriticModule,
            observation_space=info.observation_space,
            action_space=info.action_space,
            model_config={
                "obs_dim": info.layout.obs_dim,
                "id_dim": info.layout.id_dim,
                "state_dim": info.layout.state_dim,
                "hidden": list(experiment.model.hidden),
                "activation": experiment.model.activation,
                "centralized_critic": self.uses_centralized_critic(),
                "value_normalization": self.value_normalization,
                "initial_log_std": self.initial_log_std,
                **self._encoder_settings(info, experiment),
                # A centralised critic over frames reads its peers' from PEER_OBS (module docstring).
                **({"peers": info.layout.peers, "scenario_agents": list(probe.scenario_agents)} if info.layout.peers else {}),
            },
        )

    def _encoder_settings(self, info: PolicyInfo, experiment: ExperimentConfig) -> dict[str, Any]:
        if not self.uses_image_encoder(info, experiment):
            return {}
        return {
            "encoder": "cnn",
            "obs_shape": list(info.layout.obs_shape),
            "obs_scale": info.layout.obs_scale,
            "conv": [list(layer) for layer in experiment.model.conv],
        }

    def to_rllib(self, experiment: ExperimentConfig, *, num_gpus_per_learner: float) -> PPOFamilyRLlibConfig:
        """The RLlib PPOConfig that trains this experiment."""
        from ray.rllib.core.rl_module.multi_rl_module import MultiRLModuleSpec

        from marl.algorithms.ppo.algorithm import PPOFamilyRLlibConfig

        probe = self.probe(experiment)
        largest_group = max(len(info.agents) for info in probe.policies.values())
        minibatch_size = math.ceil(self.train_batch_size * largest_group / self.num_minibatches)
        num_learners = max(1, experiment.resources.num_learners)
        config = apply_common_settings(
            PPOFamilyRLlibConfig(),
            experiment,
            probe,
            training=self,
            train_batch_size=self.train_batch_size,
            num_gpus_per_learner=num_gpus_per_learner,
        )
        config.overlap_sampling = self.overlaps_sampling(experiment)
        return config.training(
            lr=self.lr,
            gamma=self.gamma,
            lambda_=self.gae_lambda,
            train_batch_size_per_learner=math.ceil(self.train_batch_size / num_learners),
            minibatch_size=math.ceil(minibatch_size / num_learners),
            num_epochs=self.num_epochs,
            vf_loss_coeff=self.vf_loss_coeff,
            entropy_coeff=self.entropy_coeff,
            grad_clip=self.grad_clip,
            grad_clip_by="global_norm",
            use_kl_loss=False,
            **self.rllib_training_settings(),
        ).learners(
            learner_class=self.learner_class(),
            **self._learner_connector_settings(),
        ).rl_module(
            rl_module_spec=MultiRLModuleSpec(
                rl_module_specs={policy_id: self.module_spec(info, experiment, probe) for policy_id, info in probe.policies.items()}
            )
        )


_ANNOUNCED_FRAMES: set[tuple] = set()


def _announce_frames(experiment: ExperimentConfig, raw: tuple[int, ...], used: tuple[int, ...]) -> None:
    """Print once per process and scenario what size of frames the networks read (`model.image_size`)."""
    key = (experiment.scenario.name, tuple(raw), tuple(used))
    if key in _ANNOUNCED_FRAMES:
        return
    _ANNOUNCED_FRAMES.add(key)
    size = "x".join(str(side) for side in used)
    if tuple(raw) == tuple(used):
        print(f"frames: {size} as the scenario gives them (model.image_size: {experiment.model.image_size})", flush=True)
    else:
        factor = raw[0] // used[0]
        print(
            f"frames: {'x'.join(str(side) for side in raw)} -> {size}, {factor}x{factor} pixel blocks averaged "
            f"(model.image_size: {experiment.model.image_size}; `full` keeps them)",
            flush=True,
        )


class PPOFamilyConfig(ActorCriticConfig):
    """Hyperparameters shared by IPPO and MAPPO: the above plus PPO's ratio clip."""

    centralized_critic: ClassVar[bool]

    clip_param: float = Field(0.2, gt=0)
    """PPO ratio clip epsilon."""

    @classmethod
    def has_centralized_critic(cls) -> bool:
        return cls.centralized_critic

    def rllib_training_settings(self) -> dict[str, Any]:
        return {"clip_param": self.clip_param}


class IPPOConfig(PPOFamilyConfig):
    """IPPO (de Witt et al. 2020): each agent's critic sees only its own observation."""

    centralized_critic: ClassVar[bool] = False


class MAPPOConfig(PPOFamilyConfig):
    """MAPPO (Yu et al. 2022): a centralised critic V(s) on the global state."""

    centralized_critic: ClassVar[bool] = True
