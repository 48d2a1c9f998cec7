"""Aloha: agents on a neighbour graph send queued packets over a shared channel and collide when neighbours send together.

The slotted-Aloha benchmark of Chen & Zhang (ICML 2023, "Context-aware Bayesian
network actor-critic methods for cooperative multi-agent reinforcement
learning"), after their reference code. Each agent is a radio with a queue of
packets; a transmission only gets through when no neighbour transmits in the
same slot. Independent policies must either wait a lot or collide a lot;
agents that see their neighbours' choices can take turns.

### Agents

One agent per node of the neighbour graph, named `agent_0` ... `agent_{n-1}`
after the nodes 0 ... n-1 (10 by default). All act at every step and none
leaves before the end.

### Neighbour graph

An undirected graph over the nodes 0 ... n-1, given as the `graph` argument:
a networkx `Graph`, or a list of `[i, j]` node pairs (what a YAML config can
write). The default is the reference's 10-node graph: the path 0-1-...-9 plus
the rungs i-(i+5) for i < 5, i.e. two rows of five with every node's
neighbours one or two slots away.

### Observation

`Box(0, max_backlog, (1,), float32)`: the agent's own backlog (packets
waiting in its queue), as in the reference. `state()` is every agent's
backlog, `Box(0, max_backlog, (n,), float32)`, in agent order. Every queue
holds 1 packet at the start of an episode.

### Actions

`Discrete(2)`: 0 waits, 1 transmits. Transmitting with an empty queue sends
nothing and earns nothing, but still occupies the channel: neighbours that
transmit in the same slot collide with it (the reference counts a neighbour's
action, not its packet).

### Transition and reward

In each slot, for every agent that transmits with a non-empty queue:

- success (no neighbour transmits): one packet leaves its queue, +`success_reward` (0.1);
- collision (some neighbour transmits): the packet stays, -`collision_penalty` (10).

The sum over agents is one team reward, the same for every agent. After the
transmissions, a packet arrives at each queue independently with probability
`arrival_prob` (0.6); queues are capped at `max_backlog` (5) packets, extra
arrivals are lost.

### Episode end

No terminations. Every episode is truncated after `max_cycles` (20) steps: at
that step all truncations are True, and afterwards `agents` is empty.

### Arguments

``` python
parallel_env(graph=None, max_cycles=20, arrival_prob=0.6, max_backlog=5,
             success_reward=0.1, collision_penalty=10.0)
```
"""

from __future__ import annotations

import networkx as nx
import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from pettingzoo.utils.env import ParallelEnv


def reference_graph() -> nx.Graph:
    """The reference's 10-node neighbour graph: the path 0-...-9 plus the rungs i-(i+5)."""
    graph = nx.path_graph(10)
    graph.add_edges_from((i, i + 5) for i in range(5))
    return graph


def _neighbour_matrix(graph) -> np.ndarray:
    """(n, n) 0/1 symmetric adjacency of an undirected graph over nodes 0 ... n-1."""
    if graph is None:
        graph = reference_graph()
    elif not isinstance(graph, nx.Graph):
        pairs = list(graph)
        if any(not isinstance(p, (list, tuple)) or len(p) != 2 for p in pairs):
            raise ValueError("graph must be a networkx Graph or a list of [i, j] node pairs")
        graph = nx.Graph([tuple(p) for p in pairs])
    n = graph.number_of_nodes()
    if n < 2 or sorted(graph.nodes) != list(range(n)):
        raise ValueError(f"graph nodes must be 0 ... n-1 with n >= 2, got {sorted(graph.nodes)}")
    if any(u == v for u, v in graph.edges):
        raise ValueError("graph has a self-loop; an agent cannot be its own neighbour")
    return nx.to_numpy_array(nx.Graph(graph), nodelist=range(n), dtype=np.int8)


def slot_outcome(backlogs: np.ndarray, actions: np.ndarray, neighbours: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which agents succeed and which collide in one slot (boolean arrays of shape (n,))."""
    sending = (actions == 1) & (backlogs > 0)
    neighbour_transmits = (neighbours @ (actions == 1).astype(np.int64)) > 0
    return sending & ~neighbour_transmits, sending & neighbour_transmits


class AlohaEnv(ParallelEnv):
    """Slotted Aloha on a neighbour graph as a PettingZoo parallel environment."""

    metadata = {"name": "aloha_v0", "render_modes": [], "is_parallelizable": True}

    def __init__(
        self,
        graph=None,
        max_cycles=20,
        arrival_prob=0.6,
        max_backlog=5,
        success_reward=0.1,
        collision_penalty=10.0,
        render_mode=None,
    ):
        if render_mode is not None:
            raise ValueError("aloha has no render modes; use render_mode=None")
        if not 0.0 <= arrival_prob <= 1.0:
            raise ValueError(f"arrival_prob must be in [0, 1], got {arrival_prob!r}")
        if max_backlog < 1:
            raise ValueError(f"max_backlog must be >= 1, got {max_backlog!r}")
        self.neighbours = _neighbour_matrix(graph)
        self.n_agents = len(self.neighbours)
        self.max_cycles = max_cycles  # read at step time: api tests overwrite it
        self.arrival_prob = arrival_prob
        self.max_backlog = max_backlog
        self.success_reward = success_reward
        self.collision_penalty = collision_penalty
        self.render_mode = None

        self.possible_agents = [f"agent_{i}" for i in range(self.n_agents)]
        self.agents = []
        self.state_space = spaces.Box(0.0, float(max_backlog), (self.n_agents,), np.float32)
        self.observation_spaces = {
            a: spaces.Box(0.0, float(max_backlog), (1,), np.float32) for a in self.possible_agents
        }
        self.action_spaces = {a: spaces.Discrete(2) for a in self.possible_agents}

        self._np_random = None  # created on the first reset
        self.backlogs = np.ones(self.n_agents, dtype=np.int64)
        self._steps = 0

    def observation_space(self, agent):
        return self.observation_spaces[agent]

    def action_space(self, agent):
        return self.action_spaces[agent]

    def state(self):
        return self.backlogs.astype(np.float32)

    def _observations(self):
        return {a: np.array([self.backlogs[i]], dtype=np.float32) for i, a in enumerate(self.agents)}

    def reset(self, seed=None, options=None):
        if seed is not None or self._np_random is None:
            self._np_random, _ = seeding.np_random(seed)
        self.agents = list(self.possible_agents)
        self._steps = 0
        self.backlogs = np.ones(self.n_agents, dtype=np.int64)
        return self._observations(), {a: {} for a in self.agents}

    def step(self, actions):
        joint = np.array([actions[a] for a in self.agents], dtype=np.int64)
        if np.any((joint != 0) & (joint != 1)):
            raise ValueError(f"actions must be 0 or 1, got {actions!r}")
        success, collision = slot_outcome(self.backlogs, joint, self.neighbours)
        reward = float(self.success_reward * success.sum() - self.collision_penalty * collision.sum())
        arrivals = self._np_random.random(self.n_agents) < self.arrival_prob
        self.backlogs = np.minimum(self.backlogs - success + arrivals, self.max_backlog)
        self._steps += 1

        observations = self._observations()
        rewards = {a: reward for a in self.agents}
        terminations = {a: False for a in self.agents}
        truncated = self._steps >= self.max_cycles
        truncations = {a: truncated for a in self.agents}
        infos = {a: {"success": bool(success[i]), "collision": bool(collision[i])} for i, a in enumerate(self.agents)}
        if truncated:
            self.agents = []
        return observations, rewards, terminations, truncations, infos

    def render(self):
        return None  # no render modes

    def close(self):
        pass


def parallel_env(**kwargs):
    """Build the environment; `marl` calls this with the scenario's kwargs."""
    return AlohaEnv(**kwargs)
