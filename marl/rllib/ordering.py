"""The same seed, the same run on RLlib's stock env runner: agents in a fixed order.

RLlib 2.60 walks a multi-agent episode's agents through a Python set
(`MultiAgentEpisode.get_agents_that_stepped()`, `.agent_ids`, used by
`ConnectorV2.single_agent_episode_iterator`). A set of strings is ordered by their hash,
which Python salts per process (PYTHONHASHSEED), so each process of each run met the
agents in its own order:

- env runner: the order of rows in each module's forward batch, and of the modules'
  forward passes, hence which agent each torch random draw of action sampling went to:
  the same seed sampled different actions in every run (measured: the first iteration's
  episode returns differed between two runs from identical seeds);
- learner (PPOTrainBatch): the order of a shared policy's rows, hence its minibatches.

`single_agent_episodes_in_order` is RLlib's iterator with the agents sorted by name;
`AddObservationsInAgentOrder` is the env-to-module piece that adds the observations in
that order before RLlib's `AddObservationsFromEpisodesToBatch` (which then steps aside, as
it does for any pipeline that already added them), and `AgentOrderedEnvToModule` is the
`config.env_runners(env_to_module_connector=...)` factory that puts it first.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

from ray.rllib.connectors.connector_v2 import ConnectorV2
from ray.rllib.core.columns import Columns
from ray.rllib.env.single_agent_episode import SingleAgentEpisode
from ray.rllib.utils.annotations import override


def single_agent_episodes_in_order(episodes: list, *, agents_that_stepped_only: bool) -> Iterator[SingleAgentEpisode]:
    """Each episode's agent episodes, agents sorted by name (see the module docstring)."""
    for episode in episodes:
        if isinstance(episode, SingleAgentEpisode):
            yield episode
            continue
        agents = episode.get_agents_that_stepped() if agents_that_stepped_only else episode.agent_episodes.keys()
        for agent_id in sorted(agents, key=str):
            yield episode.agent_episodes[agent_id]


class AddObservationsInAgentOrder(ConnectorV2):
    """Env-to-module piece: every acting agent's latest observation, agents in name order."""

    @override(ConnectorV2)
    def __call__(self, *, rl_module, batch: dict[str, Any], episodes: list, explore=None, shared_data=None, **kwargs):
        if Columns.OBS in batch:
            return batch
        for agent_episode in single_agent_episodes_in_order(episodes, agents_that_stepped_only=True):
            self.add_batch_item(batch, Columns.OBS, item_to_add=agent_episode.get_observations(-1), single_agent_episode=agent_episode)
        return batch


class AgentOrderedEnvToModule:
    """`config.env_runners(env_to_module_connector=...)`: AddObservationsInAgentOrder, then `more` factories' pieces.

    Picklable (env runners build their pipelines from it); each of `more` is called as
    RLlib calls such a factory, `(env, spaces, device)`, and may return a piece or a list.
    """

    def __init__(self, *more: Callable[..., Any]):
        self.more = more

    def __call__(self, env=None, spaces=None, device=None) -> list[ConnectorV2]:
        pieces: list[ConnectorV2] = [AddObservationsInAgentOrder()]
        for factory in self.more:
            made = factory(env, spaces, device)
            pieces.extend(made if isinstance(made, (list, tuple)) else [made])
        return pieces
