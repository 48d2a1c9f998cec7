"""Scenarios: resolving names, preprocessing, API checks and the RLlib adapter."""

from marl.envs.adapter import ObservationLayout, PettingZooMultiAgentEnv, ScenarioSpec, scenario_env_config
from marl.envs.registry import known_scenarios, make_parallel_env, resolve_factory
from marl.envs.validation import check_parallel_api

__all__ = [
    "ObservationLayout",
    "PettingZooMultiAgentEnv",
    "ScenarioSpec",
    "check_parallel_api",
    "known_scenarios",
    "make_parallel_env",
    "resolve_factory",
    "scenario_env_config",
]
