#!/usr/bin/env python3
"""How close sampling comes to a scenario's own step rate, for scenarios without a numpy twin.

For each scenario:
  1. raw: the PettingZoo env alone, random actions from its spaces, one process;
  2. each backend's env runner: `EnvRunner.sample()` of a MAPPO experiment written by
     `marl init` (8 worlds in the driver, greedy forward passes of the real modules, one
     torch thread as `marl train` gives the driver), after a warm-up; median of 5 calls.
`pettingzoo` is RLlib's stock runner over the adapter; `vectorized` is our runner over
stacked copies of the same env (marl/envs/vectorized/stacked.py).

usage: python benchmarks/sampling_overhead.py [--scenarios simple_world_comm_v3 ...] [--steps 4000]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")  # as `marl train`'s driver: benchmarks/hardware.py, docs/performance.md

import numpy as np  # noqa: E402
import yaml  # noqa: E402

from marl.config import apply_overrides  # noqa: E402

from marl.experiment import build_config  # noqa: E402
from marl.envs.scenario import ScenarioSpec  # noqa: E402
from marl.experiment.templates import template_yaml  # noqa: E402

DEFAULT_SCENARIOS = ["simple_world_comm_v3", "pettingzoo.sisl.multiwalker_v9:parallel_env"]


def raw_rate(scenario: str, seconds: float = 5.0, seed: int = 0) -> float:
    """Env steps/s of the scenario alone with random actions."""
    env = ScenarioSpec(scenario).make()
    env.reset(seed=seed)
    for agent in env.possible_agents:
        env.action_space(agent).seed(seed)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        if not env.agents:
            env.reset()
        env.step({agent: env.action_space(agent).sample() for agent in env.agents})
        steps += 1
    env.close()
    return steps / (time.perf_counter() - start)


def sampling_rate(scenario: str, backend: str, steps: int, calls: int = 5) -> float:
    """Median env steps/s of one env runner's `sample()` on this backend."""
    import torch

    torch.set_num_threads(1)
    raw = yaml.safe_load(template_yaml("mappo", scenario))
    overrides = ["resources.num_env_runners=0", "resources.num_envs_per_env_runner=8", f"scenario.backend={backend}"]
    config = build_config(apply_overrides(raw, overrides))
    algo = config.training.to_rllib(config, num_gpus_per_learner=0).build_algo()
    try:
        runner = algo.env_runner
        runner.sample(num_timesteps=steps // 2, explore=False)  # warm-up
        rates = []
        for _ in range(calls):
            start = time.perf_counter()
            episodes = runner.sample(num_timesteps=steps, explore=False)
            rates.append(sum(episode.env_steps() for episode in episodes) / (time.perf_counter() - start))
        return float(np.median(rates))
    finally:
        algo.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenarios", nargs="+", default=DEFAULT_SCENARIOS)
    parser.add_argument("--steps", type=int, default=4000, help="env steps per timed sample() call")
    args = parser.parse_args()

    import ray

    ray.init(address="local", include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    try:
        print(f"{'scenario':46s} {'raw':>8s} {'pettingzoo':>17s} {'vectorized':>17s}")
        for scenario in args.scenarios:
            raw = raw_rate(scenario)
            stock = sampling_rate(scenario, "pettingzoo", args.steps)
            fast = sampling_rate(scenario, "vectorized", args.steps)
            print(f"{scenario:46s} {raw:8,.0f} {stock:8,.0f} ({stock / raw:4.2f}x) {fast:8,.0f} ({fast / raw:4.2f}x)", flush=True)
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
