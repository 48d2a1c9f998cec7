"""Differentiable sampling of discrete choices: Gumbel noise, Gumbel-softmax, straight-through.

Pure torch. Used by MADDPG's actions and by BN-MAPPO's graph sampling (edges and orders).

- Gumbel-max: with g_k ~ Gumbel(0, 1) i.i.d., argmax_k (l_k + g_k) is a sample of
  Categorical(softmax(l)).
- Gumbel-softmax (Jang et al. 2017; Maddison et al. 2017): the relaxed sample
  y = softmax((l + g) / T), differentiable in l; T -> 0 approaches the one-hot argmax.
- Straight-through (Bengio et al. 2013): use a hard value in the forward pass and the
  gradient of a soft surrogate of it in the backward pass.

Every draw comes from the `generator` argument; None means torch's global generator.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F


def gumbel_noise(
    shape: Sequence[int], *, generator: torch.Generator | None, dtype: torch.dtype = torch.float32, device=None
) -> torch.Tensor:
    """Standard Gumbel(0, 1) noise g = -log(-log(u)), u ~ U(0, 1) drawn from `generator`."""
    uniform = torch.rand(tuple(shape), generator=generator, dtype=dtype, device=device)
    # torch.rand may return exactly 0, where -log(-log(u)) = -inf (and at u = 1 it would be +inf).
    # Clamping to [tiny, 1 - eps] of the dtype keeps both logs finite in every float dtype; a
    # fixed bound such as 1e-10 would itself round to 0 in float16.
    finfo = torch.finfo(dtype)
    return -torch.log(-torch.log(uniform.clamp(finfo.tiny, 1.0 - finfo.eps)))


def straight_through(hard: torch.Tensor, soft: torch.Tensor) -> torch.Tensor:
    """A tensor whose value is `hard` and whose gradient is that of `soft`.

        forward:  hard
        backward: d/d(theta) = d(soft)/d(theta)

    The bracket is exactly 0 in floating point (x - x), so the value is exactly `hard`:
    a one-hot stays a one-hot, not 0.99999994. (`hard - soft.detach() + soft` would round.)
    """
    return hard.detach() + (soft - soft.detach())


def gumbel_softmax(
    logits: torch.Tensor, *, temperature: float = 1.0, hard: bool, generator: torch.Generator | None
) -> torch.Tensor:
    """A differentiable sample from Categorical(softmax(logits)), over the last dimension.

    soft:  y = softmax((logits + g) / T),  g ~ Gumbel(0, 1) i.i.d.
    hard:  forward value one_hot(argmax y), gradient that of the soft y (straight-through).

    The noise comes from `generator` (which must live on `logits.device`); None means
    torch's global generator.
    """
    if temperature <= 0:
        raise ValueError(f"gumbel_softmax: temperature must be > 0, got {temperature}")
    gumbel = gumbel_noise(logits.shape, generator=generator, dtype=logits.dtype, device=logits.device)
    soft = torch.softmax((logits + gumbel) / temperature, dim=-1)
    if not hard:
        return soft
    return straight_through(F.one_hot(soft.argmax(dim=-1), soft.shape[-1]).to(soft.dtype), soft)
