"""A guard around a scenario's `reset()`/`step()`: faults stop the run where they happen.

Users write their own scenarios. A scenario that raised inside a Ray env runner used to
crash the runner, Ray restarted it into the same crash, and training hung without a
word; bad data (a NaN reward, an observation outside its space) went into the learner
unnoticed. The guard turns both into one `ScenarioFault` naming the scenario, the call
and the problem, which the driver reports in one line (`marl.training.faults`):

- any exception from `reset()` or `step()` (for `step`, naming the agent and action the
  scenario refused where that can be told);
- bad data over the first `check_steps` steps of every episode: an observation outside
  its declared space (shape, dtype, bounds), a NaN/inf observation, a NaN/inf or
  non-numeric reward. Checking only the start of each episode keeps the check on at all
  times for little cost: one checked step of simple_spread (3 agents) costs about 20 us,
  so 5 checked steps of 25 add about 3% to the raw scenario's step (about 2% to the
  adapter's, far less to RLlib's sampling, which spends milliseconds per step); 0 turns
  the data checks off, exceptions are always wrapped.

The checks are plain functions of (value, space), tested without Ray.
"""

from __future__ import annotations

import math
import re
import traceback
from typing import Any

import gymnasium as gym
import numpy as np
from pettingzoo.utils import BaseParallelWrapper
from pettingzoo.utils.env import ParallelEnv

from marl.errors import ScenarioFault

DEFAULT_CHECK_STEPS = 5
VALUE_CHARS = 60  # a value in the one-line message is cut to this many characters

EXCEPTION_HINT = (
    "fix the scenario; if it fails only now and then, set resources.restart_failed_sub_environments: true "
    "to rebuild the failed copy and go on"
)
OBSERVATION_HINT = (
    "return observations that observation_space(agent) contains (shape, dtype, bounds), or declare the space "
    "they really have, e.g. with the SuperSuit wrapper dtype_v0"
)
NON_FINITE_HINT = "observations and rewards must be finite: look for a division by zero or an overflow in the scenario"
ACTION_HINT = "step() must accept every action of action_space(agent), or the scenario must declare the space it accepts"


def summarize(value: Any, limit: int = VALUE_CHARS) -> str:
    """`value` on one line, cut to `limit` characters (the report file keeps it whole)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, np.ndarray):
        text = np.array2string(value, threshold=8, edgeitems=3, precision=4, separator=", ")
    else:
        text = repr(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def observation_problem(observation: Any, space: gym.Space) -> str | None:
    """Why `observation` does not belong to `space`, or None when it does.

    For a Box the reasons are told apart (shape, dtype, non-finite, bounds), because the
    fixes differ; any other space is asked `contains`.
    """
    if not isinstance(space, gym.spaces.Box):
        return None if space.contains(observation) else f"is not in {space}"
    array = np.asarray(observation)
    if array.shape != space.shape:
        return f"has shape {array.shape}, but the observation space {space} has shape {space.shape}"
    if not np.can_cast(array.dtype, space.dtype):
        return f"has dtype {array.dtype}, which does not fit the observation space's {space.dtype}"
    if array.dtype.kind in "fc" and not np.isfinite(array).all():
        return "contains NaN or inf"
    if (array < space.low).any() or (array > space.high).any():
        return f"is outside the bounds of {space}"
    return None


def reward_problem(reward: Any) -> str | None:
    """Why `reward` is not a finite number, or None when it is."""
    try:
        value = float(reward)
    except (TypeError, ValueError):
        return f"is not a number ({type(reward).__name__})"
    return None if math.isfinite(value) else "is NaN or inf"


def action_problem(action: Any, space: gym.Space) -> str | None:
    """Why `action` is not in the agent's action space, or None when it is."""
    try:
        return None if space.contains(action) else f"is outside the action space {space}"
    except Exception as error:  # a malformed action can make `contains` itself fail
        return f"is not an action of {space} ({type(error).__name__})"


def first_data_problem(
    observations: dict[str, Any], rewards: dict[str, Any] | None, spaces: dict[str, gym.Space]
) -> tuple[str, str, Any, str] | None:
    """The first (agent, key, value, problem) wrong in one reset or step result, or None."""
    for agent, observation in observations.items():
        space = spaces.get(agent)
        problem = observation_problem(observation, space) if space is not None else None
        if problem:
            return agent, "observation", observation, problem
    for agent, reward in (rewards or {}).items():
        problem = reward_problem(reward)
        if problem:
            return agent, "reward", reward, problem
    return None


def refused_action(error: Exception, actions: dict[str, Any], spaces: dict[str, gym.Space]) -> tuple[str, str]:
    """Which agent's action `step()` raised on, as well as can be told from outside, and the hint.

    An action outside its agent's space is the culprit; else an agent the error message
    names; else all the actions are listed.
    """
    for agent, action in actions.items():
        space = spaces.get(agent)
        problem = action_problem(action, space) if space is not None else None
        if problem:
            return f"agent {agent!r} sent action {summarize(action)}, which {problem}", ACTION_HINT
    message = str(error)
    named = [agent for agent in actions if re.search(rf"(?<![\w]){re.escape(str(agent))}(?![\w])", message)]
    if len(named) == 1:
        return f"agent {named[0]!r} sent action {summarize(actions[named[0]])}", EXCEPTION_HINT
    return "actions " + summarize({agent: _plain(action) for agent, action in actions.items()}, limit=2 * VALUE_CHARS), EXCEPTION_HINT


def _plain(action: Any) -> Any:
    return action.tolist() if isinstance(action, np.ndarray) else action.item() if isinstance(action, np.generic) else action


def _exception_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


class GuardedParallelEnv(BaseParallelWrapper):
    """The scenario with its `reset`/`step` guarded (see the module docstring); all else passes through."""

    def __init__(self, env: ParallelEnv, scenario: str, check_steps: int = DEFAULT_CHECK_STEPS):
        super().__init__(env)
        self.scenario = scenario
        self.check_steps = int(check_steps)
        self._step = 0  # steps taken in the current episode
        self._observation_spaces: dict[str, gym.Space] = {}
        self._action_spaces: dict[str, gym.Space] = {}

    def _agent_order(self, agent) -> tuple[int, str]:
        """Agents in the scenario's own order (RLlib hands actions over in a set's order)."""
        agents = list(self.env.possible_agents)
        return (agents.index(agent), "") if agent in agents else (len(agents), str(agent))

    def _spaces(self, cache: dict[str, gym.Space], lookup, agents) -> dict[str, gym.Space]:
        for agent in agents:
            if agent not in cache:
                try:
                    cache[agent] = lookup(agent)
                except Exception:  # an agent the scenario has no space for: the API test's business, not ours
                    continue
        return cache

    def reset(self, seed: int | None = None, options: dict | None = None):
        try:
            observations, infos = self.env.reset(seed=seed, options=options)
        except ScenarioFault:
            raise
        except Exception as error:
            raise self._exception_fault("reset", error, f"seed={seed!r}") from error
        self._step = 0
        if self.check_steps > 0:
            self._check("reset", observations, None)
        return observations, infos

    def step(self, actions: dict[str, Any]):
        try:
            result = self.env.step(actions)
        except ScenarioFault:
            raise
        except Exception as error:
            spaces = self._spaces(self._action_spaces, self.env.action_space, actions)
            ordered = {agent: actions[agent] for agent in sorted(actions, key=self._agent_order)}
            culprit, hint = refused_action(error, ordered, spaces)
            raise self._exception_fault("step", error, f"actions={actions!r}", culprit, hint) from error
        self._step += 1
        if self._step <= self.check_steps:
            self._check("step", result[0], result[1])
        return result

    def _check(self, call: str, observations: dict[str, Any], rewards: dict[str, Any] | None) -> None:
        spaces = self._spaces(self._observation_spaces, self.env.observation_space, observations)
        found = first_data_problem(observations, rewards, spaces)
        if found is None:
            return
        agent, key, value, problem = found
        hint = OBSERVATION_HINT if key == "observation" and "NaN" not in problem else NON_FINITE_HINT
        details = (
            f"scenario {self.scenario!r}, {call}() {self._where(call, self._step)}\n"
            f"agent {agent!r}, {key}: {problem}\nfull value:\n{value!r}\n"
            + (f"observation space: {spaces[agent]}\n" if key == "observation" else "")
            + "where the check ran:\n" + "".join(traceback.format_stack(limit=12))
        )
        raise ScenarioFault(
            self.scenario, call, f"agent {agent!r} {key} {summarize(value)} {problem}", hint, details
        )

    @staticmethod
    def _where(call: str, step: int) -> str:
        return "of a new episode" if call == "reset" else f"number {step} of the episode"

    def _exception_fault(
        self, call: str, error: Exception, arguments: str, culprit: str | None = None, hint: str = EXCEPTION_HINT
    ) -> ScenarioFault:
        problem = f"raised {_exception_line(error)}" + (f"; {culprit}" if culprit else "")
        details = (
            f"scenario {self.scenario!r}, {call}() {self._where(call, self._step + 1)}, called with {arguments}\n\n"
            + "".join(traceback.format_exception(error))
        )
        return ScenarioFault(self.scenario, call, problem, hint, details)
