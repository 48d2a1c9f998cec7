"""The joint replay buffer: ring buffer and sampling, and joint rows from real RLlib episodes (no Ray cluster).

Every observation and reward encodes (episode, env step, agent), so a sampled row proves
where each agent's data came from.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from ray.rllib.env.multi_agent_episode import MultiAgentEpisode

from marl.algorithms.maddpg.replay import (
    FIELDS,
    JointReplayBuffer,
    NStepWindows,
    action_vector_dim,
    concat_rows,
    joint_transitions_from_episodes,
    make_action_to_vector,
    n_step_rows,
)
from marl.core.keys import BOOTSTRAP_DISCOUNT
from marl.rllib.episodes import AgentChunk, build_episode_chunk

AGENTS = ["agent_0", "agent_1", "agent_2"]
NUM_ACTIONS = 5
OBS_DIM = 3  # (episode, env step, agent index)
OBS_DIMS = {agent: OBS_DIM for agent in AGENTS}
ACTION_DIMS = {agent: NUM_ACTIONS for agent in AGENTS}
OBSERVATION_SPACES = {agent: gym.spaces.Box(-1e6, 1e6, (OBS_DIM,), np.float32) for agent in AGENTS}
ACTION_SPACES = {agent: gym.spaces.Discrete(NUM_ACTIONS) for agent in AGENTS}
TO_VECTOR = make_action_to_vector(ACTION_SPACES)


# -- encoded episodes -------------------------------------------------------------------


def observation(episode: int, env_step: int, agent: str) -> np.ndarray:
    return np.array([episode, env_step, AGENTS.index(agent)], np.float32)


def reward(episode: int, env_step: int, agent: str) -> float:
    return 1000.0 * episode + 10.0 * env_step + AGENTS.index(agent)


def action(env_step: int, agent: str) -> int:
    return (env_step + AGENTS.index(agent)) % NUM_ACTIONS


def play(
    episode: int,
    num_steps: int,
    *,
    terminates_after: dict[str, int] | None = None,
    enters_at: dict[str, int] | None = None,
    cut_after: tuple[int, ...] = (),
    lookback: int = 0,
    truncate: bool = True,
) -> list[MultiAgentEpisode]:
    """Step a MultiAgentEpisode as RLlib's env runner does; return its chunks.

    Env step t takes every live agent's action a_t (chosen at o_t) and brings r_t and
    o_{t+1}. `terminates_after[a] = t`: agent a is terminated by step t (its last step).
    `enters_at[a] = t`: agent a's first observation is o_t. The last step is a time-limit
    truncation when `truncate`. `cut_after`: chunk boundaries, after that many steps.
    """
    terminates_after = terminates_after or {}
    enters_at = enters_at or {}
    chunk = MultiAgentEpisode(observation_space=OBSERVATION_SPACES, action_space=ACTION_SPACES)
    acting = [agent for agent in AGENTS if enters_at.get(agent, 0) == 0]
    chunk.add_env_reset(observations={agent: observation(episode, 0, agent) for agent in acting})
    chunks = []
    for env_step in range(num_steps):
        terminated = {agent: True for agent in acting if terminates_after.get(agent) == env_step}
        observed = [agent for agent in AGENTS if agent in acting or enters_at.get(agent) == env_step + 1]
        chunk.add_env_step(
            observations={agent: observation(episode, env_step + 1, agent) for agent in observed},
            actions={agent: action(env_step, agent) for agent in acting},
            rewards={agent: reward(episode, env_step, agent) for agent in acting},
            terminateds=terminated,
            truncateds={"__all__": truncate and env_step == num_steps - 1},
        )
        acting = [agent for agent in observed if agent not in terminated]
        if env_step + 1 in cut_after:
            chunks.append(chunk)
            chunk = chunk.cut(len_lookback_buffer=lookback)
    return chunks + [chunk]


def rows_of(episodes: list[MultiAgentEpisode]):
    return joint_transitions_from_episodes(episodes, AGENTS, TO_VECTOR, obs_dims=OBS_DIMS, action_dims=ACTION_DIMS)


def buffer_of(rows, capacity: int = 1000, seed: int = 0) -> JointReplayBuffer:
    buffer = JointReplayBuffer(capacity, AGENTS, OBS_DIMS, ACTION_DIMS, np.random.default_rng(seed))
    buffer.add(rows)
    return buffer


def assert_rows_aligned(batch, expected_present) -> set[tuple[int, int]]:
    """Every row's agents come from one (episode, env step); returns those (episode, step) keys.

    `expected_present(episode, step)` is the set of agents that acted at that step.
    """
    keys = []
    for row in range(len(batch[AGENTS[0]]["mask"])):
        present = [agent for agent in AGENTS if batch[agent]["mask"][row] == 1.0]
        assert present, f"row {row} has no agent"
        episode, step = (int(v) for v in batch[present[0]]["obs"][row][:2])
        assert set(present) == expected_present(episode, step), (episode, step, present)
        for agent in AGENTS:
            columns = {field: batch[agent][field][row] for field in FIELDS}
            if agent not in present:
                assert all(not np.any(value) for value in columns.values()), f"masked {agent} has data at {episode, step}"
                continue
            np.testing.assert_array_equal(columns["obs"], observation(episode, step, agent))
            np.testing.assert_array_equal(columns["next_obs"], observation(episode, step + 1, agent))
            assert columns["rewards"] == reward(episode, step, agent)
            np.testing.assert_array_equal(columns["actions"], np.eye(NUM_ACTIONS)[action(step, agent)])
        keys.append((episode, step))
    return set(keys)


# -- alignment on a real episode --------------------------------------------------------
#
# 3 agents, 10 steps; agent_2 is terminated by step 4 (it acts at steps 0..4), the episode is
# truncated by the time limit after step 9.

LENGTH, AGENT_2_LAST_STEP = 10, 4


def present_with_early_leaver(episode, step):
    return set(AGENTS) if step <= AGENT_2_LAST_STEP else {"agent_0", "agent_1"}


def test_sampled_rows_hold_every_agent_at_the_same_env_step():
    episodes = [play(e, LENGTH, terminates_after={"agent_2": AGENT_2_LAST_STEP})[0] for e in range(3)]
    buffer = buffer_of(rows_of(episodes))
    assert len(buffer) == 3 * LENGTH  # one row per env step: agent_2 leaving drops no row
    seen = set()
    for _ in range(20):
        seen |= assert_rows_aligned(buffer.sample(16), present_with_early_leaver)
    assert len(seen) > 25  # the checks ran over (nearly) every stored step


def test_time_limit_with_per_agent_truncation_flags_is_not_terminal():
    """Our adapter's last step: every agent truncated AND the __all__ flags, as RLlib's env runner adds it.

    RLlib 2.60 then flags the episode and each agent's episode as terminated too; the rows
    must still bootstrap (terminated 0) through the time limit.
    """
    chunk = MultiAgentEpisode(observation_space=OBSERVATION_SPACES, action_space=ACTION_SPACES)
    chunk.add_env_reset(observations={agent: observation(0, 0, agent) for agent in AGENTS})
    for env_step in range(LENGTH):
        last = env_step == LENGTH - 1
        chunk.add_env_step(
            observations={agent: observation(0, env_step + 1, agent) for agent in AGENTS},
            actions={agent: action(env_step, agent) for agent in AGENTS},
            rewards={agent: reward(0, env_step, agent) for agent in AGENTS},
            terminateds={"__all__": False, **{agent: False for agent in AGENTS}},
            truncateds={"__all__": last, **{agent: last for agent in AGENTS}},
        )
    # The RLlib behaviour this guards against (if RLlib changes it, the guard is still right).
    assert all(chunk.agent_episodes[agent].is_truncated for agent in AGENTS)
    rows = rows_of([chunk])
    for agent in AGENTS:
        np.testing.assert_array_equal(rows[agent]["terminated"], np.zeros(LENGTH))
        np.testing.assert_array_equal(rows[agent]["mask"], np.ones(LENGTH))


def test_terminated_only_on_the_leaving_agents_last_step_and_truncation_bootstraps():
    rows = rows_of(play(0, LENGTH, terminates_after={"agent_2": AGENT_2_LAST_STEP}))
    terminated = {agent: rows[agent]["terminated"] for agent in AGENTS}
    np.testing.assert_array_equal(terminated["agent_2"], np.eye(LENGTH)[AGENT_2_LAST_STEP])
    np.testing.assert_array_equal(terminated["agent_0"], np.zeros(LENGTH))  # step 9 is truncated, not terminal
    np.testing.assert_array_equal(terminated["agent_1"], np.zeros(LENGTH))
    np.testing.assert_array_equal(rows["agent_0"]["next_obs"][-1], observation(0, LENGTH, "agent_0"))  # o_T to bootstrap from
    np.testing.assert_array_equal(rows["agent_2"]["mask"], (np.arange(LENGTH) <= AGENT_2_LAST_STEP).astype(np.float32))


def test_episode_terminated_for_all_marks_every_agent():
    chunk = MultiAgentEpisode(observation_space=OBSERVATION_SPACES, action_space=ACTION_SPACES)
    chunk.add_env_reset(observations={agent: observation(0, 0, agent) for agent in AGENTS})
    for step in range(3):
        chunk.add_env_step(
            observations={agent: observation(0, step + 1, agent) for agent in AGENTS},
            actions={agent: action(step, agent) for agent in AGENTS},
            rewards={agent: reward(0, step, agent) for agent in AGENTS},
            terminateds={"__all__": step == 2},
        )
    rows = rows_of([chunk])
    for agent in AGENTS:
        np.testing.assert_array_equal(rows[agent]["terminated"], [0.0, 0.0, 1.0])


def test_agent_entering_late_is_masked_before_it_enters():
    rows = rows_of(play(0, 6, enters_at={"agent_1": 2}))
    np.testing.assert_array_equal(rows["agent_1"]["mask"], [0, 0, 1, 1, 1, 1])
    assert_rows_aligned(buffer_of(rows).sample(6), lambda e, step: set(AGENTS) if step >= 2 else {"agent_0", "agent_2"})


# -- chunks (episode.cut) ---------------------------------------------------------------


@pytest.mark.parametrize("lookback", [0, 1, 3])
@pytest.mark.parametrize(
    "cut_after, events",
    [
        ((3, 7), {"terminates_after": {"agent_2": AGENT_2_LAST_STEP}}),
        # cut right after agent_2's last step: the next chunk keeps a stub episode for it
        ((AGENT_2_LAST_STEP + 1,), {"terminates_after": {"agent_2": AGENT_2_LAST_STEP}}),
        # agent_1 enters inside the second chunk (RLlib pads its step map from the episode's start)
        ((3,), {"enters_at": {"agent_1": 5}}),
    ],
    ids=["leaves", "cut-at-leave", "enters-late"],
)
def test_chunks_give_the_same_rows_as_the_whole_episode(cut_after, events, lookback):
    chunks = play(0, LENGTH, cut_after=cut_after, lookback=lookback, **events)
    assert len(chunks) == len(cut_after) + 1
    assert [len(chunk) for chunk in chunks] == list(np.diff([0, *cut_after, LENGTH]))
    whole = rows_of(play(0, LENGTH, **events))
    in_chunks = rows_of(chunks)  # no row lost or doubled at a boundary, none changed
    for agent in AGENTS:
        for field in FIELDS:
            np.testing.assert_array_equal(in_chunks[agent][field], whole[agent][field], err_msg=f"{agent} {field}")


def test_chunks_in_any_order_and_numpy_episodes_give_the_same_rows():
    chunks = play(0, LENGTH, cut_after=(4,), lookback=1, terminates_after={"agent_2": 6})
    in_order = rows_of(chunks)
    reversed_numpy = rows_of([chunk.to_numpy() for chunk in reversed(chunks)])
    first_len = len(chunks[0])
    for agent in AGENTS:
        for field in FIELDS:
            swapped = np.concatenate([reversed_numpy[agent][field][LENGTH - first_len :], reversed_numpy[agent][field][: LENGTH - first_len]])
            np.testing.assert_array_equal(swapped, in_order[agent][field])


def test_rllib_step_map_of_a_late_entrant_counts_from_the_episode_start():
    # What `_agent_steps_in_chunk` works around: if this changes, its tail rule is still right,
    # but the comment in replay.py should be updated.
    second = play(0, 6, enters_at={"agent_1": 4}, cut_after=(2,))[1]
    assert len(second) == 4
    step_map = second.env_t_to_agent_t["agent_1"].data
    assert len(step_map) > len(second) + 1
    assert list(step_map[-(len(second) + 1) :]) == ["S", "S", 0, 1, 2]


def test_vectorized_runner_chunks_give_the_same_rows_as_stepped_episodes():
    # marl.rllib.episodes builds chunks from arrays (the fast path); they must convert alike.
    stepped = play(0, 6, cut_after=(4,))
    built = []
    for start, stop in ((0, 4), (4, 6)):
        agents = {
            agent: AgentChunk(
                observations=np.stack([observation(0, step, agent) for step in range(start, stop + 1)]),
                actions=np.array([action(step, agent) for step in range(start, stop)]),
                rewards=np.array([reward(0, step, agent) for step in range(start, stop)], np.float32),
                extra_model_outputs={},
            )
            for agent in AGENTS
        }
        built.append(
            build_episode_chunk(
                episode_id="e0",
                env_t_started=start,
                agents=agents,
                module_ids={agent: agent for agent in AGENTS},
                observation_spaces=OBSERVATION_SPACES,
                action_spaces=ACTION_SPACES,
                terminated=False,
                truncated=stop == 6,
            )
        )
    expected, got = rows_of(stepped), rows_of(built)
    for agent in AGENTS:
        for field in FIELDS:
            np.testing.assert_array_equal(got[agent][field], expected[agent][field])


# -- conversion errors ------------------------------------------------------------------


def test_turn_based_agents_are_rejected():
    # agent_1's action at step 0 is answered only at step 2: there is no joint step 0 for it.
    chunk = MultiAgentEpisode(observation_space=OBSERVATION_SPACES, action_space=ACTION_SPACES)
    chunk.add_env_reset(observations={"agent_0": observation(0, 0, "agent_0"), "agent_1": observation(0, 0, "agent_1")})
    chunk.add_env_step({"agent_0": observation(0, 1, "agent_0")}, {"agent_0": 0, "agent_1": 1}, {"agent_0": 0.0, "agent_1": 0.0})
    chunk.add_env_step({"agent_0": observation(0, 2, "agent_0"), "agent_1": observation(0, 2, "agent_1")}, {"agent_0": 0}, {"agent_0": 0.0})
    with pytest.raises(ValueError, match="agent_1.*next observation later"):
        rows_of([chunk])


def test_unknown_agents_and_unflattened_observations_are_rejected():
    with pytest.raises(ValueError, match=r"unknown agents \['agent_2'\]"):
        joint_transitions_from_episodes(play(0, 3), AGENTS[:2], TO_VECTOR, obs_dims=OBS_DIMS, action_dims=ACTION_DIMS)
    with pytest.raises(ValueError, match="observations have shape"):
        joint_transitions_from_episodes(play(0, 3), AGENTS, TO_VECTOR, obs_dims={**OBS_DIMS, "agent_1": 4}, action_dims=ACTION_DIMS)


def test_no_episodes_give_no_rows():
    rows = rows_of([])
    assert all(rows[agent][field].shape[0] == 0 for agent in AGENTS for field in FIELDS)
    buffer = buffer_of(rows)
    assert len(buffer) == 0


# -- action vectors ---------------------------------------------------------------------


def test_action_vectors_for_discrete_and_box():
    spaces = {"d": gym.spaces.Discrete(3, start=1), "b": gym.spaces.Box(-1, 1, (2, 2), np.float32)}
    to_vector = make_action_to_vector(spaces)
    np.testing.assert_array_equal(to_vector("d", np.array([1, 3])), [[1, 0, 0], [0, 0, 1]])
    np.testing.assert_array_equal(to_vector("b", np.arange(8).reshape(2, 2, 2)), np.arange(8).reshape(2, 4))
    assert [action_vector_dim(space) for space in spaces.values()] == [3, 4]
    with pytest.raises(ValueError, match="Discrete and Box"):
        make_action_to_vector({"m": gym.spaces.MultiDiscrete([2, 2])})


# -- the ring buffer --------------------------------------------------------------------


def numbered_rows(first: int, count: int):
    """Rows whose every column holds the row number (mask 1), to see which rows survive."""
    numbers = np.arange(first, first + count, dtype=np.float32)
    return {
        agent: {
            "obs": np.repeat(numbers[:, None], OBS_DIM, 1),
            "actions": np.repeat(numbers[:, None], NUM_ACTIONS, 1),
            "rewards": numbers.copy(),
            "next_obs": np.repeat(numbers[:, None] + 1, OBS_DIM, 1),
            "terminated": np.zeros(count, np.float32),
            "mask": np.ones(count, np.float32),
        }
        for agent in AGENTS
    }


def stored_numbers(buffer: JointReplayBuffer) -> list[float]:
    return sorted(buffer.sample(len(buffer))["agent_0"]["rewards"].tolist())


def test_wrap_around_keeps_the_newest_rows():
    buffer = buffer_of(numbered_rows(0, 3), capacity=5)
    assert len(buffer) == 3 and stored_numbers(buffer) == [0, 1, 2]
    buffer.add(numbered_rows(3, 4))
    assert len(buffer) == 5 and stored_numbers(buffer) == [2, 3, 4, 5, 6]
    buffer.add(numbered_rows(100, 12))  # more than fit at once
    assert len(buffer) == 5 and stored_numbers(buffer) == [107, 108, 109, 110, 111]
    batch = buffer.sample(5)
    for agent in AGENTS:  # rows stay whole across the wrap
        np.testing.assert_array_equal(batch[agent]["obs"][:, 0], batch["agent_0"]["rewards"])
        np.testing.assert_array_equal(batch[agent]["next_obs"][:, 0], batch["agent_0"]["rewards"] + 1)


def test_sampling_is_reproducible_distinct_and_a_copy():
    first = buffer_of(numbered_rows(0, 50), seed=7)
    second = buffer_of(numbered_rows(0, 50), seed=7)
    other = buffer_of(numbered_rows(0, 50), seed=8)
    draws = [buffer.sample(10)["agent_1"]["rewards"] for buffer in (first, second, other)]
    np.testing.assert_array_equal(draws[0], draws[1])
    assert not np.array_equal(draws[0], draws[2])
    assert len(set(draws[0].tolist())) == 10  # without replacement
    batch = first.sample(50)
    batch["agent_0"]["rewards"][:] = -1.0
    assert stored_numbers(first) == list(range(50))


def test_independent_buffers_share_no_state():
    # A policy ensemble keeps one buffer per sub-policy.
    buffers = [JointReplayBuffer(10, AGENTS, OBS_DIMS, ACTION_DIMS, np.random.default_rng(0)) for _ in range(3)]
    buffers[0].add(numbered_rows(0, 4))
    buffers[1].add(numbered_rows(50, 2))
    assert [len(buffer) for buffer in buffers] == [4, 2, 0]
    assert stored_numbers(buffers[0]) == [0, 1, 2, 3] and stored_numbers(buffers[1]) == [50, 51]
    assert not np.shares_memory(buffers[0]._storage["agent_0"]["obs"], buffers[1]._storage["agent_0"]["obs"])


def test_add_episodes_converts_and_counts_rows():
    buffer = JointReplayBuffer(100, AGENTS, OBS_DIMS, ACTION_DIMS, np.random.default_rng(0))
    assert buffer.add_episodes(play(0, 6, cut_after=(3,)), TO_VECTOR) == 6
    assert len(buffer) == 6


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda rows: rows.pop("agent_2"), r"missing agents \['agent_2'\]"),
        (lambda rows: rows.update(agent_9=rows["agent_0"]), r"unknown agents \['agent_9'\]"),
        (lambda rows: rows["agent_1"].pop("mask"), r"rows\['agent_1'\] has fields"),
        (lambda rows: rows["agent_1"].update(obs=np.zeros((4, OBS_DIM + 1))), r"rows\['agent_1'\]\['obs'\] has shape \(4, 4\), expected \(4, 3\)"),
        (lambda rows: rows["agent_2"].update(rewards=np.zeros(3)), r"rows\['agent_2'\]\['rewards'\] has shape \(3,\), expected \(4,\)"),
    ],
    ids=["missing-agent", "unknown-agent", "missing-field", "obs-width", "row-count"],
)
def test_add_rejects_malformed_rows(change, message):
    buffer = JointReplayBuffer(10, AGENTS, OBS_DIMS, ACTION_DIMS, np.random.default_rng(0))
    rows = numbered_rows(0, 4)
    change(rows)
    with pytest.raises(ValueError, match=message):
        buffer.add(rows)
    assert len(buffer) == 0  # nothing half-written


def test_sample_and_constructor_errors():
    buffer = JointReplayBuffer(10, AGENTS, OBS_DIMS, ACTION_DIMS, np.random.default_rng(0))
    with pytest.raises(ValueError, match="empty"):
        buffer.sample(1)
    buffer.add(numbered_rows(0, 3))
    with pytest.raises(ValueError, match=r"batch_size must be in \[1, 3\]"):
        buffer.sample(4)
    with pytest.raises(ValueError, match="batch_size"):
        buffer.sample(0)
    with pytest.raises(ValueError, match="capacity"):
        JointReplayBuffer(0, AGENTS, OBS_DIMS, ACTION_DIMS, np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"obs_dims: missing agents \['agent_2'\]"):
        JointReplayBuffer(10, AGENTS, {"agent_0": 3, "agent_1": 3}, ACTION_DIMS, np.random.default_rng(0))
    with pytest.raises(ValueError, match="without repeats"):
        JointReplayBuffer(10, ["a", "a"], {"a": 1}, {"a": 1}, np.random.default_rng(0))


def test_save_and_load_continue_the_ring_and_the_sampling(tmp_path):
    buffer = buffer_of(numbered_rows(0, 7), capacity=5, seed=3)  # wrapped: rows 2..6, next write at row 2
    buffer.save(tmp_path / "replay.npz")
    restored = JointReplayBuffer(5, AGENTS, OBS_DIMS, ACTION_DIMS, np.random.default_rng(99))
    restored.load(tmp_path / "replay.npz")
    assert len(restored) == 5 and stored_numbers(restored) == stored_numbers(buffer) == [2, 3, 4, 5, 6]
    for agent in AGENTS:
        for field in buffer._storage[agent]:
            np.testing.assert_array_equal(restored._storage[agent][field], buffer._storage[agent][field])
    # stored_numbers drew once from each: both generators are still in step.
    np.testing.assert_array_equal(restored.sample(3)["agent_2"]["obs"], buffer.sample(3)["agent_2"]["obs"])
    for each in (buffer, restored):  # the same slot is overwritten next: the oldest row, 2
        each.add(numbered_rows(10, 1))
    assert stored_numbers(restored) == stored_numbers(buffer) == [3, 4, 5, 6, 10]

    bigger = JointReplayBuffer(8, AGENTS, OBS_DIMS, ACTION_DIMS, np.random.default_rng(0))
    bigger.load(tmp_path / "replay.npz")
    bigger.add(numbered_rows(20, 4))  # fills rows 5..7 and overwrites row 0, the oldest saved row
    assert stored_numbers(bigger) == [3, 4, 5, 6, 20, 21, 22, 23]
    with pytest.raises(ValueError, match="buffer_capacity"):
        JointReplayBuffer(4, AGENTS, OBS_DIMS, ACTION_DIMS, np.random.default_rng(0)).load(tmp_path / "replay.npz")
    with pytest.raises(ValueError, match="layout"):
        two = AGENTS[:2]
        JointReplayBuffer(5, two, {a: OBS_DIM for a in two}, {a: NUM_ACTIONS for a in two}, np.random.default_rng(0)).load(
            tmp_path / "replay.npz"
        )


def test_memory_per_row_is_the_sum_of_every_agents_columns():
    # float32: obs and next_obs (obs_dim each), the action vector, reward, terminated, mask.
    expected_row = sum(4 * (2 * OBS_DIMS[agent] + ACTION_DIMS[agent] + 3) for agent in AGENTS)
    small = JointReplayBuffer(10, AGENTS, OBS_DIMS, ACTION_DIMS, np.random.default_rng(0))
    large = JointReplayBuffer(1000, AGENTS, OBS_DIMS, ACTION_DIMS, np.random.default_rng(0))
    assert small.bytes_per_row == large.bytes_per_row == expected_row
    assert large.nbytes == 1000 * expected_row
    assert small.nbytes == sum(columns.nbytes for fields in small._storage.values() for columns in fields.values())


# -- n-step returns ----------------------------------------------------------------------

GAMMA = 0.5


def expected_n_step(episode: int, step: int, agent: str, m: int) -> tuple[float, np.ndarray, float]:
    """(R, next observation, gamma^m) of agent's row at `step` with an m-step window, from the encodings."""
    returns = sum(GAMMA**k * reward(episode, step + k, agent) for k in range(m))
    return returns, observation(episode, step + m, agent), GAMMA**m


def test_n_step_rows_sum_rewards_and_stop_at_the_end_a_termination_and_a_change_of_agents():
    # agent_2 acts at steps 0..4 and terminates there; steps 5..9 have two agents.
    rows = rows_of(play(0, LENGTH, terminates_after={"agent_2": AGENT_2_LAST_STEP}))
    n_step = n_step_rows(rows, 3, GAMMA)
    # m per row: full windows of 3, except that a window ends with agent_2's terminal step 4
    # (rows 3, 4), never crosses from 3 agents to 2, and ends at the episode's last step (8, 9).
    windows = [3, 3, 3, 2, 1, 3, 3, 3, 2, 1]
    np.testing.assert_allclose(n_step["agent_0"][BOOTSTRAP_DISCOUNT], [GAMMA**m for m in windows])
    for step, m in enumerate(windows):
        for agent in present_with_early_leaver(0, step):
            returns, next_obs, discount = expected_n_step(0, step, agent, m)
            assert n_step[agent]["rewards"][step] == pytest.approx(returns), (agent, step)
            np.testing.assert_array_equal(n_step[agent]["next_obs"][step], next_obs)
            assert n_step[agent][BOOTSTRAP_DISCOUNT][step] == pytest.approx(discount)
            np.testing.assert_array_equal(n_step[agent]["obs"][step], rows[agent]["obs"][step])
            np.testing.assert_array_equal(n_step[agent]["actions"][step], rows[agent]["actions"][step])
    # agent_2's rows whose window reaches its terminal step are terminal (no bootstrap); nobody else's is.
    np.testing.assert_array_equal(n_step["agent_2"]["terminated"], [0, 0, 1, 1, 1, 0, 0, 0, 0, 0])
    assert not n_step["agent_0"]["terminated"].any()
    np.testing.assert_array_equal(n_step["agent_2"]["mask"], rows["agent_2"]["mask"])


def test_one_step_rows_are_the_rows_themselves():
    rows = rows_of(play(0, LENGTH, terminates_after={"agent_2": AGENT_2_LAST_STEP}))
    one_step = n_step_rows(rows, 1, GAMMA)
    for agent in AGENTS:
        for field in FIELDS:
            np.testing.assert_array_equal(one_step[agent][field], rows[agent][field])
        np.testing.assert_allclose(one_step[agent][BOOTSTRAP_DISCOUNT], GAMMA)


def windows_of(chunk_lists: list[list[MultiAgentEpisode]], n: int = 3):
    """Feed each inner list as one sampling round through NStepWindows; all rows released."""
    windows = NStepWindows(n, GAMMA)
    empty = n_step_rows(rows_of([]), n, GAMMA)
    released = []
    for chunks in chunk_lists:
        released.append(windows.add([(c.id_, c.env_t_started, c.is_done, rows_of([c])) for c in chunks], empty=empty))
    return concat_rows(released), windows


def by_step(rows, agent="agent_0"):
    """Rows reordered by (episode, env step) of agent_0's observation."""
    order = np.lexsort((rows[agent]["obs"][:, 1], rows[agent]["obs"][:, 0]))
    return {a: {field: values[order] for field, values in columns.items()} for a, columns in rows.items()}


def test_windows_span_chunk_boundaries_as_if_the_episode_came_whole():
    whole = n_step_rows(rows_of(play(0, LENGTH)), 3, GAMMA)
    chunks = play(0, LENGTH, cut_after=(4, 5, 8))  # one chunk per sampling round, one of length 1
    released, windows = windows_of([[chunk] for chunk in chunks])
    assert windows.rows_held == 0  # the episode ended: nothing waits
    released = by_step(released)
    for agent in AGENTS:
        for field in (*FIELDS, BOOTSTRAP_DISCOUNT):
            np.testing.assert_array_equal(released[agent][field], whole[agent][field], err_msg=f"{agent} {field}")


def test_rows_wait_one_round_and_are_released_when_their_episode_does_not_continue():
    first, second = play(0, LENGTH, cut_after=(6,))
    other = play(1, LENGTH)[0]
    released, windows = windows_of([[first]])
    assert len(released["agent_0"]["mask"]) == 6 - 2 and windows.rows_held == 2  # steps 4, 5 wait for step 6 on
    # A round without episode 0 (its runner restarted): its rows come out with windows cut at step 5.
    released, _ = windows_of([[first], [other]])
    released = by_step(released)
    steps = released["agent_0"]["obs"][:, :2]
    np.testing.assert_array_equal(steps[:6], [[0, t] for t in range(6)])
    np.testing.assert_allclose(released["agent_0"][BOOTSTRAP_DISCOUNT][:6], [GAMMA**m for m in (3, 3, 3, 3, 2, 1)])
    assert released["agent_0"]["rewards"][5] == pytest.approx(reward(0, 5, "agent_0"))
    # Both rounds of one episode in one call, in any order, still join up.
    released, windows = windows_of([[second, first]])
    assert windows.rows_held == 0 and len(released["agent_0"]["mask"]) == LENGTH


def test_buffer_with_n_step_stores_the_discount_and_one_step_layout_is_unchanged():
    chunks = play(0, LENGTH, cut_after=(4,))
    plain = JointReplayBuffer(100, AGENTS, OBS_DIMS, ACTION_DIMS, np.random.default_rng(0))
    assert plain.fields == FIELDS
    buffer = JointReplayBuffer(100, AGENTS, OBS_DIMS, ACTION_DIMS, np.random.default_rng(0), n_step=3, gamma=GAMMA)
    assert buffer.fields == (*FIELDS, BOOTSTRAP_DISCOUNT)
    assert buffer.add_episodes(chunks[:1], TO_VECTOR) == 2  # steps 2, 3 wait
    assert buffer.add_episodes(chunks[1:], TO_VECTOR) == LENGTH - 2
    batch = by_step(buffer.sample(LENGTH))
    np.testing.assert_allclose(batch["agent_1"][BOOTSTRAP_DISCOUNT], [GAMMA**m for m in (3,) * 8 + (2, 1)])
    with pytest.raises(ValueError, match="need the discount gamma"):
        JointReplayBuffer(100, AGENTS, OBS_DIMS, ACTION_DIMS, np.random.default_rng(0), n_step=3)
