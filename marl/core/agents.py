"""Which agent belongs to what: policies (parameter sharing) and teams (per-team returns).

Plain mappings of agent names, checked, with no Ray or torch: the config checks them
before a run starts, the RLlib pieces route agents with them, the evaluator sums
returns per team with them.
"""

from __future__ import annotations

import re

from marl.errors import ConfigError


def assign_agents(agents: list[str], groups: dict[str, list[str]], *, key: str, noun: str) -> dict[str, str]:
    """agent -> its group, checked: every group member is a scenario agent and every agent is in
    exactly one group. `key` names the config entry in errors (`policies.groups`, `teams`),
    `noun` what a group is called there."""
    assigned: dict[str, str] = {}
    for group, members in groups.items():
        for agent in members:
            if agent not in agents:
                raise ConfigError(f"{key}.{group}: unknown agent {agent!r}; the scenario's agents are {agents}")
            if agent in assigned:
                raise ConfigError(f"{key}: agent {agent!r} is in both {assigned[agent]!r} and {group!r}")
            assigned[agent] = group
    missing = [agent for agent in agents if agent not in assigned]
    if missing:
        raise ConfigError(f"{key}: agents {missing} are in no {noun}; add them to one")
    return assigned


def invert_mapping(mapping: dict[str, str]) -> dict[str, list[str]]:
    """group (policy, team) -> its agents, in the mapping's agent order."""
    inverted: dict[str, list[str]] = {}
    for agent, group in mapping.items():
        inverted.setdefault(group, []).append(agent)
    return inverted


class AgentToPolicy:
    """RLlib's policy_mapping_fn as a picklable lookup table."""

    def __init__(self, mapping: dict[str, str]):
        self.mapping = dict(mapping)

    def __call__(self, agent_id, episode=None, **kwargs) -> str:
        return self.mapping[agent_id]


def name_prefix(agent: str) -> str:
    """An agent's name without a trailing `_<number>`: `adversary_2` -> `adversary`."""
    return re.sub(r"_\d+$", "", agent)


def teams_of(agents: list[str], teams: dict[str, list[str]] | None = None) -> dict[str, list[str]]:
    """team -> its agents: the given mapping (checked: every agent exactly once), else by name.

    A cooperative scenario is one team; a mixed one (predators and prey, adversaries and
    good agents) has several, and summing their returns would mix opposing sides.
    By name, agents with the same prefix form a team, and a prefix that ends in another
    team's name joins it: simple_world_comm's `leadadversary_0` leads the `adversary_*`
    and plays on their side.
    """
    if teams:
        assign_agents(agents, teams, key="teams", noun="team")
        return {team: list(members) for team, members in teams.items()}
    prefixes = list(dict.fromkeys(name_prefix(agent) for agent in agents))
    team_of_prefix = {
        prefix: min((other for other in prefixes if prefix.endswith(other)), key=len) for prefix in prefixes
    }
    return invert_mapping({agent: team_of_prefix[name_prefix(agent)] for agent in agents})
