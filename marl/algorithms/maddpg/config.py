"""Typed hyperparameters of MADDPG (Lowe et al. 2017) and its independent-DDPG baseline.

Defaults are the reference code's (openai/maddpg, `train.py`'s arguments):
Adam lr 1e-2 for actor and critic, gamma 0.95, tau 0.01, batch 1024 joint transitions,
buffer 1e6, learning after 1024 * 25 transitions, one update per 100 env steps (here
`updates_per_iteration` updates per `env_steps_per_iteration` sampled), gradient clip 0.5
per tensor, logit regulariser 1e-3. `critic: local` gives the paper's baseline (DDPG with
Q_i(o_i, a_i)) from the same code.

Actions: Discrete actions with straight-through (hard) Gumbel-softmax, and mpe2's
`continuous_actions=True` Box actions with the reference's soft Gumbel-softmax
(`hard: false`) or a hard one-hot. Box actions are treated as a Gumbel-softmax over the
Box's flat dimensions (mpe2's 5-dim forces in [0, 1]); there is no general continuous
controller (tanh policy with Gaussian noise) yet.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

import gymnasium as gym
from pydantic import Field

from marl.algorithms.common import ScenarioProbe, apply_common_settings, probe_scenario
from marl.config import AlgorithmSettings
from marl.errors import ConfigError

if TYPE_CHECKING:
    from ray.rllib.core.learner.learner import Learner

    from marl.algorithms.maddpg.algorithm import MADDPGRLlibConfig
    from marl.config import ExperimentConfig

# RLlib and torch are imported inside `to_rllib`, so that validating a config stays fast.


class MADDPGConfig(AlgorithmSettings):
    """MADDPG: per agent a deterministic Gumbel-softmax actor mu_i(o_i) and a critic Q_i; joint replay."""

    lr_actor: float = Field(1e-2, gt=0)
    """Adam learning rate of each actor."""
    lr_critic: float = Field(1e-2, gt=0)
    """Adam learning rate of each critic."""
    gamma: float = Field(0.95, ge=0, le=1)
    """Discount factor (a time-limit truncation bootstraps; only a true termination stops it)."""
    tau: float = Field(0.01, ge=0, le=1)
    """Polyak rate of the target networks after every update: theta' <- (1 - tau) theta' + tau theta."""
    batch_size: int = Field(1024, gt=0)
    """Joint transitions (env steps, every agent) per update."""
    buffer_capacity: int = Field(1_000_000, gt=0)
    """Joint transitions the replay buffer holds (the oldest are overwritten)."""
    learning_starts: int = Field(1024 * 25, ge=0)
    """Updates begin once the buffer holds this many joint transitions (and at least `batch_size`)."""
    env_steps_per_iteration: int = Field(1000, gt=0)
    """Env steps sampled per training iteration, summed over env runners and their envs."""
    value_rescaling: Literal["none", "sqrt", "symlog"] = "none"
    """The critics learn h(Q) instead of Q (marl/core/value_rescaling.py): `sqrt`, Pohlen et al.
    2018's h(x) = sign(x)(sqrt(|x| + 1) - 1) + 0.01 x (R2D2, MuZero); `symlog`, DreamerV3's
    sign(x) ln(1 + |x|). Targets y = h(r + gamma h^-1(Q'_h)); the actor ascends h(Q), whose best
    action is Q's. For values spanning orders of magnitude, where a small action effect at small
    |Q| (a listener near its goal) is below the critic's error on the large ones. Metrics
    (q_mean, target_q_mean) stay in return units."""
    n_step: int = Field(1, ge=1)
    """Critic targets from n-step returns: y = r_t + ... + gamma^(m-1) r_{t+m-1} + gamma^m Q'(x_{t+m}, a'),
    m <= n (fewer at the episode's end, after a termination, or where the set of acting agents
    changes). 1 is the paper's one-step target. n > 1 is uncorrected for exploration (the
    intermediate rewards follow the behaviour's noisy actions, as in D4PG / Rainbow): it trades that
    bias for targets that lean less on the critic's own estimate."""
    updates_per_iteration: int = Field(10, ge=1)
    """Learner updates per iteration, each on a fresh joint sample (the reference: 1 per 100 env steps)."""
    grad_clip: float | None = Field(0.5, gt=0)
    """Clip of each gradient tensor's L2 norm, one tensor at a time (the reference's); null disables."""
    logits_reg: float = Field(1e-3, ge=0)
    """Weight of the actor's logit regulariser E[logits^2]."""
    hard: bool = True
    """Straight-through (hard, one-hot) Gumbel-softmax. Discrete actions need it (the env takes an
    integer); false is the reference's soft sample, for Box actions (mpe2 `continuous_actions: true`)."""
    actor_output_gain: float = Field(0.01, gt=0)
    """Gain of the orthogonal init of each actor's last layer. 0.01 starts every policy near
    uniform (the PPO convention); ~1 is the reference's scale (TF's Glorot init gives logits of
    order 1), so that at the start different observations already map to different actions."""
    temperature: float = Field(1.0, gt=0)
    """Exploration: Gumbel-softmax temperature of the sampled actions and of the training samples.
    Exploration is the Gumbel noise itself, as in the reference. The temperature shapes soft samples
    and the straight-through gradient; it does not change which one-hot a hard sample picks."""
    target_actions: Literal["sample", "greedy"] = "sample"
    """a'_j in the critic target: `sample`, a Gumbel-softmax sample of the target actor (the
    reference's); `greedy`, its noise-free action (one-hot argmax, or softmax for soft actions), so
    that Q learns the value of the deterministic policy it differentiates (DDPG's target)."""
    critic_hidden: list[Annotated[int, Field(gt=0)]] | None = None
    """Hidden layer sizes of each critic (and its twin and targets); null: `model.hidden`, the
    actor's. The critic has to resolve an action's small effect under values of every size (issue
    17: speaker-listener), which can take more units than the actor needs."""
    twin_critics: bool = False
    """Clipped double Q (TD3, Fujimoto et al. 2018; MATD3, Ackermann et al. 2019): each agent gets a
    second critic, trained on the same targets, and the target is r + gamma min(Q'_1, Q'_2); the
    actor ascends the first critic. Counters the overestimation that the actor's ascent on Q breeds
    (docs/benchmarks.md, issue 17: the listener's critic scored states near its goal above 0 with
    rewards -d^2 <= 0)."""
    critic: Literal["centralized", "local"] = "centralized"
    """`centralized`: Q_i(o_1..o_N, a_1..a_N), MADDPG. `local`: Q_i(o_i, a_i), independent DDPG (the baseline)."""
    ensemble_size: int = Field(1, ge=1)
    """Policy ensembles (the paper's section 4.3): K sub-policies per agent, one drawn per agent and
    episode; sub-policy k trains on the rows it acted in (D_i^(k), a view of the one replay buffer; batch_size
    rows per update each) and the actor gradient is averaged over the K. One critic per agent.
    1 = no ensemble. Needs `policies.sharing: per_agent`. `marl evaluate` draws the sub-policies per episode too."""
    infer_policies: bool = False
    """Inferred policies (the paper's section 4.2): each module fits approximations of the other
    agents' policies to their replayed actions (maximum likelihood plus an entropy bonus) and
    uses them, not the other agents' target actors, for a'_j in its critic target. A module infers
    the agents it does not control (with `policies.sharing: shared` there are none)."""
    infer_entropy_coeff: float = Field(1e-3, ge=0)
    """Weight lambda of the approximations' entropy bonus."""

    @classmethod
    def learner_class(cls) -> type[Learner]:
        from marl.algorithms.maddpg.learner import MADDPGTorchLearner

        return MADDPGTorchLearner

    @classmethod
    def has_centralized_critic(cls) -> bool:
        """Whether the algorithm's critic sees all agents (by default)."""
        return True

    def uses_centralized_critic(self) -> bool:
        return self.critic == "centralized"

    @classmethod
    def supports_continuous_actions(cls) -> bool:
        """Box actions as mpe2's `continuous_actions=True` gives them (a Gumbel-softmax over the Box's dims)."""
        return True

    @classmethod
    def supports_backend(cls, backend: str) -> bool:
        """Both: the vectorized env runner takes the actions MADDPG's module returns, as RLlib's runner does."""
        return backend in ("pettingzoo", "vectorized")

    def check_compatible(self, experiment: ExperimentConfig) -> None:
        if self.ensemble_size > 1 and experiment.scenario.backend == "vectorized":
            raise ConfigError(
                f"training.ensemble_size: {self.ensemble_size} draws sub-policies in an env-to-module connector, "
                "which the vectorized runner does not run; set scenario.backend: pettingzoo"
            )
        if self.ensemble_size > 1 and experiment.policies.sharing != "per_agent":
            raise ConfigError(
                f"training.ensemble_size: {self.ensemble_size} sub-policies are drawn per agent; set policies.sharing: per_agent"
            )
        if self.infer_policies and self.critic == "local":
            raise ConfigError("training.infer_policies: a local critic Q_i(o_i, a_i) takes no other agent's action; set training.critic: centralized")
        if experiment.resources.num_learners > 1:
            raise ConfigError("resources.num_learners: maddpg runs one learner (0 or 1): its replay buffer lives in the driver")

    def budget_warnings(self, experiment: ExperimentConfig, *, max_iterations: int | None = None) -> list[str]:
        """What this run's budget cannot do, said before it starts: here, reach the first update."""
        first_update = max(self.learning_starts, self.batch_size)
        budget = experiment.stop.env_steps
        where = "stop.env_steps"
        if max_iterations is not None and max_iterations * self.env_steps_per_iteration < budget:
            budget, where = max_iterations * self.env_steps_per_iteration, f"--max-iterations {max_iterations}"
        if budget >= first_update:
            return []
        return [
            f"updates start after {first_update:,} env steps (training.learning_starts / batch_size) but this run "
            f"stops at {budget:,} ({where}): it will only fill the replay buffer, with no learner metrics; "
            f"lower training.learning_starts or raise {where}"
        ]

    def to_rllib(self, experiment: ExperimentConfig, *, num_gpus_per_learner: float) -> MADDPGRLlibConfig:
        """The RLlib config of the MADDPG algorithm that trains this experiment."""
        from ray.rllib.core.rl_module.multi_rl_module import MultiRLModuleSpec
        from ray.rllib.core.rl_module.rl_module import RLModuleSpec

        from marl.algorithms.maddpg.algorithm import MADDPGRLlibConfig
        from marl.algorithms.maddpg.ensemble import SubPolicyConnectorFactory
        from marl.algorithms.maddpg.module import MADDPGModule
        from marl.algorithms.maddpg.replay import action_vector_dim
        from marl.rllib.ordering import AgentOrderedEnvToModule

        probe = probe_scenario(experiment, global_state=False)
        self._check_action_spaces(probe)
        agents = probe.agents
        info_of = {agent: probe.policies[probe.mapping[agent]] for agent in agents}
        obs_dims = {agent: info_of[agent].layout.total_dim for agent in agents}
        action_spaces = {agent: info_of[agent].action_space for agent in agents}
        action_dims = {agent: action_vector_dim(space) for agent, space in action_spaces.items()}
        config: MADDPGRLlibConfig = apply_common_settings(
            MADDPGRLlibConfig(),
            experiment,
            probe,
            training=self,
            train_batch_size=self.env_steps_per_iteration,
            num_gpus_per_learner=num_gpus_per_learner,
        )
        if self.ensemble_size > 1:  # the env runners draw each agent's sub-policy per episode
            draw = SubPolicyConnectorFactory(self.ensemble_size)
            ordered = experiment.scenario.backend == "pettingzoo"  # keep the common agent-order piece first
            config.env_runners(env_to_module_connector=AgentOrderedEnvToModule(draw) if ordered else draw)
        return (
            # The module returns the env's action (a simplex vector for Box): no rescaling.
            config.environment(normalize_actions=False, clip_actions=False)
            .training(
                gamma=self.gamma,
                train_batch_size_per_learner=self.batch_size,
                grad_clip=self.grad_clip,
                grad_clip_by="norm",
            )
            .replay(
                buffer_capacity=self.buffer_capacity,
                learning_starts=self.learning_starts,
                updates_per_iteration=self.updates_per_iteration,
                ensemble_size=self.ensemble_size,
                n_step=self.n_step,
                agents=agents,
                observation_dims=obs_dims,
                action_spaces=action_spaces,
            )
            .learners(learner_class=self.learner_class())
            .rl_module(
                rl_module_spec=MultiRLModuleSpec(
                    rl_module_specs={
                        policy_id: RLModuleSpec(
                            module_class=MADDPGModule,
                            observation_space=info.observation_space,
                            action_space=info.action_space,
                            model_config={
                                "agents": list(info.agents),
                                "all_agents": agents,
                                "obs_dims": obs_dims,
                                "action_dims": action_dims,
                                "hidden": list(experiment.model.hidden),
                                "activation": experiment.model.activation,
                                "critic": self.critic,
                                "hard": self.hard,
                                "temperature": self.temperature,
                                "actor_output_gain": self.actor_output_gain,
                                "twin_critics": self.twin_critics,
                                "critic_hidden": self.critic_hidden,  # None: the module uses `hidden`
                                "value_rescaling": self.value_rescaling,
                                "ensemble_size": self.ensemble_size,
                                "infer_policies": self.infer_policies,
                            },
                        )
                        for policy_id, info in probe.policies.items()
                    }
                )
            )
        )

    def _check_action_spaces(self, probe: ScenarioProbe) -> None:
        for info in probe.policies.values():
            space = info.action_space
            if not isinstance(space, (gym.spaces.Discrete, gym.spaces.Box)):
                raise ConfigError(f"scenario: policy {info.policy_id!r} has action space {space}; maddpg supports Discrete and Box")
            if isinstance(space, gym.spaces.Discrete) and not self.hard:
                raise ConfigError(
                    f"training.hard: false (soft Gumbel-softmax) needs Box actions, but policy {info.policy_id!r} has {space}; "
                    "set scenario.kwargs.continuous_actions=true or training.hard=true"
                )
