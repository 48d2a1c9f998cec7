"""Scenarios: resolving names, preprocessing, API checks and the RLlib adapter.

The RLlib adapter (`PettingZooMultiAgentEnv`) and the API check are imported on first
use, so that code which only reads scenario data (config validation) never loads RLlib.
"""

from importlib import import_module

from marl.envs.registry import known_scenarios, make_parallel_env, resolve_factory
from marl.envs.scenario import ObservationLayout, ScenarioSpec, scenario_env_config

_LAZY = {"PettingZooMultiAgentEnv": "marl.envs.adapter", "check_parallel_api": "marl.envs.validation"}

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


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'marl.envs' has no attribute {name!r}")
