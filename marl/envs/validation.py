"""Checks of a scenario that need no Ray: run by `marl train` before Ray starts and by `marl scenarios check`.

- `check_parallel_api`: PettingZoo's own parallel API test;
- `check_scenario_data`: a few random episodes behind the guard (`marl/envs/guard.py`),
  every step checked: observations in their spaces and finite, rewards finite, no
  exception (a scenario fault is raised as the ScenarioFault the run would stop with);
- `check_seed`: the same seed gives the same episode (PettingZoo's `parallel_seed_test`,
  plus a whole episode compared, which that test does not do: it stops after one step);
- `render_problem`: whether `marl evaluate --render` can work (an `rgb_array` frame).

`run_checks` runs them all for `marl scenarios check`, one `CheckResult` each.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium.utils.env_checker import data_equivalence
from pettingzoo.test import parallel_api_test, parallel_seed_test

from marl.core.shapes import is_image
from marl.envs.scenario import ScenarioSpec
from marl.errors import ScenarioError, ScenarioFault

RENDER_FIX = (
    "accept a `render_mode` keyword in the scenario's factory and, for render_mode='rgb_array', "
    "return an (H, W, 3) uint8 frame from render()"
)


def check_parallel_api(spec: ScenarioSpec, num_cycles: int = 50) -> None:
    """Run PettingZoo's own parallel API test on the wrapped scenario, behind the guard.

    Raises ScenarioError with one line naming the broken rule (the test's chatter on
    stdout is swallowed), or the ScenarioFault of a scenario that raises or returns bad
    data during the test.
    """
    env = spec.make_guarded(check_steps=num_cycles)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            parallel_api_test(env, num_cycles=num_cycles)
    except ScenarioFault:
        raise
    except Exception as error:  # the API test raises AssertionError
        detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ScenarioError(
            f"scenario {spec.name!r} breaks the PettingZoo parallel API: {detail} "
            "(fix the scenario; `pettingzoo.test.parallel_api_test` reproduces this)"
        ) from None
    finally:
        env.close()


def _seed_spaces(env, rng: np.random.Generator) -> None:
    for agent in env.possible_agents:
        env.action_space(agent).seed(int(rng.integers(2**31 - 1)))


def check_scenario_data(spec: ScenarioSpec, rng: np.random.Generator, *, episodes: int = 2, max_steps: int = 100) -> int:
    """Random episodes (at most `max_steps` steps each) with every step checked; the steps run.

    Raises the ScenarioFault of the first problem. Actions come from the agents' action
    spaces, seeded from `rng`, so a failure repeats with the same generator.
    """
    env = spec.make_guarded(check_steps=max_steps)
    steps = 0
    try:
        _seed_spaces(env, rng)
        for _ in range(episodes):
            env.reset(seed=int(rng.integers(2**31 - 1)))
            for _ in range(max_steps):
                if not env.agents:
                    break
                env.step({agent: env.action_space(agent).sample() for agent in env.agents})
                steps += 1
    finally:
        env.close()
    return steps


def _episode(spec: ScenarioSpec, seed: int, max_steps: int) -> list[Any]:
    env = spec.make()
    try:
        for index, agent in enumerate(env.possible_agents):
            env.action_space(agent).seed(seed + index)
        trace: list[Any] = [env.reset(seed=seed)[0]]
        for _ in range(max_steps):
            if not env.agents:
                break
            trace.append(env.step({agent: env.action_space(agent).sample() for agent in env.agents})[:2])
        return trace
    finally:
        env.close()


def check_seed(spec: ScenarioSpec, *, seed: int = 42, max_steps: int = 100) -> None:
    """Two copies reset with one seed and fed the same actions must give the same episode.

    Raises ScenarioError naming the first step that differs. RLlib and `marl evaluate`
    seed every scenario copy through `reset(seed=...)`, so without this no run repeats.
    """
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            parallel_seed_test(spec.make)
    except AssertionError as error:
        detail = (str(error).strip().splitlines() or ["assertion failed"])[0]
        raise ScenarioError(
            f"scenario {spec.name!r} is not deterministic under a seed: {detail} (PettingZoo's parallel_seed_test; "
            "draw every random number from the generator seeded in reset(seed=...), and seed action spaces with it)"
        ) from None
    first, second = _episode(spec, seed, max_steps), _episode(spec, seed, max_steps)
    for step, (one, two) in enumerate(zip(first, second)):
        if not data_equivalence(one, two):
            what = "reset observations" if step == 0 else f"observations or rewards of step {step}"
            raise ScenarioError(
                f"scenario {spec.name!r}: two copies reset with seed {seed} and given the same actions differ in their "
                f"{what} (draw every random number from the generator seeded in reset(seed=...), never a global one)"
            )
    if len(first) != len(second):
        raise ScenarioError(f"scenario {spec.name!r}: two copies reset with seed {seed} end their episodes at different steps")


def render_problem(spec: ScenarioSpec, seed: int = 0) -> str | None:
    """Why `marl evaluate --render` will not work for this scenario, or None when it will."""
    try:
        env = spec.make(render_mode="rgb_array")
    except ScenarioError as error:
        return f"it cannot be built with render_mode='rgb_array' ({error})"
    try:
        env.reset(seed=seed)
        frame = env.render()
    except Exception as error:  # a scenario without rendering raises anything from NotImplementedError on
        return f"render() raised {type(error).__name__}: {error}".splitlines()[0]
    finally:
        with contextlib.suppress(Exception):
            env.close()
    if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[-1] not in (3, 4):
        shape = getattr(frame, "shape", None)
        return f"render() returned {type(frame).__name__}{'' if shape is None else f' of shape {shape}'}, not an RGB array"
    return None


# What shrinks image observations to something an MLP can take (SuperSuit, in the config).
IMAGE_FIX = "scenario.wrappers: [color_reduction_v0, {resize_v1: {x_size: 64, y_size: 64}}]"
LARGE_OBSERVATION = 4096  # flattened values per agent beyond which an MLP's first layer dominates


def image_observation_problem(spec: ScenarioSpec, *, conv_encoder: bool = False) -> str | None:
    """Why this scenario's observations will be slow to learn from, or None.

    Without a convolutional encoder (`conv_encoder`: the algorithm puts one before its MLPs,
    `model.encoder`), a raw frame becomes an MLP's first layer of hundreds of thousands of
    inputs per agent, and a centralised critic's state concatenates every agent's frame.
    """
    env = spec.make()
    try:
        shapes = {agent: env.observation_space(agent).shape for agent in env.possible_agents}
    finally:
        with contextlib.suppress(Exception):
            env.close()
    agent, shape = max(shapes.items(), key=lambda item: int(np.prod(item[1] or (1,))))
    size = int(np.prod(shape or (1,)))
    image = is_image(shape)
    if (image and conv_encoder) or (not image and size <= LARGE_OBSERVATION):
        return None
    kind = "an image" if image else "a"
    return (
        f"agent {agent!r} observes {kind} {shape} array: this algorithm's networks are MLPs over its {size:,} flattened "
        f"values, which trains very slowly; shrink it with {IMAGE_FIX}"
        + (" or use ippo, mappo or dpo, whose convolutional encoder reads frames (model.encoder: auto)" if image else "")
    )


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    message: str
    required: bool = True  # a failed optional check (rendering) is a warning: training works without it

    @property
    def label(self) -> str:
        return "PASS" if self.passed else ("FAIL" if self.required else "WARN")


def run_checks(spec: ScenarioSpec, rng: np.random.Generator, *, episodes: int = 3) -> list[CheckResult]:
    """Every check above on `spec`, each one's failure reported, none stopping the others."""
    results = []

    def attempt(name: str, passed_message: str, check, required: bool = True) -> None:
        try:
            message = check() or passed_message
        except ScenarioError as error:  # ScenarioFault included
            results.append(CheckResult(name, False, str(error), required))
            return
        results.append(CheckResult(name, True, message, required))

    attempt("parallel API", "PettingZoo's parallel_api_test passed", lambda: check_parallel_api(spec))
    attempt("seed", "the same seed gives the same episode", lambda: check_seed(spec))
    attempt(
        "data",
        "",
        lambda: f"{check_scenario_data(spec, rng, episodes=episodes)} random steps in {episodes} episodes: "
        "observations in their spaces and finite, rewards finite, no exception",
    )
    problem = render_problem(spec)
    results.append(
        CheckResult("render", problem is None, "render() returns RGB frames" if problem is None else f"{problem}; {RENDER_FIX}", False)
    )
    return results
