"""The scenarios' own task metrics (marl/envs/metrics.py) on worlds placed by hand (no Ray)."""

from __future__ import annotations

import numpy as np
import pytest
from mpe2 import simple_speaker_listener_v4, simple_v3

from marl.envs.metrics import REACHED_DISTANCE, metrics_for


def test_simple_measures_the_agents_final_distance_to_the_landmark():
    env = simple_v3.parallel_env(max_cycles=25)
    env.reset(seed=0)
    world = env.unwrapped.world
    landmark, agent = world.landmarks[0], world.agents[0]
    for offset, reached in ((np.array([0.06, 0.0]), 1.0), (np.array([0.0, 0.3]), 0.0)):
        agent.state.p_pos = landmark.state.p_pos + offset
        result = metrics_for("simple_v3").result(env)
        distance = float(np.linalg.norm(offset))  # no step recorded: the closest distance is the final one
        assert result == pytest.approx({"final_target_distance": distance, "reached_target": reached, "closest_target_distance": distance, "reached_target_any_step": reached})


def test_speaker_listener_measures_the_listener_against_its_goal_not_the_nearest_landmark():
    env = simple_speaker_listener_v4.parallel_env(max_cycles=25)
    env.reset(seed=0)
    world = env.unwrapped.world
    speaker, listener = world.agents
    goal = speaker.goal_b
    other = next(landmark for landmark in world.landmarks if landmark is not goal)
    listener.state.p_pos = other.state.p_pos.copy()  # on a landmark, but the wrong one
    result = metrics_for("simple_speaker_listener_v4").result(env)
    assert result["reached_target"] == 0.0
    assert result["final_target_distance"] == pytest.approx(np.linalg.norm(other.state.p_pos - goal.state.p_pos))
    listener.state.p_pos = goal.state.p_pos + np.array([REACHED_DISTANCE / 2, 0.0])
    assert metrics_for("simple_speaker_listener_v4").result(env)["reached_target"] == 1.0


def test_speaker_listener_tells_a_listener_that_passed_its_goal_from_one_that_never_came_near():
    env = simple_speaker_listener_v4.parallel_env(max_cycles=25)
    env.reset(seed=0)
    world = env.unwrapped.world
    listener, goal = world.agents[1], world.agents[0].goal_b
    metrics = metrics_for("simple_speaker_listener_v4")
    for offset in (0.5, 0.05, 0.3):  # passes over the goal at the second step, ends 0.3 away
        listener.state.p_pos = goal.state.p_pos + np.array([0.0, offset])
        metrics.step(env, {})
    result = metrics.result(env)
    assert result["final_target_distance"] == pytest.approx(0.3) and result["reached_target"] == 0.0
    assert result["closest_target_distance"] == pytest.approx(0.05) and result["reached_target_any_step"] == 1.0

    never = metrics_for("simple_speaker_listener_v4")
    for offset in (0.5, 0.2):
        listener.state.p_pos = goal.state.p_pos + np.array([0.0, offset])
        never.step(env, {})
    assert never.result(env)["closest_target_distance"] == pytest.approx(0.2)
    assert never.result(env)["reached_target_any_step"] == 0.0
