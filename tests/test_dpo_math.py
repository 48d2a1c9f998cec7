"""DPO's maths on hand-made batches (pure torch, no Ray): the penalised surrogate and the
coefficient rule of marl.algorithms.dpo.losses."""

from __future__ import annotations

import math

import pytest
import torch

from marl.algorithms.dpo.losses import SQRT_EPS, adapt_coefficient, dpo_policy_terms
from marl.core.masking import masked_mean_fn

TOL = 1e-9


def t(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


# -- the policy objective ---------------------------------------------------------------
#
#   row  log r   r          A      r*A        KL     sqrt(KL)
#   0    +0.1   1.105171   +1.0   +1.105171  0.00   0 (+eps)
#   1    -0.2   0.818731   -2.0   -1.637462  0.04   0.2
#   2     0.0   1.0        +0.5   +0.5       0.01   0.1
#   3    +0.3   1.349859   +1.5   +2.024788  0.09   0.3
# beta_sqrt = 0.5, beta_kl = 2.0

LOG_RATIO = [0.1, -0.2, 0.0, 0.3]
OLD_LOGP = [math.log(0.5), math.log(0.25), math.log(0.2), math.log(0.1)]
ADVANTAGES = [1.0, -2.0, 0.5, 1.5]
KL = [0.0, 0.04, 0.01, 0.09]
BETA_SQRT, BETA_KL = 0.5, 2.0


def _terms(mean=None, **kwargs):
    old_logp = t(OLD_LOGP)
    logp = old_logp + t(LOG_RATIO)
    return dpo_policy_terms(logp, old_logp, t(ADVANTAGES), t(KL), BETA_SQRT, BETA_KL, mean or masked_mean_fn(None), **kwargs)


def test_policy_terms_hand_batch():
    out = _terms()
    ratios = [math.exp(x) for x in LOG_RATIO]
    surrogate = -(ratios[0] * 1.0 + ratios[1] * -2.0 + ratios[2] * 0.5 + ratios[3] * 1.5) / 4
    sqrt_kl = (math.sqrt(0.0 + SQRT_EPS) + math.sqrt(0.04 + SQRT_EPS) + math.sqrt(0.01 + SQRT_EPS) + math.sqrt(0.09 + SQRT_EPS)) / 4
    kl = (0.0 + 0.04 + 0.01 + 0.09) / 4
    approx_kl = sum((r - 1.0) - x for r, x in zip(ratios, LOG_RATIO)) / 4

    assert out["surrogate_loss"].item() == pytest.approx(surrogate, abs=TOL)
    assert out["sqrt_kl"].item() == pytest.approx(sqrt_kl, abs=TOL)
    assert out["kl"].item() == pytest.approx(kl, abs=TOL)
    assert out["pg_loss"].item() == pytest.approx(surrogate + 0.5 * sqrt_kl + 2.0 * kl, abs=TOL)
    assert out["approx_kl"].item() == pytest.approx(approx_kl, abs=TOL)
    assert out["ratio_mean"].item() == pytest.approx(sum(ratios) / 4, abs=TOL)
    # the numbers themselves, rounded by hand:
    # -(1.105171 - 1.637462 + 0.5 + 2.024788) / 4;  (0.0001 + 0.2 + 0.1 + 0.3) / 4 (eps adds ~1e-4 on row 0)
    assert out["surrogate_loss"].item() == pytest.approx(-0.4981243, abs=1e-6)
    assert out["sqrt_kl"].item() == pytest.approx(0.150025, abs=1e-6)
    assert out["kl"].item() == pytest.approx(0.035, abs=TOL)
    assert out["pg_loss"].item() == pytest.approx(-0.4981243 + 0.0750125 + 0.07, abs=1e-6)


def test_policy_terms_respect_the_mask():
    """A masked-out row (RLlib's artificial bootstrap step) changes nothing, even with garbage in it."""
    mask = torch.tensor([True, True, False, True])
    out = _terms(mean=masked_mean_fn(mask))
    kept = [0, 1, 3]
    ratios = [math.exp(LOG_RATIO[i]) for i in kept]
    surrogate = -sum(r * ADVANTAGES[i] for r, i in zip(ratios, kept)) / 3
    sqrt_kl = sum(math.sqrt(KL[i] + SQRT_EPS) for i in kept) / 3
    kl = sum(KL[i] for i in kept) / 3
    assert out["surrogate_loss"].item() == pytest.approx(surrogate, abs=TOL)
    assert out["pg_loss"].item() == pytest.approx(surrogate + 0.5 * sqrt_kl + 2.0 * kl, abs=TOL)


def test_no_ratio_clipping():
    """Unlike PPO, a ratio far outside [1 - eps, 1 + eps] still carries its full gradient r * A."""
    old_logp = t([-1.0])
    logp = (old_logp + 1.0).requires_grad_(True)
    out = dpo_policy_terms(logp, old_logp, t([2.0]), t([0.0]), 0.0, 0.0, torch.mean)
    out["pg_loss"].backward()
    assert logp.grad.item() == pytest.approx(-math.e * 2.0, abs=TOL)  # d(-r A)/dlogp = -r A


def _old_equals_new_loss(sqrt_eps: float):
    """The first minibatch of every update: the policy still equals the rollout policy."""
    logits = torch.tensor([[0.2, -0.1, 0.5], [1.0, 0.0, -1.0]], dtype=torch.float64, requires_grad=True)
    new = torch.distributions.Categorical(logits=logits)
    old = torch.distributions.Categorical(logits=logits.detach())
    actions = torch.tensor([2, 0])
    kl = torch.distributions.kl.kl_divergence(old, new)
    assert torch.all(kl == 0.0)
    out = dpo_policy_terms(
        new.log_prob(actions), old.log_prob(actions), t([1.0, -0.5]), kl, 1.0, 1.0, torch.mean, sqrt_eps=sqrt_eps
    )
    out["pg_loss"].backward()
    return logits, new, actions


def test_gradient_is_finite_when_old_equals_new():
    logits, new, actions = _old_equals_new_loss(SQRT_EPS)
    assert torch.isfinite(logits.grad).all()
    # Both penalties have zero gradient at KL = 0: only the surrogate's gradient remains.
    reference = logits.detach().clone().requires_grad_(True)
    logp = torch.distributions.Categorical(logits=reference).log_prob(actions)
    (-(torch.exp(logp - logp.detach()) * t([1.0, -0.5])).mean()).backward()
    torch.testing.assert_close(logits.grad, reference.grad)


def test_without_eps_the_gradient_at_kl_zero_is_nan():
    """Why eps exists: d sqrt(x)/dx = inf at x = 0, times dKL/dtheta = 0, is NaN."""
    logits, _, _ = _old_equals_new_loss(0.0)
    assert torch.isnan(logits.grad).any()


# -- the coefficient rule -------------------------------------------------------------------

TARGET = 0.01  # d_t; the band where nothing changes is (d_t / 1.5, 1.5 d_t) = (0.006667, 0.015)


def test_adapt_halves_below_doubles_above_keeps_inside_the_band():
    assert adapt_coefficient(1.0, 0.005, TARGET) == 0.5  # 0.005 < 0.006667
    assert adapt_coefficient(1.0, 0.02, TARGET) == 2.0  # 0.02 > 0.015
    assert adapt_coefficient(1.0, 0.01, TARGET) == 1.0
    assert adapt_coefficient(1.0, 0.0067, TARGET) == 1.0  # just inside the lower edge
    assert adapt_coefficient(1.0, 0.0149, TARGET) == 1.0  # just inside the upper edge


def test_adapt_step_by_step():
    coeff = 1.0
    for measured, expected in [(0.001, 0.5), (0.001, 0.25), (0.05, 0.5), (0.01, 0.5), (0.03, 1.0), (0.03, 2.0)]:
        coeff = adapt_coefficient(coeff, measured, TARGET)
        assert coeff == expected


def test_adapt_is_clamped_at_both_bounds():
    assert adapt_coefficient(1.5e-3, 0.0, TARGET) == 1e-3  # 7.5e-4 -> low
    assert adapt_coefficient(1e-3, 0.0, TARGET) == 1e-3  # stays at low
    assert adapt_coefficient(600.0, 1.0, TARGET) == 1e3  # 1200 -> high
    assert adapt_coefficient(1e3, 1.0, TARGET) == 1e3  # stays at high
    assert adapt_coefficient(1.0, 1.0, TARGET, low=0.1, high=1.5) == 1.5
    assert adapt_coefficient(0.15, 0.0, TARGET, low=0.1, high=1.5) == 0.1
    # a value outside the bounds is pulled in even when the measurement is in the band
    assert adapt_coefficient(5.0, TARGET, TARGET, low=0.1, high=1.5) == 1.5


def test_adapt_sqrt_variant_compares_against_sqrt_target():
    sqrt_target = math.sqrt(TARGET)  # 0.1; band (0.0667, 0.15)
    assert adapt_coefficient(1.0, 0.05, sqrt_target) == 0.5
    assert adapt_coefficient(1.0, 0.2, sqrt_target) == 2.0
    assert adapt_coefficient(1.0, 0.1, sqrt_target) == 1.0
    # A policy whose KL is 0.005 everywhere: the KL coefficient halves, but its sqrt-KL,
    # 0.0707, is inside the sqrt band, so the sqrt coefficient stays.
    kl = 0.005
    assert adapt_coefficient(1.0, kl, TARGET) == 0.5
    assert adapt_coefficient(1.0, math.sqrt(kl), sqrt_target) == 1.0
