"""Typed hyperparameters of BN-MAPPO (Chen & Zhang, ICML 2023): MAPPO with a Bayesian-network joint policy.

Everything MAPPO has (centralised critic V(s), value normalisation, Huber and clipped
value loss, PPO clip, GAE) plus the graph the agents' policies condition on and the
sparsity annealing that empties it by the end of training. The team is one RLlib
agent (marl/envs/team.py), so the module sees every agent at once and the episode
return is the team return summed over agents, as for MAPPO.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal, Union

from pydantic import Field, model_validator

from marl.algorithms.common import PolicyInfo, ScenarioProbe
from marl.algorithms.ppo.config import PPOFamilyConfig
from marl.config import StrictModel
from marl.envs.scenario import ObservationLayout, ScenarioSpec, scenario_env_config
from marl.errors import ConfigError

if TYPE_CHECKING:
    from ray.rllib.core.learner.learner import Learner
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    from marl.algorithms.bn.dag import SparsitySchedule
    from marl.algorithms.ppo.algorithm import PPOFamilyRLlibConfig
    from marl.config import ExperimentConfig

# RLlib, torch and the graph maths are imported inside the methods that use them, so that
# validating a config stays fast (see marl/algorithms/ppo/config.py).


class AnnealingConfig(StrictModel):
    """The sparsity schedule: target density tau(p) and weight alpha(p) of alpha * |rho - tau|,
    p = env steps so far / stop.env_steps. Defaults: the reference's SMAC runs."""

    tau_decay_start: float = Field(0.4, ge=0, le=1)
    """Progress at which tau starts falling from 1."""
    tau_decay_end: float = Field(0.7, ge=0, le=1)
    """Progress at which tau reaches 0."""
    tau_steps: int = Field(40, ge=1)
    """Equal steps in which tau falls from 1 to 0."""
    alpha_start: float = Field(0.05, ge=0)
    """Penalty weight until `alpha_rise_start`."""
    alpha_rise_start: float = Field(0.7, ge=0, lt=1)
    """Progress from which alpha rises linearly to `alpha_end` at the end of training."""
    alpha_end: float = Field(1.0, ge=0)
    """Penalty weight at the end of training."""

    @model_validator(mode="after")
    def _ordered(self):
        if self.tau_decay_end < self.tau_decay_start:
            raise ValueError("tau_decay_end must not come before tau_decay_start")
        return self

    def schedule(self) -> SparsitySchedule:
        from marl.algorithms.bn.dag import SparsitySchedule

        return SparsitySchedule(**self.model_dump())


class BNMAPPOConfig(PPOFamilyConfig):
    """BN-MAPPO: per-agent PPO clip on pi_i(a_i | o_i, a_Pa(i)) over a (learned, annealed) DAG, critic V(s)."""

    centralized_critic: ClassVar[bool] = True

    dag: Union[Literal["learned", "empty", "full", "chain"], list[tuple[str, str]]] = "learned"
    """The graph the policies condition on (A[j, i] = 1: agent j's action is an input of i's).
    `learned`: context-aware, sampled from observation-dependent logits, annealed towards
    empty. Fixed graphs: `empty` (independent agents: MAPPO's policy), `full` (autoregressive
    in the scenario's agent order), `chain` (agent k-1 -> agent k), or a list of
    [parent, child] agent-name pairs (must be acyclic)."""
    learn_order: bool = True
    """Learned graphs: learn the agents' order (Gumbel-Sinkhorn permutation); false keeps
    the scenario's agent order (the reference's released SMAC code)."""
    dag_hidden: list[int] = Field(default_factory=lambda: [64])
    """Hidden sizes of the graph networks (DeepSets edge encoder/decoder, order MLP)."""
    annealing: AnnealingConfig = Field(default_factory=AnnealingConfig)
    """The sparsity schedule (learned graphs only)."""

    @classmethod
    def learner_class(cls) -> type[Learner]:
        from marl.algorithms.bn.learner import BNMAPPOTorchLearner

        return BNMAPPOTorchLearner

    @classmethod
    def supports_continuous_actions(cls) -> bool:
        return False

    @classmethod
    def supports_image_encoder(cls) -> bool:
        return False  # its joint actor reads every agent's flat observation (marl/algorithms/bn/module.py)

    @classmethod
    def supports_backend(cls, backend: str) -> bool:
        # The fast runner samples from the module's action distribution; BN acts itself.
        return backend == "pettingzoo"

    def check_compatible(self, experiment: ExperimentConfig) -> None:
        super().check_compatible(experiment)
        if not self.supports_backend(experiment.scenario.backend):
            raise ConfigError(f"scenario.backend: {experiment.scenario.backend!r} is not supported by bn_mappo; use pettingzoo")
        if experiment.policies.sharing != "shared":
            raise ConfigError(
                "policies.sharing: bn_mappo has one actor shared by all agents (agent ids tell them apart); set policies.sharing: shared"
            )
        if isinstance(self.dag, list):  # cheap: names only, before Ray starts
            from marl.algorithms.bn.dag import fixed_adjacency

            env = ScenarioSpec(**experiment.scenario.model_dump()).make()
            agents = list(env.possible_agents)
            env.close()
            fixed_adjacency([list(edge) for edge in self.dag], agents)

    def probe(self, experiment: ExperimentConfig) -> ScenarioProbe:
        """The team as one agent "team" (marl/envs/team.py)."""
        from marl.envs.team import TEAM, TeamMultiAgentEnv

        spec = ScenarioSpec(**experiment.scenario.model_dump())
        agent_id = experiment.policies.agent_id_in_obs
        env_config = scenario_env_config(
            spec, agent_id_in_obs=True if agent_id is None else agent_id, global_state=True, seed=experiment.seed
        )
        env = TeamMultiAgentEnv(env_config)
        try:
            layout = env.layout
            team_agents = tuple(env.team_agents)
            info = PolicyInfo(
                TEAM,
                (TEAM,),
                env.observation_spaces[TEAM],
                env.action_spaces[TEAM],
                ObservationLayout(layout.n_agents * layout.agent_dim, 0, layout.state_dim),
            )
        finally:
            env.close()
        return ScenarioProbe(env_config, [TEAM], {TEAM: TEAM}, {TEAM: info}, scenario_agents=team_agents)

    def module_spec(self, info: PolicyInfo, experiment: ExperimentConfig, probe: ScenarioProbe) -> RLModuleSpec:
        from ray.rllib.core.rl_module.rl_module import RLModuleSpec

        from marl.algorithms.bn.dag import fixed_adjacency
        from marl.algorithms.bn.module import BNModule

        team_agents = list(probe.scenario_agents)
        n = len(team_agents)
        graph = "learned" if self.dag == "learned" else "fixed"
        fixed = None
        if graph == "fixed":
            dag = self.dag if isinstance(self.dag, str) else [list(edge) for edge in self.dag]
            fixed = fixed_adjacency(dag, team_agents).tolist()
        return RLModuleSpec(
            module_class=BNModule,
            observation_space=info.observation_space,
            action_space=info.action_space,
            model_config={
                "n_agents": n,
                "agent_dim": info.layout.obs_dim // n,
                "state_dim": info.layout.state_dim,
                "num_actions": int(info.action_space.nvec[0]),
                "hidden": list(experiment.model.hidden),
                "activation": experiment.model.activation,
                "value_normalization": self.value_normalization,
                "graph": graph,
                "fixed_adjacency": fixed,
                "learn_order": self.learn_order,
                "dag_hidden": list(self.dag_hidden),
            },
        )

    def to_rllib(self, experiment: ExperimentConfig, *, num_gpus_per_learner: float) -> PPOFamilyRLlibConfig:
        from marl.envs.team import TeamMultiAgentEnv

        config = super().to_rllib(experiment, num_gpus_per_learner=num_gpus_per_learner)
        return config.environment(env=TeamMultiAgentEnv)
