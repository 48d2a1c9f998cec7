"""Coordination game: n agents each set one bit of a shared state and are paid most when they switch together.

The coordination game of Chen & Zhang (ICML 2023, "Context-aware Bayesian
network actor-critic methods for cooperative multi-agent reinforcement
learning"). It is built so that independent (uncorrelated) policies settle on
a mediocre equilibrium, while policies that correlate their actions find the
best one.

### Agents

`n_agents` agents named `agent_0` ... `agent_{n-1}`, with n in {2, 3, 5, 10}.
All of them act at every step (parallel API) and none leaves before the end.

### Observation

Every agent sees the whole state: `Box(0, 1, (n,), float32)`, the n bits of
the state as floats. `state()` returns the same vector, and `state_space` is
the same Box. The initial state is n uniformly random bits drawn from the
environment's own generator.

### Actions

`Discrete(2)` per agent: the bit the agent wants to set (0 or 1).

### Transition

The next state is the joint action (agent i's action becomes bit i), with each
bit flipped independently with probability `flip_prob` (eps). The old state
does not enter the transition; it only tells agents where they stand.

### Reward

One team reward, the same for every agent, computed from the new state. With
z = number of zeros, o = number of ones and a margin l = {2: 1, 3: 1, 5: 2,
10: 3}[n]:

- |z - o| <= l (no clear majority): 1 if o > z, else 0;
- zeros dominate (z - o > l): 3;
- ones dominate (o - z > l): 2.

Written out by number of ones o:

| n  | l | reward 3 | reward 0 | reward 1 | reward 2 |
|----|---|----------|----------|----------|----------|
| 2  | 1 | o = 0    | o = 1    | never    | o = 2    |
| 3  | 1 | o = 0    | o = 1    | o = 2    | o = 3    |
| 5  | 2 | o <= 1   | o = 2    | o = 3    | o >= 4   |
| 10 | 3 | o <= 3   | o = 4, 5 | o = 6    | o >= 7   |

Reaching the 3 from a state of mostly ones needs most agents to switch to 0
at the same step: a lone agent switching only lowers the reward. The 2 is
the trap that uncorrelated policies fall into.

### Episode end

No terminations. Every episode is truncated after `max_cycles` steps: at that
step all truncations are True, and afterwards `agents` is empty.

### Arguments

``` python
parallel_env(n_agents=3, max_cycles=25, flip_prob=0.1, render_mode=None)
```

`n_agents`: number of agents, one of 2, 3, 5, 10 (the margin l is tabled
only for these).

`max_cycles`: steps per episode before truncation.

`flip_prob`: probability eps that each bit of the joint action is flipped on
its way into the next state.

`render_mode`: None or `"rgb_array"` (one square per agent, dark for 0,
bright for 1).

### Writing your own scenario

Copy this file. A scenario is one module holding a
`pettingzoo.utils.env.ParallelEnv` subclass, a module docstring like this one
(its first line is the one-line description, the rest is the documentation
page), and a module-level `parallel_env(**kwargs)` factory. Keep randomness in
a generator created from `reset(seed=...)` and passed around; never use
numpy's or Python's global random state, or seeded runs stop being
reproducible. `marl` loads this file by the name `coordination_game`, and
your own by a path `package.module:parallel_env`.

Optionally, a scenario can also offer a *vectorized twin* for the fast path
(`scenario.backend: vectorized`): a module-level `vectorized_env(num_envs,
**kwargs)` returning an object that steps `num_envs` copies at once with numpy
and equals the PettingZoo env step for step (the interface is in
`marl/envs/vectorized/__init__.py`). `VectorCoordinationGame` below is one; its
test (`tests/test_scenario_coordination_game.py`) checks the equality. Skip it
until sampling speed matters: the PettingZoo env alone is enough.
"""

from __future__ import annotations

import gymnasium
import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from pettingzoo.utils.env import ParallelEnv

# Margin l per team size: a "majority" must beat the minority by more than l.
MARGIN = {2: 1, 3: 1, 5: 2, 10: 3}


def team_reward(state: np.ndarray) -> float:
    """Shared reward of a binary state vector (see the module docstring)."""
    state = np.asarray(state)
    ones = int(np.count_nonzero(state))
    zeros = state.size - ones
    if abs(zeros - ones) <= MARGIN[state.size]:
        return 1.0 if ones > zeros else 0.0
    return 3.0 if zeros > ones else 2.0


class CoordinationGameEnv(ParallelEnv):
    """The coordination game as a PettingZoo parallel environment."""

    metadata = {
        "name": "coordination_game_v0",
        "render_modes": ["rgb_array"],
        "is_parallelizable": True,
    }

    _SQUARE = 32  # rendered pixels per agent
    _COLOURS = np.array([[40, 40, 40], [240, 200, 40]], dtype=np.uint8)  # 0, 1

    def __init__(self, n_agents=3, max_cycles=25, flip_prob=0.1, render_mode=None):
        if n_agents not in MARGIN:
            raise ValueError(
                f"n_agents must be one of {sorted(MARGIN)}, got {n_agents!r}"
            )
        if not 0.0 <= flip_prob <= 1.0:
            raise ValueError(f"flip_prob must be in [0, 1], got {flip_prob!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode must be None or one of {self.metadata['render_modes']}"
            )
        self.n_agents = n_agents
        self.max_cycles = max_cycles  # read at step time: api tests overwrite it
        self.flip_prob = flip_prob
        self.render_mode = render_mode

        self.possible_agents = [f"agent_{i}" for i in range(n_agents)]
        self.agents = []
        # Built once so observation_space(agent) returns the same object each
        # call; seeding a space only sticks if nobody gets a fresh copy.
        self.state_space = spaces.Box(0.0, 1.0, (n_agents,), np.float32)
        self.observation_spaces = {
            a: spaces.Box(0.0, 1.0, (n_agents,), np.float32)
            for a in self.possible_agents
        }
        self.action_spaces = {a: spaces.Discrete(2) for a in self.possible_agents}

        self._np_random = None  # created on the first reset
        self._state = np.zeros(n_agents, dtype=np.int8)
        self._steps = 0

    def observation_space(self, agent):
        return self.observation_spaces[agent]

    def action_space(self, agent):
        return self.action_spaces[agent]

    def state(self):
        return self._state.astype(np.float32)

    def _observations(self):
        # Separate arrays per agent, so a learner writing into one cannot
        # change what another agent saw.
        return {a: self.state() for a in self.agents}

    def reset(self, seed=None, options=None):
        # Reseed only when asked (or the first time): reset() without a seed
        # continues the same random stream, as gymnasium environments do.
        if seed is not None or self._np_random is None:
            self._np_random, _ = seeding.np_random(seed)
        self.agents = list(self.possible_agents)
        self._steps = 0
        self._state = self._np_random.integers(0, 2, self.n_agents, dtype=np.int8)
        return self._observations(), {a: {} for a in self.agents}

    def step(self, actions):
        joint = np.array([actions[a] for a in self.agents], dtype=np.int8)
        if np.any((joint != 0) & (joint != 1)):
            raise ValueError(f"actions must be 0 or 1, got {actions!r}")
        # Draw the noise for every bit even when flip_prob is 0, so the random
        # stream does not depend on the parameter values.
        flips = self._np_random.random(self.n_agents) < self.flip_prob
        self._state = joint ^ flips.astype(np.int8)
        self._steps += 1

        reward = team_reward(self._state)
        observations = self._observations()
        rewards = {a: reward for a in self.agents}
        terminations = {a: False for a in self.agents}
        truncated = self._steps >= self.max_cycles
        truncations = {a: truncated for a in self.agents}
        infos = {a: {} for a in self.agents}
        if truncated:
            self.agents = []  # parallel API: no live agents after the end
        return observations, rewards, terminations, truncations, infos

    def render(self):
        if self.render_mode is None:
            gymnasium.logger.warn(
                "render() called without a render_mode; pass render_mode='rgb_array'."
            )
            return None
        # One square per agent in a row; black 2-pixel lines keep neighbouring
        # squares of the same colour apart.
        s = self._SQUARE
        row = np.repeat(self._COLOURS[self._state], s, axis=0)  # (n*s, 3)
        img = np.repeat(row[None], s, axis=0)  # (s, n*s, 3)
        img[:2] = img[-2:] = 0
        img[:, 0::s] = img[:, 1::s] = 0
        img[:, -2:] = 0
        return img

    def close(self):
        pass  # nothing to release: no window, no files


def parallel_env(**kwargs):
    """Build the environment; `marl` calls this with the scenario's kwargs."""
    return CoordinationGameEnv(**kwargs)


class VectorCoordinationGame:
    """`num_envs` coordination games stepped together: the fast-path twin of `CoordinationGameEnv`.

    World b draws from its own generator exactly what `CoordinationGameEnv` draws
    (initial bits at reset, then one `random(n)` per step for the flips), so given
    the same seeds and actions every observation, reward and flag is identical.
    The rewards are computed for all worlds at once from the count of ones.
    """

    def __init__(self, num_envs, n_agents=3, max_cycles=25, flip_prob=0.1):
        CoordinationGameEnv(n_agents, max_cycles, flip_prob)  # the same argument checks
        self.num_envs = num_envs
        self.n_agents = n_agents
        self.max_cycles = max_cycles
        self.flip_prob = flip_prob
        self.possible_agents = [f"agent_{i}" for i in range(n_agents)]
        self._rngs = [None] * num_envs
        self._state = np.zeros((num_envs, n_agents), dtype=np.int8)
        self._steps = np.zeros(num_envs, dtype=np.int64)
        # team_reward as a lookup by the number of ones, computed once.
        self._reward_by_ones = np.array(
            [team_reward(np.arange(n_agents) < ones) for ones in range(n_agents + 1)], dtype=np.float32
        )

    def state(self):
        return self._state.astype(np.float32)

    def _observations(self):
        state = self.state()
        return {a: state.copy() for a in self.possible_agents}

    def reset(self, seeds):
        return self.reset_done(np.ones(self.num_envs, dtype=bool), seeds)

    def reset_done(self, mask, seeds):
        worlds = np.flatnonzero(mask)
        if len(worlds) != len(seeds):
            raise ValueError(f"{len(worlds)} worlds to reset but {len(seeds)} seeds")
        for b, seed in zip(worlds, seeds):
            if seed is not None or self._rngs[b] is None:
                self._rngs[b], _ = seeding.np_random(seed)
            self._state[b] = self._rngs[b].integers(0, 2, self.n_agents, dtype=np.int8)
            self._steps[b] = 0
        return self._observations()

    def step(self, actions):
        joint = np.stack([np.asarray(actions[a]) for a in self.possible_agents], axis=1).astype(np.int8)
        if np.any((joint != 0) & (joint != 1)):
            raise ValueError("actions must be 0 or 1")
        flips = np.stack([rng.random(self.n_agents) < self.flip_prob for rng in self._rngs])
        self._state = joint ^ flips.astype(np.int8)
        self._steps += 1
        reward = self._reward_by_ones[self._state.sum(axis=1)]
        truncated = self._steps >= self.max_cycles
        terminated = np.zeros(self.num_envs, dtype=bool)
        return (
            self._observations(),
            {a: reward.copy() for a in self.possible_agents},
            {a: terminated.copy() for a in self.possible_agents},
            {a: truncated.copy() for a in self.possible_agents},
        )


def vectorized_env(num_envs, **kwargs):
    """The fast-path twin (`scenario.backend: vectorized`); same kwargs as `parallel_env`."""
    return VectorCoordinationGame(num_envs, **kwargs)
