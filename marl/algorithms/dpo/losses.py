"""DPO's policy objective and coefficient rule as pure torch (Su & Lu, "Decentralized
Policy Optimization"); tested on hand-made batches without Ray.

Per agent i, with r = pi_i / pi_i_old and A_i from agent i's own critic:

    L_i = -E[r A_i] + beta_sqrt * E_o[sqrt(KL(pi_i_old || pi_i))]
                    + beta_kl   * E_o[KL(pi_i_old || pi_i)]          (- c_ent H, in the learner)

No ratio clipping: the two KL penalties keep the update in DPO's trust region.
"""

from __future__ import annotations

import torch

from marl.core.keys import APPROX_KL, KL, PG_LOSS, RATIO_MEAN, SQRT_KL, SURROGATE_LOSS
from marl.core.masking import MaskedMean

# Added under the square root; see dpo_policy_terms.
SQRT_EPS = 1e-8


def dpo_policy_terms(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    kl: torch.Tensor,
    beta_sqrt: float | torch.Tensor,
    beta_kl: float | torch.Tensor,
    mean: MaskedMean,
    sqrt_eps: float = SQRT_EPS,
) -> dict[str, torch.Tensor]:
    """DPO's policy objective and its diagnostics; `kl` is per row: KL(pi_old || pi) at each o.

    surrogate_loss = -E[r A]
    sqrt_kl        = E[sqrt(KL + eps)]
    kl             = E[KL]
    pg_loss        = surrogate_loss + beta_sqrt * sqrt_kl + beta_kl * kl   (what is minimised)
    approx_kl      = E[(r - 1) - log r]   (sample estimate, comparable with the PPO family's)
    ratio_mean     = E[r]
    """
    log_ratio = logp - old_logp
    ratio = torch.exp(log_ratio)
    surrogate = -mean(ratio * advantages)
    # eps: d sqrt(x)/dx = 1 / (2 sqrt(x)) is infinite at KL = 0, which is exactly where
    # the policy starts every update (new == old) and where dKL/dtheta = 0; the chain
    # rule then gives inf * 0 = NaN. With eps the derivative is at most 1/(2 sqrt(eps)),
    # so the product is 0 there. The clamp guards against a KL that rounding makes
    # slightly negative (sqrt of a negative is NaN as well).
    sqrt_kl = mean(torch.sqrt(kl.clamp(min=0.0) + sqrt_eps))
    mean_kl = mean(kl)
    return {
        SURROGATE_LOSS: surrogate,
        SQRT_KL: sqrt_kl,
        KL: mean_kl,
        PG_LOSS: surrogate + beta_sqrt * sqrt_kl + beta_kl * mean_kl,
        APPROX_KL: mean((ratio - 1.0) - log_ratio).detach(),
        RATIO_MEAN: mean(ratio).detach(),
    }


def adapt_coefficient(coeff: float, measured: float, target: float, low: float = 1e-3, high: float = 1e3) -> float:
    """PPO's adaptive-KL rule as DPO uses it, for one coefficient.

    Halve when the measured divergence is below target / 1.5, double when above
    1.5 * target, keep otherwise; the result is clamped to [low, high]. For the
    sqrt-KL coefficient pass the measured mean sqrt-KL and sqrt(kl_target).
    """
    if measured < target / 1.5:
        coeff = coeff / 2.0
    elif measured > target * 1.5:
        coeff = coeff * 2.0
    return float(min(max(coeff, low), high))
