"""The pure parts of benchmarks/speaker_listener_diagnosis.py and the scripted ceiling (no Ray): mpe2's force map, the
discounted returns the listener's critic is compared with, and the search for its value's peak."""

import numpy as np
import pytest

from tests.conftest import load_benchmark

diagnosis = load_benchmark("speaker_listener_diagnosis")


@pytest.mark.parametrize("channel", [1, 2, 3, 4])
def test_force_points_where_mpe2_moves_the_listener(channel):
    from mpe2 import simple_speaker_listener_v4

    env = simple_speaker_listener_v4.parallel_env(max_cycles=25, continuous_actions=True)
    env.reset(seed=0)
    listener = next(agent for agent in env.unwrapped.world.agents if agent.name == diagnosis.LISTENER)
    action = np.zeros(5, dtype=np.float32)
    action[channel] = 1.0
    env.step({diagnosis.SPEAKER: np.zeros(3, dtype=np.float32), diagnosis.LISTENER: action})
    velocity = listener.state.p_vel  # from rest: the force's direction (mpe2 moves the position a step later)
    np.testing.assert_allclose(velocity / np.linalg.norm(velocity), diagnosis.force(action), atol=1e-6)
    # A Discrete listener's integer action moves the same way as its one-hot Box action.
    np.testing.assert_array_equal(diagnosis.force(np.int64(channel)), diagnosis.force(action))


def test_returns_that_followed_bootstrap_the_last_reward_past_the_time_limit():
    gamma = 0.5
    # episode 1: r = -1, -2; after the limit -2 / (1 - 0.5) = -4 -> G1 = -2 + 0.5 * -4 = -4, G0 = -1 + 0.5 * -4 = -3
    # episode 2: r = 0 -> G0 = 0
    returns = diagnosis.returns_that_followed([[-1.0, -2.0], [0.0]], gamma)
    np.testing.assert_allclose(returns, [-3.0, -4.0, 0.0])


class PeakedCritic:
    """A stand-in listener critic whose value over listener positions peaks at `peak` from goal landmark 0."""

    def __init__(self, peak):
        self.peak = np.asarray(peak)

    def critic_input(self, agent, observations, actions):
        return observations[agent]

    def q_value(self, listener_obs):
        import torch

        offset_from_goal = -listener_obs[:, 2:4].double()  # landmark 0 is the goal
        return -((offset_from_goal - torch.as_tensor(self.peak)) ** 2).sum(-1)


def test_critic_peak_finds_a_misplaced_maximum_on_the_side_the_listener_stopped():
    landmarks = np.array([[0.5, 0.5], [-0.5, 0.2], [0.1, -0.7]])
    stopped_at = landmarks[0] + np.array([0.0, -0.2])  # 0.2 below its goal
    obs = np.concatenate([[0.0, 0.0], (landmarks - stopped_at).ravel(), [1.0, 0.0, 0.0]]).astype(np.float32)
    recorder = diagnosis.Recorder()
    recorder.steps.append({
        "t": 24, "obs": {diagnosis.LISTENER: obs, diagnosis.SPEAKER: np.array([0.65, 0.15, 0.15], np.float32)},
        "actions": {diagnosis.LISTENER: np.full(5, 0.2, np.float32), diagnosis.SPEAKER: np.array([1.0, 0, 0], np.float32)},
        "to_goal": landmarks[0] - stopped_at,
    })
    peak = diagnosis.critic_peak(PeakedCritic([0.0, -0.15]), recorder)
    assert peak["peak_distance"] == pytest.approx(0.15)  # a grid point (0.05 apart)
    assert peak["peak_alignment"] == pytest.approx(1.0)
    # the stand-in prefers 0.2 below the goal to the goal itself: -(0.05^2) against -(0.15^2)
    assert peak["final_minus_goal"] == pytest.approx(-0.05**2 + 0.15**2)
    assert peak["peak_minus_goal"] == pytest.approx(0.15**2)


def test_scripted_pair_settles_on_the_goal():
    ceiling = load_benchmark("speaker_listener_ceiling")
    result = ceiling.run(episodes=5, kp=4.0, kd=0.8)
    assert result["within_0.1"] == 1.0 and result["final_distance"] < 0.05
    assert -20 < result["team_return"] < -5  # the approach costs: the return is not 0
