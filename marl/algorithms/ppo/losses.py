"""The PPO-family loss as pure torch: named terms, as in the papers.

Used by IPPO and MAPPO (and any learner in the family); tested on hand-made
batches without Ray.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from marl.core.keys import APPROX_KL, CLIP_FRAC, PG_LOSS, RATIO_MEAN
from marl.core.masking import MaskedMean


def clipped_surrogate(
    logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, clip_param: float, mean: MaskedMean
) -> dict[str, torch.Tensor]:
    """PPO's clipped policy objective and its diagnostics.

    pg_loss   = -E[min(r A, clip(r, 1-eps, 1+eps) A)], r = pi/pi_old
    approx_kl = E[(r - 1) - log r]    (the low-variance, always >= 0 estimator)
    clip_frac = fraction of rows where |r - 1| > eps
    """
    log_ratio = logp - old_logp
    ratio = torch.exp(log_ratio)
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1.0 - clip_param, 1.0 + clip_param) * advantages
    return {
        PG_LOSS: -mean(torch.min(unclipped, clipped)),
        APPROX_KL: mean((ratio - 1.0) - log_ratio).detach(),
        CLIP_FRAC: mean(((ratio - 1.0).abs() > clip_param).float()).detach(),
        RATIO_MEAN: mean(ratio).detach(),
    }


def value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    targets: torch.Tensor,
    mean: MaskedMean,
    *,
    huber_delta: float | None,
    clip_param: float | None,
) -> torch.Tensor:
    """Critic loss: Huber (or squared) error, optionally with PPO-style value clipping.

    With clipping, the loss is max(err(v), err(v_old + clip(v - v_old, -eps, eps)))
    as in MAPPO's reference code, so the critic cannot move far from its rollout-time
    prediction in one update.
    """

    def error(prediction: torch.Tensor) -> torch.Tensor:
        if huber_delta is None:
            return 0.5 * (prediction - targets) ** 2
        return F.huber_loss(prediction, targets, delta=huber_delta, reduction="none")

    loss = error(values)
    if clip_param is not None:
        clipped_values = old_values + torch.clamp(values - old_values, -clip_param, clip_param)
        loss = torch.max(loss, error(clipped_values))
    return mean(loss)


def explained_variance(targets: torch.Tensor, predictions: torch.Tensor) -> torch.Tensor:
    """1 - Var[target - prediction] / Var[target]: 1 is perfect, 0 is a constant guess."""
    var_targets = targets.var()
    # torch.where, not `if`: a Python branch on a device value would wait for the GPU.
    return torch.where(var_targets > 0, 1.0 - (targets - predictions).var() / var_targets.clamp(min=1e-30), 0.0)
