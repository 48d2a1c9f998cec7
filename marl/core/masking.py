"""Means over the rows a mask keeps: how every loss skips padding and absent agents.

RLlib pads episode chunks (its loss mask marks the real rows) and an agent that has left
or not yet entered has no action to learn from; losses average over the remaining rows.
Pure torch.
"""

from __future__ import annotations

from typing import Callable

import torch

MaskedMean = Callable[[torch.Tensor], torch.Tensor]
"""values -> mean over the kept rows; losses take one so they need not know about masks."""


def masked_mean_fn(mask: torch.Tensor | None) -> MaskedMean:
    """The mean over the rows where `mask` is true (bool or 0/1), or over all rows when there is no mask.

        mean(x) = sum_b mask_b x_b / max(sum_b mask_b, 1)

    An all-false mask gives 0, not 0/0.
    """
    if mask is None:
        return torch.mean
    mask = mask.bool()
    count = mask.sum().clamp(min=1)
    # where(), not a product: a NaN or inf in a masked-out row must not leak into the mean (0 * NaN = NaN).
    return lambda values: torch.where(mask, values, torch.zeros_like(values)).sum() / count
