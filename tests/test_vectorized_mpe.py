"""The vectorized mpe2 backend against mpe2 itself: step for step, and its speed (no Ray)."""

from __future__ import annotations


import numpy as np
import pytest
from mpe2 import simple_reference_v3, simple_speaker_listener_v4, simple_spread_v3

from marl.envs.vectorized import VectorSimpleReference, VectorSimpleSpeakerListener, VectorSimpleSpread

NUM_ENVS = 4
MAX_CYCLES = 25
ATOL = 1e-5

SCENARIOS = {
    "simple_spread": (VectorSimpleSpread, simple_spread_v3.parallel_env),
    "simple_speaker_listener": (VectorSimpleSpeakerListener, simple_speaker_listener_v4.parallel_env),
    "simple_reference": (VectorSimpleReference, simple_reference_v3.parallel_env),
}


def make_pair(scenario: str, num_envs: int, continuous: bool, max_cycles: int = MAX_CYCLES):
    vector_cls, mpe2_factory = SCENARIOS[scenario]
    vec = vector_cls(num_envs, max_cycles=max_cycles, continuous_actions=continuous)
    refs = [mpe2_factory(max_cycles=max_cycles, continuous_actions=continuous) for _ in range(num_envs)]
    return vec, refs


def random_actions(vec, rng: np.random.Generator) -> dict[str, np.ndarray]:
    if vec.continuous_actions:
        return {a: rng.random((vec.num_envs, vec.action_spaces[a].shape[0]), dtype=np.float32) for a in vec.possible_agents}
    return {a: rng.integers(vec.action_spaces[a].n, size=vec.num_envs) for a in vec.possible_agents}


def assert_batch_matches(vec, batch: dict, per_world: list[dict], what: str, t: int) -> None:
    for agent in vec.possible_agents:
        expected = np.array([world[agent] for world in per_world])
        np.testing.assert_allclose(batch[agent], expected, rtol=0, atol=ATOL, err_msg=f"{what} of {agent} at step {t}")


def any_agents_touching(refs) -> bool:
    for env in refs:
        agents = env.unwrapped.world.agents
        for i, a in enumerate(agents):
            for b in agents[i + 1 :]:
                if np.linalg.norm(a.state.p_pos - b.state.p_pos) < a.size + b.size:
                    return True
    return False


@pytest.mark.parametrize("continuous", [False, True], ids=["discrete", "continuous"])
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_matches_mpe2_step_for_step(scenario, continuous):
    vec, refs = make_pair(scenario, NUM_ENVS, continuous)
    assert vec.possible_agents == refs[0].possible_agents
    for agent in vec.possible_agents:
        assert vec.action_spaces[agent] == refs[0].action_space(agent)
        assert vec.observation_spaces[agent] == refs[0].observation_space(agent)
        assert vec.observation_dims[agent] == refs[0].observation_space(agent).shape[0]

    rng = np.random.default_rng(1234)
    # Two seeded episodes, then one that continues each world's generator (seed None).
    episodes = [[11, 22, 33, 44], [55, 66, 77, 88], [None] * NUM_ENVS]
    touching = False
    truncated: dict[str, np.ndarray] = {}  # the previous episode's last truncation flags
    for episode, seeds in enumerate(episodes):
        if episode == 0:
            obs = vec.reset(seeds)
        else:
            obs = vec.reset_done(truncated[vec.possible_agents[0]], seeds)
        ref_obs = [env.reset(seed=seed)[0] for env, seed in zip(refs, seeds)]
        assert_batch_matches(vec, obs, ref_obs, "reset observation", 0)
        for t in range(1, MAX_CYCLES + 1):
            actions = random_actions(vec, rng)
            obs, rewards, terminated, truncated = vec.step(actions)
            ref = [env.step({a: actions[a][b] for a in vec.possible_agents}) for b, env in enumerate(refs)]
            for i, what in enumerate(["observation", "reward", "termination", "truncation"]):
                assert_batch_matches(vec, (obs, rewards, terminated, truncated)[i], [r[i] for r in ref], what, t)
            for agent in vec.possible_agents:
                assert obs[agent].dtype == np.float32 and rewards[agent].dtype == np.float32
                assert terminated[agent].dtype == bool and truncated[agent].dtype == bool
            assert all(truncated[a].all() == (t == MAX_CYCLES) for a in vec.possible_agents)
            touching = touching or any_agents_touching(refs)
    if scenario == "simple_spread":
        assert touching, "no collision happened: contact forces were not exercised"


def test_reset_envs_resets_only_the_named_worlds():
    vec, refs = make_pair("simple_reference", NUM_ENVS, continuous=False)
    vec.reset([1, 2, 3, 4])
    rng = np.random.default_rng(0)
    for _ in range(5):
        before, *_ = vec.step(random_actions(vec, rng))
    steps_before = vec.steps.copy()
    after = vec.reset_envs([2], [99])
    expected, _ = refs[2].reset(seed=99)
    for agent in vec.possible_agents:
        np.testing.assert_allclose(after[agent][2], expected[agent], rtol=0, atol=ATOL)
        keep = [0, 1, 3]
        np.testing.assert_array_equal(after[agent][keep], before[agent][keep])
    assert vec.steps.tolist() == [steps_before[0], steps_before[1], 0, steps_before[3]]


def test_bad_actions_and_steps_before_reset_are_refused():
    vec = VectorSimpleSpread(2)
    with pytest.raises(RuntimeError):
        vec.step({a: np.array([0, 0]) for a in vec.possible_agents})
    vec.reset([0, 1])
    with pytest.raises(ValueError):
        vec.step({a: np.array([0, 5]) for a in vec.possible_agents})
    with pytest.raises(ValueError):
        vec.step({a: np.array([0, 1, 2]) for a in vec.possible_agents})
