#!/usr/bin/env python3
"""Training throughput on mpe2 simple_spread_v3 (N=3), side by side at one learning workload.

Measures, one after another (never two at once), in separate processes:
  1. the raw scenario: random actions, PettingZoo parallel API, one process;
  2. stock RLlib PPO at the "equal-work" setting (../shared/bench/stock_rllib_ppo.py);
  3. our IPPO and MAPPO at the same workload: one shared 64x64 tanh policy, 2048 env
     steps per update, 4 epochs x 4 minibatches, lr 2.5e-4, 2 env runners x 8 envs,
     on RLlib's env runner over PettingZoo (`scenario.backend: pettingzoo`) and on the
     fast path (`scenario.backend: vectorized`);
  4. with --target-return R: wall-clock seconds and env steps until each run (stock
     and ours, one per --seeds) first reports a team return >= R (RLlib's mean over the
     last 100 training episodes), and the mean over the seeds that reached it.

Throughput is env steps (joint steps) per second of wall-clock time including learning,
over the iterations after the first (which includes start-up). Where an iteration's time
goes: benchmarks/profile_iteration.py.

usage: python benchmarks/throughput.py [--steps 40000] [--skip-stock] [--target-return -60 --max-steps 1500000 [--seeds 0 1 2]]
       [--runners 0 1 2 [--backends vectorized] [--overlap true false] [--driver-threads 1]]   (scaling: MAPPO with that many env runners)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
THROUGHPUT_STEPS = 40_000  # set from --steps: the window over which steps/s is measured
DRIVER_THREADS = 0  # set from --driver-threads: 0 leaves torch's and BLAS's own (every core)
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


def one_run(algorithm: str, backend: str, total_steps: int, target_return: float | None, runners: int = 2, seed: int = 0,
            overlap: str = "auto") -> dict:
    """Train `algorithm` at the equal workload on `backend`.

    Reports env steps/s after the first iteration (which includes start-up) and, with a
    target return, the wall-clock seconds (from the start of the first iteration) and env
    steps until the training return first reaches it; training then runs until it does or
    `total_steps` is reached.
    """
    import ray

    if DRIVER_THREADS:
        from marl.rllib.threads import limit_threads

        limit_threads(DRIVER_THREADS)  # as `marl train` sizes the driver (resources.threads.driver)
    ray.init(address="local", num_cpus=max(2, runners + 1), include_dashboard=False, log_to_driver=False)
    algo = _stock_config().build_algo() if algorithm == "stock" else _our_config(algorithm, backend, total_steps, runners, seed, overlap).build_algo()
    reached = None
    try:
        start = time.time()
        result = algo.train()
        t0, s0 = time.time(), result["num_env_steps_sampled_lifetime"]
        throughput_done = None
        while True:
            steps = result["num_env_steps_sampled_lifetime"]
            team_return = result["env_runners"].get("episode_return_mean", float("-inf"))
            if reached is None and target_return is not None and team_return >= target_return:
                reached = {"seconds": time.time() - start, "env_steps": steps}
            if throughput_done is None and steps >= min(total_steps, THROUGHPUT_STEPS):
                throughput_done = (steps - s0) / (time.time() - t0)
            if steps >= total_steps or (throughput_done is not None and (target_return is None or reached)):
                break
            result = algo.train()
        rate = throughput_done if throughput_done is not None else (steps - s0) / (time.time() - t0)
    finally:
        algo.stop()
        ray.shutdown()
    return {
        "algorithm": algorithm,
        "backend": backend,
        "env_runners": runners,
        "overlap_sampling": None if algorithm == "stock" else algo.config.overlap_sampling,
        "seed": None if algorithm == "stock" else seed,
        "env_steps_per_s": rate,
        "team_return": float(result["env_runners"].get("episode_return_mean", float("nan"))),
        "reached": reached,
    }


def _our_config(algorithm: str, backend: str, total_steps: int, runners: int, seed: int = 0, overlap: str = "auto"):
    from marl.experiment import load_config

    overrides = EQUAL_WORK + [f"stop.env_steps={total_steps}", f"scenario.backend={backend}", f"seed={seed}",
                              f"resources.num_env_runners={runners}", f"training.overlap_sampling={overlap}",
                              # the same 16 worlds per update, however many runners step them
                              f"resources.num_envs_per_env_runner={16 // max(runners, 1)}"]
    config = load_config(REPO / "configs" / f"{algorithm}_simple_spread.yaml", overrides)
    return config.training.to_rllib(config, num_gpus_per_learner=0)


def _stock_config():
    """Stock RLlib PPO exactly as ../shared/bench/stock_rllib_ppo.py's "equal-work" mode builds it
    (that script only reports throughput; this one also times the target return).

    Unseeded, as that script: with `debugging(seed=s)` RLlib seeds env runner w's sub-env i with
    s + w + i, so the two runners' 8 worlds share 7 seeds (the same episode starts); seeded that
    way it reached -60 in 1 of 3 seeds within 1.5M steps (session 4), unseeded in every run so far."""
    from mpe2 import simple_spread_v3
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig
    from ray.rllib.env.wrappers.pettingzoo_env import ParallelPettingZooEnv
    from ray.tune.registry import register_env

    register_env("spread", lambda _: ParallelPettingZooEnv(simple_spread_v3.parallel_env(N=3, max_cycles=25)))
    return (
        PPOConfig()
        .environment("spread")
        .env_runners(num_env_runners=2, num_envs_per_env_runner=8, rollout_fragment_length=128)
        .training(train_batch_size_per_learner=2048, num_epochs=4, minibatch_size=1536, lr=2.5e-4)
        .rl_module(model_config=DefaultModelConfig(fcnet_hiddens=[64, 64], fcnet_activation="tanh"))
        .multi_agent(policies={"shared"}, policy_mapping_fn=lambda aid, *a, **k: "shared")
    )


def _subprocess_json(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40000, help="env steps over which throughput is measured")
    parser.add_argument("--skip-stock", action="store_true")
    parser.add_argument("--target-return", type=float, help="also measure the time to reach this team return")
    parser.add_argument("--max-steps", type=int, default=1_500_000, help="give up on the target after this many steps")
    parser.add_argument("--runners", type=int, nargs="*", default=[], help="scaling runs: env runner counts")
    parser.add_argument("--algorithms", nargs="+", default=["ippo", "mappo"], choices=["ippo", "mappo"])
    parser.add_argument("--backends", nargs="+", default=["pettingzoo", "vectorized"], choices=["pettingzoo", "vectorized"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="with --target-return: one run per seed")
    parser.add_argument("--overlap", nargs="+", default=["auto"], choices=["auto", "true", "false"],
                        help="training.overlap_sampling of our runs; with --runners, one line per value (e.g. true false)")
    parser.add_argument("--driver-threads", type=int, default=0,
                        help="torch/BLAS threads of the driver (`marl train` sets 1 for these updates); 0: every core")
    parser.add_argument("--one", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    global THROUGHPUT_STEPS, DRIVER_THREADS
    THROUGHPUT_STEPS, DRIVER_THREADS = args.steps, args.driver_threads
    total = args.max_steps if args.target_return is not None else args.steps
    if args.one:
        algorithm, backend, runners, seed, overlap = args.one
        print(json.dumps(one_run(algorithm, backend, total, args.target_return, int(runners), int(seed), overlap)))
        return
    forwarded = ["--steps", str(args.steps), "--max-steps", str(args.max_steps), "--driver-threads", str(args.driver_threads)]
    if args.target_return is not None:
        forwarded += ["--target-return", str(args.target_return)]
    if args.runners:
        _scaling(args.backends, args.runners, forwarded, args.overlap)
        return

    print(f"raw simple_spread_v3 (random actions, 1 process): {raw_env_rate():,.0f} env steps/s")
    for num_envs in (8, 64):
        print(f"vectorized simple_spread, {num_envs:2d} worlds per call:    {vectorized_env_rate(num_envs):,.0f} env steps/s")
    stock = None
    if not args.skip_stock:
        if not STOCK_SCRIPT.is_file():
            sys.exit(f"stock script not found at {STOCK_SCRIPT}; pass --skip-stock")
        out = subprocess.run([sys.executable, str(STOCK_SCRIPT), str(args.steps), "equal-work"], capture_output=True, text=True, check=True)
        line = [l for l in out.stdout.splitlines() if l.startswith("stock_ppo")][-1]
        stock = float(line.split("env_steps_per_s")[1].split()[0])
        print(f"stock RLlib PPO (equal-work):                   {stock:,.0f} env steps/s   ({line})")
        if args.target_return is not None:
            _print_reached([_subprocess_json(["--one", "stock", "pettingzoo", "2", str(seed), "auto", *forwarded]) for seed in args.seeds], args.target_return)
    # 2 runners x 8 worlds: stock's layout; 0 runners x 16 worlds in the driver: the shipped configs'.
    layouts = [(backend, 2) for backend in args.backends] + ([("vectorized", 0)] if "vectorized" in args.backends else [])
    for backend, runners in layouts:
        for algorithm in args.algorithms:
            seeds = args.seeds if args.target_return is not None else args.seeds[:1]
            results = [_subprocess_json(["--one", algorithm, backend, str(runners), str(seed), args.overlap[0], *forwarded])
                       for seed in seeds]
            rate = sum(r["env_steps_per_s"] for r in results) / len(results)
            ratio = f"  = {rate / stock:.2f}x stock" if stock else ""
            layout = f"{runners} runners x {16 // max(runners, 1)}"
            print(f"{algorithm:5s} {backend:10s} {layout:15s} (equal-work): {rate:,.0f} env steps/s{ratio}", flush=True)
            _print_reached(results, args.target_return)


def _print_reached(results: list[dict], target: float | None) -> None:
    """Per seed, when the training return first reached the target; then the mean over the seeds that did."""
    if target is None:
        return
    for result in results:
        run = "unseeded" if result["seed"] is None else f"seed {result['seed']}"
        if result["reached"]:
            print(f"      {run}: team return >= {target:g} after {result['reached']['seconds']:.0f} s, "
                  f"{result['reached']['env_steps']:,.0f} env steps")
        else:
            print(f"      {run}: team return >= {target:g} not reached (final {result['team_return']:.1f})")
    reached = [r["reached"] for r in results if r["reached"]]
    if len(results) > 1 and reached:
        print(f"      {len(reached)}/{len(results)} seeds reached it: mean {sum(r['seconds'] for r in reached) / len(reached):.0f} s, "
              f"{sum(r['env_steps'] for r in reached) / len(reached):,.0f} env steps")


def _scaling(backends: list[str], runner_counts: list[int], forwarded: list[str], overlaps: list[str]) -> None:
    """MAPPO with 0 (sampling in the driver), 1, 2, ... env runners, the 16 worlds split among them,
    once per `training.overlap_sampling` value in `overlaps`.

    Efficiency of n >= 1 runners = (steps/s with n) / (n x steps/s with the smallest n >= 1, same
    overlap setting): on a machine with fewer cores than runners + driver it can only fall.
    """
    for backend in backends:
        for overlap in overlaps:
            per_runner = None
            for runners in runner_counts:
                result = _subprocess_json(["--one", "mappo", backend, str(runners), "0", overlap, *forwarded])
                rate = result["env_steps_per_s"]
                line = (f"mappo {backend:10s} {runners:2d} env runners x {16 // max(runners, 1):2d} worlds, "
                        f"overlap {'on ' if result['overlap_sampling'] else 'off'}: {rate:,.0f} env steps/s")
                if runners >= 1:
                    per_runner = per_runner or rate / runners
                    line += f", efficiency {rate / (per_runner * runners):.2f}"
                print(line, flush=True)


if __name__ == "__main__":
    main()
