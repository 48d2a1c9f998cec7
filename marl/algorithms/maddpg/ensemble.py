"""Policy ensembles (Lowe et al. 2017, section 4.3): K sub-policies per agent, one drawn per episode.

Each agent keeps K actors mu_i^(1..K). At the start of every episode each agent draws one
of them (uniformly, independently of the other agents) and acts with it until the episode
ends, so an agent meets every combination of its opponents' sub-policies. The draw is
recorded with every action, so the replay buffer knows which sub-policy produced a row
(`D_i^(k)`: the rows in which agent i acted with sub-policy k), and each sub-policy is
trained on its own rows with the gradient averaged over the K of them:

    grad J_e(mu_i) = 1/K sum_k E_{x, a ~ D_i^(k)}[ grad mu_i^(k)(o_i) grad_{a_i} Q_i(x, a_1..a_N) ]

On RLlib: `DrawSubPolicy`, an env-to-module connector piece, draws and remembers the index
of each running (episode, agent) and adds it to the batch as the `subpolicy` column; the
module's forward picks each row's actor with it (`ActorEnsemble`) and returns the column,
which RLlib then stores with the action as an extra model output.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from ray.rllib.connectors.connector_v2 import ConnectorV2
from ray.rllib.utils.annotations import override
from torch import nn

from marl.core.keys import SUBPOLICY
from marl.rllib.ordering import single_agent_episodes_in_order


class ActorEnsemble(nn.Module):
    """K actor networks with one layout; row b is answered by member `index[b]`."""

    def __init__(self, members: list[nn.Module]):
        super().__init__()
        self.members = nn.ModuleList(members)

    def __len__(self) -> int:
        return len(self.members)

    def forward(self, observations: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        """(B, A) logits; `index` (B,) picks each row's member (None: member 0, e.g. in evaluation)."""
        if index is None:
            return self.members[0](observations)
        index = index.long()
        if index.shape != observations.shape[:1]:
            raise ValueError(f"ActorEnsemble: index has shape {tuple(index.shape)}, expected ({observations.shape[0]},)")
        # Every member on every row, then each row's own: K small MLPs are cheaper batched than masked.
        logits = torch.stack([member(observations) for member in self.members])  # (K, B, A)
        return logits[index, torch.arange(len(index), device=index.device)]


class DrawSubPolicy(ConnectorV2):
    """Env-to-module piece: each agent's sub-policy index, drawn once per episode, as the `subpolicy` column.

    The draw of a running (episode, agent) is kept until that episode is no longer among the
    env runner's episodes, so later chunks of the same episode (RLlib cuts episodes between
    `sample()` calls) keep their sub-policy.
    """

    def __init__(self, input_observation_space=None, input_action_space=None, *, ensemble_size: int, seed: int, **kwargs):
        super().__init__(input_observation_space, input_action_space, **kwargs)
        if ensemble_size < 1:
            raise ValueError(f"DrawSubPolicy: ensemble_size must be >= 1, got {ensemble_size}")
        self.ensemble_size = ensemble_size
        self._rng = np.random.default_rng(seed)
        self._drawn: dict[tuple[str, Any], int] = {}

    @override(ConnectorV2)
    def __call__(self, *, rl_module, batch, episodes, explore=None, shared_data=None, metrics=None, **kwargs):
        running = {episode.id_ for episode in episodes}
        self._drawn = {key: index for key, index in self._drawn.items() if key[0] in running}
        # Agents in name order, not a set's: the draws must not depend on the process (marl/rllib/ordering.py).
        for agent_episode in single_agent_episodes_in_order(episodes, agents_that_stepped_only=True):
            key = (agent_episode.multi_agent_episode_id, agent_episode.agent_id)
            if key not in self._drawn:
                self._drawn[key] = int(self._rng.integers(self.ensemble_size))
            self.add_batch_item(batch, SUBPOLICY, self._drawn[key], agent_episode)
        return batch


class SubPolicyConnectorFactory:
    """`config.env_runners(env_to_module_connector=...)`: a picklable factory of `DrawSubPolicy`.

    Its generator is seeded from numpy's global generator, which RLlib seeds per env runner
    from the experiment seed and the runner's index: reproducible, and different per runner.
    """

    def __init__(self, ensemble_size: int):
        self.ensemble_size = ensemble_size

    def __call__(self, env=None, spaces=None, device=None) -> list[ConnectorV2]:
        return [DrawSubPolicy(ensemble_size=self.ensemble_size, seed=int(np.random.randint(2**31 - 1)))]
