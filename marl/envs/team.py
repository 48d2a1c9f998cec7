"""The whole team as ONE RLlib agent: what a joint (Bayesian-network) policy needs.

A BN policy samples the agents' actions one after another inside a single forward
pass (each agent sees its parents' choices), so RLlib must hand it every agent's
observation at once and take every agent's action back at once. This adapter wraps
PettingZooMultiAgentEnv and presents a single agent "team":

- observation: `[agent_0's (obs | id) | agent_1's (obs | id) | ... | global state]`,
  one flat float32 vector (agent order = the scenario's `possible_agents`);
- action: MultiDiscrete([A] * n), agent i's action at index i;
- reward: the SUM of the agents' rewards, so RLlib's episode return is the same team
  return that MAPPO's runs report (summed over agents).

All agents must have Discrete(A) actions with the same A and observations of the same
size (checked: a clear error otherwise).

Agents that leave the episode early (killed knights, fallen walkers) stay in the team
vector as they do in SMAC: their part of the observation is zeros, their actions are not
passed to the scenario and their reward is 0. The joint policy still samples an action
for them (the graph has a fixed size); it changes nothing, so it only adds noise to that
agent's policy-gradient term, which no active-agent mask removes here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from ray.rllib.env.multi_agent_env import MultiAgentEnv
from ray.rllib.utils.annotations import override

from marl.envs.adapter import PettingZooMultiAgentEnv
from marl.errors import ConfigError, ScenarioError

TEAM = "team"


@dataclass(frozen=True)
class TeamLayout:
    """Where each part sits in the team observation."""

    n_agents: int
    agent_dim: int  # one agent's [obs | id]
    state_dim: int
    num_actions: int

    @property
    def total_dim(self) -> int:
        return self.n_agents * self.agent_dim + self.state_dim


def team_layout(env: PettingZooMultiAgentEnv) -> TeamLayout:
    """The layout of a team over `env`'s agents; ConfigError when the agents are not uniform."""
    agents = env.possible_agents
    spaces = {agent: env.action_spaces[agent] for agent in agents}
    if not all(isinstance(space, gym.spaces.Discrete) for space in spaces.values()):
        raise ConfigError(f"scenario: a team policy needs Discrete actions for every agent, got {spaces}")
    if len({int(space.n) for space in spaces.values()}) != 1:
        raise ConfigError(
            "scenario: a team policy needs the same number of actions for every agent; add the SuperSuit wrapper pad_action_space_v0"
        )
    layouts = {agent: env.layouts[agent] for agent in agents}
    if len({layout.actor_dim for layout in layouts.values()}) != 1:
        raise ConfigError(
            "scenario: a team policy needs observations of one size for every agent; add the SuperSuit wrapper pad_observations_v0"
        )
    first = layouts[agents[0]]
    return TeamLayout(len(agents), first.actor_dim, first.state_dim, int(spaces[agents[0]].n))


class TeamMultiAgentEnv(MultiAgentEnv):
    """RLlib view of a PettingZoo scenario as one agent "team" (see the module docstring).

    Built from the same env_config as PettingZooMultiAgentEnv (which it wraps); the
    global state must be on (`global_state: true`). RLlib's EnvContext is passed through
    untouched, so the wrapped adapter still sees its env runner's index.
    """

    def __init__(self, config: dict[str, Any] | None = None):
        super().__init__()
        if not (config or {}).get("global_state", False):
            raise ConfigError("a team env needs the global state in its env_config (global_state: true)")
        self.inner = PettingZooMultiAgentEnv(config)
        self.layout = team_layout(self.inner)
        self.team_agents = list(self.inner.possible_agents)
        self.possible_agents = [TEAM]
        self.agents = [TEAM]
        self.observation_spaces = {TEAM: gym.spaces.Box(-np.inf, np.inf, (self.layout.total_dim,), np.float32)}
        self.action_spaces = {TEAM: gym.spaces.MultiDiscrete([self.layout.num_actions] * self.layout.n_agents)}
        self.agent_infos: dict[str, Any] = {}  # the last step's per-agent infos (scenario metrics read them)
        self.agent_rewards: dict[str, float] = {}  # the last step's per-agent rewards (rollout datasets read them)

    @property
    def env(self):
        """The raw PettingZoo env (what scenario metrics and renderers read)."""
        return self.inner.env

    def _team_observation(self, observations: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        agent_dim = self.layout.agent_dim
        absent = np.zeros(agent_dim, np.float32)  # an agent that has left (see the module docstring)
        parts = [observations[agent][:agent_dim] if agent in observations else absent for agent in self.team_agents]
        parts.append(next(iter(observations.values()))[agent_dim:])  # the global state, the same in every agent's
        return {TEAM: np.concatenate(parts).astype(np.float32)}

    @override(MultiAgentEnv)
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        observations, infos = self.inner.reset(seed=seed, options=options)
        self.agent_infos = infos
        return self._team_observation(observations), {TEAM: {}}

    @override(MultiAgentEnv)
    def step(self, action_dict: dict[str, Any]):
        joint = np.asarray(action_dict[TEAM]).reshape(-1)
        alive = set(self.inner.agents)  # an agent that has left takes no action
        actions = {agent: int(joint[i]) for i, agent in enumerate(self.team_agents) if agent in alive}
        observations, rewards, terminateds, truncateds, infos = self.inner.step(actions)
        if not observations:
            raise ScenarioError("the scenario's step returned no agent's observation; it must return those of the agents that acted")
        self.agent_infos = infos
        self.agent_rewards = {agent: float(reward) for agent, reward in rewards.items()}
        team_reward = float(sum(rewards.values()))
        # The team's own flags follow the agents' (all of them), "__all__" the adapter's: with
        # `scenario.bootstrap_at_time_limit` the agents are not flagged at the time limit, only
        # "__all__" is, and RLlib then records a truncation (bootstrapped) rather than an end.
        return (
            self._team_observation(observations),
            {TEAM: team_reward},
            {TEAM: bool(terminateds["__all__"]), "__all__": bool(terminateds["__all__"])},
            {TEAM: all(truncateds.get(a, False) for a in observations), "__all__": bool(truncateds["__all__"])},
            {TEAM: {}},
        )

    @override(MultiAgentEnv)
    def render(self):
        return self.inner.render()

    @override(MultiAgentEnv)
    def close(self):
        self.inner.close()
