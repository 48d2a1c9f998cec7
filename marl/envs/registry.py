"""Scenario registry: a name -> a factory of PettingZoo parallel environments.

Three kinds of names resolve:
- every mpe2 particle world by its module name (`simple_spread_v3`, also written
  `mpe2:simple_spread_v3`);
- the project's own scenarios in `scenarios/` by module name (`coordination_game`);
- any `package.module:factory` path whose factory returns a ParallelEnv.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from dataclasses import dataclass
from typing import Any, Callable

from pettingzoo.utils.env import ParallelEnv

from marl.errors import ScenarioError

ParallelEnvFactory = Callable[..., ParallelEnv]


@dataclass(frozen=True)
class ScenarioEntry:
    name: str
    module: str
    factory: str = "parallel_env"

    def load(self) -> ParallelEnvFactory:
        return getattr(importlib.import_module(self.module), self.factory)

    @property
    def description(self) -> str:
        """The first sentence of the scenario's module docstring.

        mpe2's `simple_x_vN` modules only re-export: the docs sit on the module that
        defines `raw_env`, so that one is read when the named module has none.
        """
        module = importlib.import_module(self.module)
        doc = inspect.getdoc(module) or inspect.getdoc(inspect.getmodule(getattr(module, "raw_env", None))) or ""
        for line in doc.splitlines():
            line = line.strip()
            if line and not line.startswith(("#", "|", "This environment is part of")):
                return line.split(". ")[0].rstrip(".") + "."
        return ""


def _mpe2_entries() -> dict[str, ScenarioEntry]:
    import mpe2

    return {
        info.name: ScenarioEntry(info.name, f"mpe2.{info.name}")
        for info in pkgutil.iter_modules(mpe2.__path__)
        if not info.name.startswith("_") and info.name != "all_modules"
    }


def _project_entries() -> dict[str, ScenarioEntry]:
    try:
        import scenarios
    except ImportError:  # running outside a checkout without the scenarios package
        return {}
    return {
        info.name: ScenarioEntry(info.name, f"scenarios.{info.name}")
        for info in pkgutil.iter_modules(scenarios.__path__)
        if not info.name.startswith("_")
    }


def known_scenarios() -> dict[str, ScenarioEntry]:
    """All scenarios resolvable by a bare name, project ones first."""
    return {**_mpe2_entries(), **_project_entries()}


def resolve_factory(name: str) -> ParallelEnvFactory:
    """Resolve a scenario name or `package.module:factory` path to its factory."""
    if name.startswith("mpe2:"):
        name = name.split(":", 1)[1]
    entries = known_scenarios()
    if name in entries:
        return entries[name].load()
    if ":" in name:
        module_name, _, attr = name.partition(":")
        try:
            module = importlib.import_module(module_name)
        except Exception as error:  # ImportError, or the module itself failing to run
            raise ScenarioError(f"scenario {name!r}: cannot import module {module_name!r} ({type(error).__name__}: {error})") from None
        if not hasattr(module, attr):
            raise ScenarioError(f"scenario {name!r}: module {module_name!r} has no attribute {attr!r}")
        return getattr(module, attr)
    import difflib

    close = difflib.get_close_matches(name, list(entries), n=2, cutoff=0.6)
    guess = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
    raise ScenarioError(
        f"unknown scenario {name!r}; {guess}run `marl scenarios` for the list, or give a `package.module:factory` path"
    )


def make_parallel_env(name: str, kwargs: dict[str, Any] | None = None, render_mode: str | None = None) -> ParallelEnv:
    """Build the raw (unwrapped) PettingZoo parallel env for a scenario."""
    factory = resolve_factory(name)
    kwargs = dict(kwargs or {})
    if render_mode is not None:
        kwargs["render_mode"] = render_mode
    try:
        env = factory(**kwargs)
    except (TypeError, ValueError) as error:
        raise ScenarioError(f"scenario {name!r} with kwargs {kwargs}: {error}") from None
    if not isinstance(env, ParallelEnv):
        raise ScenarioError(
            f"scenario {name!r}: factory returned {type(env).__name__}, not a PettingZoo ParallelEnv "
            "(use the parallel API, e.g. `parallel_env()`, or wrap an AEC env with pettingzoo.utils.aec_to_parallel)"
        )
    return env
