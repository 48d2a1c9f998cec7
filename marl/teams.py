"""Which agents play together: teams for per-team returns in mixed games.

A cooperative scenario is one team; a mixed one (predators and prey, adversaries and
good agents) has several, and summing their returns would mix opposing sides. Teams
come from the config's `teams` mapping, else from the agents' names.
"""

from __future__ import annotations

import re

from marl.config import assign_agents


def name_prefix(agent: str) -> str:
    """An agent's name without a trailing `_<number>`: `adversary_2` -> `adversary`."""
    return re.sub(r"_\d+$", "", agent)


def teams_of(agents: list[str], teams: dict[str, list[str]] | None = None) -> dict[str, list[str]]:
    """team -> its agents: the given mapping (checked: every agent exactly once), else by name.

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
    grouped: dict[str, list[str]] = {}
    for agent in agents:
        grouped.setdefault(team_of_prefix[name_prefix(agent)], []).append(agent)
    return grouped
