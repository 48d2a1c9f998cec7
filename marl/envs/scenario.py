"""A scenario as data: how to build it, and how its observations are laid out for RLlib.

Everything here is free of Ray and RLlib, so that validating a config (`marl train`'s
checks, `marl init`) stays fast; the RLlib env that uses it is marl/envs/adapter.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pettingzoo.utils.env import ParallelEnv

from marl.envs.guard import DEFAULT_CHECK_STEPS, GuardedParallelEnv
from marl.envs.registry import make_parallel_env
from marl.envs.wrappers import apply_wrappers
from marl.errors import ScenarioError


@dataclass(frozen=True)
class ScenarioSpec:
    """Everything needed to build one copy of a scenario, picklable for Ray workers."""

    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    wrappers: list[Any] = field(default_factory=list)
    global_state: str = "env"
    backend: str = "pettingzoo"
    bootstrap_at_time_limit: bool = False
    check_steps: int = DEFAULT_CHECK_STEPS

    def make(self, render_mode: str | None = None) -> ParallelEnv:
        return apply_wrappers(make_parallel_env(self.name, self.kwargs, render_mode), self.wrappers)

    def make_guarded(self, render_mode: str | None = None, check_steps: int | None = None) -> GuardedParallelEnv:
        """The scenario behind the guard that turns its faults into ScenarioFault (marl/envs/guard.py)."""
        steps = self.check_steps if check_steps is None else check_steps
        return GuardedParallelEnv(self.make(render_mode), self.name, steps)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kwargs": dict(self.kwargs),
            "wrappers": list(self.wrappers),
            "global_state": self.global_state,
            "backend": self.backend,
            "bootstrap_at_time_limit": self.bootstrap_at_time_limit,
            "check_steps": self.check_steps,
        }


@dataclass(frozen=True)
class ObservationLayout:
    """Where each part sits in an agent's flat observation vector."""

    obs_dim: int
    id_dim: int
    state_dim: int
    obs_shape: tuple[int, ...] = ()  # the scenario's own shape of the observation part (frames: H, W, C)
    obs_scale: float = 1.0  # what turns it into network inputs: 1/255 for uint8 frames

    @property
    def actor_dim(self) -> int:
        return self.obs_dim + self.id_dim

    @property
    def total_dim(self) -> int:
        return self.obs_dim + self.id_dim + self.state_dim


def layout_observations(
    observations: dict[str, np.ndarray], agent_ids: dict[str, np.ndarray] | None, state: np.ndarray | None
) -> dict[str, np.ndarray]:
    """Each agent's flat `[own obs | one-hot id | state]` vector (see the module docstring).

    Works on one step (`obs (d,)`, `state (S,)`) and on a batch of worlds (`obs (B, d)`,
    `state (B, S)`) alike, so the PettingZoo adapter and the vectorized env runner share it.
    `agent_ids[agent]` is the agent's one-hot id (None: no id part).
    """
    laid_out = {}
    for agent, obs in observations.items():
        parts = [np.asarray(obs, dtype=np.float32)]
        if agent_ids is not None:
            parts.append(np.broadcast_to(agent_ids[agent], parts[0].shape[:-1] + agent_ids[agent].shape))
        if state is not None:
            parts.append(state)
        laid_out[agent] = np.concatenate(parts, axis=-1) if len(parts) > 1 else parts[0]
    return laid_out


def distinct_seed(seed: int | None, worker_index: int) -> int | None:
    """A seed unique to this (seed, env runner) pair.

    RLlib seeds env runner w with `seed + w` and its sub-env i with `seed + w + i`,
    so with several runners most sub-envs share a seed with a sub-env of another
    runner and, since episodes reset in lockstep, replay the same initial states
    (2 runners x 8 envs: 9 distinct streams, not 16). Mixing in the runner index
    makes every stream distinct while staying reproducible. Outside remote env
    runners (index 0: the driver, evaluation, tests) seeds pass through unchanged,
    so the adapter reproduces the raw scenario for the same seed.
    """
    if seed is None or worker_index == 0:
        return seed
    return int(np.random.SeedSequence([int(seed), worker_index]).generate_state(1)[0])


def scenario_env_config(spec: ScenarioSpec, *, agent_id_in_obs: bool, global_state: bool, **extra) -> dict[str, Any]:
    """The env_config dict that PettingZooMultiAgentEnv is built from."""
    return {"scenario": spec.to_dict(), "agent_id_in_obs": agent_id_in_obs, "global_state": global_state, **extra}


def scenario_state(env: ParallelEnv, last: np.ndarray | None, name: str) -> np.ndarray:
    """`env.state()` flattened, or at the end of an episode, if the scenario can no longer give
    it, `last` (the state of the step before).

    Some scenarios tear their world down as the episode ends (multiwalker destroys its
    walkers' bodies, so its `state()` raises); only a time-limit bootstrap would read that
    final state. A `state()` that fails while agents still play is a one-line error naming the fix.
    """
    try:
        return np.asarray(env.state(), dtype=np.float32).ravel()
    except Exception as error:
        if not env.agents and last is not None:
            return last
        left = [agent for agent in env.possible_agents if agent not in env.agents]
        raise ScenarioError(
            f"scenario {name!r}: state() raised {type(error).__name__}: {error}"
            + (f" after {left} left the episode" if left else "")
            + "; set scenario.global_state: observations to give the critic the agents' observations instead"
        ) from error
