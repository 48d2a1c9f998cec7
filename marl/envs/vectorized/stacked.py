"""Any PettingZoo scenario as a vectorized backend: `num_envs` copies stepped in a loop.

The fast path's speed comes from two things: stepping many worlds per call, and sampling
them with one batched forward pass per policy and step-major buffers instead of RLlib's
per-agent, per-step bookkeeping (`marl/rllib/vectorized_env_runner.py`). A numpy twin
gives both; for a scenario without one, this class gives the second: it holds plain
copies of the PettingZoo env (SuperSuit wrappers applied) and presents them through the
twin interface (`marl/envs/vectorized/__init__.py`), so the scenario's own step is the
only per-world cost left.

The interface assumes every agent acts at every step until its world ends. A scenario
whose agents leave early (killed knights, fallen walkers) is stopped with one line naming
the agent: such scenarios run on `backend: pettingzoo`.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import gymnasium as gym
import numpy as np

from marl.envs.scenario import ScenarioSpec, scenario_state
from marl.errors import ScenarioFault

Obs = dict[str, np.ndarray]


class StackedScenario:
    """`num_envs` copies of a PettingZoo scenario behind the vectorized-twin interface."""

    def __init__(self, spec: ScenarioSpec, num_envs: int):
        self.spec = spec
        self.num_envs = num_envs
        self.envs = [spec.make_guarded() for _ in range(num_envs)]  # faults and bad data: one line (marl/envs/guard.py)
        first = self.envs[0]
        self.possible_agents = list(first.possible_agents)
        self._discrete = {agent: isinstance(first.action_space(agent), gym.spaces.Discrete) for agent in self.possible_agents}
        self._last: list[Obs] = [{} for _ in range(num_envs)]  # each world's latest observations
        self._states: list[np.ndarray | None] = [None] * num_envs  # each world's latest state()

    # -- the twin interface -------------------------------------------------------------

    def reset(self, seeds: Sequence[int | None]) -> Obs:
        """Reset every world, world b as `parallel_env.reset(seed=seeds[b])`."""
        return self.reset_done(np.ones(self.num_envs, dtype=bool), seeds)

    def reset_done(self, mask: np.ndarray, seeds: Sequence[int | None]) -> Obs:
        """Reset the worlds where `mask` is true (one seed each, in world order)."""
        for b, seed in zip(np.flatnonzero(mask), seeds):
            observations, _ = self.envs[b].reset(seed=seed)
            self._last[b] = self._flat(observations)
        return self._stacked(self._last)

    def step(self, actions: Mapping[str, np.ndarray]) -> tuple[Obs, dict, dict, dict]:
        """Step every world once; a world that has ended is not reset here (the runner does)."""
        rewards = {agent: np.zeros(self.num_envs, np.float32) for agent in self.possible_agents}
        terminated = {agent: np.zeros(self.num_envs, bool) for agent in self.possible_agents}
        truncated = {agent: np.zeros(self.num_envs, bool) for agent in self.possible_agents}
        for b, env in enumerate(self.envs):
            observations, reward, terms, truncs, _ = env.step(self._world_actions(actions, b))
            self._check_everyone_stays(observations, env, b)
            self._last[b] = self._flat(observations)
            for agent in self.possible_agents:
                rewards[agent][b] = reward[agent]
                terminated[agent][b] = terms[agent]
                truncated[agent][b] = truncs[agent]
        return self._stacked(self._last), rewards, terminated, truncated

    def state(self) -> np.ndarray:
        """`(num_envs, state_dim)`: each world's `state()`, flattened (at an episode's end, the
        last one where the scenario cannot give it: `marl.envs.scenario.scenario_state`)."""
        self._states = [scenario_state(env, last, self.spec.name) for env, last in zip(self.envs, self._states)]
        return np.stack(self._states)

    def close(self) -> None:
        for env in self.envs:
            env.close()

    # -- internals ----------------------------------------------------------------------

    def _world_actions(self, actions: Mapping[str, np.ndarray], b: int) -> dict[str, Any]:
        return {
            agent: int(actions[agent][b]) if self._discrete[agent] else np.asarray(actions[agent][b])
            for agent in self.possible_agents
        }

    def _check_everyone_stays(self, observations: Mapping[str, Any], env, b: int) -> None:
        missing = [agent for agent in self.possible_agents if agent not in observations]
        still_running = set(env.agents)
        if missing or (still_running and still_running != set(self.possible_agents)):
            gone = missing or sorted(set(self.possible_agents) - still_running)
            raise ScenarioFault(
                self.spec.name, "step", f"agents {gone} left world {b}'s episode before it ended",
                "backend: vectorized needs every agent until the end of an episode: use scenario.backend: pettingzoo",
            )

    def _flat(self, observations: Mapping[str, Any]) -> Obs:
        return {agent: np.asarray(obs, dtype=np.float32).ravel() for agent, obs in observations.items()}

    def _stacked(self, per_world: list[Obs]) -> Obs:
        return {agent: np.stack([world[agent] for world in per_world]) for agent in self.possible_agents}
