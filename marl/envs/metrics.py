"""A scenario's own task metrics, measured per episode during evaluation.

mpe2 exposes its benchmark data (`benchmark_data=True`) in each agent's info; the
goal-reaching tasks are measured from the world state at the episode's end. A
scenario without an entry here simply reports returns only.

The metrics follow the MADDPG paper: for simple_spread, collisions per episode,
the summed agent-landmark minimum distance and the occupied landmarks (an agent
within 0.1); for speaker-listener and reference, whether the listener / each agent
ends within 0.1 of its target (and, apart, whether it came within 0.1 at any step);
for simple (one agent, one landmark), the same for the agent and the landmark.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

REACHED_DISTANCE = 0.1


class EpisodeMetrics(Protocol):
    def step(self, env, infos: dict[str, Any]) -> None: ...

    def result(self, env) -> dict[str, float]: ...


class SpreadMetrics:
    """simple_spread from benchmark_data = (reward, collisions, min_dists, occupied_landmarks)."""

    def __init__(self):
        self.collisions = 0.0
        self.min_dists: list[float] = []
        self.occupied: list[float] = []

    def step(self, env, infos):
        data = [info["benchmark_data"] for info in infos.values() if "benchmark_data" in info]
        if not data:
            return
        # Each collision is counted by both agents involved.
        self.collisions += sum(d[1] for d in data) / 2
        self.min_dists.append(float(data[0][2]))
        self.occupied.append(float(data[0][3]))

    def result(self, env):
        if not self.min_dists:
            return {}
        return {
            "collisions": self.collisions,
            "min_dist_sum_mean": float(np.mean(self.min_dists)),
            "occupied_landmarks_final": self.occupied[-1],
            "occupied_landmarks_mean": float(np.mean(self.occupied)),
        }


class _DistanceMetrics:
    """Distances of the moving agents to their targets: at the episode's end (`final_target_distance`,
    `reached_target`: every one within 0.1 at the end) and at their closest over the episode's steps
    (`closest_target_distance`, `reached_target_any_step`: every one came within 0.1 at some step),
    which tells an agent that never found its target from one that passed over it and drifted off."""

    def __init__(self):
        self.closest: np.ndarray | None = None

    def distances(self, world) -> list[float]:
        raise NotImplementedError

    def step(self, env, infos):
        distances = np.asarray(self.distances(env.unwrapped.world))
        if distances.size:
            self.closest = distances if self.closest is None else np.minimum(self.closest, distances)

    def result(self, env):
        distances = self.distances(env.unwrapped.world)
        if not distances:
            return {}
        closest = np.minimum(self.closest, distances) if self.closest is not None else np.asarray(distances)
        return {
            "final_target_distance": float(np.mean(distances)),
            "reached_target": float(all(d < REACHED_DISTANCE for d in distances)),
            "closest_target_distance": float(np.mean(closest)),
            "reached_target_any_step": float(bool(np.all(closest < REACHED_DISTANCE))),
        }


class GoalDistanceMetrics(_DistanceMetrics):
    """Each goal agent's distance to its goal landmark (speaker-listener, reference)."""

    def distances(self, world) -> list[float]:
        return [
            float(np.linalg.norm(agent.goal_a.state.p_pos - agent.goal_b.state.p_pos))
            for agent in world.agents
            if getattr(agent, "_goal_a", None) is not None and getattr(agent, "_goal_b", None) is not None
        ]


class NearestLandmarkMetrics(_DistanceMetrics):
    """Each moving agent's distance to its nearest landmark (mpe2 `simple`: one agent, one
    landmark, reward -d^2): the same measures as GoalDistanceMetrics for a task without a named goal."""

    def distances(self, world) -> list[float]:
        return [
            min(float(np.linalg.norm(agent.state.p_pos - landmark.state.p_pos)) for landmark in world.landmarks)
            for agent in world.agents
            if agent.movable
        ]


_METRICS = {
    "simple": NearestLandmarkMetrics,
    "simple_spread": SpreadMetrics,
    "simple_speaker_listener": GoalDistanceMetrics,
    "simple_reference": GoalDistanceMetrics,
}


def _base_name(scenario: str) -> str:
    name = scenario.split(":")[-1]
    return name.rsplit("_v", 1)[0] if "_v" in name else name


def metrics_for(scenario: str) -> EpisodeMetrics | None:
    """A fresh per-episode metrics collector for `scenario`, or None."""
    factory = _METRICS.get(_base_name(scenario))
    return factory() if factory else None


def wants_benchmark_data(scenario: str) -> bool:
    """mpe2 scenarios only emit benchmark data when built with benchmark_data=True."""
    return _METRICS.get(_base_name(scenario)) is SpreadMetrics
