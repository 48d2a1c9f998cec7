"""The DPO learner on RLlib: the PPO family's learner with DPO's policy objective.

Everything but the policy part is inherited from PPOFamilyTorchLearner: GAE, the
rollout-time value predictions, value normalisation, the (Huber, clipped) value
loss, the entropy bonus and the logging. `policy_loss` swaps PPO's clipped
surrogate for DPO's penalised one (marl.algorithms.dpo.losses), and the two
penalty coefficients are learner state:

- kept per module as tensor variables (like RLlib's `curr_kl_coeffs_per_module`);
- adapted once per training iteration, in `after_gradient_based_update`, from the
  mean KL and mean sqrt-KL over all of the iteration's minibatches, i.e. "before
  the next iteration" in the paper's words;
- saved and restored with the learner state (`get_state` / `set_state`), which
  RLlib does not do for its own KL coefficients, so a resumed run continues with
  the adapted values.

Logged per module: `beta_kl` and `beta_sqrt_kl` are the coefficients this
iteration's loss used; `kl` and `sqrt_kl` the iteration means they are adapted from.
The other terms (`pg_loss`, `surrogate_loss`, ...) are the last minibatch's, as in
the PPO family, so `pg_loss` need not equal the composition of the logged means.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from ray.rllib.core.columns import Columns
from ray.rllib.evaluation.postprocessing import Postprocessing
from ray.rllib.utils.annotations import override
from ray.rllib.utils.lambda_defaultdict import LambdaDefaultDict

from marl.algorithms.common import learner_settings
from marl.algorithms.dpo.losses import adapt_coefficient, dpo_policy_terms
from marl.algorithms.ppo.learner import PPOFamilyTorchLearner
from marl.core.keys import BETA_KL, BETA_SQRT_KL, KL, SQRT_KL
from marl.core.masking import MaskedMean
from marl.rllib.metrics import log_terms

# The learner-state key under which the coefficients are checkpointed.
COEFFICIENTS_STATE_KEY = "dpo_coefficients"


class DPOTorchLearner(PPOFamilyTorchLearner):
    """One DPO loss per module (policy); coefficients adapted per iteration, checkpointed."""

    @override(PPOFamilyTorchLearner)
    def build(self) -> None:
        super().build()
        training = learner_settings(self.config).training
        self.beta_kl_per_module: dict[str, torch.Tensor] = LambdaDefaultDict(
            lambda module_id: self._get_tensor_variable(training.initial_beta_kl)
        )
        self.beta_sqrt_kl_per_module: dict[str, torch.Tensor] = LambdaDefaultDict(
            lambda module_id: self._get_tensor_variable(training.initial_beta_sqrt_kl)
        )
        # The iteration's measured divergences: our own accumulator of per-minibatch
        # means, a tensor [sum KL, sum sqrt-KL, minibatches] per module, reset after
        # each adaptation. Simpler to get right than a metrics window, whose length
        # would have to track num_epochs x num_minibatches (and RLlib keeps window
        # items across reduces).
        self._divergence_sums: dict[str, torch.Tensor] = {}

    # -- the loss -----------------------------------------------------------------
    @override(PPOFamilyTorchLearner)
    def policy_loss(self, *, module_id, config, batch, fwd_out, dist, mean: MaskedMean) -> dict[str, torch.Tensor]:
        module = self.module[module_id].unwrapped()
        # The rollout policy, from the distribution inputs the env runner stored.
        old_dist = module.get_exploration_action_dist_cls().from_logits(batch[Columns.ACTION_DIST_INPUTS])
        beta_kl = self.beta_kl_per_module[module_id]
        beta_sqrt_kl = self.beta_sqrt_kl_per_module[module_id]
        terms = dpo_policy_terms(
            dist.logp(batch[Columns.ACTIONS]),
            batch[Columns.ACTION_LOGP],
            batch[Postprocessing.ADVANTAGES],
            old_dist.kl(dist),
            beta_sqrt_kl,
            beta_kl,
            mean,
        )
        kl = terms[KL].detach()
        self._divergence_sums[module_id] = self._divergence_sums.get(module_id, 0.0) + torch.stack(
            [kl, terms[SQRT_KL].detach(), torch.ones_like(kl)]
        )
        # Copies: the variables change in place when adapted, before metrics are reduced.
        return {**terms, BETA_KL: beta_kl.detach().clone(), BETA_SQRT_KL: beta_sqrt_kl.detach().clone()}

    # -- adaptation ------------------------------------------------------------------
    @override(PPOFamilyTorchLearner)
    def after_gradient_based_update(self, *, timesteps: dict[str, Any]) -> None:
        super().after_gradient_based_update(timesteps=timesteps)
        measured = self._measured_divergences()
        self._divergence_sums.clear()
        if not measured:
            return
        training = learner_settings(self.config).training
        target = training.kl_target
        low, high = training.coefficient_bounds
        if training.shared_coefficients:
            # One pair for all policies, driven by the mean over policies.
            mean_kl = sum(kl for kl, _ in measured.values()) / len(measured)
            mean_sqrt_kl = sum(sqrt_kl for _, sqrt_kl in measured.values()) / len(measured)
            drivers = {module_id: (mean_kl, mean_sqrt_kl) for module_id in self.module.keys()}
        else:
            drivers = measured
        for module_id, (kl, sqrt_kl) in drivers.items():
            for variable, value, goal in (
                (self.beta_kl_per_module[module_id], kl, target),
                (self.beta_sqrt_kl_per_module[module_id], sqrt_kl, math.sqrt(target)),
            ):
                variable.fill_(adapt_coefficient(variable.item(), value, goal, low, high))
        for module_id, (kl, sqrt_kl) in measured.items():
            # Replace the last minibatch's values (window 1) with the iteration means
            # the coefficients were adapted from.
            log_terms(self.metrics, {KL: kl, SQRT_KL: sqrt_kl}, key=module_id)

    def _measured_divergences(self) -> dict[str, tuple[float, float]]:
        """module -> (mean KL, mean sqrt-KL) over this iteration's minibatches.

        With several data-parallel learners the sums are all-reduced first, so every
        learner adapts from the same numbers and the coefficients stay in sync.
        """
        module_ids = sorted(self.module.keys())
        sums = torch.zeros(len(module_ids), 3, device=self._device)
        for row, module_id in enumerate(module_ids):
            if module_id in self._divergence_sums:
                sums[row] = self._divergence_sums[module_id]
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(sums)
        return {
            module_id: (kl / count, sqrt_kl / count)
            for module_id, (kl, sqrt_kl, count) in zip(module_ids, sums.tolist())
            if count > 0
        }

    # -- state -------------------------------------------------------------------------
    @override(PPOFamilyTorchLearner)
    def get_state(self, components=None, *, not_components=None, **kwargs) -> dict[str, Any]:
        state = super().get_state(components, not_components=not_components, **kwargs)
        if self._check_component(COEFFICIENTS_STATE_KEY, components, not_components):
            state[COEFFICIENTS_STATE_KEY] = {
                module_id: {
                    BETA_KL: self.beta_kl_per_module[module_id].item(),
                    BETA_SQRT_KL: self.beta_sqrt_kl_per_module[module_id].item(),
                }
                for module_id in self.module.keys()
            }
        return state

    @override(PPOFamilyTorchLearner)
    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        for module_id, coefficients in state.get(COEFFICIENTS_STATE_KEY, {}).items():
            self.beta_kl_per_module[module_id].fill_(coefficients[BETA_KL])
            self.beta_sqrt_kl_per_module[module_id].fill_(coefficients[BETA_SQRT_KL])

    @override(PPOFamilyTorchLearner)
    def remove_module(self, module_id, **kwargs):
        spec = super().remove_module(module_id, **kwargs)
        self.beta_kl_per_module.pop(module_id, None)
        self.beta_sqrt_kl_per_module.pop(module_id, None)
        self._divergence_sums.pop(module_id, None)
        return spec
