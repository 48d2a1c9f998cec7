"""Tests for scenarios/coordination_game.py (no Ray needed)."""

import numpy as np
import pytest
from pettingzoo.test import parallel_api_test, parallel_seed_test

from scenarios.coordination_game import MARGIN, team_reward, parallel_env


@pytest.mark.parametrize("n", [2, 3, 5])
def test_parallel_api(n):
    parallel_api_test(parallel_env(n_agents=n), num_cycles=100)


def test_seed_determinism():
    parallel_seed_test(lambda: parallel_env(n_agents=3))


def test_same_seed_same_initial_state_different_seed_differs():
    starts = []
    for seed in (1, 1, 2, 3, 4, 5):
        env = parallel_env(n_agents=10)
        env.reset(seed=seed)
        starts.append(env.state())
    np.testing.assert_array_equal(starts[0], starts[1])
    assert any(not np.array_equal(starts[0], s) for s in starts[2:])


# Worked out by hand from the rule: margin l; |z-o| <= l -> 1 if o > z else 0;
# zeros dominate -> 3; ones dominate -> 2.
@pytest.mark.parametrize(
    "state, expected",
    [
        # n=2, l=1
        ([0, 0], 3.0),
        ([1, 1], 2.0),
        ([1, 0], 0.0),
        ([0, 1], 0.0),
        # n=3, l=1
        ([0, 0, 0], 3.0),
        ([1, 1, 1], 2.0),
        ([1, 1, 0], 1.0),
        ([0, 1, 1], 1.0),
        ([1, 0, 0], 0.0),
        # n=5, l=2
        ([0] * 5, 3.0),
        ([1] * 5, 2.0),
        ([1, 1, 1, 1, 0], 2.0),
        ([1, 1, 1, 0, 0], 1.0),
        ([1, 1, 0, 0, 0], 0.0),
        ([1, 0, 0, 0, 0], 3.0),
        # n=10, l=3
        ([0] * 10, 3.0),
        ([1] * 3 + [0] * 7, 3.0),
        ([1] * 4 + [0] * 6, 0.0),
        ([1] * 5 + [0] * 5, 0.0),
        ([1] * 6 + [0] * 4, 1.0),
        ([1] * 7 + [0] * 3, 2.0),
        ([1] * 10, 2.0),
    ],
)
def test_team_reward_table(state, expected):
    assert team_reward(np.array(state)) == expected


def test_margin_table():
    assert MARGIN == {2: 1, 3: 1, 5: 2, 10: 3}


def test_reward_shared_and_matches_new_state():
    env = parallel_env(n_agents=5, flip_prob=0.0)
    env.reset(seed=0)
    actions = {a: 0 for a in env.agents}
    _, rewards, _, _, _ = env.step(actions)
    assert set(rewards.values()) == {3.0}


def test_no_noise_next_state_is_joint_action():
    env = parallel_env(n_agents=5, flip_prob=0.0)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    while env.agents:
        bits = rng.integers(0, 2, 5)
        actions = {a: int(b) for a, b in zip(env.agents, bits)}
        obs, *_ = env.step(actions)
        np.testing.assert_array_equal(env.state(), bits.astype(np.float32))
        for o in obs.values():
            assert o.dtype == np.float32
            np.testing.assert_array_equal(o, bits.astype(np.float32))


def test_flip_rate_close_to_flip_prob():
    env = parallel_env(n_agents=10, flip_prob=0.1, max_cycles=1000)
    env.reset(seed=123)
    rng = np.random.default_rng(1)
    flips = total = 0
    while env.agents:
        bits = rng.integers(0, 2, 10)
        env.step({a: int(b) for a, b in zip(env.agents, bits)})
        flips += int(np.sum(env.state() != bits))
        total += bits.size
    assert 0.08 <= flips / total <= 0.12


def test_truncation_at_max_cycles():
    env = parallel_env(n_agents=3, max_cycles=7)
    env.reset(seed=0)
    for t in range(1, 8):
        _, _, terms, truncs, infos = env.step({a: 1 for a in env.agents})
        assert not any(terms.values())
        assert all(info == {} for info in infos.values())
        if t < 7:
            assert not any(truncs.values())
            assert len(env.agents) == 3
    assert set(truncs) == set(env.possible_agents)
    assert all(truncs.values())
    assert env.agents == []


def test_default_episode_length_is_25():
    env = parallel_env(n_agents=2)
    env.reset(seed=0)
    steps = 0
    while env.agents:
        env.step({a: 0 for a in env.agents})
        steps += 1
    assert steps == 25


def test_spaces():
    env = parallel_env(n_agents=5)
    assert env.possible_agents == [f"agent_{i}" for i in range(5)]
    for a in env.possible_agents:
        assert env.action_space(a) is env.action_space(a)
        assert env.action_space(a).n == 2
        assert env.observation_space(a).shape == (5,)
        assert env.observation_space(a).dtype == np.float32
    assert env.state_space.shape == (5,)
    assert env.metadata["name"] == "coordination_game_v0"


@pytest.mark.parametrize("n", [0, 1, 4, 6, 11])
def test_invalid_n_agents(n):
    with pytest.raises(ValueError, match="2, 3, 5, 10"):
        parallel_env(n_agents=n)


def test_render_rgb_array():
    env = parallel_env(n_agents=3, render_mode="rgb_array", flip_prob=0.0)
    env.reset(seed=0)
    env.step({"agent_0": 0, "agent_1": 1, "agent_2": 1})
    img = env.render()
    assert isinstance(img, np.ndarray)
    assert img.dtype == np.uint8
    assert img.ndim == 3 and img.shape[2] == 3
    h, w, _ = img.shape
    centres = [img[h // 2, (2 * i + 1) * w // 6] for i in range(3)]
    # dark for 0, bright for 1
    assert centres[0].sum() < centres[1].sum()
    np.testing.assert_array_equal(centres[1], centres[2])
    env.close()


@pytest.mark.parametrize("n", [2, 3, 5, 10])
def test_vectorized_twin_equals_the_pettingzoo_env_step_for_step(n):
    from scenarios.coordination_game import vectorized_env

    num_envs, max_cycles = 4, 6
    vec = vectorized_env(num_envs, n_agents=n, max_cycles=max_cycles, flip_prob=0.3)
    refs = [parallel_env(n_agents=n, max_cycles=max_cycles, flip_prob=0.3) for _ in range(num_envs)]
    rng = np.random.default_rng(n)
    # Two seeded episodes, then one that continues each world's own generator.
    for episode, seeds in enumerate([[1, 2, 3, 4], [5, 6, 7, 8], [None] * num_envs]):
        obs = vec.reset(seeds) if episode == 0 else vec.reset_done(np.ones(num_envs, dtype=bool), seeds)
        expected = [env.reset(seed=seed)[0] for env, seed in zip(refs, seeds)]
        for b in range(num_envs):
            assert all(np.array_equal(obs[a][b], expected[b][a]) for a in vec.possible_agents)
            np.testing.assert_array_equal(vec.state()[b], refs[b].state())
        for t in range(max_cycles):
            actions = {a: rng.integers(0, 2, num_envs) for a in vec.possible_agents}
            obs, rewards, terminated, truncated = vec.step(actions)
            for b, env in enumerate(refs):
                o, r, te, tr, _ = env.step({a: int(actions[a][b]) for a in vec.possible_agents})
                for a in vec.possible_agents:
                    assert np.array_equal(obs[a][b], o[a]) and rewards[a][b] == r[a]
                    assert (terminated[a][b], truncated[a][b]) == (te[a], tr[a])
                np.testing.assert_array_equal(vec.state()[b], env.state())
    # Resetting some worlds leaves the others as they are.
    before = vec.state().copy()
    vec.reset_done(np.array([True, False, False, True]), [None, None])
    np.testing.assert_array_equal(vec.state()[1:3], before[1:3])
