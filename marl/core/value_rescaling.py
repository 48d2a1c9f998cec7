"""Value rescaling: a critic that learns h(Q) instead of Q, for returns spanning orders of magnitude.

A critic fitted to Q directly spends its precision where Q is large: on mpe2's speaker-listener
the values run from about -80 (far from the goal) to -1 (at it), and the action's effect near the
goal (a few tenths) is below the critic's error on the large values. Learning h(Q) with a
squashing h gives the small values more of the network's resolution.

- `sqrt`, Pohlen et al. 2018 ("Observe and Look Further"; R2D2, MuZero), eps = 1e-2 as there:
      h(x)    = sign(x) (sqrt(|x| + 1) - 1) + eps x
      h^-1(x) = sign(x) (((sqrt(1 + 4 eps (|x| + 1 + eps)) - 1) / (2 eps))^2 - 1)
- `symlog`, Hafner et al. 2023 (DreamerV3):
      h(x) = sign(x) ln(1 + |x|),   h^-1(x) = sign(x) (exp(|x|) - 1)
- `none`: h(x) = x.

The Bellman target moves into the rescaled space as in Pohlen et al.'s transformed operator:
y = h(r + gamma h^-1(Q'_h(x', a'))). Both h are increasing and h(0) = 0.
"""

from __future__ import annotations

from typing import Literal

import torch

ValueRescaling = Literal["none", "sqrt", "symlog"]
SQRT_EPS = 1e-2


def rescale(values: torch.Tensor, kind: ValueRescaling) -> torch.Tensor:
    """h(values): the space the critic learns in."""
    if kind == "none":
        return values
    if kind == "sqrt":
        return torch.sign(values) * (torch.sqrt(values.abs() + 1.0) - 1.0) + SQRT_EPS * values
    if kind == "symlog":
        return torch.sign(values) * torch.log1p(values.abs())
    raise ValueError(f"unknown value rescaling {kind!r}; expected one of none, sqrt, symlog")


def unscale(values: torch.Tensor, kind: ValueRescaling) -> torch.Tensor:
    """h^-1(values): back to returns."""
    if kind == "none":
        return values
    if kind == "sqrt":
        root = (torch.sqrt(1.0 + 4.0 * SQRT_EPS * (values.abs() + 1.0 + SQRT_EPS)) - 1.0) / (2.0 * SQRT_EPS)
        return torch.sign(values) * (root**2 - 1.0)
    if kind == "symlog":
        return torch.sign(values) * torch.expm1(values.abs())
    raise ValueError(f"unknown value rescaling {kind!r}; expected one of none, sqrt, symlog")
