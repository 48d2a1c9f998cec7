#!/usr/bin/env python3
"""Time to result: how long shipped configs take to reach a team return, in env steps and seconds.

Trains each config (with its shipped settings; only the seed and the step budget are set)
for each seed, one run at a time, each in a fresh process with its own local Ray, until
RLlib's training return (mean team return over the last 100 training episodes, the
exploring policy) first reaches --target, or --max-steps. Reports per run:
  seconds     wall-clock from the first `algo.train()` call (algorithm build excluded)
  env_steps   sampled env steps at that iteration
  steps/s     env steps per second over the iterations that updated the networks (for an
              off-policy learner that waits for `learning_starts`, the iterations after it)
Run it on an otherwise idle machine: the seconds are the claim.

usage: python benchmarks/time_to_target.py --target -60 --max-steps 1500000 --seeds 0 1 2 \\
         configs/mappo_simple_spread.yaml configs/maddpg_simple_spread.yaml [--out results.csv]
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def one_run(config_path: str, seed: int, target: float, max_steps: int) -> dict:
    import ray

    from marl.experiment import load_config

    config = load_config(Path(config_path), [f"seed={seed}", f"stop.env_steps={max_steps}"])
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    algo = config.training.to_rllib(config, num_gpus_per_learner=0).build_algo()
    reached, learning_rates = None, []
    try:
        start = last_time = time.perf_counter()
        last_steps = 0
        while True:
            result = algo.train()
            now, steps = time.perf_counter(), int(result["num_env_steps_sampled_lifetime"])
            if result.get("learners"):  # this iteration updated the networks
                learning_rates.append((steps - last_steps, now - last_time))
            last_time, last_steps = now, steps
            team_return = result["env_runners"].get("episode_return_mean", float("-inf"))
            if reached is None and team_return >= target:
                reached = {"seconds": now - start, "env_steps": steps}
                break
            if steps >= max_steps:
                break
    finally:
        algo.stop()
        ray.shutdown()
    steps_done, seconds_done = (np.sum(learning_rates, axis=0) if learning_rates else (0.0, 1.0))
    return {
        "config": Path(config_path).stem,
        "seed": seed,
        "reached": reached is not None,
        "seconds": reached["seconds"] if reached else float("nan"),
        "env_steps": reached["env_steps"] if reached else float("nan"),
        "steps_per_s_learning": float(steps_done / seconds_done),
        "final_return": float(result["env_runners"].get("episode_return_mean", float("nan"))),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("configs", nargs="*")
    parser.add_argument("--target", type=float, required=True)
    parser.add_argument("--max-steps", type=int, default=1_500_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--out", type=Path, help="also write the per-run rows as CSV")
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_run(args.one[0], int(args.one[1]), args.target, args.max_steps)))
        return
    if not args.configs:
        parser.error("name at least one config")
    rows = []
    for config in args.configs:
        for seed in args.seeds:
            out = subprocess.run(
                [sys.executable, __file__, "--one", str(Path(config).resolve()), str(seed), "--target", str(args.target), "--max-steps", str(args.max_steps)],
                capture_output=True, text=True, check=True, cwd=REPO,
            ).stdout
            row = json.loads(out.strip().splitlines()[-1])
            rows.append(row)
            outcome = (f"reached {args.target:g} after {row['seconds']:.0f} s, {row['env_steps']:,} env steps"
                       if row["reached"] else f"not reached in {args.max_steps:,} env steps (final {row['final_return']:.1f})")
            print(f"{row['config']:28s} seed {seed}: {outcome}; {row['steps_per_s_learning']:,.0f} env steps/s while learning", flush=True)
    for config in args.configs:
        mine = [r for r in rows if r["config"] == Path(config).stem]
        hit = [r for r in mine if r["reached"]]
        if hit:
            print(f"{Path(config).stem:28s} {len(hit)}/{len(mine)} seeds reached {args.target:g}: "
                  f"{np.mean([r['seconds'] for r in hit]):.0f} s, {np.mean([r['env_steps'] for r in hit]):,.0f} env steps (mean over those)")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with args.out.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)


if __name__ == "__main__":
    main()
