#!/usr/bin/env python3
"""Training throughput on mpe2 simple_spread_v3 (N=3), side by side at one learning workload.

Measures, one after another (never two at once), in separate processes:
  1. the raw scenario: random actions, PettingZoo parallel API, one process;
  2. stock RLlib PPO at the "equal-work" setting (../shared/bench/stock_rllib_ppo.py);
  3. our IPPO and MAPPO at the same workload: one shared 64x64 tanh policy, 2048 env
     steps per update, 4 epochs x 4 minibatches, lr 2.5e-4, 2 env runners x 8 envs.

Throughput is env steps (joint steps) per second of wall-clock time including learning,
over the iterations after the first (which includes start-up). For our runs it also
prints where an iteration's time goes, from RLlib's own timers.

usage: python benchmarks/throughput.py [--steps 40000] [--skip-stock]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STOCK_SCRIPT = REPO.parent / "shared" / "bench" / "stock_rllib_ppo.py"
EQUAL_WORK = [
    "policies.sharing=shared",
    "model.hidden=[64, 64]",
    "model.activation=tanh",
    "training.train_batch_size=2048",
    "training.num_epochs=4",
    "training.num_minibatches=4",
    "training.lr=2.5e-4",
    "resources.num_env_runners=2",
    "resources.num_envs_per_env_runner=8",
]


def raw_env_rate(seconds: float = 5.0) -> float:
    import numpy as np
    from mpe2 import simple_spread_v3

    env = simple_spread_v3.parallel_env(N=3, max_cycles=25)
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        if not env.agents:
            env.reset()
        env.step({agent: int(rng.integers(5)) for agent in env.agents})
        steps += 1
    return steps / (time.perf_counter() - start)


def vectorized_env_rate(num_envs: int, seconds: float = 3.0) -> float:
    """World-steps/s of the numpy-vectorized simple_spread (marl.envs.vectorized), random actions."""
    import numpy as np

    from marl.envs.vectorized import VectorSimpleSpread

    env = VectorSimpleSpread(num_envs, N=3, max_cycles=10**6)  # never ends while timing
    rng = np.random.default_rng(0)
    env.reset(list(range(num_envs)))
    actions = [{agent: rng.integers(5, size=num_envs) for agent in env.possible_agents} for _ in range(16)]
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        env.step(actions[calls % 16])
        calls += 1
    return calls * num_envs / (time.perf_counter() - start)


def one_run(algorithm: str, total_steps: int) -> dict:
    """Train `algorithm` at the equal workload; report steps/s after the first iteration."""
    import ray

    from marl.config import load_config

    config = load_config(REPO / "configs" / f"{algorithm}_simple_spread.yaml", EQUAL_WORK + [f"stop.env_steps={total_steps}"])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    algo = config.training.to_rllib(config, num_gpus_per_learner=0).build_algo()
    timers: dict[str, float] = {}
    try:
        result = algo.train()
        t0, s0 = time.time(), result["num_env_steps_sampled_lifetime"]
        iterations = 0
        while result["num_env_steps_sampled_lifetime"] < total_steps:
            result = algo.train()
            iterations += 1
            for key, value in result.get("timers", {}).items():
                if isinstance(value, (int, float)):
                    timers[key] = timers.get(key, 0.0) + value
        rate = (result["num_env_steps_sampled_lifetime"] - s0) / (time.time() - t0)
    finally:
        algo.stop()
        ray.shutdown()
    return {
        "algorithm": algorithm,
        "env_steps_per_s": rate,
        "team_return": result["env_runners"].get("episode_return_mean"),
        "seconds_per_iteration": {key: value / max(iterations, 1) for key, value in sorted(timers.items())},
    }


def _subprocess_json(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40000)
    parser.add_argument("--skip-stock", action="store_true")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_run(args.one, args.steps)))
        return

    print(f"raw simple_spread_v3 (random actions, 1 process): {raw_env_rate():,.0f} env steps/s")
    for num_envs in (8, 64):
        print(f"vectorized simple_spread, {num_envs:2d} worlds per call:    {vectorized_env_rate(num_envs):,.0f} env steps/s (not yet used by training)")
    stock = None
    if not args.skip_stock:
        if not STOCK_SCRIPT.is_file():
            sys.exit(f"stock script not found at {STOCK_SCRIPT}; pass --skip-stock")
        out = subprocess.run([sys.executable, str(STOCK_SCRIPT), str(args.steps), "equal-work"], capture_output=True, text=True, check=True)
        line = [l for l in out.stdout.splitlines() if l.startswith("stock_ppo")][-1]
        stock = float(line.split("env_steps_per_s")[1].split()[0])
        print(f"stock RLlib PPO (equal-work):                   {stock:,.0f} env steps/s   ({line})")
    for algorithm in ("ippo", "mappo"):
        result = _subprocess_json(["--one", algorithm, "--steps", str(args.steps)])
        ratio = f"  = {result['env_steps_per_s'] / stock:.2f}x stock" if stock else ""
        print(f"{algorithm:5s} (equal-work):                             {result['env_steps_per_s']:,.0f} env steps/s{ratio}")
        print("      seconds per iteration: " + ", ".join(f"{k} {v:.3f}" for k, v in result["seconds_per_iteration"].items()))


if __name__ == "__main__":
    main()
