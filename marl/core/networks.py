"""The networks every algorithm builds from: orthogonally initialised MLPs and the value head.

Pure torch. The algorithms own their architectures (which inputs an actor or a critic
reads); this module owns the layers, so that IPPO/MAPPO/DPO, BN-MAPPO and MADDPG
initialise the same way.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from marl.core.value_norm import ValueNormalizer

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU}

# sqrt(2): the gain that keeps activations' scale through ReLU-like layers (Saxe et al. 2014),
# the value the PPO/MAPPO reference implementations use for every hidden layer.
HIDDEN_GAIN = math.sqrt(2)


def orthogonal_init(layer: nn.Linear | nn.Conv2d, gain: float) -> nn.Linear | nn.Conv2d:
    """Orthogonal weights scaled by `gain`, zero bias; returns the layer."""
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)
    return layer


def mlp(in_dim: int, hidden: list[int], out_dim: int, activation: str, out_gain: float) -> nn.Sequential:
    """Linear layers `in_dim -> hidden... -> out_dim`, `activation` between them, none at the end.

    Orthogonal init with gain sqrt(2) on hidden layers and `out_gain` on the last: 0.01 for a
    policy's logits (a near-uniform policy at the start), 1 for a value or a Q-value.
    """
    layers: list[nn.Module] = []
    sizes = [in_dim, *hidden]
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        layers += [orthogonal_init(nn.Linear(fan_in, fan_out), HIDDEN_GAIN), ACTIVATIONS[activation]()]
    layers.append(orthogonal_init(nn.Linear(sizes[-1], out_dim), out_gain))
    return nn.Sequential(*layers)


def value_head(in_dim: int, hidden: list[int], activation: str, *, normalize: bool) -> tuple[nn.Sequential, ValueNormalizer | None]:
    """A critic V(x) and, when `normalize`, the running normaliser of its targets (MAPPO's ValueNorm).

    The critic is an MLP with one output (gain 1). With a normaliser it is trained on
    normalised targets (x - mean) / std, so its raw output is in normalised units and
    `in_return_units` maps it back; without one the raw output already is the value.
    Two objects, not one module: modules keep them as `critic` and `value_normalizer`,
    the names their learners and checkpoints use.
    """
    return mlp(in_dim, hidden, 1, activation, out_gain=1.0), ValueNormalizer() if normalize else None


def in_return_units(values: torch.Tensor, normalizer: ValueNormalizer | None) -> torch.Tensor:
    """The critic's raw `values` de-normalised (what GAE reads); unchanged without a normaliser."""
    return values if normalizer is None else normalizer.denormalize(values)
