"""Vectorized mpe2 particle worlds: a batch of worlds stepped with numpy in one call.

Layout
------
A batch of ``num_envs`` copies of one scenario shares a single `VectorWorld`. Its state is
held as arrays with the world index first:

- ``pos``, ``vel``: ``(num_envs, n_entities, 2)`` float64, entities ordered as mpe2's
  ``world.entities`` (agents first, then landmarks);
- ``comm``: ``(num_envs, n_agents, dim_c)`` float64, each agent's utterance ``state.c``;
- per scenario, ``goals``: ``(num_envs, n_goals)`` int, the landmark indices drawn at reset.

`step` decodes the actions of every world at once, computes contact forces for all colliding
pairs by broadcasting (``(num_envs, K, K)`` distances), integrates, and builds observations
and rewards with array operations: there is no Python loop over worlds. Only `reset` /
`reset_envs` loop over the worlds being reset, because each world draws its initial state
from its own generator (that is what makes the seeds line up with mpe2).

Equivalence with mpe2
---------------------
For the same seeds and actions, observations, rewards, terminations and truncations equal
those of ``mpe2.<scenario>.parallel_env(...)`` (mpe2 1.1.1, default keyword arguments apart
from those exposed here) up to float rounding, well within 1e-5; ``tests/test_vectorized_mpe.py``
checks it step by step over whole episodes, discrete and continuous actions. In detail:

- Seeding: ``parallel_env.reset(seed=s)`` reaches ``SimpleEnv._seed`` which builds its
  generator with ``gymnasium.utils.seeding.np_random(s)``; world b uses the very same call
  with ``seeds[b]`` and then draws in ``reset_world``'s order (goal landmark indices with
  scalar ``integers`` calls first, then one ``uniform(-1, 1, 2)`` per entity, agents before
  landmarks). A seed of ``None`` continues that world's generator, as mpe2's reset does.
- Actions are decoded as ``SimpleEnv._execute_world_step`` / ``_set_action`` do, including
  the clipping of continuous actions to [0, 1] by mpe2's ``ClipOutOfBoundsWrapper``.
- Communication: an utterance (a one-hot word for discrete actions, the clipped action
  values themselves for continuous ones) becomes the agent's ``state.c`` during the world
  step, so the other agents see it in the observations returned by that same step. A silent
  agent's utterance is zeros, and still fills its slot in simple_spread's observations.
- Contact forces (only simple_spread's agents collide) use mpe2's softplus penetration, so
  agents push each other slightly before they touch; collision penalties count only real
  overlap (distance < sum of sizes).
- Truncation: every agent of a world is truncated on its ``max_cycles``-th step. These
  scenarios never terminate (simple_spread's ``terminate_on_success`` is not supported), so
  terminations are always False. Worlds are not reset inside `step`: the caller resets
  finished worlds with `reset_envs` / `reset_done`; stepping a finished world keeps going
  and keeps reporting it truncated.

Not covered: rendering (mpe2's ``dynamic_rescaling`` only changes drawn sizes, never the
state), ``benchmark_data`` infos, simple_spread's curriculum and partial observability
options, motor/communication noise and ``max_speed`` (unused by these three scenarios).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding

# mpe2 World defaults (mpe2/_mpe_utils/core.py); none of the three scenarios changes them.
DIM_P = 2
DT = 0.1
DAMPING = 0.25
CONTACT_FORCE = 1e2
CONTACT_MARGIN = 1e-3
# SimpleEnv._set_action: an agent without `accel` scales its physical action by 5.
SENSITIVITY = 5.0
# The movement part of an action: [no_action, left, right, down, up] (discrete index or
# continuous weights).
MOVE_DIM = 2 * DIM_P + 1
_MOVES = np.array([[0.0, 0.0], [-1.0, 0.0], [1.0, 0.0], [0.0, -1.0], [0.0, 1.0]])

Obs = dict[str, np.ndarray]


def _dist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distance over the last axis, written as mpe2 writes it (same rounding)."""
    return np.sqrt(np.sum(np.square(a - b), axis=-1))


class VectorWorld:
    """The physics of a batch of identical mpe2 Worlds (``World.step``), without a loop over worlds.

    Every entity has mpe2's default mass 1.0, no motor noise and no ``max_speed``, so those
    parts of ``World.integrate_state`` drop out.
    """

    def __init__(
        self,
        num_envs: int,
        *,
        sizes: Sequence[float],
        movable: Sequence[bool],
        collide: Sequence[bool],
        n_agents: int,
        dim_c: int,
    ) -> None:
        n_entities = len(sizes)
        self.num_envs = num_envs
        self.n_agents = n_agents
        self.dim_c = dim_c
        self.pos = np.zeros((num_envs, n_entities, DIM_P))
        self.vel = np.zeros((num_envs, n_entities, DIM_P))
        self.comm = np.zeros((num_envs, n_agents, dim_c))
        # mpe2 gives a non-movable entity no force and skips its integration. Its velocity is
        # zero from reset on, so integrating it with a zeroed force leaves it exactly in place.
        self._movable = np.asarray(movable, dtype=float)[None, :, None]
        # Contact forces only act between two entities that both collide: the pairs are
        # computed among those K entities only.
        self._colliders = np.flatnonzero(collide)
        col_sizes = np.asarray(sizes, dtype=float)[self._colliders]
        self._dist_min = col_sizes[:, None] + col_sizes[None, :]
        self._self_pair = np.eye(len(self._colliders), dtype=bool)

    def reset_world(self, b: int, positions: np.ndarray) -> None:
        self.pos[b] = positions
        self.vel[b] = 0.0
        self.comm[b] = 0.0

    def contact_forces(self) -> np.ndarray:
        """Forces ``(num_envs, K, 2)`` on the colliding entities (``World.get_collision_force``).

        mpe2 loops over the pairs a < b, adds ``+f`` to a and ``-f`` to b with
        ``f = contact_force * (p_a - p_b) / dist * penetration``; here the force on i from j is
        computed for every ordered pair, which is the same ``+f`` / ``-f`` since the sign of
        ``p_i - p_j`` flips exactly. The penetration is a softplus of the overlap, so entities
        slightly apart (within a few ``contact_margin``) still push each other a little.
        """
        p = self.pos[:, self._colliders]
        delta = p[:, :, None, :] - p[:, None, :, :]  # delta[b, i, j] = p_i - p_j
        dist = np.sqrt(np.sum(np.square(delta), axis=-1))
        # An entity does not collide with itself: its delta is 0, dividing by 1 keeps it 0.
        dist[:, self._self_pair] = 1.0
        k = CONTACT_MARGIN
        penetration = np.logaddexp(0.0, -(dist - self._dist_min) / k) * k
        force = CONTACT_FORCE * delta / dist[..., None] * penetration[..., None]
        return force.sum(axis=2)

    def step(self, u: np.ndarray, c: np.ndarray) -> None:
        """One ``World.step`` for every world: physical actions ``u`` ``(num_envs, n_agents, 2)``
        (already scaled by the sensitivity), utterances ``c`` ``(num_envs, n_agents, dim_c)``
        (zero for silent agents, as ``World.update_agent_state`` sets them)."""
        force = np.zeros_like(self.pos)
        force[:, : self.n_agents] = u
        if len(self._colliders) > 1:
            force[:, self._colliders] += self.contact_forces()
        force *= self._movable
        self.integrate(force)
        self.comm = c

    def integrate(self, force: np.ndarray) -> None:
        """World.integrate_state: position first with the old velocity, then damping, then force."""
        self.pos += self.vel * DT
        self.vel *= 1 - DAMPING
        self.vel += force * DT


class _VectorScenario:
    """What the three scenarios share: spaces, seeding and resets, action decoding, stepping.

    A subclass fixes the entities in its ``__init__`` and provides ``_draw`` (one world's
    initial state from its generator), ``_observations``, ``_rewards`` and, for a scenario
    with a ``local_ratio``, ``_global_reward``.
    """

    def __init__(
        self,
        num_envs: int,
        *,
        agents: Sequence[str],
        movable: Sequence[bool],
        silent: Sequence[bool],
        sizes: Sequence[float],
        collide: Sequence[bool],
        dim_c: int,
        n_goals: int,
        max_cycles: int,
        continuous_actions: bool,
        local_ratio: float | None = None,
    ) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be at least 1, got {num_envs}")
        if local_ratio is not None and not 0.0 <= local_ratio <= 1.0:
            raise ValueError("local_ratio is a proportion. Must be between 0 and 1.")
        self.local_ratio = local_ratio
        n_agents = len(agents)
        self.num_envs = num_envs
        self.max_cycles = max_cycles
        self.continuous_actions = continuous_actions
        self.possible_agents: list[str] = list(agents)
        self.n_agents = n_agents
        self.n_landmarks = len(sizes) - n_agents
        self.world = VectorWorld(
            num_envs,
            sizes=sizes,
            movable=list(movable) + [False] * self.n_landmarks,
            collide=collide,
            n_agents=n_agents,
            dim_c=dim_c,
        )
        self.goals = np.zeros((num_envs, n_goals), dtype=np.int64)
        self.steps = np.zeros(num_envs, dtype=np.int64)
        self._rngs: list[np.random.Generator | None] = [None] * num_envs
        self._all_reset = False
        # others[i]: the other agents in order, as mpe2's observations list them.
        self._others = np.array([[j for j in range(n_agents) if j != i] for i in range(n_agents)], dtype=np.int64)
        # Agents with the same (movable, silent) role have the same action space: their actions
        # are stacked and decoded together.
        roles: dict[tuple[bool, bool], list[int]] = {}
        for i in range(n_agents):
            roles.setdefault((bool(movable[i]), bool(silent[i])), []).append(i)
        self._roles = [(m, s, np.array(idx)) for (m, s), idx in roles.items()]
        self.action_spaces: dict[str, spaces.Space] = {}
        for i, name in enumerate(agents):
            # SimpleEnv.__init__'s action space sizes.
            dim = MOVE_DIM if movable[i] else (0 if continuous_actions else 1)
            if not silent[i]:
                dim = dim + dim_c if continuous_actions else dim * dim_c
            self.action_spaces[name] = (
                spaces.Box(low=0, high=1, shape=(dim,)) if continuous_actions else spaces.Discrete(dim)
            )
        self.observation_dims: dict[str, int] = {
            name: obs.shape[-1] for name, obs in zip(agents, self._observations())
        }
        self.observation_spaces: dict[str, spaces.Space] = {
            name: spaces.Box(low=-np.float32(np.inf), high=np.float32(np.inf), shape=(dim,), dtype=np.float32)
            for name, dim in self.observation_dims.items()
        }

    # -- scenario hooks -----------------------------------------------------------------------

    def _draw(self, rng: np.random.Generator) -> tuple[list[int], np.ndarray]:
        """One world's goal landmark indices and entity positions ``(n_entities, 2)``, drawn
        from ``rng`` in the order of the scenario's ``reset_world``."""
        raise NotImplementedError

    def _observations(self) -> list[np.ndarray]:
        """Each agent's observation ``(num_envs, obs_dim)`` float64, in agent order."""
        raise NotImplementedError

    def _rewards(self) -> np.ndarray:
        """Each agent's own reward ``(num_envs, n_agents)`` float64 after a world step."""
        raise NotImplementedError

    def _global_reward(self, local: np.ndarray) -> np.ndarray:
        """The shared reward ``(num_envs,)``, given the agents' own rewards ``local``."""
        raise NotImplementedError

    # -- shared geometry ----------------------------------------------------------------------

    def _draw_positions(self, rng: np.random.Generator) -> np.ndarray:
        # reset_world calls uniform(-1, +1, 2) once per entity, agents then landmarks; a single
        # draw of shape (n_entities, 2) consumes the generator identically.
        return rng.uniform(-1, +1, (self.n_agents + self.n_landmarks, DIM_P))

    @property
    def _agent_pos(self) -> np.ndarray:
        return self.world.pos[:, : self.n_agents]

    @property
    def _landmark_pos(self) -> np.ndarray:
        return self.world.pos[:, self.n_agents :]

    def _landmarks_seen(self) -> np.ndarray:
        """``(num_envs, n_agents, 2 * n_landmarks)``: every landmark relative to each agent,
        flattened landmark by landmark as mpe2 concatenates them."""
        rel = self._landmark_pos[:, None, :, :] - self._agent_pos[:, :, None, :]
        return rel.reshape(self.num_envs, self.n_agents, -1)

    def _others_comm(self) -> np.ndarray:
        """``(num_envs, n_agents, (n_agents - 1) * dim_c)``: the other agents' utterances."""
        return self.world.comm[:, self._others].reshape(self.num_envs, self.n_agents, -1)

    def _goal_landmark_pos(self) -> np.ndarray:
        """``(num_envs, n_goals, 2)``: the position of each goal landmark."""
        return np.take_along_axis(self._landmark_pos, self.goals[:, :, None], axis=1)

    # -- API ----------------------------------------------------------------------------------

    def reset(self, seeds: Sequence[int | None]) -> Obs:
        """Reset every world; world b as mpe2's ``parallel_env.reset(seed=seeds[b])`` would."""
        if len(seeds) != self.num_envs:
            raise ValueError(f"reset needs {self.num_envs} seeds, got {len(seeds)}")
        return self.reset_envs(range(self.num_envs), seeds)

    def reset_envs(self, indices: Iterable[int], seeds: Sequence[int | None]) -> Obs:
        """Reset only the worlds ``indices`` (in place) with their ``seeds``; the others keep
        their state. Returns the observations of the whole batch."""
        indices = list(indices)
        if len(indices) != len(seeds):
            raise ValueError(f"{len(indices)} worlds to reset but {len(seeds)} seeds")
        for b, seed in zip(indices, seeds):
            rng = self._rngs[b]
            if seed is not None or rng is None:
                rng = self._rngs[b] = seeding.np_random(seed)[0]
            goals, positions = self._draw(rng)
            self.goals[b] = goals
            self.world.reset_world(b, positions)
            self.steps[b] = 0
        self._all_reset = all(rng is not None for rng in self._rngs)
        return self._obs_dict()

    def reset_done(self, mask: np.ndarray, seeds: Sequence[int | None]) -> Obs:
        """Reset the worlds where ``mask`` is true, with one seed each (in world order)."""
        return self.reset_envs(np.flatnonzero(mask), seeds)

    def step(
        self, actions: Mapping[str, np.ndarray]
    ) -> tuple[Obs, dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Step every world once. ``actions[agent]`` is ``(num_envs,)`` ints (discrete) or
        ``(num_envs, act_dim)`` floats (continuous). Returns observations, rewards (float32),
        terminations and truncations, each a dict of per-world arrays."""
        if not self._all_reset:
            raise RuntimeError("reset every world (reset or reset_envs) before stepping")
        self.world.step(*self._decode(actions))
        self.steps += 1
        rewards = self._rewards()
        if self.local_ratio is not None:
            # SimpleEnv._execute_world_step's blend of the shared and the agent's own reward.
            global_reward = self._global_reward(rewards)[:, None]
            rewards = global_reward * (1 - self.local_ratio) + rewards * self.local_ratio
        rewards = rewards.astype(np.float32)
        truncated = self.steps >= self.max_cycles
        terminated = np.zeros(self.num_envs, dtype=bool)
        return (
            self._obs_dict(),
            {name: rewards[:, i] for i, name in enumerate(self.possible_agents)},
            {name: terminated.copy() for name in self.possible_agents},
            {name: truncated.copy() for name in self.possible_agents},
        )

    def state(self) -> np.ndarray:
        """``(num_envs, sum of obs dims)``: as mpe2's ``state()``, all observations concatenated."""
        return np.concatenate(list(self._obs_dict().values()), axis=-1)

    # -- internals ----------------------------------------------------------------------------

    def _obs_dict(self) -> Obs:
        return {name: obs.astype(np.float32) for name, obs in zip(self.possible_agents, self._observations())}

    def _decode(self, actions: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Actions -> (u, c) as SimpleEnv._execute_world_step and _set_action build them."""
        n, dim_c = self.num_envs, self.world.dim_c
        u = np.zeros((n, self.n_agents, DIM_P))
        c = np.zeros((n, self.n_agents, dim_c))
        for movable, silent, idx in self._roles:
            names = [self.possible_agents[i] for i in idx]
            a = np.stack([np.asarray(actions[name]) for name in names], axis=1)
            if self.continuous_actions:
                self._check_shape(a, (n, len(idx), self.action_spaces[names[0]].shape[0]), names)
                # mpe2's ClipOutOfBoundsWrapper clips to the Box. The dtype is kept: mpe2 takes the
                # differences below in the action's own precision (float32 for Box samples).
                a = np.clip(a, 0.0, 1.0)
                if movable:
                    # [no_action, left, right, down, up]: x = right - left, y = up - down.
                    u[:, idx, 0] = a[..., 2] - a[..., 1]
                    u[:, idx, 1] = a[..., 4] - a[..., 3]
                    a = a[..., MOVE_DIM:]
                if not silent:
                    c[:, idx] = a
            else:
                self._check_shape(a, (n, len(idx)), names)
                high = self.action_spaces[names[0]].n
                if not np.issubdtype(a.dtype, np.integer) or a.min() < 0 or a.max() >= high:
                    raise ValueError(f"discrete actions of {names} must be integers in [0, {high})")
                if movable:
                    # A discrete action is move + MOVE_DIM * word.
                    u[:, idx] = _MOVES[a % MOVE_DIM]
                    a = a // MOVE_DIM
                if not silent:
                    c[:, idx] = np.eye(dim_c)[a]  # the word as a one-hot utterance
        u *= SENSITIVITY
        return u, c

    @staticmethod
    def _check_shape(a: np.ndarray, shape: tuple[int, ...], names: list[str]) -> None:
        if a.shape != shape:
            per_agent = (shape[0],) + shape[2:]
            raise ValueError(f"actions of {names} must have shape {per_agent}, got {a.shape[:1] + a.shape[2:]}")


class VectorSimpleSpread(_VectorScenario):
    """``simple_spread_v3``: N agents cover N landmarks; shared coverage reward, local collision penalty."""

    AGENT_SIZE = 0.15
    LANDMARK_SIZE = 0.05  # mpe2's Entity default

    def __init__(
        self,
        num_envs: int,
        N: int = 3,
        local_ratio: float = 0.5,
        max_cycles: int = 25,
        continuous_actions: bool = False,
    ) -> None:
        super().__init__(
            num_envs,
            local_ratio=local_ratio,
            agents=[f"agent_{i}" for i in range(N)],
            movable=[True] * N,
            silent=[True] * N,
            sizes=[self.AGENT_SIZE] * N + [self.LANDMARK_SIZE] * N,
            collide=[True] * N + [False] * N,
            dim_c=2,
            n_goals=0,
            max_cycles=max_cycles,
            continuous_actions=continuous_actions,
        )

    def _draw(self, rng: np.random.Generator) -> tuple[list[int], np.ndarray]:
        return [], self._draw_positions(rng)

    def _observations(self) -> list[np.ndarray]:
        pos = self._agent_pos
        others = pos[:, self._others] - pos[:, :, None, :]
        obs = np.concatenate(
            [
                self.world.vel[:, : self.n_agents],
                pos,
                self._landmarks_seen(),
                others.reshape(self.num_envs, self.n_agents, -1),
                # silent agents: all zeros, but part of the layout
                self._others_comm(),
            ],
            axis=-1,
        )
        return list(obs.transpose(1, 0, 2))

    def _rewards(self) -> np.ndarray:
        # -1 per other agent closer than the sum of the sizes (is_collision).
        pos = self._agent_pos
        colliding = _dist(pos[:, :, None, :], pos[:, None, :, :]) < 2 * self.AGENT_SIZE
        colliding[:, np.eye(self.n_agents, dtype=bool)] = False
        return -colliding.sum(axis=2).astype(float)

    def _global_reward(self, local: np.ndarray) -> np.ndarray:
        # Minus the sum over landmarks of the nearest agent's distance.
        to_landmarks = _dist(self._agent_pos[:, :, None, :], self._landmark_pos[:, None, :, :])
        return -to_landmarks.min(axis=1).sum(axis=1)


class VectorSimpleSpeakerListener(_VectorScenario):
    """``simple_speaker_listener_v4``: an immobile speaker sees the goal's colour and talks; the
    listener moves to the goal. Both get minus the listener's squared distance to the goal."""

    LANDMARK_COLORS = np.array([[0.65, 0.15, 0.15], [0.15, 0.65, 0.15], [0.15, 0.15, 0.65]])

    def __init__(self, num_envs: int, max_cycles: int = 25, continuous_actions: bool = False) -> None:
        super().__init__(
            num_envs,
            agents=["speaker_0", "listener_0"],
            movable=[False, True],
            silent=[False, True],
            sizes=[0.075, 0.075, 0.04, 0.04, 0.04],
            collide=[False] * 5,
            dim_c=3,
            n_goals=1,
            max_cycles=max_cycles,
            continuous_actions=continuous_actions,
        )

    def _draw(self, rng: np.random.Generator) -> tuple[list[int], np.ndarray]:
        goal = int(rng.integers(self.n_landmarks))  # the speaker's goal_b, drawn first
        return [goal], self._draw_positions(rng)

    def _observations(self) -> list[np.ndarray]:
        speaker = self.LANDMARK_COLORS[self.goals[:, 0]]
        # The listener: own velocity, landmarks, then the speaker's utterance.
        listener = np.concatenate(
            [self.world.vel[:, 1], self._landmarks_seen()[:, 1], self.world.comm[:, 0]], axis=-1
        )
        return [speaker, listener]

    def _rewards(self) -> np.ndarray:
        listener_to_goal = self._agent_pos[:, 1] - self._goal_landmark_pos()[:, 0]
        reward = -np.sum(np.square(listener_to_goal), axis=-1)
        return np.repeat(reward[:, None], self.n_agents, axis=1)


class VectorSimpleReference(_VectorScenario):
    """``simple_reference_v3``: two agents that both move and talk; each knows the goal landmark
    of the other. Agent i's local reward is minus the other agent's distance to i's goal."""

    LANDMARK_COLORS = np.array([[0.75, 0.25, 0.25], [0.25, 0.75, 0.25], [0.25, 0.25, 0.75]])

    def __init__(
        self,
        num_envs: int,
        local_ratio: float = 0.5,
        max_cycles: int = 25,
        continuous_actions: bool = False,
    ) -> None:
        super().__init__(
            num_envs,
            local_ratio=local_ratio,
            agents=["agent_0", "agent_1"],
            movable=[True, True],
            silent=[False, False],
            sizes=[0.05] * 5,
            collide=[False] * 5,
            dim_c=10,
            n_goals=2,
            max_cycles=max_cycles,
            continuous_actions=continuous_actions,
        )

    def _draw(self, rng: np.random.Generator) -> tuple[list[int], np.ndarray]:
        # agent_0's goal_b, then agent_1's, each a scalar draw as reset_world makes it.
        goals = [int(rng.integers(self.n_landmarks)) for _ in range(self.n_agents)]
        return goals, self._draw_positions(rng)

    def _observations(self) -> list[np.ndarray]:
        obs = np.concatenate(
            [
                self.world.vel[:, : self.n_agents],
                self._landmarks_seen(),
                self.LANDMARK_COLORS[self.goals],  # each agent's own goal_b colour
                self._others_comm(),
            ],
            axis=-1,
        )
        return list(obs.transpose(1, 0, 2))

    def _rewards(self) -> np.ndarray:
        # Agent i's goal_a is the other agent, goal_b its drawn landmark.
        return -_dist(self._agent_pos[:, self._others[:, 0]], self._goal_landmark_pos())

    def _global_reward(self, local: np.ndarray) -> np.ndarray:
        # The mean of the agents' own rewards.
        return local.sum(axis=1) / self.n_agents
