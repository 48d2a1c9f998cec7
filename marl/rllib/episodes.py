"""Build RLlib `MultiAgentEpisode` chunks from whole arrays at once.

RLlib's env runner grows an episode one step at a time (`add_env_reset`, then
`add_env_step` per step, each appending to one `SingleAgentEpisode` per agent). The
vectorized env runner already holds a chunk's data as arrays, so it builds each
agent's `SingleAgentEpisode` directly from array slices, and the `MultiAgentEpisode`
around them by setting the same public fields `MultiAgentEpisode.from_state` sets.
The result is what the step-by-step path gives after `to_numpy()` (tested in
`tests/test_vectorized_env_runner.py` by feeding both through the learner connector);
it costs tens of microseconds per chunk instead of a Python call per agent and step.

Only agents that act at every step of the chunk are supported (the vectorized
scenarios have no agents that leave early).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from ray.rllib.env.multi_agent_episode import MultiAgentEpisode
from ray.rllib.env.single_agent_episode import SingleAgentEpisode
from ray.rllib.env.utils.infinite_lookback_buffer import InfiniteLookbackBuffer


@dataclass
class AgentChunk:
    """One agent's data over a chunk of L steps (arrays with the step first)."""

    observations: np.ndarray  # (L + 1, ...): the observation before each step, then the last one
    actions: np.ndarray  # (L, ...): as sampled from the module (before unsquashing for the env)
    rewards: np.ndarray  # (L,)
    extra_model_outputs: dict[str, np.ndarray]  # each (L, ...), e.g. action_logp, action_dist_inputs


def build_episode_chunk(
    *,
    episode_id: str,
    env_t_started: int,
    agents: dict[str, AgentChunk],
    module_ids: dict[str, str],
    observation_spaces: dict[str, gym.Space],
    action_spaces: dict[str, gym.Space],
    terminated: bool,
    truncated: bool,
    start_time: float | None = None,
    end_time: float | None = None,
) -> MultiAgentEpisode:
    """A numpy'd `MultiAgentEpisode` chunk covering env steps `env_t_started .. + L`.

    Chunks of one episode share `episode_id` (as RLlib's `cut()` keeps the id), and each
    agent's `SingleAgentEpisode` id is derived from it, so the learner sees one trajectory
    per (episode, agent) across chunks.
    """
    length = len(next(iter(agents.values())).rewards)
    episode = MultiAgentEpisode(
        id_=episode_id,
        observation_space=observation_spaces,
        action_space=action_spaces,
        agent_module_ids=dict(module_ids),
        env_t_started=env_t_started,
        len_lookback_buffer=0,
    )
    episode.agent_episodes = {
        agent: SingleAgentEpisode(
            id_=f"{episode_id}-{agent}",
            observations=chunk.observations,
            infos=[{} for _ in range(length + 1)],  # required: `observations or []` fails on arrays
            actions=chunk.actions,
            rewards=chunk.rewards,
            extra_model_outputs=chunk.extra_model_outputs,
            observation_space=observation_spaces[agent],
            action_space=action_spaces[agent],
            terminated=terminated,
            truncated=truncated,
            t_started=env_t_started,
            len_lookback_buffer=0,
            agent_id=agent,
            module_id=module_ids[agent],
            multi_agent_episode_id=episode_id,
        )
        for agent, chunk in agents.items()
    }
    episode.env_t = env_t_started + length
    episode.agent_t_started.update({agent: env_t_started for agent in agents})
    # Every agent acts at every step, so agent time equals env time. Plain ints: numpy ints fail
    # an isinstance(int) check inside RLlib.
    for agent in agents:
        episode.env_t_to_agent_t[agent] = InfiniteLookbackBuffer(list(range(env_t_started, env_t_started + length + 1)))
    episode.is_terminated = terminated
    episode.is_truncated = truncated
    episode._start_time = start_time if start_time is not None else time.perf_counter()
    episode._last_step_time = end_time if end_time is not None else episode._start_time
    return episode


def slice_agents(data: dict[str, dict[str, Any]], world: int, start: int, stop: int, last_obs: dict[str, np.ndarray]) -> dict[str, AgentChunk]:
    """Cut one world's steps `start..stop-1` out of `(T, B, ...)` step buffers.

    `data[agent]` holds `observations`, `actions`, `rewards` and `extra` (a dict of
    arrays), all `(T, B, ...)`; `last_obs[agent]` is the observation after step
    `stop - 1` (the final one if the episode ended there).
    """
    chunks = {}
    for agent, columns in data.items():
        observations = np.concatenate([columns["observations"][start:stop, world], last_obs[agent][None]])
        chunks[agent] = AgentChunk(
            observations=observations,
            actions=columns["actions"][start:stop, world],
            rewards=columns["rewards"][start:stop, world],
            extra_model_outputs={k: v[start:stop, world] for k, v in columns["extra"].items()},
        )
    return chunks
