#!/usr/bin/env python3
"""Compare learning curves from several `benchmarks/learning.py` result folders.

Each argument is `LABEL=CURVES_CSV:VARIANT`. Prints, at the given env steps, each curve's mean
and std over seeds (each seed's curve linearly interpolated at that step), with --target R the
env steps at which each seed's training return first reached R, and draws the mean and min/max
band per curve into --out.

usage: python benchmarks/compare_curves.py \\
         "stock runner=benchmarks/results/spread/curves.csv:mappo" \\
         "fast path=benchmarks/results/spread_fast_path/curves.csv:mappo" \\
         --steps 100000 300000 500000 1000000 --out benchmarks/results/spread_fast_path/compare.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from marl.training.plots import plot_curves


def load(spec: str) -> tuple[str, dict[int, pd.DataFrame]]:
    label, _, rest = spec.partition("=")
    path, _, variant = rest.rpartition(":")
    curves = pd.read_csv(path)
    curves = curves[curves.iloc[:, 0] == variant]  # first column: the variant ("algorithm" in older files)
    if curves.empty:
        raise SystemExit(f"{spec}: no rows for variant {variant!r} in {path}")
    return label, {seed: rows.sort_values("env_steps") for seed, rows in curves.groupby("seed")}


def at_step(seeds: dict[int, pd.DataFrame], step: float) -> np.ndarray:
    return np.array([np.interp(step, rows.env_steps, rows.team_return) for rows in seeds.values()])


def first_reached(rows: pd.DataFrame, target: float) -> float | None:
    """The env steps of the first point of a seed's curve at or above `target` (None if never)."""
    hits = rows.env_steps[rows.team_return >= target]
    return float(hits.iloc[0]) if len(hits) else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("curves", nargs="+", help="LABEL=CURVES_CSV:VARIANT")
    parser.add_argument("--steps", type=float, nargs="+", default=[1e5, 3e5, 5e5, 1e6])
    parser.add_argument("--target", type=float, help="also print when each seed first reached this team return")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    loaded = [load(spec) for spec in args.curves]
    for step in args.steps:
        cells = []
        for label, seeds in loaded:
            values = at_step(seeds, step)
            cells.append(f"{label}: {values.mean():7.2f} ± {values.std():.2f} ({len(values)} seeds)")
        print(f"{int(step):>10,} env steps | " + " | ".join(cells))
    if args.target is not None:
        for label, seeds in loaded:
            first = {seed: first_reached(rows, args.target) for seed, rows in seeds.items()}
            cells = ", ".join(f"seed {seed}: {'-' if step is None else f'{step:,.0f}'}" for seed, step in first.items())
            print(f"{label}: first team return >= {args.target:g} at env steps {cells}")
    if args.out:
        plot_curves(args.out, {
            label: {seed: (rows.env_steps.to_numpy(), rows.team_return.to_numpy()) for seed, rows in seeds.items()}
            for label, seeds in loaded
        })


if __name__ == "__main__":
    main()
