"""marl/core/graphs.py: edge density and depth of hand-made and sampled DAGs (pure torch)."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
import torch

from marl.core.graphs import batched_depths, edge_density

N = 4
EMPTY = torch.zeros(N, N)
CHAIN = torch.diag(torch.ones(N - 1), 1)  # 0 -> 1 -> 2 -> 3
COMPLETE = torch.triu(torch.ones(N, N), 1)  # j -> i for every j < i
DIAMOND = torch.zeros(N, N)
DIAMOND[0, 1] = DIAMOND[0, 2] = DIAMOND[1, 3] = DIAMOND[2, 3] = 1  # two paths of 2 edges 0 -> 3


@pytest.mark.parametrize(
    ("graph", "density", "depth"),
    [(EMPTY, 0.0, 0), (CHAIN, 3 / 6, 3), (COMPLETE, 1.0, 3), (DIAMOND, 4 / 6, 2)],
    ids=["empty", "chain", "complete", "diamond"],
)
def test_density_and_depth_of_hand_made_graphs(graph, density, depth):
    assert edge_density(graph).item() == pytest.approx(density)
    assert batched_depths(graph).item() == depth
    # numpy in, the same numbers out (coordination/ passes numpy arrays)
    assert edge_density(graph.numpy().astype(bool)) == pytest.approx(density)
    assert batched_depths(graph.numpy()).item() == depth


def test_depth_is_the_longest_path_not_the_shortest():
    shortcut = CHAIN.clone()
    shortcut[0, 3] = 1
    assert batched_depths(shortcut).item() == 3


def test_a_single_agent_has_density_zero():
    assert edge_density(torch.zeros(1, 1)).item() == 0.0
    assert batched_depths(torch.zeros(1, 1)).item() == 0


def test_statistics_keep_the_batch_shape():
    batch = torch.stack([torch.stack([EMPTY, CHAIN, COMPLETE]), torch.stack([DIAMOND, EMPTY, CHAIN])])  # (2, 3, n, n)
    np.testing.assert_allclose(edge_density(batch).numpy(), [[0.0, 0.5, 1.0], [4 / 6, 0.0, 0.5]])
    assert batched_depths(batch).tolist() == [[0, 3, 3], [2, 0, 3]]


def test_density_is_differentiable():
    adjacency = COMPLETE.clone().requires_grad_(True)
    edge_density(adjacency).backward()
    torch.testing.assert_close(adjacency.grad, torch.full((N, N), 1 / 6))


@pytest.mark.parametrize(
    "graph",
    [CHAIN + CHAIN.T, CHAIN + torch.diag(torch.ones(1), -3), torch.eye(N)],
    ids=["two-cycle", "four-cycle", "self-loops"],
)
def test_cycles_are_refused(graph):
    with pytest.raises(ValueError, match="has a cycle"):
        batched_depths(graph)
    with pytest.raises(ValueError, match="sample 1 has a cycle"):
        batched_depths(torch.stack([EMPTY, graph]))


def test_depths_of_random_graphs_match_networkx():
    generator = torch.Generator().manual_seed(10)
    # Random DAGs: random edges forward in the index order, then the nodes relabelled at random.
    forward = torch.triu((torch.rand(200, 6, 6, generator=generator) < 0.4).float(), diagonal=1)
    relabel = [torch.randperm(6, generator=generator) for _ in range(200)]
    adjacency = torch.stack([graph[order][:, order] for graph, order in zip(forward, relabel)])
    depths = batched_depths(adjacency)
    assert depths.tolist() == [nx.dag_longest_path_length(nx.DiGraph(graph.numpy())) for graph in adjacency]
    assert len(set(depths.tolist())) > 2  # a range of depths, not one value
