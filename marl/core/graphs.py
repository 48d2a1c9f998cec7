"""Statistics of directed acyclic graphs over agents: edge density and depth.

Pure torch (numpy arrays are accepted too). Convention: ``A[..., j, i] = 1`` is the edge
j -> i (j is a parent of i); a leading batch of graphs is allowed everywhere.
Used by BN-MAPPO (its sparsity penalty and logged statistics) and by coordination/
(the analysis of sampled graphs).
"""

from __future__ import annotations

import numpy as np
import torch


def edge_density(adjacency: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
    """rho = edges / (n(n-1)/2) per graph, shape (...,); in [0, 1] for a DAG.

    n(n-1)/2 is the most edges a DAG over n nodes can have. Differentiable in the entries
    (BN-MAPPO's sparsity penalty backpropagates through it); 0 for n = 1.
    Returns the input's array type.
    """
    n = adjacency.shape[-1]
    return adjacency.sum(axis=(-1, -2)) / max(n * (n - 1) / 2, 1.0)


def batched_depths(adjacency: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Edges on the longest directed path of each graph (..., n, n) -> (...,) long.

    0 for the empty graph, n - 1 for a chain or a complete DAG. Vectorised with Boolean
    matrix powers: (A^k)[j, i] > 0 exactly when some path of k edges runs j -> i, so the
    depth is the largest k with A^k != 0. A DAG has no path of n edges (it would repeat a
    node), so A^n != 0 means a cycle: ValueError. Entries > 0.5 count as edges.
    """
    edges = (torch.as_tensor(adjacency).detach() > 0.5).to(torch.float32)
    n = edges.shape[-1]
    depth = torch.zeros(edges.shape[:-2], dtype=torch.long, device=edges.device)
    paths = edges  # paths of k edges
    for k in range(1, n + 1):
        has_paths = paths.flatten(-2).amax(-1) > 0
        if not has_paths.any():
            break
        if k == n:
            where = has_paths.nonzero()[0].tolist()  # the first cyclic graph's batch index; [] for one graph
            label = "" if not where else f" sample {where[0] if len(where) == 1 else tuple(where)}"
            raise ValueError(f"adjacency{label} has a cycle: not a DAG")
        depth = torch.where(has_paths, torch.full_like(depth, k), depth)
        paths = (paths @ edges).clamp(max=1.0)  # 0/1 again: counts of paths could grow large
    return depth
