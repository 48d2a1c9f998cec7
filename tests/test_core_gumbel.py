"""marl/core/gumbel.py: Gumbel noise, Gumbel-softmax and straight-through on hand-made inputs (pure torch)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from marl.core.gumbel import gumbel_noise, gumbel_softmax, straight_through


def t(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# -- Gumbel noise -----------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64])
def test_gumbel_noise_is_finite_at_the_ends_of_the_uniform(dtype, monkeypatch):
    # torch.rand can return exactly 0 (and, rounded, values at 1): the clamp must keep both logs finite.
    monkeypatch.setattr(torch, "rand", lambda shape, **kwargs: torch.tensor([0.0, 0.5, 1.0], dtype=kwargs["dtype"]))
    noise = gumbel_noise((3,), generator=None, dtype=dtype)
    assert noise.dtype == dtype
    assert torch.all(torch.isfinite(noise))
    assert noise[0] < noise[1] < noise[2]  # still monotone in u
    assert noise[1].item() == pytest.approx(-math.log(math.log(2.0)), abs=2e-3)


def test_gumbel_noise_has_the_gumbel_mean_and_variance():
    noise = gumbel_noise((200_000,), generator=generator(12), dtype=torch.float64)
    # Gumbel(0, 1): mean = Euler-Mascheroni gamma, variance = pi^2 / 6; standard errors ~0.003 and ~0.01.
    assert noise.mean().item() == pytest.approx(0.5772156649, abs=0.015)
    assert noise.var().item() == pytest.approx(math.pi**2 / 6, abs=0.05)


# -- straight-through -------------------------------------------------------------------


def test_straight_through_forwards_the_hard_value_and_backpropagates_the_soft_gradient():
    logits = torch.tensor([0.3, -1.2, 2.0], requires_grad=True)
    soft = torch.softmax(logits, dim=-1)
    hard = torch.tensor([0.0, 0.0, 1.0])
    weights = torch.tensor([1.0, 2.0, -3.0])

    estimate = straight_through(hard, soft)
    assert torch.equal(estimate, hard)  # exactly, not 0.99999994
    (weights * estimate).sum().backward()
    straight_through_gradient = logits.grad.clone()

    logits.grad = None
    (weights * torch.softmax(logits, dim=-1)).sum().backward()
    torch.testing.assert_close(straight_through_gradient, logits.grad, atol=0, rtol=0)


def test_straight_through_sends_no_gradient_to_the_hard_value():
    hard = torch.tensor([1.0, 0.0], requires_grad=True)
    soft = torch.tensor([0.7, 0.3], requires_grad=True)
    straight_through(hard, soft).sum().backward()
    assert hard.grad is None
    torch.testing.assert_close(soft.grad, torch.ones(2))


# -- Gumbel-softmax ---------------------------------------------------------------------

LOGITS = [1.0, 0.0, -1.0, 2.0]


def test_soft_samples_are_distributions_whose_argmax_follows_softmax():
    draws = 200_000
    logits = t(LOGITS).expand(draws, -1)
    soft = gumbel_softmax(logits, hard=False, generator=generator(0))

    assert soft.shape == (draws, 4)
    assert torch.all(soft > 0)
    torch.testing.assert_close(soft.sum(-1), torch.ones(draws, dtype=torch.float64), atol=1e-12, rtol=0)
    # Gumbel-max: argmax(logits + g) ~ Categorical(softmax(logits)). (The MEAN of the soft sample is
    # not softmax(logits), so the frequencies are those of its argmax.) Each frequency has standard
    # error sqrt(p(1-p)/n) <= 0.0011 here; 5 of them is a bound a correct sampler breaks with
    # probability < 1e-6 per class, and a sampler off by 0.01 (e.g. noise scaled wrongly) fails it.
    probs = torch.softmax(t(LOGITS), -1).numpy()
    frequencies = np.bincount(soft.argmax(-1).numpy(), minlength=4) / draws
    tolerance = 5 * np.sqrt(probs * (1 - probs) / draws)
    np.testing.assert_array_less(np.abs(frequencies - probs), tolerance)


def test_no_noise_direction_is_favoured():
    # Equal logits: every class equally likely (catches noise that is not i.i.d. per class).
    draws = 100_000
    soft = gumbel_softmax(torch.zeros(draws, 5), hard=False, generator=generator(1))
    frequencies = np.bincount(soft.argmax(-1).numpy(), minlength=5) / draws
    np.testing.assert_allclose(frequencies, 0.2, atol=5 * math.sqrt(0.2 * 0.8 / draws))


def test_hard_sample_is_exactly_one_hot_at_the_soft_argmax():
    logits = torch.randn(1_000, 7, generator=generator(2))
    soft = gumbel_softmax(logits, hard=False, generator=generator(3))
    hard = gumbel_softmax(logits, hard=True, generator=generator(3))
    assert set(hard.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(hard.sum(-1), torch.ones(1_000))  # exact, not approximately 1
    assert torch.equal(hard.argmax(-1), soft.argmax(-1))


def test_hard_sample_has_the_soft_samples_gradient():
    weights = torch.randn(64, 5, generator=generator(4))  # a loss that depends on every entry

    def logits_gradient(hard: bool) -> torch.Tensor:
        logits = torch.randn(64, 5, generator=generator(5)).requires_grad_(True)
        sample = gumbel_softmax(logits, hard=hard, generator=generator(6))  # same noise for both
        (weights * sample).sum().backward()
        return logits.grad

    soft_gradient, straight_through_gradient = logits_gradient(False), logits_gradient(True)
    assert soft_gradient.abs().sum() > 0
    torch.testing.assert_close(straight_through_gradient, soft_gradient, atol=0, rtol=0)


def test_temperature_sharpens_the_soft_sample():
    logits = torch.randn(500, 4, generator=generator(7))
    hot = gumbel_softmax(logits, temperature=10.0, hard=False, generator=generator(8))
    cold = gumbel_softmax(logits, temperature=0.01, hard=False, generator=generator(8))
    assert cold.max(-1).values.mean() > 0.99  # nearly one-hot
    assert hot.max(-1).values.mean() < 0.5
    torch.testing.assert_close(cold.argmax(-1), hot.argmax(-1))  # same noise: the same argmax
    with pytest.raises(ValueError, match="temperature"):
        gumbel_softmax(logits, temperature=0.0, hard=False, generator=None)


def test_gumbel_softmax_is_reproducible_with_the_generator_and_leaves_global_rng_alone():
    logits = torch.randn(10, 5, generator=generator(9))
    torch.manual_seed(123)
    global_state = torch.get_rng_state()
    first = gumbel_softmax(logits, hard=False, generator=generator(10))
    again = gumbel_softmax(logits, hard=False, generator=generator(10))
    other = gumbel_softmax(logits, hard=False, generator=generator(11))
    assert torch.equal(first, again)
    assert not torch.allclose(first, other)
    assert torch.equal(torch.get_rng_state(), global_state)  # the noise came from our generator only
