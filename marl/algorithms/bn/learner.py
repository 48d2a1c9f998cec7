"""The BN-MAPPO learner: MAPPO's learner with a per-agent clipped surrogate and the sparsity penalty.

Everything but the policy objective comes from PPOFamilyTorchLearner: GAE on the
team reward with the centralised critic, value normalisation, the (Huber, clipped)
value loss, the entropy bonus (mean over agents) and the logging. The policy part:

    surrogate_loss   = -E_t mean_i min(r_i A_t, clip(r_i, 1 - eps, 1 + eps) A_t),
                       r_i = pi_i(a_i | o_i, a_Pa(i)) / pi_i_old(...)
    sparsity_penalty = alpha(p) * E|rho - tau(p)|      (learned graphs only)
    pg_loss          = surrogate_loss + sparsity_penalty

with the team advantage A_t, the per-agent log-probabilities of the module's
teacher-forced training pass, rho the edge density of the re-sampled graphs and
p = env steps sampled so far / stop.env_steps (set before each update).

Logged per module, every iteration: edge_density, dag_depth (means over the
training graphs), edge_freq_<j>_<i> (how often j is a parent of i, agent indices),
tau, alpha, sparsity_penalty, surrogate_loss; plus the family's terms.
"""

from __future__ import annotations

import torch
from ray.rllib.core.columns import Columns
from ray.rllib.evaluation.postprocessing import Postprocessing
from ray.rllib.utils.annotations import override
from ray.rllib.utils.metrics import NUM_ENV_STEPS_SAMPLED_LIFETIME


from marl.algorithms.bn.dag import sparsity_penalty
from marl.algorithms.common import learner_settings
from marl.algorithms.ppo.learner import PPOFamilyTorchLearner
from marl.algorithms.ppo.losses import clipped_surrogate
from marl.core.graphs import batched_depths, edge_density
from marl.core.keys import (
    ALPHA,
    BN_ADJACENCY,
    BN_AGENT_LOGP,
    BN_DENSITY,
    DAG_DEPTH,
    EDGE_DENSITY,
    PG_LOSS,
    PROGRESS,
    SPARSITY_PENALTY,
    SURROGATE_LOSS,
    TAU,
    edge_frequency_key,
)
from marl.core.masking import MaskedMean, masked_mean_fn


class BNMAPPOTorchLearner(PPOFamilyTorchLearner):
    """BN-MAPPO: per-agent clipped surrogates with the team advantage, plus alpha * |rho - tau|."""

    @override(PPOFamilyTorchLearner)
    def build(self) -> None:
        super().build()
        training = learner_settings(self.config).training
        self.schedule = training.annealing.schedule()
        self.learned_graph = training.dag == "learned"
        self.progress = 0.0

    @override(PPOFamilyTorchLearner)
    def before_gradient_based_update(self, *, timesteps) -> None:
        super().before_gradient_based_update(timesteps=timesteps)
        stop = learner_settings(self.config).stop_env_steps
        self.progress = min(1.0, timesteps.get(NUM_ENV_STEPS_SAMPLED_LIFETIME, 0) / stop)

    @override(PPOFamilyTorchLearner)
    def policy_loss(self, *, module_id, config, batch, fwd_out, dist, mean: MaskedMean) -> dict[str, torch.Tensor]:
        logp = fwd_out[BN_AGENT_LOGP]  # (B, n)
        mask = batch.get(Columns.LOSS_MASK)
        per_agent_mean = masked_mean_fn(mask.unsqueeze(-1).expand_as(logp) if mask is not None else None)
        advantages = batch[Postprocessing.ADVANTAGES].unsqueeze(-1).expand_as(logp)
        terms = clipped_surrogate(logp, batch[BN_AGENT_LOGP], advantages, config.clip_param, per_agent_mean)

        density = fwd_out[BN_DENSITY]
        tau, alpha = self.schedule.tau(self.progress), self.schedule.alpha(self.progress)
        if self.learned_graph:
            penalty = sparsity_penalty(density, tau, alpha, mean)
        else:
            penalty = torch.zeros((), device=logp.device)  # a fixed graph has nothing to anneal
        surrogate = terms[PG_LOSS]
        return {
            **terms,
            PG_LOSS: surrogate + penalty,
            SURROGATE_LOSS: surrogate.detach(),
            SPARSITY_PENALTY: penalty.detach(),
            TAU: torch.tensor(tau),
            ALPHA: torch.tensor(alpha),
            PROGRESS: torch.tensor(self.progress),
            **self._graph_statistics(fwd_out[BN_ADJACENCY], mean),
        }

    @staticmethod
    def _graph_statistics(adjacency: torch.Tensor, mean: MaskedMean) -> dict[str, torch.Tensor]:
        """edge_density, dag_depth and edge_freq_<j>_<i> of the training pass's graphs."""
        n = adjacency.shape[-1]
        stats = {
            EDGE_DENSITY: mean(edge_density(adjacency)).detach(),
            DAG_DEPTH: mean(batched_depths(adjacency).float()).detach(),
        }
        for j in range(n):
            for i in range(n):
                if i != j:
                    stats[edge_frequency_key(j, i)] = mean(adjacency[..., j, i]).detach()
        return stats

