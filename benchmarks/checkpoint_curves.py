#!/usr/bin/env python3
"""A scenario metric over training: evaluate every kept checkpoint of some runs.

Training curves (`benchmarks/learning.py`) show the return of the exploring policy; a metric
such as speaker-listener's `reached_target` needs greedy evaluation episodes, so this script
evaluates each complete checkpoint of each run (keep enough of them: `checkpoint.keep`) on the
same episodes (`--episodes`, seed 1000 as `marl evaluate`) and writes
  checkpoint_curves.csv   label, seed, env_steps, the metric's mean over the episodes, team return
  checkpoint_curves.png   mean and min/max over seeds per label
into --out. A run's label is its run name without `_seed<N>` (learning.py's naming).

usage: python benchmarks/checkpoint_curves.py RUN_DIR [RUN_DIR ...] --metric reached_target \\
         [--episodes 100] --out OUT
"""

from __future__ import annotations

import argparse
import csv
import re
from pathlib import Path

import numpy as np

from marl.evaluation import evaluate
from marl.training.checkpoints import complete_checkpoints, read_meta
from marl.training.plots import plot_curves

RUN_NAME = re.compile(r"^(?P<label>.+)_seed(?P<seed>\d+)(-\d{8}-\d{6})?$")


def label_and_seed(run_dir: Path) -> tuple[str, int]:
    match = RUN_NAME.match(run_dir.name)
    if match is None:
        raise SystemExit(f"{run_dir}: expected a run directory named LABEL_seedN[-DATE-TIME] (benchmarks/learning.py's runs)")
    return match["label"], int(match["seed"])


def curve_of(run_dir: Path, metric: str, episodes: int) -> list[dict]:
    label, seed = label_and_seed(run_dir)
    checkpoints = complete_checkpoints(run_dir)
    if not checkpoints:
        raise SystemExit(f"{run_dir}: no complete checkpoint")
    rows = []
    for checkpoint in checkpoints:
        result = evaluate(checkpoint, episodes=episodes)
        if metric not in result.scenario_metrics:
            raise SystemExit(f"{checkpoint}: the scenario reports no {metric!r}; it has {sorted(result.scenario_metrics)}")
        row = {
            "label": label, "seed": seed, "env_steps": int(read_meta(checkpoint)["env_steps"]),
            metric: float(np.mean(result.scenario_metrics[metric])), "team_return": float(np.mean(result.team_returns)),
        }
        print(" ".join(f"{key}={value:.3f}" if isinstance(value, float) else f"{key}={value}" for key, value in row.items()), flush=True)
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--metric", default="reached_target", help="a scenario metric of `marl evaluate` (default reached_target)")
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    for run in args.runs:
        label_and_seed(run)  # every name checked before any evaluation
    rows = [row for run in args.runs for row in curve_of(run, args.metric, args.episodes)]
    args.out.mkdir(parents=True, exist_ok=True)
    with (args.out / "checkpoint_curves.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    curves: dict[str, dict[int, tuple[np.ndarray, np.ndarray]]] = {}
    for label in dict.fromkeys(row["label"] for row in rows):
        for seed in sorted({row["seed"] for row in rows if row["label"] == label}):
            points = sorted((row["env_steps"], row[args.metric]) for row in rows if row["label"] == label and row["seed"] == seed)
            curves.setdefault(label, {})[seed] = (np.array([p[0] for p in points]), np.array([p[1] for p in points]))
    plot_curves(args.out / "checkpoint_curves.png", curves, ylabel=f"{args.metric} (greedy, {args.episodes} episodes per checkpoint)")
    print(f"wrote {args.out / 'checkpoint_curves.csv'} and checkpoint_curves.png")


if __name__ == "__main__":
    main()
