"""Small PettingZoo parallel environments used only by the tests (not a test module).

They resolve through the scenario registry as
`tests.scenarios_for_tests:leaving_agents_env`,
`tests.scenarios_for_tests:broken_env`,
`tests.scenarios_for_tests:faulty_spread` (simple_spread with one planted fault) and
`tests.scenarios_for_tests:spread_without_render` (simple_spread that cannot render).
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces
from mpe2 import simple_spread_v3
from pettingzoo.utils import BaseParallelWrapper
from pettingzoo.utils.env import ParallelEnv

LEAVING_AGENT = "a1"
LEAVE_STEP = 2  # a1's termination is True in the return of this step; it is gone afterwards
EPISODE_STEPS = 5  # a0 and a2 are truncated in the return of this step


class LeavingAgentsEnv(ParallelEnv):
    """Three agents a0, a1, a2; a1 terminates at step 2, the others truncate at step 5.

    Agent i's observation is `[i, t]` (float32), with t the number of steps taken
    so far, so a test can tell which agent's observation ended up where. There is
    no `state()`: ParallelEnv's default raises NotImplementedError, which makes
    the adapter fall back to the concatenated observations.
    """

    metadata = {"name": "leaving_agents_v0", "render_modes": [], "is_parallelizable": True}

    def __init__(self, render_mode=None):
        self.render_mode = render_mode
        self.possible_agents = ["a0", "a1", "a2"]
        self.agents = []
        # Built once: observation_space(agent) must return the same object each call.
        self.observation_spaces = {a: spaces.Box(-np.inf, np.inf, (2,), np.float32) for a in self.possible_agents}
        self.action_spaces = {a: spaces.Discrete(2) for a in self.possible_agents}
        self._steps = 0

    def observation_space(self, agent):
        return self.observation_spaces[agent]

    def action_space(self, agent):
        return self.action_spaces[agent]

    def _obs(self, agent):
        return np.array([self.possible_agents.index(agent), self._steps], dtype=np.float32)

    def reset(self, seed=None, options=None):
        self.agents = list(self.possible_agents)
        self._steps = 0
        return {a: self._obs(a) for a in self.agents}, {a: {} for a in self.agents}

    def step(self, actions):
        self._steps += 1
        acting = list(self.agents)
        observations = {a: self._obs(a) for a in acting}
        # Reward = index + step (+ the action), so tests can check where it landed too.
        rewards = {a: float(self.possible_agents.index(a) + self._steps + int(actions.get(a, 0))) for a in acting}
        terminations = {a: a == LEAVING_AGENT and self._steps >= LEAVE_STEP for a in acting}
        truncations = {a: a != LEAVING_AGENT and self._steps >= EPISODE_STEPS for a in acting}
        infos = {a: {"step": self._steps} for a in acting}
        self.agents = [a for a in acting if not (terminations[a] or truncations[a])]
        return observations, rewards, terminations, truncations, infos

    def close(self):
        pass


class BrokenEnv(ParallelEnv):
    """Breaks the parallel API: after a step, `agents` holds an agent that is not in `possible_agents`."""

    metadata = {"name": "broken_v0", "render_modes": [], "is_parallelizable": True}

    def __init__(self, render_mode=None):
        self.render_mode = render_mode
        self.possible_agents = ["a0", "a1"]
        self.agents = []
        self.observation_spaces = {a: spaces.Box(-1.0, 1.0, (2,), np.float32) for a in self.possible_agents}
        self.action_spaces = {a: spaces.Discrete(2) for a in self.possible_agents}

    def observation_space(self, agent):
        return self.observation_spaces[agent]

    def action_space(self, agent):
        return self.action_spaces[agent]

    def reset(self, seed=None, options=None):
        self.agents = list(self.possible_agents)
        return {a: np.zeros(2, np.float32) for a in self.agents}, {a: {} for a in self.agents}

    def step(self, actions):
        self.agents = ["a0", "a1", "ghost"]  # not a possible agent
        obs = {a: np.zeros(2, np.float32) for a in self.agents}
        return (
            obs,
            {a: 0.0 for a in self.agents},
            {a: False for a in self.agents},
            {a: False for a in self.agents},
            {a: {} for a in self.agents},
        )

    def close(self):
        pass


def leaving_agents_env(**kwargs):
    return LeavingAgentsEnv(**kwargs)


def broken_env(**kwargs):
    return BrokenEnv(**kwargs)


FAULTS = ("step_raises", "reset_raises", "nan_reward", "obs_out_of_space", "refuses_action", "ghost_agent")
REFUSED_ACTION = 4  # "refuses_action": agent_1 may not take this action (Discrete(5) allows it)


class FaultySpread(BaseParallelWrapper):
    """mpe2 simple_spread (N=3, 25 steps) with one planted fault, as a user's buggy scenario would have.

    From this copy's `episode`-th reset on (1-based), the fault strikes in every episode:
    `reset_raises` in reset(), the others at `step` of the episode. `episode` > 1 lets the
    checks before Ray pass (each builds its own copy and runs a few episodes), so the fault
    first strikes inside RLlib's env runners, like a bug that needs a rare state;
    `only_in_ray_actors` keeps it out of the driver's checks altogether.

    `ghost_agent` is a fault RLlib trips over outside the scenario: an agent that is not in
    `possible_agents` appears in the step's results, and the env runner's agent-to-policy
    mapping raises KeyError while the scenario's own calls succeed.
    """

    def __init__(self, fault: str, episode: int = 1, step: int = 3, only_in_ray_actors: bool = False, render_mode=None):
        if fault not in FAULTS:
            raise ValueError(f"fault must be one of {FAULTS}, got {fault!r}")
        super().__init__(simple_spread_v3.parallel_env(N=3, max_cycles=25, render_mode=render_mode))
        self.fault, self.fault_episode, self.fault_step = fault, episode, step
        self.armed = not only_in_ray_actors or _in_ray_actor()
        self._resets = 0
        self._steps = 0

    def _striking(self) -> bool:
        return self.armed and self._resets >= self.fault_episode

    def reset(self, seed=None, options=None):
        self._resets += 1
        self._steps = 0
        if self.fault == "reset_raises" and self._striking():
            raise RuntimeError(f"planted reset fault (reset {self._resets})")
        return self.env.reset(seed=seed, options=options)

    def step(self, actions):
        self._steps += 1
        now = self._striking() and self._steps == self.fault_step
        if now and self.fault == "step_raises":
            raise RuntimeError(f"planted step fault (step {self._steps})")
        if now and self.fault == "refuses_action" and actions.get("agent_1") == REFUSED_ACTION:
            raise ValueError(f"agent_1 may not take action {REFUSED_ACTION}")
        observations, rewards, terminations, truncations, infos = self.env.step(actions)
        if now and self.fault == "nan_reward":
            rewards = {**rewards, "agent_2": float("nan")}
        if now and self.fault == "obs_out_of_space":
            observations = {**observations, "agent_0": observations["agent_0"][:-1]}  # one entry short
        if now and self.fault == "ghost_agent":
            for result, value in zip((observations, rewards, terminations, truncations, infos),
                                     (observations["agent_0"], 0.0, False, False, {})):
                result["ghost"] = value
        return observations, rewards, terminations, truncations, infos


def _in_ray_actor() -> bool:
    import ray

    return ray.is_initialized() and ray.get_runtime_context().get_actor_id() is not None


def faulty_spread(**kwargs):
    return FaultySpread(**kwargs)


def spread_without_render(N: int = 3, max_cycles: int = 25):
    """simple_spread whose factory takes no `render_mode`: training works, rendering cannot."""
    return simple_spread_v3.parallel_env(N=N, max_cycles=max_cycles)
