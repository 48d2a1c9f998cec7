"""benchmarks/original_mpe_physics.py: the original particle world's integration order, patched into
mpe2 and into our vectorized twin alike (no Ray)."""

import numpy as np
import pytest
from mpe2._mpe_utils import core
from mpe2 import simple_speaker_listener_v4, simple_spread_v3

from marl.envs.vectorized import VectorSimpleSpeakerListener, VectorSimpleSpread
from marl.envs.vectorized import mpe as vectorized_mpe
from tests.conftest import load_benchmark

physics = load_benchmark("original_mpe_physics")


@pytest.fixture()
def original_physics(monkeypatch):
    monkeypatch.setattr(core.World, "integrate_state", physics.integrate_state)
    monkeypatch.setattr(vectorized_mpe.VectorWorld, "integrate", physics.vectorized_integrate)


def first_step_displacement() -> np.ndarray:
    env = simple_speaker_listener_v4.parallel_env(max_cycles=25, continuous_actions=True)
    env.reset(seed=0)
    listener = env.unwrapped.world.agents[1]
    start = listener.state.p_pos.copy()
    env.step({"speaker_0": np.zeros(3, np.float32), "listener_0": np.array([0, 0, 1, 0, 0], np.float32)})  # +x
    return listener.state.p_pos - start


def test_mpe2_moves_an_agent_a_step_after_its_force_the_original_in_the_same_step(original_physics, monkeypatch):
    np.testing.assert_allclose(first_step_displacement(), [0.05, 0.0], atol=1e-9)  # 5 * 0.1 velocity, times dt 0.1
    monkeypatch.undo()
    np.testing.assert_allclose(first_step_displacement(), [0.0, 0.0], atol=1e-12)


@pytest.mark.parametrize("vector_cls, factory", [(VectorSimpleSpread, simple_spread_v3.parallel_env), (VectorSimpleSpeakerListener, simple_speaker_listener_v4.parallel_env)])
def test_patched_twin_still_matches_patched_mpe2(original_physics, vector_cls, factory):
    seeds = [3, 4]
    vec = vector_cls(len(seeds), max_cycles=25, continuous_actions=True)
    refs = [factory(max_cycles=25, continuous_actions=True) for _ in seeds]
    vec.reset(seeds)
    for env, seed in zip(refs, seeds):
        env.reset(seed=seed)
    rng = np.random.default_rng(0)
    for _ in range(25):
        actions = {a: rng.random((len(seeds), vec.action_spaces[a].shape[0]), dtype=np.float32) for a in vec.possible_agents}
        obs, rewards, _, _ = vec.step(actions)
        for b, env in enumerate(refs):
            ref_obs, ref_rewards, *_ = env.step({a: actions[a][b] for a in vec.possible_agents})
            for agent in vec.possible_agents:
                np.testing.assert_allclose(obs[agent][b], ref_obs[agent], atol=1e-5)
                assert rewards[agent][b] == pytest.approx(ref_rewards[agent], abs=1e-5)
