"""Tests for marl/algorithms/bn/dag.py: DAG sampling, fixed graphs, annealing (no Ray)."""

import itertools

import networkx as nx
import numpy as np
import pytest
import torch

from marl.algorithms.bn.dag import (
    SparsitySchedule,
    fixed_adjacency,
    log_sinkhorn,
    sample_dag,
    sample_edges,
    sample_permutation,
    sparsity_penalty,
)
from marl.errors import ConfigError

AGENTS = ["a", "b", "c", "d"]


def _generator(seed):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("n, batch", [(2, 64), (3, 64), (5, 64), (8, 32)])
@pytest.mark.parametrize("learned_order", [True, False])
def test_sampled_graphs_are_acyclic_0_1_matrices_without_self_loops(n, batch, learned_order):
    generator = _generator(n)
    for _ in range(4):
        perm_logits = 3 * torch.randn(batch, n, n, generator=generator) if learned_order else None
        edge_logits = 2 * torch.randn(batch, n, n, generator=generator)
        adjacency = sample_dag(perm_logits, edge_logits, generator)
        assert adjacency.shape == (batch, n, n)
        assert set(torch.unique(adjacency).tolist()) <= {0.0, 1.0}
        for graph in adjacency:
            assert graph.diagonal().sum() == 0
            assert nx.is_directed_acyclic_graph(nx.DiGraph(graph.numpy()))


def test_learned_orders_vary_and_identity_order_only_points_forward():
    generator = _generator(0)
    n = 4
    edges = torch.full((256, n, n), 5.0)  # almost every allowed edge selected
    learned = sample_dag(torch.zeros(256, n, n), edges, generator)
    orders = {tuple(nx.lexicographical_topological_sort(nx.DiGraph(g.numpy()))) for g in learned}
    assert len(orders) > 5  # uniform permutation logits: many different orders
    fixed = sample_dag(None, edges, generator)
    assert torch.all(torch.tril(fixed) == 0)  # identity order: j -> i only for j < i


def test_permutation_is_a_true_permutation_and_follows_strong_logits():
    generator = _generator(1)
    logits = torch.randn(50, 6, 6, generator=generator)
    permutation = sample_permutation(logits, generator)
    assert torch.all(permutation.sum(-1) == 1) and torch.all(permutation.sum(-2) == 1)
    assert set(torch.unique(permutation).tolist()) == {0.0, 1.0}
    # Logits far stronger than the Gumbel noise pick their permutation every time.
    target = torch.tensor([2, 0, 3, 1])
    strong = torch.full((20, 4, 4), -30.0)
    strong[:, torch.arange(4), target] = 30.0
    chosen = sample_permutation(strong, generator).argmax(-1)
    assert torch.all(chosen == target)


def test_sinkhorn_is_doubly_stochastic():
    soft = log_sinkhorn(torch.randn(3, 5, 5, generator=_generator(2)), iterations=50).exp()
    torch.testing.assert_close(soft.sum(-1), torch.ones(3, 5), atol=1e-4, rtol=0)
    torch.testing.assert_close(soft.sum(-2), torch.ones(3, 5), atol=1e-4, rtol=0)


def test_gradients_reach_both_logit_tensors():
    generator = _generator(3)
    perm_logits = torch.randn(16, 4, 4, generator=generator, requires_grad=True)
    edge_logits = torch.randn(16, 4, 4, generator=generator, requires_grad=True)
    adjacency = sample_dag(perm_logits, edge_logits, generator)
    weights = torch.randn(4, 4, generator=generator)
    (adjacency * weights).sum().backward()
    assert perm_logits.grad is not None and perm_logits.grad.abs().sum() > 0
    assert edge_logits.grad is not None and edge_logits.grad.abs().sum() > 0


def test_edge_probability_follows_the_logit():
    generator = _generator(4)
    logits = torch.full((20000,), 1.0)
    frequency = sample_edges(logits, generator).mean().item()
    assert abs(frequency - torch.sigmoid(torch.tensor(1.0)).item()) < 0.02


def test_same_generator_seed_same_graphs():
    edge_logits = torch.zeros(8, 4, 4)
    perm_logits = torch.zeros(8, 4, 4)
    first = sample_dag(perm_logits, edge_logits, _generator(7))
    second = sample_dag(perm_logits, edge_logits, _generator(7))
    torch.testing.assert_close(first, second)


def test_fixed_graphs():
    np.testing.assert_array_equal(fixed_adjacency("empty", AGENTS), np.zeros((4, 4)))
    full = fixed_adjacency("full", AGENTS)
    assert all(full[j, i] == (j < i) for j, i in itertools.product(range(4), repeat=2))
    chain = fixed_adjacency("chain", AGENTS)
    assert list(zip(*np.nonzero(chain))) == [(0, 1), (1, 2), (2, 3)]
    from_pairs = fixed_adjacency([["c", "a"], ["c", "b"]], AGENTS)
    assert list(zip(*np.nonzero(from_pairs))) == [(2, 0), (2, 1)]
    digraph = nx.DiGraph([("d", "a")])
    digraph.add_node("b")
    assert list(zip(*np.nonzero(fixed_adjacency(digraph, AGENTS)))) == [(3, 0)]


@pytest.mark.parametrize(
    "graph, message",
    [
        ([["a", "b"], ["b", "c"], ["c", "a"]], "cycle a -> b -> c -> a"),
        (nx.DiGraph([("a", "b"), ("b", "a")]), "cycle"),
        ([["a", "zed"]], r"unknown agents \['zed'\]"),
        ([["a", "a"]], "self-loop"),
        ([["a", "b", "c"]], "not a \\[parent, child\\] pair"),
        ("star", "unknown fixed graph 'star'"),
    ],
)
def test_fixed_graph_rejections_are_one_line_config_errors(graph, message):
    with pytest.raises(ConfigError, match=message) as error:
        fixed_adjacency(graph, AGENTS)
    assert "\n" not in str(error.value)


def test_default_schedule_at_known_points():
    schedule = SparsitySchedule()
    for progress in (0.0, 0.2, 0.4):
        assert schedule.tau(progress) == 1.0
    step = 0.3 / 40
    assert schedule.tau(0.4 + step / 2) == 1.0  # the first step has not been taken yet
    assert schedule.tau(0.4 + 1.5 * step) == pytest.approx(1 - 1 / 40)
    assert schedule.tau(0.55) == pytest.approx(0.5)
    assert schedule.tau(0.7) == 0.0 and schedule.tau(1.0) == 0.0
    taus = [schedule.tau(p) for p in np.linspace(0, 1, 2001)]
    assert all(a >= b for a, b in zip(taus, taus[1:]))  # never rises
    assert len(set(taus)) == 41  # 1, 40 intermediate steps ending at 0
    assert schedule.alpha(0.0) == schedule.alpha(0.7) == 0.05
    assert schedule.alpha(0.85) == pytest.approx(0.525)
    assert schedule.alpha(1.0) == pytest.approx(1.0)


def test_sparsity_penalty():
    density = torch.tensor([0.5, 1.0], requires_grad=True)
    penalty = sparsity_penalty(density, tau=0.25, alpha=0.5)
    assert penalty.item() == pytest.approx(0.5 * (0.25 + 0.75) / 2)
    penalty.backward()
    torch.testing.assert_close(density.grad, torch.tensor([0.25, 0.25]))


def test_permutation_without_gradient_skips_sinkhorn_but_not_its_value():
    logits = torch.randn(64, 5, 5, generator=_generator(8), requires_grad=True)
    with_gradient = sample_permutation(logits, _generator(9))
    with torch.no_grad():
        without = sample_permutation(logits, _generator(9))
    torch.testing.assert_close(with_gradient.detach(), without)
