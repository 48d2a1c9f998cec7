"""marl/core/masking.py: means over the rows a mask keeps (pure torch)."""

from __future__ import annotations

import pytest
import torch

from marl.core.masking import masked_mean_fn

TOL = 1e-6


def t(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def test_masked_mean_ignores_masked_rows():
    values = t([1.0, 1e6, 3.0, -1e6, 5.0])
    assert masked_mean_fn(None)(values).item() == pytest.approx(sum([1.0, 1e6, 3.0, -1e6, 5.0]) / 5, abs=TOL)
    bool_mask = torch.tensor([True, False, True, False, True])
    assert masked_mean_fn(bool_mask)(values).item() == pytest.approx(3.0, abs=TOL)
    float_mask = t([1.0, 0.0, 1.0, 0.0, 1.0])
    assert masked_mean_fn(float_mask)(values).item() == pytest.approx(3.0, abs=TOL)


def test_masked_mean_all_masked_is_zero():
    values = t([2.0, 4.0])
    assert masked_mean_fn(torch.tensor([False, False]))(values).item() == 0.0


def test_masked_mean_keeps_nan_in_masked_rows_out():
    values = t([1.0, float("nan"), 3.0, float("inf")])
    assert masked_mean_fn(torch.tensor([True, False, True, False]))(values).item() == pytest.approx(2.0)


def test_masked_mean_gradient_is_zero_on_masked_rows():
    values = t([1.0, 2.0, 3.0]).requires_grad_(True)
    masked_mean_fn(torch.tensor([True, False, True]))(values).backward()
    torch.testing.assert_close(values.grad, t([0.5, 0.0, 0.5]))
