"""A replay buffer of JOINT transitions: one row is one env step of one world, for every agent.

MADDPG trains every agent's critic on Q_i(o_1..o_N, a_1..a_N), so a sampled batch must
hold all agents' (o, a, r, o', terminated) at the SAME env steps. RLlib's
MultiAgentEpisodeReplayBuffer does not give that (its "independent" mode samples each
module separately; "synchronized" loses the row alignment once an agent terminates early),
hence this buffer and `joint_transitions_from_episodes`, which lines RLlib's episode chunks
up by env step.

Row layout, per agent (float32, N rows):
    obs (N, obs_dim), actions (N, action_dim), rewards (N,), next_obs (N, obs_dim),
    terminated (N,), mask (N,)
`mask` is 1 where the agent acted at that env step; where it is 0 (the agent had left or
not yet entered) every other column of that agent is 0 and the learner must mask that
agent's losses. With policy ensembles (`with_subpolicy=True`) each agent also has `subpolicy` (N,): the
index of its sub-policy that acted (0 where mask is 0); `sample(..., acted_by=(agent, k))`
then draws from D_agent^(k), the rows in which that agent acted with sub-policy k.
`terminated` is 1 only on the agent's own terminal step; a truncated
(time-limit) step has terminated 0 and bootstraps (see `ends_in_termination` for the
RLlib flags this reads).

With n-step returns (`n_step > 1`) a row holds (o_t, a_t, R_t, o_{t+m}, terminated_{t+m-1})
with R_t the discounted sum of m <= n rewards, and each agent also has `bootstrap_discount`
(N,) = gamma^m; `NStepWindows` builds these rows from the episode chunks (see `n_step_rows`).
"""

from __future__ import annotations

from marl.core.keys import BOOTSTRAP_DISCOUNT, SUBPOLICY
import json
from pathlib import Path
from typing import Callable, Sequence

import gymnasium as gym
import numpy as np
from ray.rllib.env.multi_agent_episode import MultiAgentEpisode

FIELDS = ("obs", "actions", "rewards", "next_obs", "terminated", "mask")
OPTIONAL_FIELDS = (SUBPOLICY, BOOTSTRAP_DISCOUNT)  # present only with policy ensembles / n-step returns

Rows = dict[str, dict[str, np.ndarray]]  # agent -> field -> (N, ...) array
ActionToVector = Callable[[str, np.ndarray], np.ndarray]  # (agent, (n, ...) actions) -> (n, action_dim)


def fields_of(with_subpolicy: bool, with_discount: bool = False) -> tuple[str, ...]:
    return (*FIELDS, *((SUBPOLICY,) if with_subpolicy else ()), *((BOOTSTRAP_DISCOUNT,) if with_discount else ()))


def _field_shapes(obs_dim: int, action_dim: int, fields: Sequence[str] = FIELDS) -> dict[str, tuple[int, ...]]:
    """Each field's shape within one row."""
    shapes = {"obs": (obs_dim,), "actions": (action_dim,), "rewards": (), "next_obs": (obs_dim,), "terminated": (), "mask": (), SUBPOLICY: (), BOOTSTRAP_DISCOUNT: ()}
    return {field: shapes[field] for field in fields}


def _empty_rows(num_rows: int, obs_dim: int, action_dim: int, fields: Sequence[str] = FIELDS) -> dict[str, np.ndarray]:
    """One agent's zero-filled (so masked-out) columns for `num_rows` rows."""
    return {field: np.zeros((num_rows, *shape), np.float32) for field, shape in _field_shapes(obs_dim, action_dim, fields).items()}


def _check_agents(given: Sequence[str], expected: Sequence[str], what: str) -> None:
    unknown = sorted(set(given) - set(expected))
    missing = sorted(set(expected) - set(given))
    if unknown:
        raise ValueError(f"{what}: unknown agents {unknown}; expected exactly {list(expected)}")
    if missing:
        raise ValueError(f"{what}: missing agents {missing}; expected exactly {list(expected)}")


class JointReplayBuffer:
    """A numpy ring buffer of joint transitions, sampled uniformly without replacement.

    One instance holds its own arrays and random generator (no class-level state). A policy
    ensemble shares one buffer: each row records the sub-policy every agent acted with
    (`SUBPOLICY`), and sub-policy k trains on the rows it acted in.
    """

    def __init__(
        self,
        capacity: int,
        agents: Sequence[str],
        obs_dims: dict[str, int],
        action_dims: dict[str, int],
        rng: np.random.Generator,
        *,
        with_subpolicy: bool = False,
        n_step: int = 1,
        gamma: float | None = None,
    ):
        if capacity < 1:
            raise ValueError(f"JointReplayBuffer: capacity must be >= 1, got {capacity}")
        if not agents or len(set(agents)) != len(agents):
            raise ValueError(f"JointReplayBuffer: agents must be a non-empty list without repeats, got {list(agents)}")
        _check_agents(list(obs_dims), agents, "JointReplayBuffer obs_dims")
        _check_agents(list(action_dims), agents, "JointReplayBuffer action_dims")
        self.capacity = capacity
        self.agents = list(agents)
        self.obs_dims = {agent: int(obs_dims[agent]) for agent in agents}
        self.action_dims = {agent: int(action_dims[agent]) for agent in agents}
        if n_step > 1 and gamma is None:
            raise ValueError("JointReplayBuffer: n-step returns (n_step > 1) need the discount gamma")
        self.fields = fields_of(with_subpolicy, with_discount=n_step > 1)
        self._windows = NStepWindows(n_step, gamma) if n_step > 1 else None
        self._rng = rng
        self._storage: Rows = {
            agent: _empty_rows(capacity, self.obs_dims[agent], self.action_dims[agent], self.fields) for agent in agents
        }
        self._next_row = 0  # where the next row goes; the oldest row once the buffer is full
        self._size = 0

    def __len__(self) -> int:
        return self._size

    @property
    def bytes_per_row(self) -> int:
        """Bytes one joint row takes in the arrays (every agent, every field)."""
        return sum(columns.itemsize * int(np.prod(columns.shape[1:])) for fields in self._storage.values() for columns in fields.values())

    @property
    def nbytes(self) -> int:
        """Bytes of the arrays at full capacity (numpy's zero pages become resident as rows are written)."""
        return self.capacity * self.bytes_per_row

    # -- persistence (checkpoints) -----------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Write the stored rows, the ring position and the sampling generator's state to one .npz file.

        Only the filled rows are written (rows 0.._size-1 hold them whether or not the ring
        has wrapped), uncompressed: replay data compresses poorly and this stays fast.
        """
        arrays = {f"{agent}/{field}": columns[: self._size] for agent, fields in self._storage.items() for field, columns in fields.items()}
        meta = {"next_row": self._next_row, "size": self._size, "capacity": self.capacity, "rng": self._rng.bit_generator.state}
        with open(path, "wb") as handle:  # a file handle: np.savez would otherwise append ".npz" to the name
            np.savez(handle, __meta__=np.array(json.dumps(meta)), **arrays)

    def load(self, path: str | Path) -> None:
        """Replace the contents with those `save` wrote (same agents and layout; capacity at least the rows saved)."""
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["__meta__"]))
            expected = {f"{agent}/{field}" for agent in self.agents for field in self.fields}
            found = set(data.files) - {"__meta__"}
            if found != expected:
                raise ValueError(f"{path}: replay buffer layout {sorted(found ^ expected)} differs from this buffer's")
            size = meta["size"]
            if size > self.capacity:
                raise ValueError(f"{path}: {size} rows saved, but this buffer holds only {self.capacity}; raise training.buffer_capacity")
            for agent in self.agents:
                for field in self.fields:
                    saved = data[f"{agent}/{field}"]
                    if saved.shape[1:] != self._storage[agent][field].shape[1:]:
                        raise ValueError(f"{path}: {agent}/{field} has rows of shape {saved.shape[1:]}, expected {self._storage[agent][field].shape[1:]}")
                    self._storage[agent][field][:size] = saved
                    self._storage[agent][field][size:] = 0.0
        # The same capacity continues the ring where it stopped; another one restarts it after the saved rows.
        self._next_row = meta["next_row"] if meta["capacity"] == self.capacity else size % self.capacity
        self._size = size
        self._rng.bit_generator.state = meta["rng"]

    def _num_rows(self, rows: Rows) -> int:
        """Validate `rows` against the buffer's layout and return their common row count."""
        _check_agents(list(rows), self.agents, "JointReplayBuffer.add")
        num_rows = len(rows[self.agents[0]]["obs"]) if "obs" in rows[self.agents[0]] else 0
        for agent in self.agents:
            if set(rows[agent]) != set(self.fields):
                raise ValueError(f"JointReplayBuffer.add: rows[{agent!r}] has fields {sorted(rows[agent])}, expected {sorted(self.fields)}")
            for field, shape in _field_shapes(self.obs_dims[agent], self.action_dims[agent], self.fields).items():
                actual = np.shape(rows[agent][field])
                if actual != (num_rows, *shape):
                    raise ValueError(f"JointReplayBuffer.add: rows[{agent!r}][{field!r}] has shape {actual}, expected {(num_rows, *shape)}")
        return num_rows

    def add(self, rows: Rows) -> None:
        """Append joint rows (the layout `sample` returns); the oldest rows are overwritten when full."""
        num_rows = self._num_rows(rows)
        # More rows than fit: only the newest `capacity` would survive, so write only those
        # (a fancy-index write with repeated positions has no defined order).
        first = max(0, num_rows - self.capacity)
        positions = (self._next_row + np.arange(num_rows - first)) % self.capacity
        for agent in self.agents:
            for field in self.fields:
                self._storage[agent][field][positions] = rows[agent][field][first:]
        self._next_row = (self._next_row + len(positions)) % self.capacity
        self._size = min(self.capacity, self._size + len(positions))

    def rows_acted_by(self, agent: str, subpolicy: int) -> np.ndarray:
        """Indices of D_agent^(subpolicy): stored rows in which `agent` acted with that sub-policy."""
        if SUBPOLICY not in self.fields:
            raise ValueError("JointReplayBuffer: sub-policies are only recorded with with_subpolicy=True (policy ensembles)")
        # Rows 0.._size-1 are the filled ones whether or not the ring has wrapped.
        columns = self._storage[agent]
        return np.flatnonzero((columns["mask"][: self._size] > 0) & (columns[SUBPOLICY][: self._size] == subpolicy))

    def sample(self, batch_size: int, *, acted_by: tuple[str, int] | None = None) -> Rows:
        """`batch_size` distinct stored rows, drawn uniformly; every agent's arrays share the rows.

        `acted_by=(agent, k)` draws only from the rows in which `agent` acted with sub-policy k
        (a policy ensemble's per-sub-policy buffer D_agent^(k)).
        """
        candidates = self._size if acted_by is None else self.rows_acted_by(*acted_by)
        available = candidates if acted_by is None else len(candidates)
        if available == 0:
            raise ValueError(f"JointReplayBuffer.sample: the buffer is empty{'' if acted_by is None else f' of rows acted by {acted_by}'}")
        if not 1 <= batch_size <= available:
            raise ValueError(f"JointReplayBuffer.sample: batch_size must be in [1, {available}] (rows stored), got {batch_size}")
        indices = self._rng.choice(candidates, size=batch_size, replace=False)
        return {agent: {field: columns[indices] for field, columns in self._storage[agent].items()} for agent in self.agents}

    def add_episodes(self, episodes: Sequence[MultiAgentEpisode], action_to_vector: ActionToVector) -> int:
        """Convert RLlib episode chunks with `joint_transitions_from_episodes` and add them; returns the row count.

        With n-step returns the rows go through `NStepWindows` first: a running episode's last
        n - 1 rows wait for the chunk that continues it (the next sampling round).
        """
        with_subpolicy = SUBPOLICY in self.fields
        if self._windows is None:
            rows = joint_transitions_from_episodes(
                episodes, self.agents, action_to_vector, obs_dims=self.obs_dims, action_dims=self.action_dims,
                with_subpolicy=with_subpolicy,
            )
        else:
            fields = fields_of(with_subpolicy)
            chunks = [
                (episode.id_, episode.env_t_started, episode.is_done,
                 chunk_rows(episode, self.agents, action_to_vector, self.obs_dims, self.action_dims, fields))
                for episode in episodes
            ]
            rows = self._windows.add(chunks, empty=_no_rows(self.agents, self.obs_dims, self.action_dims, self.fields))
        self.add(rows)
        return len(rows[self.agents[0]]["mask"])


# -- RLlib episodes -> joint rows --------------------------------------------------------
#
# What this relies on in RLlib 2.60's MultiAgentEpisode (checked in tests/test_maddpg_replay.py):
# - A chunk covers env steps env_t_started .. env_t - 1 (len(episode) = env_t - env_t_started of
#   them); the next chunk (`cut()`) starts at env_t, so consecutive chunks share no step.
# - One SingleAgentEpisode per agent that has acted: observations at its agent steps
#   0..len (one more than actions and rewards, 0..len-1), indexed from the chunk start (a lookback
#   buffer from `cut(len_lookback_buffer=k)` is excluded by the getters). Agent step k of the
#   chunk is global agent step t_started + k.
# - env_t_to_agent_t[agent]: one entry per env step, the GLOBAL agent step whose observation
#   arrived at that env step, or "S" (SKIP_ENV_TS_TAG) when none did (before entering, after
#   leaving). Only its last len(episode) + 1 entries are trusted: RLlib pads an agent that enters
#   in a later chunk with one "S" per env step since the episode's reset, not since the chunk's
#   start, so the list can be longer than the chunk.
# - An agent acted at env step t when it has an observation at t and its next one at t + 1.
#   An agent whose action is answered only later (turn-based envs) has no joint step: rejected.
# - The per-agent terminated/truncated flags hold for the agent's last step of the chunk.


def _agent_steps_in_chunk(episode: MultiAgentEpisode, agent: str) -> tuple[np.ndarray, np.ndarray]:
    """(env steps, agent steps) at which `agent` acted, both counted from the chunk's start."""
    num_env_steps = len(episode)
    mapping = list(episode.env_t_to_agent_t[agent].data)
    if len(mapping) < num_env_steps + 1:
        raise ValueError(f"episode {episode.id_}: agent {agent!r} maps {len(mapping)} env steps, the chunk has {num_env_steps + 1}")
    mapping = mapping[len(mapping) - (num_env_steps + 1):]
    agent_episode = episode.agent_episodes[agent]
    skip = MultiAgentEpisode.SKIP_ENV_TS_TAG
    env_steps, agent_steps = [], []
    for env_step, (now, after) in enumerate(zip(mapping[:-1], mapping[1:])):
        if now == skip:
            continue
        local_step = now - agent_episode.t_started
        if after == skip:
            if local_step < len(agent_episode):
                raise ValueError(
                    f"episode {episode.id_}: agent {agent!r} acted at env step {episode.env_t_started + env_step} but got its "
                    "next observation later; joint transitions need every acting agent to observe at the next env step"
                )
            continue  # its last observation (it has left) or its action is still pending
        if after != now + 1:
            raise ValueError(f"episode {episode.id_}: agent {agent!r} jumps from agent step {now} to {after} in one env step")
        env_steps.append(env_step)
        agent_steps.append(local_step)
    return np.asarray(env_steps, dtype=np.int64), np.asarray(agent_steps, dtype=np.int64)


def ends_in_termination(agent_episode) -> bool:
    """Whether the agent's last step is a true terminal state (no bootstrap from its next observation).

    RLlib 2.60's MultiAgentEpisode.add_env_step marks the episode AND every agent's
    SingleAgentEpisode as terminated when all agents are truncated (a PettingZoo time
    limit: our adapter sets every agent's truncation flag), so `is_terminated` alone
    would stop MADDPG bootstrapping through the time limit. A step that is both
    terminated and truncated counts as truncated: it bootstraps. (An agent that truly
    terminates on the very step the time limit ends the episode is therefore treated as
    truncated: one step of one episode, a negligible bias.)
    """
    return bool(agent_episode.is_terminated and not agent_episode.is_truncated)


def _agent_rows(
    episode: MultiAgentEpisode, agent: str, action_to_vector: ActionToVector, obs_dim: int, action_dim: int, fields: Sequence[str]
) -> dict[str, np.ndarray]:
    """One agent's columns for every env step of the chunk (mask 0 where it did not act)."""
    rows = _empty_rows(len(episode), obs_dim, action_dim, fields)
    if agent not in episode.agent_episodes:
        return rows  # never acted in this chunk: left before it, or enters after it
    env_steps, agent_steps = _agent_steps_in_chunk(episode, agent)
    if len(env_steps) == 0:
        return rows
    agent_episode = episode.agent_episodes[agent]
    observations = np.asarray(agent_episode.get_observations(), dtype=np.float32)
    if observations.shape[1:] != (obs_dim,):
        raise ValueError(f"episode {episode.id_}: agent {agent!r} observations have shape {observations.shape[1:]}, expected ({obs_dim},)")
    actions = np.asarray(agent_episode.get_actions())[agent_steps]
    rows["obs"][env_steps] = observations[agent_steps]
    rows["next_obs"][env_steps] = observations[agent_steps + 1]
    rows["actions"][env_steps] = action_to_vector(agent, actions)
    rows["rewards"][env_steps] = np.asarray(agent_episode.get_rewards(), dtype=np.float32)[agent_steps]
    last_step = len(agent_episode) - 1
    rows["terminated"][env_steps] = ends_in_termination(agent_episode) & (agent_steps == last_step)
    rows["mask"][env_steps] = 1.0
    if SUBPOLICY in fields:  # recorded with each action by the ensemble's module (an extra model output)
        rows[SUBPOLICY][env_steps] = np.asarray(agent_episode.get_extra_model_outputs(SUBPOLICY), dtype=np.float32)[agent_steps]
    return rows


def joint_transitions_from_episodes(
    episodes: Sequence[MultiAgentEpisode],
    agents: Sequence[str],
    action_to_vector: ActionToVector,
    *,
    obs_dims: dict[str, int],
    action_dims: dict[str, int],
    with_subpolicy: bool = False,
) -> Rows:
    """Joint rows for `JointReplayBuffer.add`: one per env step of every chunk, every agent aligned.

    Row t of a chunk holds, for each agent, (o_t, a_t, r_t, o_{t+1}, terminated_t) where the
    agent acted at env step t, and mask 0 with zeros where it did not. Chunks of one episode
    (from `cut()`) can be passed in any order and give each env step exactly once. Observations
    must be flat (obs_dim,) arrays; `action_to_vector(agent, actions)` turns an agent's stored
    actions into the critic's (n, action_dim) vectors (see `make_action_to_vector`).
    Every agent in an episode must be one of `agents`. What this relies on in RLlib's episode
    layout is listed in the comment above `_agent_steps_in_chunk`.
    """
    fields = fields_of(with_subpolicy)
    per_chunk = [_no_rows(agents, obs_dims, action_dims, fields)]  # so that no episodes gives 0 rows, not an error
    per_chunk += [chunk_rows(episode, agents, action_to_vector, obs_dims, action_dims, fields) for episode in episodes]
    return concat_rows(per_chunk)


def chunk_rows(
    episode: MultiAgentEpisode, agents: Sequence[str], action_to_vector: ActionToVector,
    obs_dims: dict[str, int], action_dims: dict[str, int], fields: Sequence[str],
) -> Rows:
    """One episode chunk's joint rows, one per env step in order (see `joint_transitions_from_episodes`)."""
    unknown = sorted(set(episode.agent_ids) - set(agents))
    if unknown:
        raise ValueError(f"episode {episode.id_}: unknown agents {unknown}; expected only {list(agents)}")
    return {agent: _agent_rows(episode, agent, action_to_vector, obs_dims[agent], action_dims[agent], fields) for agent in agents}


def concat_rows(parts: Sequence[Rows]) -> Rows:
    """Joint rows one after the other (same agents and fields)."""
    first = parts[0]
    return {agent: {field: np.concatenate([part[agent][field] for part in parts]) for field in first[agent]} for agent in first}


def slice_rows(rows: Rows, start: int, stop: int | None = None) -> Rows:
    """Rows start..stop-1 of every agent and field."""
    return {agent: {field: values[start:stop] for field, values in fields.items()} for agent, fields in rows.items()}


def num_rows(rows: Rows) -> int:
    return len(next(iter(rows.values()))["mask"])


# -- n-step returns ----------------------------------------------------------------------


def n_step_rows(rows: Rows, n: int, gamma: float) -> Rows:
    """One-step joint rows of consecutive env steps of one episode -> n-step rows.

    Row t becomes, for every agent, (o_t, a_t, R_t, o_{t+m}, terminated_{t+m-1}) with
        R_t = r_t + gamma r_{t+1} + ... + gamma^(m-1) r_{t+m-1},
    and `bootstrap_discount` = gamma^m: the critic's target is R_t + gamma^m (1 - terminated) Q'.
    The window m <= n is the same for every agent, so the next joint observation is one env step
    for all of them. It ends early at the last row given, after a step on which some agent
    terminates, and before the set of acting agents changes (one enters or leaves): no window
    crosses a termination or a change of who is there.
    """
    if n < 1:
        raise ValueError(f"n_step_rows: n must be >= 1, got {n}")
    agents = list(rows)
    count = num_rows(rows)
    index = np.arange(count)
    steps = np.ones(count, dtype=np.int64)  # m per row
    if count:
        masks = np.stack([rows[agent]["mask"] for agent in agents], axis=1)
        someone_terminated = np.stack([rows[agent]["terminated"] for agent in agents], axis=1).max(axis=1) > 0
        extendable = np.ones(count, dtype=bool)
        for k in range(1, n):
            ahead = np.minimum(index + k, count - 1)
            extendable &= (index + k < count) & ~someone_terminated[ahead - 1] & (masks[ahead] == masks).all(axis=1)
            steps += extendable
    last = index + steps - 1
    out = {}
    for agent in agents:
        columns = dict(rows[agent])
        returns = np.zeros(count, dtype=np.float64)
        for k in range(n):
            returns += np.where(k < steps, gamma**k * columns["rewards"][np.minimum(index + k, max(count - 1, 0))], 0.0)
        columns["rewards"] = returns.astype(np.float32)
        columns["next_obs"] = columns["next_obs"][last]
        columns["terminated"] = columns["terminated"][last]
        columns[BOOTSTRAP_DISCOUNT] = (gamma**steps).astype(np.float32)
        out[agent] = columns
    return out


class NStepWindows:
    """Builds n-step rows from episode chunks, holding back each running episode's last n - 1 rows
    until the chunk that continues it arrives, so that windows do not stop at chunk boundaries.

    An episode's chunks come one per sampling round (RLlib cuts every running episode when
    `sample()` returns), so rows held back for an episode that did not continue in the next
    round (its env runner was restarted, its chunk timed out) are released then, with windows
    ending at their last row: shorter, still correct, n-step returns. Held-back rows are not
    part of checkpoints: a resumed run loses at most n - 1 rows per running episode.
    """

    def __init__(self, n: int, gamma: float):
        if n < 2:
            raise ValueError(f"NStepWindows: n must be >= 2 (n = 1 needs no windows), got {n}")
        self.n, self.gamma = n, gamma
        self._held: dict[str, tuple[int, Rows]] = {}  # episode id -> (env step of its first held row, rows)

    def add(self, chunks: Sequence[tuple[str, int, bool, Rows]], *, empty: Rows) -> Rows:
        """Chunks as (episode id, env step of the chunk's first row, episode done, one-step rows);
        returns the n-step rows now complete (with `bootstrap_discount`), `empty` if none."""
        ready = [empty]
        waiting, self._held = self._held, {}
        for episode_id, start, done, rows in sorted(chunks, key=lambda chunk: (chunk[0], chunk[1])):
            held = self._held.pop(episode_id, None) or waiting.pop(episode_id, None)
            if held is not None and held[0] + num_rows(held[1]) == start:
                start, rows = held[0], concat_rows([held[1], rows])
            elif held is not None:  # not the continuation: release what was held as it is
                ready.append(n_step_rows(held[1], self.n, self.gamma))
            count = num_rows(rows)
            keep = 0 if done else min(self.n - 1, count)
            ready.append(slice_rows(n_step_rows(rows, self.n, self.gamma), 0, count - keep))
            if keep:
                self._held[episode_id] = (start + count - keep, slice_rows(rows, count - keep))
        ready += [n_step_rows(rows, self.n, self.gamma) for _, rows in waiting.values()]
        return concat_rows(ready)

    @property
    def rows_held(self) -> int:
        return sum(num_rows(rows) for _, rows in self._held.values())


def _no_rows(agents: Sequence[str], obs_dims: dict[str, int], action_dims: dict[str, int], fields: Sequence[str]) -> Rows:
    return {agent: _empty_rows(0, obs_dims[agent], action_dims[agent], fields) for agent in agents}


# -- actions -> critic input -------------------------------------------------------------


def action_vector_dim(space: gym.Space) -> int:
    """Width of the critic's action vector: n for Discrete(n) (one-hot), the flat size for Box."""
    if isinstance(space, gym.spaces.Discrete):
        return int(space.n)
    if isinstance(space, gym.spaces.Box):
        return int(np.prod(space.shape))
    raise ValueError(f"MADDPG supports Discrete and Box actions, got {space}")


def make_action_to_vector(action_spaces: dict[str, gym.Space]) -> ActionToVector:
    """`action_to_vector` for these spaces: Discrete -> one-hot, Box (e.g. a soft Gumbel sample) -> flat floats."""
    for space in action_spaces.values():
        action_vector_dim(space)  # reject unsupported spaces now, not at the first conversion

    def action_to_vector(agent: str, actions: np.ndarray) -> np.ndarray:
        space = action_spaces[agent]
        actions = np.asarray(actions)
        if isinstance(space, gym.spaces.Discrete):
            return np.eye(space.n, dtype=np.float32)[actions.astype(np.int64) - space.start]
        return actions.reshape(len(actions), -1).astype(np.float32)

    return action_to_vector
