"""PettingZoo parallel env -> RLlib MultiAgentEnv, with a fixed agent order and a global state.

Each agent's observation handed to RLlib is one flat float32 vector:

    [ own observation | one-hot agent id (optional) | global state (optional) ]

so decentralised actors read only the first part, while a centralised critic reads
the state part: the MAPPO "global state in the observation" design. It works with
parameter sharing and with agents that leave an episode early, because nothing
needs to be joined across agents after sampling.

The agent order is the scenario's `possible_agents` order, which PettingZoo fixes.
(RLlib's stock ParallelPettingZooEnv builds it from a set, so it can differ between
processes and must not be used to build a global state.) The global state is the
scenario's own `state()` where it has one, else the concatenated observations in
that fixed order, with zeros for agents that have left (or always the latter, with
`global_state: observations`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
from pettingzoo.utils.env import ParallelEnv
from ray.rllib.env.multi_agent_env import MultiAgentEnv

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


def _flat_dim(space: gym.Space, what: str) -> int:
    if not isinstance(space, gym.spaces.Box):
        raise ScenarioError(
            f"{what} is {type(space).__name__}; only Box observations are supported "
            "(add a SuperSuit wrapper such as flatten_v0 or dtype_v0)"
        )
    return int(np.prod(space.shape))


def _has_state(env: ParallelEnv) -> bool:
    try:
        env.state()
    except (NotImplementedError, AttributeError):
        return False
    return True


class PettingZooMultiAgentEnv(MultiAgentEnv):
    """RLlib view of a PettingZoo parallel scenario (see the module docstring)."""

    def __init__(self, config: dict[str, Any] | None = None):
        super().__init__()
        # RLlib passes an EnvContext: a dict that also knows which env runner we are in.
        self._worker_index = int(getattr(config, "worker_index", 0) or 0)
        config = dict(config or {})
        self.spec_ = ScenarioSpec(**config["scenario"])
        self.env = self.spec_.make_guarded(render_mode=config.get("render_mode"))
        self.possible_agents = list(self.env.possible_agents)
        self.agents = list(self.possible_agents)
        # Unsupported spaces first: the reset's data checks would reject them less clearly.
        self._obs_dims = {a: _flat_dim(self.env.observation_space(a), f"observation of {a!r}") for a in self.possible_agents}
        self.env.reset(seed=config.get("seed"))  # some scenarios only define state() after reset
        self._with_id = bool(config.get("agent_id_in_obs", False))
        self._with_state = bool(config.get("global_state", False))
        self._env_state = self._with_state and self.spec_.global_state == "env" and _has_state(self.env)
        state_dim = 0
        if self._with_state:
            state_dim = int(np.prod(self.env.state().shape)) if self._env_state else sum(self._obs_dims.values())
        self.layouts = {
            agent: ObservationLayout(self._obs_dims[agent], len(self.possible_agents) if self._with_id else 0, state_dim)
            for agent in self.possible_agents
        }
        self.observation_spaces = {
            agent: gym.spaces.Box(-np.inf, np.inf, (layout.total_dim,), np.float32) for agent, layout in self.layouts.items()
        }
        self.action_spaces = {agent: self.env.action_space(agent) for agent in self.possible_agents}
        onehots = np.eye(len(self.possible_agents), dtype=np.float32)
        self._agent_ids = dict(zip(self.possible_agents, onehots)) if self._with_id else None

    # -- building observations -------------------------------------------------
    def global_state(self, observations: dict[str, np.ndarray]) -> np.ndarray:
        """The scenario's state(), or the observations concatenated in fixed order."""
        if self._env_state:
            return np.asarray(self.env.state(), dtype=np.float32).ravel()
        parts = [
            np.asarray(observations[a], dtype=np.float32).ravel() if a in observations else np.zeros(self._obs_dims[a], np.float32)
            for a in self.possible_agents
        ]
        return np.concatenate(parts)

    def _augment(self, observations: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        state = self.global_state(observations) if self._with_state else None
        flat = {agent: np.asarray(obs, dtype=np.float32).ravel() for agent, obs in observations.items()}
        return layout_observations(flat, self._agent_ids, state)

    # -- MultiAgentEnv API -----------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        observations, infos = self.env.reset(seed=distinct_seed(seed, self._worker_index), options=options)
        self.agents = [a for a in self.possible_agents if a in observations]
        return self._augment(observations), {a: infos.get(a, {}) for a in observations}

    def step(self, action_dict: dict[str, Any]):
        observations, rewards, terminations, truncations, infos = self.env.step(action_dict)
        self.agents = list(self.env.agents)
        episode_over = not self.env.agents
        all_terminated = episode_over and all(terminations.get(a, False) for a in observations)
        terminateds = {a: bool(terminations.get(a, False)) for a in observations}
        truncateds = {a: bool(truncations.get(a, False)) for a in observations}
        terminateds["__all__"] = all_terminated
        truncateds["__all__"] = episode_over and not all_terminated
        if truncateds["__all__"] and self.spec_.bootstrap_at_time_limit:
            # RLlib 2.60's `MultiAgentEpisode.add_env_step` marks an episode in which every
            # agent is done as terminated (no bootstrap). With only `__all__` truncated it
            # records a truncation for the agents that ran into the limit; agents that
            # terminated keep their own flag.
            truncateds = {a: False for a in observations} | {"__all__": True}
        return (
            self._augment(observations),
            {a: float(rewards.get(a, 0.0)) for a in observations},
            terminateds,
            truncateds,
            {a: infos.get(a, {}) for a in observations},
        )

    def render(self):
        return self.env.render()

    def close(self):
        self.env.close()


def scenario_env_config(spec: ScenarioSpec, *, agent_id_in_obs: bool, global_state: bool, **extra) -> dict[str, Any]:
    """The env_config dict that PettingZooMultiAgentEnv is built from."""
    return {"scenario": spec.to_dict(), "agent_id_in_obs": agent_id_in_obs, "global_state": global_state, **extra}
