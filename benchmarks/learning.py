#!/usr/bin/env python3
"""Learning curves: algorithms x seeds on one scenario, with the shipped configs.

Trains each (variant, seed) with `marl train` one after another (never two at
once); a run that was interrupted is resumed from its last checkpoint, a finished
one is kept. A variant is an algorithm with its shipped config
(`configs/{algorithm}_{scenario}.yaml`) or, with `--variant`, any config plus
dotted overrides under a label of its own. Then writes into OUT:
  curves.csv    algorithm, seed, env_steps, team_return (RLlib's mean over the last
                100 training episodes, stochastic policy, summed over agents), and
                edge_density for bn_mappo runs (empty for others)
  curves.png    mean and min/max over seeds per algorithm
  edge_density.png   the same for the edge density of bn_mappo's graphs (when there are any)
  summary.csv   per run: the final training return and a 100-episode greedy and
                stochastic evaluation of the final checkpoint; bn_mappo checkpoints are
                evaluated over sampled graphs (eval_*_return) and over the empty graph,
                i.e. decentralised (eval_*_return_empty_dag)
and prints the summary. Re-running with --report-only re-reads existing runs.

usage: python benchmarks/learning.py --scenario simple_spread --algorithms mappo ippo \
           --seeds 0 1 2 --env-steps 2000000 --out benchmarks/results/spread
       python benchmarks/learning.py --scenario simple_spread --algorithms dpo \
           --variant "ippo_dpo_settings=configs/dpo_simple_spread.yaml algorithm=ippo ..." ...
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from marl.training.checkpoints import latest_checkpoint, read_meta
from marl.training.plots import plot_curves

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Variant:
    """What one curve of the plot trains: a config file plus dotted overrides."""

    label: str
    config: Path
    overrides: tuple[str, ...] = ()

    @classmethod
    def shipped(cls, algorithm: str, scenario: str) -> "Variant":
        return cls(algorithm, REPO / "configs" / f"{algorithm}_{scenario}.yaml")

    @classmethod
    def parse(cls, text: str) -> "Variant":
        """`LABEL=CONFIG [KEY=VALUE ...]`, e.g. `ippo_dpo_settings=configs/dpo_simple_spread.yaml algorithm=ippo`."""
        head, *overrides = text.split()
        label, sep, config = head.partition("=")
        if not sep or not label or not config:
            raise SystemExit(f"--variant {text!r}: expected 'LABEL=CONFIG [KEY=VALUE ...]'")
        path = Path(config) if Path(config).is_absolute() else REPO / config
        return cls(label, path, tuple(overrides))


def run_name(label: str, seed: int) -> str:
    return f"{label}_seed{seed}"


def find_run(out: Path, label: str, seed: int) -> Path | None:
    runs = sorted((out / "runs").glob(f"{run_name(label, seed)}-*")) if (out / "runs").is_dir() else []
    return runs[-1] if runs else None


def trained_steps(run_dir: Path) -> int:
    """Env steps in the run's last complete checkpoint (0 when it has none)."""
    checkpoint = latest_checkpoint(run_dir)
    return int(read_meta(checkpoint)["env_steps"]) if checkpoint is not None else 0


def train(out: Path, variant: Variant, seed: int, env_steps: int, extra: list[str]) -> None:
    run_dir = find_run(out, variant.label, seed)
    if run_dir is not None and latest_checkpoint(run_dir) is not None:
        if trained_steps(run_dir) >= env_steps:
            return
        command = [sys.executable, "-m", "marl.cli", "train", "--resume", str(run_dir)]
    else:
        command = [sys.executable, "-m", "marl.cli", "train", str(variant.config), *variant.overrides,
                   f"stop.env_steps={env_steps}", f"seed={seed}", f"name={run_name(variant.label, seed)}", *extra,
                   "--runs-dir", str(out / "runs")]
    print("$ " + " ".join(command), flush=True)
    subprocess.run(command, check=True)


DENSITY_KEY = "team/edge_density"  # bn_mappo's logged edge density


def read_curve(run_dir: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """env steps, team return and (bn_mappo runs) edge density per iteration."""
    with (run_dir / "metrics.csv").open() as handle:
        rows = [r for r in csv.DictReader(handle) if r.get("episode_return_mean")]
    has_density = bool(rows) and all(r.get(DENSITY_KEY) not in (None, "") for r in rows)
    density = np.array([float(r[DENSITY_KEY]) for r in rows]) if has_density else None
    return np.array([float(r["env_steps"]) for r in rows]), np.array([float(r["episode_return_mean"]) for r in rows]), density


def evaluate(run_dir: Path, stochastic: bool, episodes: int = 100) -> dict[str, dict]:
    """`marl evaluate`'s JSON summaries by execution graph ("" for policies without one)."""
    command = [sys.executable, "-m", "marl.cli", "evaluate", str(run_dir), "--episodes", str(episodes)]
    if stochastic:
        command.append("--stochastic")
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    summaries = [json.loads(line) for line in out.strip().splitlines() if line.startswith("{")]
    return {summary.get("dag", ""): summary for summary in summaries}


def _evaluation_columns(greedy: dict[str, dict], stochastic: dict[str, dict]) -> dict[str, float]:
    main = "sampled" if "sampled" in greedy else ""
    columns = {
        "eval_greedy_return": greedy[main]["team_return"]["mean"],
        "eval_stochastic_return": stochastic[main]["team_return"]["mean"],
    }
    if "empty" in greedy:  # bn_mappo: decentralised execution
        columns["eval_greedy_return_empty_dag"] = greedy["empty"]["team_return"]["mean"]
        columns["eval_stochastic_return_empty_dag"] = stochastic["empty"]["team_return"]["mean"]
    for mode, summaries in (("greedy", greedy), ("stochastic", stochastic)):  # the scenario's task metrics
        columns.update({f"eval_{mode}_{k}": v["mean"] for k, v in summaries[main]["metrics"].items()})
    return columns


def report(out: Path, labels: list[str], seeds: list[int], return_ylim: tuple[float, float] | None = None) -> None:
    curves, summary = [], []
    for label in labels:
        for seed in seeds:
            run_dir = find_run(out, label, seed)
            if run_dir is None:
                continue
            steps, returns, density = read_curve(run_dir)
            densities = density if density is not None else [None] * len(steps)
            curves += [(label, seed, int(s), float(r), d) for s, r, d in zip(steps, returns, densities)]
            greedy, stochastic = evaluate(run_dir, stochastic=False), evaluate(run_dir, stochastic=True)
            summary.append({
                "variant": label, "seed": seed, "env_steps": int(steps[-1]),
                "train_return_final": float(returns[-1]),
                **_evaluation_columns(greedy, stochastic),
            })
    with (out / "curves.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["variant", "seed", "env_steps", "team_return", "edge_density"])
        writer.writerows([(*row[:4], "" if row[4] is None else float(row[4])) for row in curves])
    if summary:
        with (out / "summary.csv").open("w", newline="") as handle:
            writer = csv.DictWriter(handle, list(dict.fromkeys(k for row in summary for k in row)))
            writer.writeheader()
            writer.writerows(summary)
    _plot(out, curves, labels, return_ylim)
    for row in summary:
        print(" ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
    for label in labels:
        finals = [row["train_return_final"] for row in summary if row["variant"] == label]
        if finals:
            print(f"{label}: final team return {np.mean(finals):.2f} +- {np.std(finals):.2f} over {len(finals)} seed(s)")


def _plot(out: Path, curves, labels, return_ylim: tuple[float, float] | None = None) -> None:
    for column, file, ylabel, ylim in (
        (3, "curves.png", "team return (sum over agents)", return_ylim),
        (4, "edge_density.png", "edge density of the DAG", None),
    ):
        runs: dict[str, dict[int, list]] = {}
        for row in curves:
            if row[column] is not None:
                runs.setdefault(row[0], {}).setdefault(row[1], []).append((row[2], row[column]))
        if runs:
            plot_curves(out / file, {
                label: {seed: tuple(np.array(v) for v in zip(*sorted(points))) for seed, points in runs[label].items()}
                for label in labels if label in runs
            }, ylabel=ylabel, ylim=ylim)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", default="simple_spread")
    parser.add_argument("--algorithms", nargs="*", default=["mappo", "ippo"],
                        help="algorithms trained with their shipped config for --scenario")
    parser.add_argument("--variant", action="append", default=[], metavar="'LABEL=CONFIG [KEY=VALUE ...]'",
                        help="a further curve: any config plus overrides under its own label (repeatable)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--env-steps", type=int, default=2_000_000)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "learning")
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--ylim", nargs=2, type=float, metavar=("LOW", "HIGH"),
                        help="y range of curves.png (e.g. Aloha: -20 80; random play starts near -8,000)")
    parser.add_argument("overrides", nargs="*", help="extra dotted config overrides for every run")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    variants = [Variant.shipped(a, args.scenario) for a in args.algorithms] + [Variant.parse(v) for v in args.variant]
    if not args.report_only:
        for variant in variants:
            for seed in args.seeds:
                train(args.out, variant, seed, args.env_steps, args.overrides)
    report(args.out, [v.label for v in variants], args.seeds, return_ylim=args.ylim)


if __name__ == "__main__":
    main()
