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

A scenario without a twin runs on the fast path too, as `num_envs` copies of the PettingZoo
env stepped in a loop behind the same interface (`stacked.StackedScenario`): the env's own
step stays, the runner's per-step overhead goes.
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


def twin_for(name: str, kwargs: dict[str, Any], wrappers: list[Any]) -> Callable[..., Any] | None:
    """The scenario's twin factory if the twin can run this config (no SuperSuit wrappers, kwargs
    it accepts), else None: then stacked PettingZoo copies run it, which are always exact."""
    factory = vectorized_factory(name)
    if factory is None or wrappers:
        return None
    parameters = inspect.signature(factory).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return factory
    accepted = {p.name for p in parameters if p.name not in ("self", "num_envs")}
    return factory if set(kwargs) <= accepted else None


def make_vectorized(name: str, kwargs: dict[str, Any], num_envs: int, wrappers: list[Any] | None = None):
    """`num_envs` worlds of scenario `name`, stepped together: its twin, else stacked copies."""
    factory = twin_for(name, kwargs, wrappers or [])
    if factory is None:
        from marl.envs.scenario import ScenarioSpec
        from marl.envs.vectorized.stacked import StackedScenario

        return StackedScenario(ScenarioSpec(name, dict(kwargs), list(wrappers or [])), num_envs)
    return factory(num_envs, **kwargs)


__all__ = [
    "FACTORY_NAME",
    "VECTORIZED",
    "VectorSimpleReference",
    "VectorSimpleSpeakerListener",
    "VectorSimpleSpread",
    "VectorWorld",
    "make_vectorized",
    "twin_for",
    "vectorized_factory",
]
