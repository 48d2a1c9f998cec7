#!/usr/bin/env python3
"""Tabular check of BN policies: price of anarchy J / J* of exact policy gradient, full vs empty DAG.

For each team size n and each DAG (empty = independent policies, full =
autoregressive in agent order), trains `--runs` tabular softmax policies from
random N(0, init_std) logits (one torch Generator per (n, DAG), seeded from
--seed) with the exact gradient of the exact discounted return on the
coordination game (marl/algorithms/bn/tabular.py), then writes into OUT:
  poa.csv       n, dag, run, poa
  summary.csv   per (n, dag): mean, quantiles, share of runs within 5 % of the optimum
and prints the summary. PoA = 1 is the optimum; the softmax never reaches it
exactly, so the best runs stop just below 1.

usage: python benchmarks/bn_tabular.py --n 2 3 5 --runs 100 --out benchmarks/results/bn_tabular
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import numpy as np
import torch

from marl.algorithms.bn.dag import fixed_adjacency
from marl.algorithms.bn.tabular import price_of_anarchy

NEAR_OPTIMAL = 0.95


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
