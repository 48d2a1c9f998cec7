"""What every algorithm needs to turn an experiment into an RLlib config, and back in its learner.

Parameter sharing (agents -> policies), the probe of a scenario's spaces, and the
env-runner / learner / seed settings are the same for every algorithm, so they
live here once; each algorithm's config.py adds its own hyperparameters.

Across RLlib's boundary the learners get the validated, frozen `training` settings object
itself (`LearnerSettings`, read with `learner_settings(config)`), not a string-keyed dict:
a misspelt setting is an AttributeError in the editor, not a KeyError inside a Ray actor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

import gymnasium as gym

from marl.core.agents import AgentToPolicy, assign_agents, invert_mapping, teams_of
from marl.envs.scenario import ObservationLayout, ScenarioSpec, scenario_env_config
from marl.errors import ConfigError
from marl.rllib.resources import actor_threads, learner_cpus
from marl.rllib.threads import LEARNER_THREADS_KEY, env_runner_threads_callback

if TYPE_CHECKING:
    from ray.rllib.algorithms.algorithm_config import AlgorithmConfig

    from marl.config import AlgorithmSettings, ExperimentConfig

# Where the LearnerSettings travel inside RLlib's `AlgorithmConfig.learner_config_dict`.
LEARNER_SETTINGS_KEY = "marl_learner_settings"


def policy_mapping(experiment: ExperimentConfig, agents: list[str]) -> dict[str, str]:
    """agent -> policy id, from `policies.sharing` (validated: every agent exactly once)."""
    policies = experiment.policies
    if policies.sharing == "per_agent":
        return {agent: agent for agent in agents}
    if policies.sharing == "shared":
        return {agent: "shared" for agent in agents}
    return assign_agents(agents, policies.groups, key="policies.groups", noun="group")


@dataclass(frozen=True)
class PolicyInfo:
    """What a module needs to know about the agents it controls."""

    policy_id: str
    agents: tuple[str, ...]
    observation_space: gym.Space
    action_space: gym.Space
    layout: ObservationLayout


@dataclass(frozen=True)
class ScenarioProbe:
    """A scenario's agents and spaces as the RLlib adapter presents them."""

    env_config: dict
    agents: list[str]
    """The RLlib agents (for a joint policy over the team: the one agent `team`)."""
    mapping: dict[str, str]
    policies: dict[str, PolicyInfo]
    scenario_agents: tuple[str, ...] = ()
    """The scenario's own agents, in the order the modules see them (the same as `agents`
    unless the adapter groups them into a team)."""


@dataclass(frozen=True)
class LearnerSettings:
    """What an algorithm's RLlib Learner reads beyond RLlib's own AlgorithmConfig."""

    training: AlgorithmSettings
    """The experiment's validated, frozen `training` section (the algorithm's settings class)."""
    agents: tuple[str, ...]
    """The RLlib agents, in the scenario's order (MADDPG's joint batch columns follow it)."""
    policy_of: dict[str, str]
    """agent -> the id of the policy (RLModule) that controls it."""
    stop_env_steps: int
    """The run's budget (`stop.env_steps`), for schedules over training progress."""


def learner_settings(config: AlgorithmConfig) -> LearnerSettings:
    """The LearnerSettings an algorithm's `to_rllib` put into `config` (a Learner's `self.config`)."""
    settings = config.learner_config_dict.get(LEARNER_SETTINGS_KEY)
    if not isinstance(settings, LearnerSettings):
        raise RuntimeError(
            "this RLlib config carries no marl learner settings; build it with the algorithm's "
            "`to_rllib` (ExperimentConfig.training.to_rllib), not by hand"
        )
    return settings


def probe_scenario(experiment: ExperimentConfig, *, global_state: bool) -> ScenarioProbe:
    """Build the adapter once in the driver to read spaces and check parameter sharing."""
    from marl.envs.adapter import PettingZooMultiAgentEnv

    spec = ScenarioSpec(**experiment.scenario.model_dump())
    raw = spec.make()
    raw_agents = list(raw.possible_agents)
    raw.close()
    mapping = policy_mapping(experiment, raw_agents)
    teams_of(raw_agents, experiment.teams)  # a wrong `teams` mapping fails now, not after training
    agents_per_policy = invert_mapping(mapping)
    agent_id = experiment.policies.agent_id_in_obs
    if agent_id is None:
        agent_id = any(len(members) > 1 for members in agents_per_policy.values())
    env_config = scenario_env_config(spec, agent_id_in_obs=agent_id, global_state=global_state, seed=experiment.seed)
    env = PettingZooMultiAgentEnv(env_config)
    try:
        policies = {}
        for policy_id, members in agents_per_policy.items():
            first = members[0]
            for other in members[1:]:
                if (
                    env.observation_spaces[other] != env.observation_spaces[first]
                    or env.action_spaces[other] != env.action_spaces[first]
                ):
                    raise ConfigError(
                        f"policies: {first!r} and {other!r} share policy {policy_id!r} but have different "
                        "observation or action spaces; use sharing: per_agent or groups, or add the SuperSuit "
                        "wrappers pad_observations_v0 and pad_action_space_v0"
                    )
            policies[policy_id] = PolicyInfo(
                policy_id, tuple(members), env.observation_spaces[first], env.action_spaces[first], env.layouts[first]
            )
    finally:
        env.close()
    return ScenarioProbe(env_config, raw_agents, mapping, policies, scenario_agents=tuple(raw_agents))


def apply_common_settings(
    rllib_config: AlgorithmConfig,
    experiment: ExperimentConfig,
    probe: ScenarioProbe,
    *,
    training: AlgorithmSettings,
    train_batch_size: int,
    num_gpus_per_learner: float,
) -> AlgorithmConfig:
    """Environment, env runners, learners (with `training` handed to them), multi-agent mapping and seed."""
    from marl.envs.adapter import PettingZooMultiAgentEnv
    from marl.rllib.faults import FaultReportingEnvRunner, stop_on_fault_after_iteration, stop_on_fault_after_restore
    from marl.rllib.ordering import AgentOrderedEnvToModule
    from marl.rllib.partial_returns import PartialReturns

    resources = experiment.resources
    if resources.num_env_runners == "auto":
        raise ConfigError(
            "resources.num_env_runners: `auto` is resolved against a Ray cluster; build through marl.training "
            "(train/sweep), or resolve it first with marl.rllib.resources.resolve_num_env_runners"
        )
    fragment = resources.rollout_fragment_length
    if fragment == "auto":
        samplers = max(1, resources.num_env_runners) * resources.num_envs_per_env_runner
        fragment = max(1, math.ceil(train_batch_size / samplers))
    num_learners = resources.num_learners
    runner_threads = actor_threads(resources.threads.env_runner, resources.num_cpus_per_env_runner)
    learner_threads = actor_threads(resources.threads.learner, learner_cpus(1, num_gpus_per_learner))
    if experiment.scenario.backend == "vectorized":
        from marl.rllib.vectorized_env_runner import VectorizedMultiAgentEnvRunner

        rllib_config.env_runners(env_runner_cls=VectorizedMultiAgentEnvRunner)
    else:
        rllib_config.env_runners(
            # A scenario fault stops the run instead of crash-looping the runner (marl/rllib/faults.py).
            env_runner_cls=FaultReportingEnvRunner,
            # Agents in a fixed order, not a set's: the same seed, the same run (marl/rllib/ordering.py).
            env_to_module_connector=AgentOrderedEnvToModule(),
        )
    return (
        rllib_config.environment(env=PettingZooMultiAgentEnv, env_config=probe.env_config, disable_env_checking=True)
        .framework("torch")
        .env_runners(
            num_env_runners=resources.num_env_runners,
            num_envs_per_env_runner=resources.num_envs_per_env_runner,
            num_cpus_per_env_runner=resources.num_cpus_per_env_runner,
            rollout_fragment_length=fragment,
        )
        .fault_tolerance(
            restart_failed_env_runners=resources.restart_failed_env_runners,
            max_num_env_runner_restarts=resources.max_num_env_runner_restarts,
            delay_between_env_runner_restarts_s=resources.delay_between_env_runner_restarts_s,
            num_consecutive_env_runner_failures_tolerance=resources.num_consecutive_env_runner_failures_tolerance,
            env_runner_health_probe_timeout_s=resources.env_runner_health_probe_timeout_s,
            restart_failed_sub_environments=resources.restart_failed_sub_environments,
        )
        .learners(
            num_learners=num_learners,
            num_gpus_per_learner=num_gpus_per_learner,
            learner_config_dict={
                LEARNER_THREADS_KEY: learner_threads,
                LEARNER_SETTINGS_KEY: LearnerSettings(
                    training, tuple(probe.agents), dict(probe.mapping), experiment.stop.env_steps
                ),
            },
        )
        .callbacks(on_environment_created=partial(env_runner_threads_callback, threads=runner_threads))
        .multi_agent(policies=list(probe.policies), policy_mapping_fn=AgentToPolicy(probe.mapping))
        .callbacks(on_train_result=stop_on_fault_after_iteration, on_env_runners_recreated=stop_on_fault_after_restore)
        .debugging(seed=experiment.seed)
        .reporting(metrics_num_episodes_for_smoothing=100)
        .callbacks(on_sample_end=PartialReturns())
    )
