"""Vectorized scenario backends: a batch of worlds stepped with numpy in one call.

The fast path (`scenario.backend: vectorized`, `marl/rllib/vectorized_env_runner.py`) runs a
scenario's *vectorized twin*: an object that steps `num_envs` copies of the scenario at once and
equals the PettingZoo scenario step for step given the same seeds and actions. mpe2's
simple_spread, simple_speaker_listener and simple_reference have twins here
(`marl/envs/vectorized/mpe.py`); a project or user scenario offers one with a module-level
factory `vectorized_env(num_envs, **kwargs)` next to its `parallel_env(**kwargs)` (see
`scenarios/coordination_game.py`). The PettingZoo env stays the reference and the only
requirement; the twin is an option.

A twin provides (`B = num_envs`, arrays with the world first):

- ``num_envs``, ``possible_agents`` (the PettingZoo env's order);
- ``reset(seeds) -> obs``: reset every world, world b as ``parallel_env.reset(seed=seeds[b])``
  would (a seed of None continues that world's own generator);
- ``reset_done(mask, seeds) -> obs``: reset only the worlds where ``mask`` is true (one seed
  each, in world order), returning the whole batch's observations;
- ``step(actions) -> (obs, rewards, terminated, truncated)``: ``actions[agent]`` is ``(B,)``
  ints or ``(B, act_dim)`` floats; every result is a dict agent -> ``(B, ...)`` array;
  observations float32 ``(B, obs_dim)``. Finished worlds are not reset inside `step`;
- ``state() -> (B, state_dim)`` float32, when the PettingZoo env has ``state()``.

Every agent acts at every step until its world ends (no agent leaves early).
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any, Callable

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
FACTORY_NAME = "vectorized_env"


def vectorized_factory(name: str) -> Callable[..., Any] | None:
    """The scenario's vectorized twin factory `(num_envs, **kwargs)`, or None if it has none."""
    if name in VECTORIZED:
        return VECTORIZED[name]
    from marl.envs.registry import known_scenarios

    entry = known_scenarios().get(name)
    module_name = entry.module if entry is not None else name.partition(":")[0] if ":" in name else None
    if module_name is None:
        return None
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    return getattr(module, FACTORY_NAME, None)


def check_vectorizable(name: str, kwargs: dict[str, Any], wrappers: list[Any]) -> Callable[..., Any]:
    """The twin factory for this scenario, or a ConfigError saying why there is none."""
    factory = vectorized_factory(name)
    if factory is None:
        raise ConfigError(
            f"scenario.backend: vectorized: {name!r} has no vectorized twin (mpe2: {sorted(VECTORIZED)}, or a "
            f"scenario module with a `{FACTORY_NAME}(num_envs, **kwargs)` factory); use backend: pettingzoo"
        )
    if wrappers:
        raise ConfigError("scenario.backend: vectorized does not run SuperSuit wrappers; remove scenario.wrappers "
                          "or use backend: pettingzoo")
    signature = inspect.signature(factory)
    parameters = signature.parameters.values()
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        accepted = [p.name for p in parameters if p.name not in ("self", "num_envs")]
        unknown = sorted(set(kwargs) - set(accepted))
        if unknown:
            raise ConfigError(f"scenario.backend: vectorized {name} does not support kwargs {unknown} "
                              f"(supported: {accepted}); use backend: pettingzoo")
    return factory


def make_vectorized(name: str, kwargs: dict[str, Any], num_envs: int, wrappers: list[Any] | None = None):
    """`num_envs` worlds of scenario `name`, stepped together."""
    return check_vectorizable(name, kwargs, wrappers or [])(num_envs, **kwargs)


__all__ = [
    "FACTORY_NAME",
    "VECTORIZED",
    "VectorSimpleReference",
    "VectorSimpleSpeakerListener",
    "VectorSimpleSpread",
    "VectorWorld",
    "check_vectorizable",
    "make_vectorized",
    "vectorized_factory",
]
