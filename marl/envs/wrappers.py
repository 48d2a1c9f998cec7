"""The SuperSuit preprocessing chain declared in a scenario config.

Each entry is a SuperSuit wrapper name, optionally with keyword arguments:

    wrappers:
      - pad_observations_v0          # heterogeneous agents -> one observation shape
      - pad_action_space_v0
      - {frame_stack_v1: {stack_size: 4}}
      - {dtype_v0: {dtype: float32}}
"""

from __future__ import annotations

from typing import Any

import supersuit
from pettingzoo.utils.env import ParallelEnv

from marl.errors import ConfigError


def parse_wrappers(specs: list[str | dict[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    """Normalise wrapper specs to (name, kwargs) pairs and check every name exists."""
    parsed = []
    for index, spec in enumerate(specs):
        if isinstance(spec, str):
            name, kwargs = spec, {}
        elif isinstance(spec, dict) and len(spec) == 1:
            (name, kwargs), = spec.items()
            kwargs = kwargs or {}
        else:
            raise ConfigError(f"scenario.wrappers.{index}: expected a name or {{name: {{kwargs}}}}, got {spec!r}")
        try:
            wrapper = getattr(supersuit, name)  # SuperSuit raises ImportError for unknown and retired names
        except (ImportError, AttributeError) as error:
            raise ConfigError(f"scenario.wrappers.{index}: {name!r} is not a SuperSuit wrapper ({error})") from None
        if not callable(wrapper):
            raise ConfigError(f"scenario.wrappers.{index}: {name!r} is not a SuperSuit wrapper (e.g. pad_observations_v0)")
        parsed.append((name, kwargs))
    return parsed


def apply_wrappers(env: ParallelEnv, specs: list[str | dict[str, dict[str, Any]]]) -> ParallelEnv:
    """Wrap `env` with each SuperSuit wrapper in order."""
    for name, kwargs in parse_wrappers(specs):
        if "dtype" in kwargs and isinstance(kwargs["dtype"], str):
            import numpy as np

            kwargs = {**kwargs, "dtype": np.dtype(kwargs["dtype"])}
        try:
            env = getattr(supersuit, name)(env, **kwargs)
        except Exception as error:  # SuperSuit raises assorted types for bad arguments
            raise ConfigError(f"scenario.wrappers: {name}({kwargs}) failed: {error}") from None
    return env
