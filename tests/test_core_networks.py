"""marl/core/networks.py: the MLP builder's layout and initialisation, and the value head (pure torch)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from marl.core.networks import in_return_units, mlp, value_head
from marl.core.value_norm import ValueNormalizer


def test_mlp_layout_and_orthogonal_init():
    torch.manual_seed(0)
    net = mlp(5, [16, 8], 3, "tanh", out_gain=0.01)
    linears = [layer for layer in net if isinstance(layer, nn.Linear)]
    assert [(layer.in_features, layer.out_features) for layer in linears] == [(5, 16), (16, 8), (8, 3)]
    assert [type(layer) for layer in net] == [nn.Linear, nn.Tanh, nn.Linear, nn.Tanh, nn.Linear]  # no activation at the end
    for layer, gain in zip(linears, [math.sqrt(2), math.sqrt(2), 0.01]):
        weight = layer.weight.detach()
        # Orthogonal rows or columns (whichever are fewer), scaled by the gain.
        gram = weight.T @ weight if weight.shape[0] >= weight.shape[1] else weight @ weight.T
        torch.testing.assert_close(gram, gain**2 * torch.eye(gram.shape[0]), atol=1e-5, rtol=1e-5)
        assert torch.count_nonzero(layer.bias) == 0


def test_mlp_without_hidden_layers_is_one_linear_layer():
    assert [type(layer) for layer in mlp(4, [], 2, "relu", out_gain=1.0)] == [nn.Linear]


def test_value_head_with_and_without_normalisation():
    critic, normalizer = value_head(6, [32], "relu", normalize=True)
    assert critic[-1].out_features == 1 and isinstance(normalizer, ValueNormalizer)
    assert value_head(6, [32], "relu", normalize=False)[1] is None


def test_in_return_units_denormalises_only_with_a_normaliser():
    raw = torch.tensor([-1.0, 0.0, 2.0])
    assert torch.equal(in_return_units(raw, None), raw)
    normalizer = ValueNormalizer()
    normalizer.update(torch.tensor([10.0, 20.0, 30.0]))
    torch.testing.assert_close(in_return_units(raw, normalizer), normalizer.denormalize(raw))
    mean, _ = normalizer.mean_var()
    assert in_return_units(torch.zeros(1), normalizer).item() == pytest.approx(mean.item())
