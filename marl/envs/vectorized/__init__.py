"""Vectorized scenario backends: a batch of worlds stepped with numpy in one call.

`VECTORIZED` maps a scenario name to its vectorized twin; `make_vectorized` builds one
from the same kwargs the PettingZoo scenario takes, after checking that the twin
supports them (the fast path must never silently train on a different scenario).
"""

from __future__ import annotations

import inspect
from typing import Any

from marl.envs.vectorized.mpe import (
    VectorSimpleReference,
    VectorSimpleSpeakerListener,
    VectorSimpleSpread,
    VectorWorld,
)
from marl.errors import ConfigError

VECTORIZED: dict[str, type] = {
    "simple_spread_v3": VectorSimpleSpread,
    "simple_speaker_listener_v4": VectorSimpleSpeakerListener,
    "simple_reference_v3": VectorSimpleReference,
}


def check_vectorizable(name: str, kwargs: dict[str, Any], wrappers: list[Any]) -> type:
    """The vectorized class for this scenario, or a ConfigError saying why there is none."""
    if name not in VECTORIZED:
        raise ConfigError(
            f"scenario.backend: vectorized: {name!r} has no vectorized twin (available: {sorted(VECTORIZED)}); "
            "use backend: pettingzoo"
        )
    if wrappers:
        raise ConfigError("scenario.backend: vectorized does not run SuperSuit wrappers; remove scenario.wrappers "
                          "or use backend: pettingzoo")
    cls = VECTORIZED[name]
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "num_envs")]
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise ConfigError(f"scenario.backend: vectorized {name} does not support kwargs {unknown} "
                          f"(supported: {accepted}); use backend: pettingzoo")
    return cls


def make_vectorized(name: str, kwargs: dict[str, Any], num_envs: int, wrappers: list[Any] | None = None):
    """`num_envs` worlds of scenario `name`, stepped together."""
    return check_vectorizable(name, kwargs, wrappers or [])(num_envs, **kwargs)


__all__ = [
    "VECTORIZED",
    "VectorSimpleReference",
    "VectorSimpleSpeakerListener",
    "VectorSimpleSpread",
    "VectorWorld",
    "check_vectorizable",
    "make_vectorized",
]
