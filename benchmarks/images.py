#!/usr/bin/env python3
"""Env steps/s of the PPO family on an image scenario: cooperative_pong's raw 280x480x3 frames.

For each algorithm (ippo, mappo) and frame setting, `marl train` of the config `marl init`
writes for the scenario (its convolutional encoder, `global_state: observations`), sampling
in the driver (`num_env_runners: 0`, as on a 2-core machine), 400 env steps per iteration,
2 epochs; the figure is the median of the iterations' steps/s after the first (warm-up).

Settings:
  default   the scenario's raw frames, `model.image_size: auto` (pooled to 56x96 here);
  wrappers  README's SuperSuit wrapper: `wrappers: [{resize_v1: {x_size: 64, y_size: 64}}]`;
  grey      README's grey frames: `[color_reduction_v0, {resize_v1: {x_size: 64, y_size: 64}}]` (an MLP);
  small     raw frames, `model.image_size: 48` (pooled to 28x48);
  full      raw frames at full size (`model.image_size: full`): what the networks read before the default.

usage: python benchmarks/images.py [--algorithms ippo mappo] [--settings default wrappers] [--iterations 4]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile

import yaml

from marl.config import apply_overrides
from marl.experiment import build_config
from marl.experiment.templates import template_yaml

PONG = "pettingzoo.butterfly.cooperative_pong_v6:parallel_env"
RESIZE_64 = "{resize_v1: {x_size: 64, y_size: 64}}"
SETTINGS = {
    "default": [],
    "wrappers": [f"scenario.wrappers=[{RESIZE_64}]"],
    "grey": [f"scenario.wrappers=[color_reduction_v0, {RESIZE_64}]"],
    "small": ["model.image_size=48"],
    "full": ["model.image_size=full"],
}
COMMON = [
    "resources.num_env_runners=0",
    "resources.num_envs_per_env_runner=2",
    "training.train_batch_size=400",
    "training.num_epochs=2",
    "checkpoint.every_iterations=1000",
    "stop.env_steps=1000000",
]


def steps_per_second(algorithm: str, setting: str, iterations: int) -> float:
    """Median env steps/s of `iterations` training iterations after a warm-up one."""
    from marl.training.runner import train

    raw = yaml.safe_load(template_yaml(algorithm, PONG))
    config = build_config(apply_overrides(raw, COMMON + SETTINGS[setting]))
    rates: list[float] = []
    with tempfile.TemporaryDirectory() as runs:
        train(config, runs_root=runs, echo=lambda line: None, max_iterations=iterations + 1,
              on_iteration=lambda algo, row: rates.append(row["steps_per_s"]))
    return statistics.median(rates[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algorithms", nargs="+", default=["ippo", "mappo"])
    parser.add_argument("--settings", nargs="+", default=["default", "wrappers"], choices=sorted(SETTINGS))
    parser.add_argument("--iterations", type=int, default=4)
    args = parser.parse_args()
    print("| algorithm | frames | env steps/s |\n|---|---|---:|", flush=True)
    for algorithm in args.algorithms:
        for setting in args.settings:
            rate = steps_per_second(algorithm, setting, args.iterations)
            print(f"| {algorithm} | {setting} | {rate:,.0f} |", flush=True)


if __name__ == "__main__":
    main()
