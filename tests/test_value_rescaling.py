"""Value rescaling h and its inverse (pure torch)."""

from __future__ import annotations

import pytest
import torch

from marl.core.value_rescaling import rescale, unscale

VALUES = torch.tensor([-500.0, -80.0, -10.0, -1.0, -0.04, 0.0, 0.3, 7.0, 1e3], dtype=torch.float64)


@pytest.mark.parametrize("kind", ["none", "sqrt", "symlog"])
def test_unscale_inverts_rescale(kind):
    torch.testing.assert_close(unscale(rescale(VALUES, kind), kind), VALUES, rtol=1e-9, atol=1e-9)


def test_hand_values():
    # Pohlen et al.'s h: sign(x)(sqrt(|x| + 1) - 1) + 0.01 x; symlog: sign(x) ln(1 + |x|)
    x = torch.tensor([-80.0, -1.0, 0.0, 3.0], dtype=torch.float64)
    torch.testing.assert_close(rescale(x, "sqrt"), torch.tensor([-8.0 - 0.8, -(2**0.5 - 1) - 0.01, 0.0, 1.0 + 0.03], dtype=torch.float64))
    torch.testing.assert_close(rescale(x, "symlog"), torch.log1p(x.abs()) * x.sign())
    assert torch.equal(rescale(x, "none"), x)


@pytest.mark.parametrize("kind", ["sqrt", "symlog"])
def test_rescaling_is_increasing_and_squashes_large_values(kind):
    h = rescale(VALUES, kind)
    assert (h[1:] > h[:-1]).all()
    # The point of it: a step of 1 near Q = -1 moves h more than the same step near Q = -80.
    near, far = (rescale(torch.tensor([v + 1.0]), kind) - rescale(torch.tensor([v]), kind) for v in (-1.5, -80.0))
    assert near.item() > 4 * far.item()


def test_unknown_kind_is_rejected():
    with pytest.raises(ValueError, match="unknown value rescaling"):
        rescale(VALUES, "log")
    with pytest.raises(ValueError, match="unknown value rescaling"):
        unscale(VALUES, "log")
