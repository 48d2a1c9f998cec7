"""`marl init`: an experiment config that fits any scenario's agents and spaces.

`template_yaml(algorithm, scenario)`: the algorithm's default hyperparameters written out
with their docs as comments, the sharing the spaces allow, the backend every scenario has.

No Ray, RLlib or torch here: it runs in about a second.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import yaml
from pydantic import BaseModel

from marl.envs.scenario import ScenarioSpec
from marl.errors import ConfigError
from marl.experiment.loading import build_config
from marl.experiment.registry import ALGORITHMS


def _scenario_facts(spec: ScenarioSpec) -> tuple[list[str], bool, bool, bool]:
    """(agents, whether every agent has the same spaces, whether actions are Box, whether observations are frames)."""
    from marl.core.shapes import is_image

    import gymnasium as gym

    env = spec.make()
    try:
        agents = list(env.possible_agents)
        observation_spaces = [env.observation_space(agent) for agent in agents]
        action_spaces = [env.action_space(agent) for agent in agents]
    finally:
        env.close()
    same = all(space == observation_spaces[0] for space in observation_spaces) and all(
        space == action_spaces[0] for space in action_spaces
    )
    continuous = any(isinstance(space, gym.spaces.Box) for space in action_spaces)
    return agents, same, continuous, any(is_image(space.shape or ()) for space in observation_spaces)


def global_state_choice(spec: ScenarioSpec, steps: int = 300, seed: int = 0) -> str:
    """What a centralised critic should see: `env` (the scenario's `state()`) or `observations`.

    `observations` where the scenario's `state()` is just the agents' observations
    concatenated (mpe2's: the same numbers, at twice the cost, since it recomputes them), and
    where `state()` breaks once agents have left (multiwalker reads the bodies of walkers it
    has destroyed). Decided from one random episode of up to `steps` steps.
    """
    env = spec.make()
    try:
        observations, _ = env.reset(seed=seed)
        try:
            state = env.state()
        except (NotImplementedError, AttributeError):
            return "env"  # no state(): the adapter falls back to the observations anyway
        concatenated = np.concatenate([np.asarray(observations[a], np.float32).ravel() for a in env.possible_agents])
        if np.asarray(state).size == concatenated.size and np.allclose(np.asarray(state, np.float32).ravel(), concatenated):
            return "observations"
        for agent in env.possible_agents:
            env.action_space(agent).seed(seed)
        for _ in range(steps):
            if not env.agents:
                break
            env.step({agent: env.action_space(agent).sample() for agent in env.agents})
            if env.agents:  # at the very end the adapter keeps the last state
                env.state()
        return "env"
    except Exception:
        return "observations"
    finally:
        env.close()


def template_raw(algorithm: str, scenario: str, kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
    """The experiment (as plain data) `marl init` writes; validated by `build_config`."""
    if algorithm not in ALGORITHMS:
        raise ConfigError(f"unknown algorithm {algorithm!r}; choose one of {sorted(ALGORITHMS)} (`marl algorithms`)")
    spec = ScenarioSpec(scenario, dict(kwargs or {}))
    agents, same_spaces, continuous, frames = _scenario_facts(spec)
    training_class = ALGORITHMS[algorithm].config_class
    if continuous and not training_class.supports_continuous_actions():
        raise ConfigError(
            f"{algorithm} needs Discrete actions but {scenario} has Box actions; pick an algorithm from "
            "`marl algorithms` marked 'continuous actions', or give the scenario discrete actions"
        )
    # bn_mappo's one actor serves every agent; the others share only where the spaces allow it.
    sharing = "shared" if algorithm == "bn_mappo" or (same_spaces and len(agents) > 1) else "per_agent"
    scenario_section = {"name": scenario, "kwargs": dict(kwargs or {}), "backend": "pettingzoo"}
    if training_class.has_centralized_critic() and (
        (frames and training_class.supports_image_encoder()) or global_state_choice(spec) == "observations"
    ):
        # A convolutional critic encodes each agent's frame; see global_state_choice for the rest.
        scenario_section["global_state"] = "observations"
    if sharing == "shared" and not same_spaces:  # one network for agents with different spaces
        scenario_section["wrappers"] = ["pad_observations_v0", "pad_action_space_v0"]
    raw = {
        "algorithm": algorithm,
        "scenario": scenario_section,
        "policies": {"sharing": sharing},
        "model": {"hidden": [64, 64], "activation": "tanh"},
        "training": training_class().model_dump(mode="json"),
        "resources": {"num_env_runners": 1, "num_envs_per_env_runner": 4},
        "stop": {"env_steps": 200_000},
        "checkpoint": {"every_iterations": 10, "keep": 3},
        "seed": 0,
    }
    build_config(raw)  # what `marl init` writes must train as written
    return raw


def _commented(model: type[BaseModel], values: dict[str, Any], indent: str = "  ") -> list[str]:
    """`key: value  # first line of the field's docstring`, one line per field."""
    lines = []
    for name, value in values.items():
        doc = " ".join((model.model_fields[name].description or "").split())
        first_sentence = doc.split(". ")[0].rstrip(".")
        comment = f"  # {first_sentence}." if first_sentence else ""
        text = yaml.safe_dump({name: value}, default_flow_style=True, width=10_000).strip()[1:-1]
        lines.append(f"{indent}{text}{comment}")
    return lines


def template_yaml(algorithm: str, scenario: str, kwargs: dict[str, Any] | None = None) -> str:
    """`template_raw` as YAML, every training field with its documentation as a comment."""
    raw = template_raw(algorithm, scenario, kwargs)
    training_class = ALGORITHMS[algorithm].config_class
    head = {key: raw[key] for key in ("algorithm", "scenario", "policies", "model")}
    tail = {key: raw[key] for key in ("resources", "stop", "checkpoint", "seed")}
    dump = lambda data: yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=100)  # noqa: E731
    return "\n".join(
        [
            f"# {algorithm} on {scenario}: written by `marl init {algorithm} {scenario}` to fit the scenario's",
            "# agents and spaces. Every field is documented in marl/config.py and the algorithm's config.py;",
            "# `marl train THIS_FILE --max-iterations 1` checks it end to end. backend: pettingzoo runs any",
            "# scenario on RLlib's env runner; backend: vectorized samples faster (docs/performance.md) where",
            "# every agent stays until the episode ends (it stops with one line where one leaves early).",
            dump(head).rstrip(),
            "training:",
            *_commented(training_class, raw["training"]),
            dump(tail).rstrip(),
            "",
        ]
    )
