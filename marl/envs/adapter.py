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

Frames (rank-3 observations) under an algorithm that reads them with a convolutional encoder
(env_config `IMAGES_KEY`, marl/envs/scenario.py): average-pooled to the configured size, kept
in the scenario's dtype (uint8 frames stay bytes, a quarter of float32), and never copied into
each agent's state part: a centralised critic gets the other agents' frames from the learner
connector (ObservationLayout.peers), so each sampled frame is stored once.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from pettingzoo.utils.env import ParallelEnv
from ray.rllib.env.multi_agent_env import MultiAgentEnv
from ray.rllib.utils.annotations import override

from marl.core.shapes import is_image
from marl.envs.scenario import (
    IMAGES_KEY,
    ObservationLayout,
    ScenarioSpec,
    distinct_seed,
    layout_observations,
    pool_factor,
    pool_frames,
    pooled_shape,
    scenario_state,
)
from marl.errors import ScenarioError

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
        raw_spaces = {a: self.env.observation_space(a) for a in self.possible_agents}
        for agent, space in raw_spaces.items():
            _flat_dim(space, f"observation of {agent!r}")
        self.env.reset(seed=config.get("seed"))  # some scenarios only define state() after reset
        self._with_id = bool(config.get("agent_id_in_obs", False))
        self._with_state = bool(config.get("global_state", False))
        self._env_state = self._with_state and self.spec_.global_state == "env" and _has_state(self.env)
        self._last_state: np.ndarray | None = None
        images = config.get(IMAGES_KEY)
        self._raw_shapes = {a: tuple(space.shape) for a, space in raw_spaces.items()}
        self._pool = {a: pool_factor(shape, images and images.get("max_side")) for a, shape in self._raw_shapes.items()}
        shapes = {a: pooled_shape(self._raw_shapes[a], self._pool[a]) for a in self.possible_agents}
        self._obs_dims = {a: int(np.prod(shape)) for a, shape in shapes.items()}
        frames = [shapes[a] for a in self.possible_agents]
        # Every agent's frames of one shape: a critic can encode each with one encoder.
        self.peers_apart = bool(
            images and images.get("peers_apart") and self._with_state and not self._env_state
            and all(is_image(shape) for shape in frames) and len(set(frames)) == 1
        )
        # Bytes stay bytes when nothing in the vector needs floats (one-hot ids are 0/1).
        as_bytes = bool(images) and all(space.dtype == np.uint8 for space in raw_spaces.values())
        self.dtype = np.dtype(np.uint8 if as_bytes and not self.state_in_observation else np.float32)
        state_dim = 0
        if self.state_in_observation:
            state_dim = int(np.prod(self.env.state().shape)) if self._env_state else sum(self._obs_dims.values())
        peers = len(self.possible_agents) - 1 if self.peers_apart else 0
        self.layouts = {
            agent: ObservationLayout(
                self._obs_dims[agent],
                len(self.possible_agents) if self._with_id else 0,
                state_dim,
                obs_shape=shapes[agent],
                obs_scale=1 / 255 if raw_spaces[agent].dtype == np.uint8 else 1.0,
                peers=peers,
            )
            for agent in self.possible_agents
        }
        self.observation_spaces = {agent: self._space(layout) for agent, layout in self.layouts.items()}
        self.action_spaces = {agent: self.env.action_space(agent) for agent in self.possible_agents}
        onehots = np.eye(len(self.possible_agents), dtype=self.dtype)
        self._agent_ids = dict(zip(self.possible_agents, onehots)) if self._with_id else None

    @property
    def state_in_observation(self) -> bool:
        """Whether each agent's vector carries a state part (not when a critic's frames are kept apart)."""
        return self._with_state and not self.peers_apart

    def _space(self, layout: ObservationLayout) -> gym.spaces.Box:
        if self.dtype == np.uint8:
            return gym.spaces.Box(0, 255, (layout.total_dim,), np.uint8)
        return gym.spaces.Box(-np.inf, np.inf, (layout.total_dim,), np.float32)

    def own_parts(self, observations: dict[str, np.ndarray], lead: tuple[int, ...] = ()) -> dict[str, np.ndarray]:
        """Each agent's own part of its vector, flat, frames pooled, in the vector's dtype.

        `lead`: the batch dimensions in front of each observation (the vectorized runner's
        worlds: `(B,)`); the observation itself may come flat or in its scenario shape.
        """
        parts = {}
        for agent, obs in observations.items():
            obs = np.asarray(obs)
            pool = self._pool.get(agent, 1)  # an agent outside possible_agents is RLlib's to refuse
            if pool > 1:
                obs = pool_frames(obs.reshape(*lead, *self._raw_shapes[agent]), pool)
            if self.dtype == np.uint8 and obs.dtype != np.uint8:
                obs = np.rint(obs)  # frames that came as floats (stacked copies flatten them)
            parts[agent] = obs.reshape(*lead, -1).astype(self.dtype, copy=False)
        return parts

    # -- building observations -------------------------------------------------
    def global_state(self, observations: dict[str, np.ndarray]) -> np.ndarray:
        """The scenario's state(), or the observations concatenated in fixed order."""
        if self._env_state:
            return self._scenario_state()
        parts = [
            np.asarray(observations[a], dtype=np.float32).ravel() if a in observations else np.zeros(self._obs_dims[a], np.float32)
            for a in self.possible_agents
        ]
        return np.concatenate(parts)

    def _scenario_state(self) -> np.ndarray:
        self._last_state = scenario_state(self.env, self._last_state, self.spec_.name)
        return self._last_state

    def _augment(self, observations: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        own = self.own_parts(observations)
        state = self.global_state(own) if self.state_in_observation else None
        return layout_observations(own, self._agent_ids, state, self.dtype)

    # -- MultiAgentEnv API -----------------------------------------------------
    @override(MultiAgentEnv)
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        observations, infos = self.env.reset(seed=distinct_seed(seed, self._worker_index), options=options)
        self.agents = [a for a in self.possible_agents if a in observations]
        return self._augment(observations), {a: infos.get(a, {}) for a in observations}

    @override(MultiAgentEnv)
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

    @override(MultiAgentEnv)
    def render(self):
        return self.env.render()

    @override(MultiAgentEnv)
    def close(self):
        self.env.close()
