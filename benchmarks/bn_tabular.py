#!/usr/bin/env python3
"""Tabular check of BN policies: price of anarchy J / J* of exact policy gradient, full vs empty DAG.

For each team size n and each DAG (empty = independent policies, full =
autoregressive in agent order), trains `--runs` tabular softmax policies from
random N(0, init_std) logits (one torch Generator per (n, DAG), seeded from
--seed) with the exact gradient of the exact discounted return on the
coordination game (the model below), then writes into OUT:
  poa.csv       n, dag, run, poa
  summary.csv   per (n, dag): mean, quantiles, share of runs within 5 % of the optimum
and prints the summary. PoA = 1 is the optimum; the softmax never reaches it
exactly, so the best runs stop just below 1.

usage: python benchmarks/bn_tabular.py --n 2 3 5 --runs 100 --out benchmarks/results/bn_tabular

The model (the tabular check of Chen & Zhang, ICML 2023): on the coordination game
(`scenarios/coordination_game.py`) every quantity is small enough to compute
exactly, so softmax policies can follow the true gradient of the true return and
we can see where they end up. With independent policies (the empty DAG) gradient
ascent often stops at the all-ones equilibrium (reward 2 per step); policies
that condition on earlier agents' actions (the full DAG) can reach all-zeros
(reward 3).

Everything is enumerated: states s and joint actions a are n-bit vectors
(index = sum_i bit_i 2^i). The next state is a with each bit flipped with
probability eps, independent of s; the reward is `team_reward` of the new state.
Agent i's policy is a softmax over its 2 actions with logits
theta_i[s, parents' actions, a_i]; the joint policy is the product over agents
(agents act in index order, which is a topological order of every DAG used here:
edges only run from lower to higher indices). With P_pi and r_pi the state
transition matrix and expected reward under pi, V = (I - gamma P_pi)^-1 r_pi and
J = mu^T V for the uniform initial distribution mu. Gradients come from autograd
through that exact linear solve. J* is the optimum over all joint policies (value
iteration over joint actions); the price of anarchy is J / J* (1 = optimal).

Batched over independent runs (a leading dim of the parameters), so many seeds
train as one tensor program. Pure torch, no Ray; tests/test_bn_tabular.py loads this
script as a module.
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import numpy as np
import torch

from marl.algorithms.bn.dag import fixed_adjacency
from scenarios.coordination_game import team_reward

NEAR_OPTIMAL = 0.95


# -- the exact model of the coordination game -----------------------------------------------


def joint_bits(n: int) -> np.ndarray:
    """(2^n, n) bit table: row k is the binary expansion of k, bit i = agent i."""
    return (np.arange(2**n)[:, None] >> np.arange(n)) & 1


class CoordinationGameMDP:
    """The coordination game's exact model: transitions T[a, s'] and expected rewards R[a]."""

    def __init__(self, n: int, flip_prob: float = 0.1, gamma: float = 0.95):
        self.n, self.flip_prob, self.gamma = n, flip_prob, gamma
        bits = joint_bits(n)
        differing = (bits[:, None, :] != bits[None, :, :]).sum(-1)
        # T[a, s'] = P(next state s' | joint action a); the current state does not enter.
        self._transition = torch.as_tensor(flip_prob**differing * (1 - flip_prob) ** (n - differing), dtype=torch.float64)
        # r[s'] = team reward of landing in s'.
        self._state_reward = torch.tensor([team_reward(row) for row in bits], dtype=torch.float64)

    @property
    def num_states(self) -> int:
        return 2**self.n

    def transition(self) -> torch.Tensor:
        return self._transition

    def state_reward(self) -> torch.Tensor:
        return self._state_reward

    def expected_reward(self) -> torch.Tensor:
        """R[a] = E[r(s') | a]."""
        return self._transition @ self._state_reward

    def optimal_value(self, tolerance: float = 1e-12) -> float:
        """J* = mu^T V* by value iteration over joint actions (uniform initial state)."""
        transition, reward = self.transition(), self.expected_reward()
        value = torch.zeros(self.num_states, dtype=torch.float64)
        while True:
            # Q(s, a) = R(a) + gamma sum_s' T(a, s') V(s'): the same for every s here.
            updated = (reward + self.gamma * transition @ value).max().expand(self.num_states)
            if torch.max(torch.abs(updated - value)) < tolerance:
                return float(updated.mean())
            value = updated


class TabularBNPolicy:
    """Softmax policies per agent over (state, parents' actions), for a DAG over agent indices.

    `adjacency[j, i] = 1` makes j a parent of i; edges must point from lower to higher
    indices so agents can act in index order. Parameters: one tensor per agent of shape
    (runs, 2^n states, 2^|Pa(i)| parent configurations, 2 actions).
    """

    def __init__(self, n: int, adjacency: np.ndarray, runs: int, generator: torch.Generator, init_std: float = 1.0):
        adjacency = np.asarray(adjacency)
        if np.any(np.tril(adjacency) != 0):
            raise ValueError("edges must point from lower to higher agent indices (j -> i with j < i)")
        self.n = n
        self.parents = [np.flatnonzero(adjacency[:, i]) for i in range(n)]
        bits = joint_bits(n)
        # For agent i and every joint action a: which parent configuration a shows it.
        self._parent_config = [
            torch.as_tensor((bits[:, parents] << np.arange(len(parents))).sum(-1), dtype=torch.long) for parents in self.parents
        ]
        self._own_action = [torch.as_tensor(bits[:, i], dtype=torch.long) for i in range(n)]
        self.logits = [
            (init_std * torch.randn(runs, 2**n, 2 ** len(parents), 2, generator=generator, dtype=torch.float64)).requires_grad_()
            for parents in self.parents
        ]

    def log_joint(self) -> torch.Tensor:
        """log pi(a | s) for every run, state and joint action: (runs, 2^n, 2^n)."""
        total = 0.0
        for logits, config, own in zip(self.logits, self._parent_config, self._own_action):
            log_probs = torch.log_softmax(logits, dim=-1)  # (runs, S, K, 2)
            total = total + log_probs[:, :, config, own]  # (runs, S, A)
        return total


def exact_return(mdp: CoordinationGameMDP, joint_policy: torch.Tensor) -> torch.Tensor:
    """J = mu^T (I - gamma P_pi)^-1 r_pi per run, for pi(a | s) of shape (runs, S, A)."""
    transition, reward = mdp.transition(), mdp.expected_reward()
    p_pi = joint_policy @ transition  # (runs, S, S')
    r_pi = joint_policy @ reward  # (runs, S)
    eye = torch.eye(mdp.num_states, dtype=p_pi.dtype)
    value = torch.linalg.solve(eye - mdp.gamma * p_pi, r_pi.unsqueeze(-1)).squeeze(-1)
    return value.mean(-1)  # uniform initial state


def train_exact_policy_gradient(
    mdp: CoordinationGameMDP, policy: TabularBNPolicy, *, lr: float = 0.01, iterations: int = 2000
) -> torch.Tensor:
    """Gradient ascent on the exact J for every run at once; returns the final J per run."""
    optimizer = torch.optim.SGD(policy.logits, lr=lr)
    for _ in range(iterations):
        optimizer.zero_grad()
        objective = exact_return(mdp, policy.log_joint().exp())
        (-objective.sum()).backward()  # runs are independent: the sum's gradient is each run's own
        optimizer.step()
    with torch.no_grad():
        return exact_return(mdp, policy.log_joint().exp())


def price_of_anarchy(n: int, adjacency: np.ndarray, runs: int, seed: int, **kwargs) -> np.ndarray:
    """J / J* after exact policy-gradient training from `runs` random initialisations."""
    mdp = CoordinationGameMDP(n)
    generator = torch.Generator().manual_seed(seed)
    policy = TabularBNPolicy(n, adjacency, runs, generator, init_std=kwargs.pop("init_std", 1.0))
    final = train_exact_policy_gradient(mdp, policy, **kwargs)
    return (final / mdp.optimal_value()).numpy()


# -- the benchmark ----------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, nargs="+", default=[2, 3, 5], help="team sizes")
    parser.add_argument("--dags", nargs="+", default=["empty", "full"], help="fixed DAGs to compare")
    parser.add_argument("--runs", type=int, default=100, help="random initialisations per (n, DAG)")
    parser.add_argument("--lr", type=float, default=0.01, help="gradient-ascent step size (the paper's 0.01)")
    parser.add_argument("--iterations", type=int, default=2000, help="gradient steps (the paper's 2000)")
    parser.add_argument("--init-std", type=float, default=1.0, help="std of the random initial logits")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/bn_tabular"))
    args = parser.parse_args()
    torch.set_num_threads(1)  # tiny matrices: threads only add overhead

    args.out.mkdir(parents=True, exist_ok=True)
    rows, summary = [], []
    for n in args.n:
        agents = [f"agent_{i}" for i in range(n)]
        for dag in args.dags:
            start = time.perf_counter()
            poa = price_of_anarchy(
                n, fixed_adjacency(dag, agents), runs=args.runs, seed=args.seed + 1000 * n,
                lr=args.lr, iterations=args.iterations, init_std=args.init_std,
            )
            rows += [{"n": n, "dag": dag, "run": k, "poa": float(p)} for k, p in enumerate(poa)]
            q = np.percentile(poa, [0, 25, 50, 75, 100])
            summary.append({
                "n": n, "dag": dag, "runs": args.runs, "mean": poa.mean(), "min": q[0], "q25": q[1],
                "median": q[2], "q75": q[3], "max": q[4], "near_optimal": float(np.mean(poa >= NEAR_OPTIMAL)),
                "seconds": time.perf_counter() - start,
            })
    _write_csv(args.out / "poa.csv", rows)
    _write_csv(args.out / "summary.csv", summary)
    print(f"exact policy gradient, lr={args.lr}, {args.iterations} iterations, init N(0, {args.init_std}^2), {args.runs} runs each")
    print(f"{'n':>2} {'dag':>6} {'mean':>6} {'min':>6} {'q25':>6} {'median':>6} {'q75':>6} {'max':>6} {'>=0.95':>7} {'s':>6}")
    for s in summary:
        print(f"{s['n']:>2} {s['dag']:>6} {s['mean']:6.3f} {s['min']:6.3f} {s['q25']:6.3f} {s['median']:6.3f} "
              f"{s['q75']:6.3f} {s['max']:6.3f} {s['near_optimal']:7.2f} {s['seconds']:6.1f}")


def _write_csv(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()} for row in rows)


if __name__ == "__main__":
    main()
