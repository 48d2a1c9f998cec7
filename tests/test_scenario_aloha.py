"""Tests for scenarios/aloha.py (no Ray needed)."""

import networkx as nx
import numpy as np
import pytest
from pettingzoo.test import parallel_api_test, parallel_seed_test

from scenarios.aloha import parallel_env, reference_graph, slot_outcome


@pytest.mark.parametrize("graph", [None, nx.cycle_graph(4), [[0, 1], [1, 2]]])
def test_parallel_api(graph):
    parallel_api_test(parallel_env(graph=graph), num_cycles=100)


def test_seed_determinism():
    parallel_seed_test(lambda: parallel_env())


def test_reference_graph_matches_the_reference_adjacency():
    graph = reference_graph()
    assert graph.number_of_nodes() == 10
    assert sorted(graph.neighbors(0)) == [1, 5]
    assert sorted(graph.neighbors(4)) == [3, 5, 9]
    assert sorted(graph.neighbors(9)) == [4, 8]
    assert graph.number_of_edges() == 9 + 5


def test_spaces_and_initial_state():
    env = parallel_env()
    obs, infos = env.reset(seed=0)
    assert env.possible_agents == [f"agent_{i}" for i in range(10)]
    for agent in env.possible_agents:
        assert env.observation_space(agent).shape == (1,)
        assert env.action_space(agent).n == 2
        np.testing.assert_array_equal(obs[agent], [1.0])
    np.testing.assert_array_equal(env.state(), np.ones(10, dtype=np.float32))
    assert env.state_space.shape == (10,)


# Line graph 0 - 1 - 2 - 3, by hand.
LINE = [[0, 1], [1, 2], [2, 3]]


@pytest.mark.parametrize(
    "backlogs, actions, successes, collisions",
    [
        ([1, 1, 1, 1], [1, 0, 0, 1], [0, 3], []),  # non-neighbours send together
        ([1, 1, 1, 1], [1, 1, 0, 0], [], [0, 1]),  # neighbours collide
        ([1, 0, 1, 1], [1, 1, 0, 0], [], [0]),  # an empty queue still jams its neighbour
        ([1, 1, 1, 1], [0, 1, 0, 1], [1, 3], []),
        ([2, 2, 2, 2], [1, 1, 1, 1], [], [0, 1, 2, 3]),
        ([0, 0, 0, 0], [1, 0, 1, 0], [], []),  # nothing to send
    ],
)
def test_slot_outcome_by_hand(backlogs, actions, successes, collisions):
    neighbours = nx.to_numpy_array(nx.Graph([tuple(e) for e in LINE]), nodelist=range(4), dtype=np.int8)
    success, collision = slot_outcome(np.array(backlogs), np.array(actions), neighbours)
    assert np.flatnonzero(success).tolist() == successes
    assert np.flatnonzero(collision).tolist() == collisions


def _set_state(env, backlogs):
    env.reset(seed=0)
    env.backlogs = np.array(backlogs, dtype=np.int64)


def test_reward_queue_update_and_cap_on_a_hand_set_state():
    env = parallel_env(graph=LINE, arrival_prob=0.0)
    _set_state(env, [3, 1, 2, 0])
    _, rewards, _, _, infos = env.step({"agent_0": 1, "agent_1": 0, "agent_2": 1, "agent_3": 0})
    assert list(rewards.values()) == pytest.approx([0.2] * 4)  # two successes, shared by everyone
    np.testing.assert_array_equal(env.state(), [2, 1, 1, 0])
    assert infos["agent_0"] == {"success": True, "collision": False}

    _set_state(env, [3, 1, 2, 0])
    _, rewards, *_ = env.step({"agent_0": 1, "agent_1": 1, "agent_2": 1, "agent_3": 0})
    assert list(rewards.values()) == pytest.approx([-30.0] * 4)  # three collisions, no packet leaves
    np.testing.assert_array_equal(env.state(), [3, 1, 2, 0])

    env = parallel_env(graph=LINE, arrival_prob=1.0, max_backlog=5)
    _set_state(env, [5, 4, 0, 0])
    _, rewards, *_ = env.step({"agent_0": 0, "agent_1": 0, "agent_2": 0, "agent_3": 1})
    assert set(rewards.values()) == {0.0}  # agent_3 had nothing to send: no reward, no penalty
    np.testing.assert_array_equal(env.state(), [5, 5, 1, 1])  # capped at 5


def test_arrival_rate_and_episode_length():
    env = parallel_env(max_cycles=50, arrival_prob=0.6, max_backlog=1000)  # no cap: every arrival counts
    env.reset(seed=3)
    steps = 0
    while env.agents:
        env.step({a: 0 for a in env.agents})  # nobody sends: queues only grow
        steps += 1
    assert steps == 50 and env.agents == []
    arrival_rate = (env.backlogs.sum() - 10) / (10 * 50)
    assert 0.53 < arrival_rate < 0.67  # 500 Bernoulli(0.6) draws: +-3 standard deviations


def test_default_episode_length_is_20():
    env = parallel_env()
    env.reset(seed=0)
    steps = 0
    while env.agents:
        env.step({a: 1 for a in env.agents})
        steps += 1
    assert steps == 20


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"graph": [[0, 2]]}, "nodes must be 0 ... n-1"),
        ({"graph": [[0, 0], [0, 1]]}, "self-loop"),
        ({"graph": [[0, 1, 2]]}, "networkx Graph or a list"),
        ({"arrival_prob": 1.5}, "arrival_prob"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        parallel_env(**kwargs)


def test_registered_under_its_module_name():
    from marl.envs.registry import known_scenarios

    entry = known_scenarios()["aloha"]
    assert entry.load() is parallel_env
    assert entry.description.startswith("Aloha: agents on a neighbour graph")


def _aloha_policies():
    """benchmarks/aloha_policies.py (a script, not a package) loaded as a module."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "aloha_policies.py"
    spec = importlib.util.spec_from_file_location("aloha_policies", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_hand_written_policies_bracket_what_learning_can_reach():
    policies = _aloha_policies()
    neighbours = parallel_env().neighbours
    sets = policies.independent_sets(neighbours)
    assert all(mask @ neighbours @ mask == 0 for mask in sets)
    assert any(mask.tolist() == [0, 1, 0, 1, 0, 1, 0, 1, 0, 1] for mask in sets)
    # Greedy turn-taking never collides and sends from a maximal set of the queues that hold packets.
    rng = np.random.default_rng(0)
    for _ in range(200):
        backlogs = rng.integers(0, 3, size=10)
        actions = policies.correlated_greedy(backlogs, neighbours)
        success, collision = slot_outcome(backlogs, actions, neighbours)
        assert not collision.any() and success.sum() == actions.sum()
        waiting_with_packets = (backlogs > 0) & (actions == 0)
        assert np.all(neighbours[waiting_with_packets] @ actions > 0)
    assert policies.mean_return(policies.silence, {}, 5, seed=0) == 0.0
    everyone = policies.mean_return(policies.everyone, {}, 5, seed=0)
    greedy = policies.mean_return(policies.correlated_greedy, {}, 50, seed=0)
    every_other = policies.mean_return(policies.fixed_set(np.array([0, 1] * 5)), {}, 50, seed=0)
    assert everyone == -20000.0  # queues never empty: ten collisions (-100) x 20 steps, received by each of 10 agents
    assert greedy > every_other > 0.0
