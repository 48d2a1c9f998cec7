"""The PPO-family learner on RLlib: stock PPO plumbing, MAPPO's loss details.

Subclasses RLlib's PPOTorchLearner (its GAE connector, schedules, optimizer) and
replaces only the loss with marl.algorithms.ppo.losses: Huber value loss with
value clipping and value normalisation, as in MAPPO's reference implementation.
Settings RLlib's PPOConfig lacks are read from the typed, frozen `training` settings
(`marl.algorithms.common.learner_settings`).
"""

from __future__ import annotations

from typing import Any

import torch
from ray.rllib.algorithms.ppo.torch.ppo_torch_learner import PPOTorchLearner
from ray.rllib.connectors.connector_v2 import ConnectorV2
from ray.rllib.connectors.learner import GeneralAdvantageEstimation
from ray.rllib.core.columns import Columns
from ray.rllib.evaluation.postprocessing import Postprocessing
from ray.rllib.utils.annotations import override

from marl.algorithms.common import learner_settings
from marl.algorithms.ppo.losses import clipped_surrogate, explained_variance, value_loss
from marl.core.keys import ENTROPY, EXPLAINED_VAR, PG_LOSS, TOTAL_LOSS, VF_LOSS
from marl.core.masking import MaskedMean, masked_mean_fn
from marl.rllib.metrics import log_terms
from marl.rllib.threads import limit_learner_threads


class AddValuePredictions(ConnectorV2):
    """Stores the rollout-time critic predictions (return units) under VF_PREDS.

    RLlib's GAE piece computes them but does not keep them; the clipped value loss
    needs them as its anchor. Runs right after GAE, on the same batch.
    """

    @override(ConnectorV2)
    def __call__(self, *, rl_module, batch: dict[str, Any], episodes, **kwargs):
        with torch.no_grad():
            for module_id, module_batch in batch.items():
                if Postprocessing.VALUE_TARGETS in module_batch:
                    module_batch[Columns.VF_PREDS] = rl_module[module_id].unwrapped().compute_values(module_batch)
        return batch


class PPOFamilyTorchLearner(PPOTorchLearner):
    """IPPO / MAPPO learner: one clipped-surrogate loss per module (policy).

    Subclasses with another policy objective (DPO) override `policy_loss` only.
    """

    @override(PPOTorchLearner)
    def build(self) -> None:
        limit_learner_threads(self.config)  # a remote learner's pools to its CPUs, before any torch work
        super().build()
        if self._learner_connector is not None and self.config.add_default_connectors_to_learner_pipeline:
            self._learner_connector.insert_after(GeneralAdvantageEstimation, AddValuePredictions())

    @override(PPOTorchLearner)
    def compute_loss_for_module(self, *, module_id, config, batch, fwd_out):
        module = self.module[module_id].unwrapped()
        training = learner_settings(config).training
        mask = batch.get(Columns.LOSS_MASK)
        mean = masked_mean_fn(mask.float() if mask is not None else None)

        dist = module.get_train_action_dist_cls().from_logits(fwd_out[Columns.ACTION_DIST_INPUTS])
        policy = self.policy_loss(module_id=module_id, config=config, batch=batch, fwd_out=fwd_out, dist=dist, mean=mean)
        entropy = mean(dist.entropy())

        targets = batch[Postprocessing.VALUE_TARGETS]
        old_values = batch[Columns.VF_PREDS]
        values = module.normalized_values(batch)
        normalizer = module.value_normalizer
        if normalizer is not None:
            # MAPPO updates the running statistics on every minibatch, then compares
            # in normalised units. Old predictions are re-expressed in those units.
            normalizer.update(targets[mask] if mask is not None else targets)
            targets = normalizer.normalize(targets)
            old_values = normalizer.normalize(old_values)
        vf_loss = value_loss(
            values,
            old_values,
            targets,
            mean,
            huber_delta=training.huber_delta,
            clip_param=training.value_clip_param,
        )
        entropy_coeff = self.entropy_coeff_schedulers_per_module[module_id].get_current_value()
        total_loss = policy[PG_LOSS] + config.vf_loss_coeff * vf_loss - entropy_coeff * entropy

        log_terms(
            self.metrics,
            {
                **policy,
                VF_LOSS: vf_loss.detach(),
                ENTROPY: entropy.detach(),
                EXPLAINED_VAR: explained_variance(
                    targets[mask] if mask is not None else targets, values.detach()[mask] if mask is not None else values.detach()
                ),
                TOTAL_LOSS: total_loss.detach(),
            },
            key=module_id,
        )
        return total_loss

    def policy_loss(self, *, module_id, config, batch, fwd_out, dist, mean: MaskedMean) -> dict[str, torch.Tensor]:
        """The policy part of the loss: named terms, `pg_loss` being what is minimised.

        `fwd_out` is the module's training output (`dist` is built from its
        ACTION_DIST_INPUTS), for objectives that need more of it (BN-MAPPO).

        The rest of the loss (value loss, entropy bonus) and the logging are the same
        for every learner in the family; subclasses override only this.
        """
        return clipped_surrogate(
            dist.logp(batch[Columns.ACTIONS]),
            batch[Columns.ACTION_LOGP],
            batch[Postprocessing.ADVANTAGES],
            config.clip_param,
            mean,
        )
