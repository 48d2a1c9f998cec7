"""Directed acyclic graphs over agents: differentiable sampling, fixed graphs, sparsity annealing.

Pure torch + numpy (no Ray). Convention throughout: ``A[..., j, i] = 1`` means agent j is
a parent of agent i, i.e. i conditions on j's action, so j acts before i.

Differentiable DAG sampling (Chen & Zhang, ICML 2023), acyclic by construction:

    A = U * (P^T M P)

- M: the strictly upper-triangular all-ones matrix (position k may feed position l > k);
- P: a permutation matrix, ``P[k, j] = 1`` when agent j sits at position k of the order;
  then ``(P^T M P)[j, i] = M[pos(j), pos(i)]``, so every edge runs forward in the order;
- U: a 0/1 edge-selection matrix, one hard Gumbel-softmax over {edge, no edge} per
  ordered pair.

P comes from Gumbel-Sinkhorn (logits + Gumbel noise, Sinkhorn normalisation in log
space, Hungarian matching to the nearest hard permutation) and both P and U use the
straight-through estimator: the forward value is hard, the gradient is the soft one's.
Gumbel noise and the straight-through estimator are marl/core/gumbel.py's; edge density and
depth are marl/core/graphs.py's.

Every random draw comes from the ``generator`` argument. None draws from torch's global
generator, and that is what BNModule passes: its action sampling (torch.distributions)
draws from the global generator as well, and RLlib seeds that one in every env runner and
learner process. Tests pass their own generator for reproducible graphs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence

import networkx as nx
import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from marl.core.gumbel import gumbel_noise, gumbel_softmax, straight_through
from marl.core.masking import MaskedMean
from marl.errors import ConfigError

FIXED_GRAPHS = ("empty", "full", "chain")


# ---------------------------------------------------------------------------
# Sampling


def log_sinkhorn(log_alpha: torch.Tensor, iterations: int = 20, temperature: float = 1.0) -> torch.Tensor:
    """Sinkhorn normalisation in log space: rows and columns of exp(result) sum to ~1."""
    log_alpha = log_alpha / temperature
    for _ in range(iterations):
        log_alpha = log_alpha - torch.logsumexp(log_alpha, dim=-1, keepdim=True)
        log_alpha = log_alpha - torch.logsumexp(log_alpha, dim=-2, keepdim=True)
    return log_alpha


def hungarian(log_soft: torch.Tensor) -> torch.Tensor:
    """Hard permutation matrices maximising the summed log-weights of `log_soft` (..., n, n).

    Matching on the log-space Sinkhorn output equals matching on its input: Sinkhorn only
    subtracts a constant per row and per column, which no assignment can tell apart.
    """
    flat = log_soft.detach().cpu().reshape(-1, *log_soft.shape[-2:]).numpy()
    hard = np.zeros_like(flat)
    for b, matrix in enumerate(flat):
        rows, cols = linear_sum_assignment(matrix, maximize=True)
        hard[b, rows, cols] = 1.0
    return torch.as_tensor(hard.reshape(log_soft.shape), dtype=log_soft.dtype, device=log_soft.device)


def sample_permutation(
    logits: torch.Tensor, generator: torch.Generator | None, *, iterations: int = 20, temperature: float = 1.0
) -> torch.Tensor:
    """Gumbel-Sinkhorn: a hard permutation matrix (..., n, n) with a straight-through gradient.

    ``P[k, j] = 1`` when agent j takes position k. Without a gradient to carry (acting in
    rollouts), the Sinkhorn iterations are skipped: they do not change the hard value.
    """
    noisy = logits + gumbel_noise(logits.shape, generator=generator, dtype=logits.dtype, device=logits.device)
    if not (torch.is_grad_enabled() and logits.requires_grad):
        return hungarian(noisy)
    log_soft = log_sinkhorn(noisy, iterations, temperature)
    return straight_through(hungarian(log_soft), log_soft.exp())


def sample_edges(logits: torch.Tensor, generator: torch.Generator | None, *, temperature: float = 1.0) -> torch.Tensor:
    """Hard 0/1 edge selections U (..., n, n) by a straight-through Gumbel-softmax per ordered pair.

    `logits` are the log-odds of "edge" against "no edge": the two-class Gumbel-softmax
    over logits (l, 0).
    """
    two_class = torch.stack([logits, torch.zeros_like(logits)], dim=-1)
    return gumbel_softmax(two_class, temperature=temperature, hard=True, generator=generator)[..., 0]


def order_mask(n: int, *, dtype=torch.float32, device=None) -> torch.Tensor:
    """M: strictly upper-triangular ones (n, n)."""
    return torch.triu(torch.ones(n, n, dtype=dtype, device=device), diagonal=1)


def dag_from_permutation(permutation: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    """A = U * (P^T M P) for permutation matrices P and edge selections U, both (..., n, n)."""
    n = permutation.shape[-1]
    mask = permutation.transpose(-1, -2) @ order_mask(n, dtype=permutation.dtype, device=permutation.device) @ permutation
    return edges * mask


def sample_dag(
    permutation_logits: torch.Tensor | None,
    edge_logits: torch.Tensor,
    generator: torch.Generator | None,
    *,
    sinkhorn_iterations: int = 20,
    temperature: float = 1.0,
) -> torch.Tensor:
    """A sampled DAG (..., n, n), differentiable in both logit tensors (straight-through).

    `permutation_logits` None fixes the order to the identity (agent i at position i), as
    the reference's released SMAC code does.
    """
    n = edge_logits.shape[-1]
    if permutation_logits is None:
        permutation = torch.eye(n, dtype=edge_logits.dtype, device=edge_logits.device).expand(edge_logits.shape)
    else:
        permutation = sample_permutation(permutation_logits, generator, iterations=sinkhorn_iterations, temperature=temperature)
    return dag_from_permutation(permutation, sample_edges(edge_logits, generator, temperature=temperature))


# ---------------------------------------------------------------------------
# Fixed graphs


def fixed_adjacency(graph, agents: Sequence[str]) -> np.ndarray:
    """The (n, n) 0/1 adjacency of a fixed graph over `agents` (in their given order).

    `graph` is "empty" (independent agents = MAPPO), "full" (every earlier agent is a
    parent of every later one: autoregressive in the given order), "chain"
    (agent k-1 -> agent k), a networkx DiGraph over agent names, or a list of
    [parent, child] name pairs. Cycles and unknown agents raise ConfigError.
    """
    agents = list(agents)
    n = len(agents)
    if isinstance(graph, str):
        if graph == "empty":
            return np.zeros((n, n), dtype=np.float32)
        if graph == "full":
            return np.triu(np.ones((n, n), dtype=np.float32), k=1)
        if graph == "chain":
            return np.eye(n, k=1, dtype=np.float32)
        raise ConfigError(f"unknown fixed graph {graph!r}; use one of {list(FIXED_GRAPHS)}, a networkx DiGraph or a list of [parent, child] pairs")
    digraph = graph if isinstance(graph, nx.DiGraph) else _digraph_from_pairs(graph)
    unknown = sorted(str(node) for node in digraph.nodes if node not in agents)
    if unknown:
        raise ConfigError(f"DAG names unknown agents {unknown}; the scenario's agents are {agents}")
    if not nx.is_directed_acyclic_graph(digraph):
        cycle = [edge[0] for edge in nx.find_cycle(digraph)]
        raise ConfigError(f"DAG has a cycle {' -> '.join(map(str, cycle + cycle[:1]))}; remove one of its edges")
    index = {agent: k for k, agent in enumerate(agents)}
    adjacency = np.zeros((n, n), dtype=np.float32)
    for parent, child in digraph.edges:
        adjacency[index[parent], index[child]] = 1.0
    return adjacency


def _digraph_from_pairs(pairs: Iterable) -> nx.DiGraph:
    digraph = nx.DiGraph()
    for pair in pairs:
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise ConfigError(f"DAG edge {pair!r} is not a [parent, child] pair")
        if pair[0] == pair[1]:
            raise ConfigError(f"DAG edge {list(pair)} is a self-loop; an agent cannot be its own parent")
        digraph.add_edge(*pair)
    return digraph


# ---------------------------------------------------------------------------
# Sparsity annealing


@dataclass(frozen=True)
class SparsitySchedule:
    """Target density tau and penalty weight alpha as functions of training progress p in [0, 1].

    Defaults follow the reference SMAC runs: tau = 1 until `tau_decay_start` (40 %), then
    falls in `tau_steps` (40) equal steps, reaching 0 at `tau_decay_end` (70 %); alpha =
    `alpha_start` (0.05) until `alpha_rise_start` (70 %), then rises linearly to
    `alpha_end` (1) at the end of training. The penalty alpha * |rho - tau| thus allows
    dense correlation early and drives the graph to empty by the end.
    """

    tau_decay_start: float = 0.4
    tau_decay_end: float = 0.7
    tau_steps: int = 40
    alpha_start: float = 0.05
    alpha_rise_start: float = 0.7
    alpha_end: float = 1.0

    def tau(self, progress: float) -> float:
        progress = min(max(progress, 0.0), 1.0)
        if progress <= self.tau_decay_start:
            return 1.0
        if progress >= self.tau_decay_end:
            return 0.0
        fraction = (progress - self.tau_decay_start) / (self.tau_decay_end - self.tau_decay_start)
        return 1.0 - math.floor(fraction * self.tau_steps + 1e-9) / self.tau_steps

    def alpha(self, progress: float) -> float:
        progress = min(max(progress, 0.0), 1.0)
        if progress <= self.alpha_rise_start:
            return self.alpha_start
        fraction = (progress - self.alpha_rise_start) / max(1.0 - self.alpha_rise_start, 1e-12)
        return self.alpha_start + fraction * (self.alpha_end - self.alpha_start)


def sparsity_penalty(density: torch.Tensor, tau: float, alpha: float, mean: MaskedMean = torch.mean) -> torch.Tensor:
    """alpha * |rho - tau|, averaged over the batch of sampled graphs (`mean`: over the rows that count)."""
    return alpha * mean((density - tau).abs())
