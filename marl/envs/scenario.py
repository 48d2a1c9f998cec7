"""A scenario as data: how to build it, and how its observations are laid out for RLlib.

Everything here is free of Ray and RLlib, so that validating a config (`marl train`'s
checks, `marl init`) stays fast; the RLlib env that uses it is marl/envs/adapter.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pettingzoo.utils.env import ParallelEnv

from marl.core.shapes import is_image
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
    peers: int = 0
    """A centralised critic over frames: how many other agents' frames it reads from the train
    batch's PEER_OBS column (built by the learner connector, marl/algorithms/ppo/connector.py)
    instead of from a state part, which is then empty. 0: the state part, if any, is the state."""

    @property
    def actor_dim(self) -> int:
        return self.obs_dim + self.id_dim

    @property
    def total_dim(self) -> int:
        return self.obs_dim + self.id_dim + self.state_dim


def layout_observations(
    observations: dict[str, np.ndarray],
    agent_ids: dict[str, np.ndarray] | None,
    state: np.ndarray | None,
    dtype: np.dtype = np.float32,
) -> dict[str, np.ndarray]:
    """Each agent's flat `[own obs | one-hot id | state]` vector (see the module docstring).

    Works on one step (`obs (d,)`, `state (S,)`) and on a batch of worlds (`obs (B, d)`,
    `state (B, S)`) alike, so the PettingZoo adapter and the vectorized env runner share it.
    `agent_ids[agent]` is the agent's one-hot id (None: no id part), in `dtype` (uint8 for
    frames kept as bytes, `IMAGES_KEY`).
    """
    laid_out = {}
    for agent, obs in observations.items():
        parts = [np.asarray(obs, dtype=dtype)]
        if agent_ids is not None:
            parts.append(np.broadcast_to(agent_ids[agent], parts[0].shape[:-1] + agent_ids[agent].shape))
        if state is not None:
            parts.append(state)
        laid_out[agent] = np.concatenate(parts, axis=-1) if len(parts) > 1 else parts[0]
    return laid_out


# -- image observations ------------------------------------------------------------------------
IMAGES_KEY = "images"
"""env_config key of how the adapter treats frames (rank-3 observations), set by the algorithms
with a convolutional encoder (marl/algorithms/ppo/config.py): `{"max_side": int | None,
"peers_apart": bool}`. With it, frames are average-pooled down to `max_side` (`pool_factor`),
stay in the scenario's dtype (uint8 frames as bytes: the encoder scales them), and with
`peers_apart` a centralised critic's state is not copied into each agent's observation: the
learner connector gives it the other agents' frames (ObservationLayout.peers). Without it,
observations are float32 and the state is the concatenated observations, as for vectors."""

AUTO_IMAGE_SIDE = 96
"""`model.image_size: auto`: frames are pooled until neither side exceeds this (Atari's 84 x 84
frames are the usual size of a DQN-style encoder's input; pong's 280x480 becomes 56x96)."""


def pool_factor(shape: tuple[int, ...], max_side: int | None) -> int:
    """The smallest integer k that brings both sides of an (H, W, C) frame to at most
    `max_side` when each k x k block is averaged; 1 for vectors or without a bound."""
    if max_side is None or not is_image(shape):
        return 1
    return max(1, -(-max(int(shape[0]), int(shape[1])) // int(max_side)))


def pooled_shape(shape: tuple[int, ...], factor: int) -> tuple[int, ...]:
    """The shape of `shape`'s frames after `pool_frames(frames, factor)`."""
    if factor == 1:
        return tuple(int(size) for size in shape)
    return (int(shape[0]) // factor, int(shape[1]) // factor, int(shape[2]))


def pool_frames(frames: np.ndarray, factor: int) -> np.ndarray:
    """(..., H, W, C) -> (..., H // k, W // k, C): the mean of each k x k block, in the frames'
    dtype (integers rounded); rows and columns that do not fill a block are dropped."""
    if factor == 1:
        return frames
    *lead, height, width, channels = frames.shape
    h, w = height // factor, width // factor
    rows = frames[..., : h * factor, : w * factor, :].reshape(*lead, h, factor, w * factor * channels)
    # Sums of k slices, not `.sum(axis=...)` over strided block axes: 16x faster on pong's frames.
    accumulator = _accumulator(frames.dtype, factor)
    across = _sum_slices(rows, factor, accumulator).reshape(*lead, h, w, factor, channels)
    sums = _sum_slices(across, factor, accumulator)
    if np.issubdtype(frames.dtype, np.integer):
        return ((sums + factor * factor // 2) // (factor * factor)).astype(frames.dtype)
    return (sums / (factor * factor)).astype(frames.dtype, copy=False)


def _sum_slices(blocks: np.ndarray, factor: int, dtype: np.dtype) -> np.ndarray:
    """The sum over axis -2 (of length `factor`) as `factor` vector additions."""
    total = blocks[..., 0, :].astype(dtype, copy=True)
    for i in range(1, factor):
        total += blocks[..., i, :]
    return total


def _accumulator(dtype: np.dtype, factor: int) -> np.dtype:
    """A dtype that holds the sum of a k x k block exactly (bytes: uint16 up to k = 16)."""
    if dtype == np.uint8:
        return np.dtype(np.uint16 if factor * factor * 255 <= np.iinfo(np.uint16).max else np.uint32)
    if np.issubdtype(dtype, np.integer):
        return np.dtype(np.int64)
    return np.dtype(np.float64 if dtype == np.float64 else np.float32)


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
