"""The pure parts of benchmarks/speaker_listener_diagnosis.py (no Ray): mpe2's force map and the
discounted returns the listener's critic is compared with."""

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
