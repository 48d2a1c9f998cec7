#!/usr/bin/env python3
"""Where one MAPPO (or MADDPG) training iteration spends its time, on either sampling backend.

Builds MAPPO on simple_spread at the equal-work workload (benchmarks/throughput.py), warms
up, then times whole `algo.train()` calls and, separately, the three phases PPO's
training_step runs one after another: sampling 2,048 env steps on the env runners,
the learner update (learner connector with GAE, then 4 epochs x 4 minibatches) and the
weight sync back to the runners. Prints medians over 10 iterations.

RLlib's own `timers` in the results are smoothed averages that still carry the slow
first iteration for a long time, so they are not used here.

With --algorithm maddpg: the shipped configs/maddpg_simple_spread.yaml (1,000 env steps and 10
updates of 1,024 joint rows per iteration, sampling in the driver) with updates from the start,
split into sampling, adding the episodes to the joint replay buffer, drawing the 10 train
batches from it, the 10 learner updates, and the weight sync.

With --cprofile N, N further `algo.train()` calls run under cProfile and the top functions by
cumulative time are printed (what docs/performance.md's per-function figures come from).

usage: python benchmarks/profile_iteration.py [--backend vectorized] [--runners 0] [--cprofile 10]
       python benchmarks/profile_iteration.py --algorithm maddpg [--backend pettingzoo]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import REPO, _our_config  # noqa: E402  (the same workload as the throughput table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", default="vectorized", choices=["pettingzoo", "vectorized"])
    parser.add_argument("--runners", type=int, default=2, help="env runners (0: sample in the driver); 16 worlds in all")
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--algorithm", default="mappo", choices=["mappo", "maddpg"])
    parser.add_argument("--cprofile", type=int, default=0, metavar="N", help="also cProfile N algo.train() calls")
    args = parser.parse_args()
    if args.algorithm == "maddpg":
        profile_maddpg(args.backend, args.iterations, args.cprofile)
        return

    import ray
    from ray.rllib.execution.rollout_ops import synchronous_parallel_sample

    ray.init(address="local", num_cpus=max(2, args.runners + 1), include_dashboard=False, log_to_driver=False)
    algo = _our_config("mappo", args.backend, 10**9, args.runners).build_algo()
    try:
        whole = time_iterations(algo, args.iterations, args.cprofile)
        sample, learn, sync = [], [], []
        for _ in range(args.iterations):
            t0 = time.perf_counter()
            episodes = synchronous_parallel_sample(
                worker_set=algo.env_runner_group, max_env_steps=algo.config.train_batch_size_per_learner,
                sample_timeout_s=60, _uses_new_env_runners=True,
            )
            t1 = time.perf_counter()
            algo.learner_group.update(
                episodes=episodes, timesteps={"num_env_steps_sampled_lifetime": 10**6},
                num_epochs=algo.config.num_epochs, minibatch_size=algo.config.minibatch_size, shuffle_batch_per_epoch=True,
            )
            t2 = time.perf_counter()
            algo.env_runner_group.sync_weights(from_worker_or_learner_group=algo.learner_group, inference_only=True)
            t3 = time.perf_counter()
            sample.append(t1 - t0)
            learn.append(t2 - t1)
            sync.append(t3 - t2)
    finally:
        algo.stop()
        ray.shutdown()
    ms = lambda values: f"{np.median(values) * 1000:.0f} ms"  # noqa: E731
    print(f"mappo {args.backend}, {args.runners} env runners x {16 // max(args.runners, 1)} worlds: "
          f"iteration {ms(whole)} ({2048 / np.median(whole):,.0f} env steps/s) | "
          f"sample {ms(sample)}, learner update {ms(learn)}, weight sync {ms(sync)}")


def time_iterations(algo, iterations: int, cprofiled: int = 0) -> list[float]:
    """Seconds of each of `iterations` whole `algo.train()` calls, after 3 for start-up and the
    first weight syncs; then `cprofiled` more under cProfile, whose top functions are printed."""
    for _ in range(3):
        algo.train()
    seconds = []
    for _ in range(iterations):
        start = time.perf_counter()
        algo.train()
        seconds.append(time.perf_counter() - start)
    if cprofiled:
        profiler = cProfile.Profile()
        profiler.runcall(lambda: [algo.train() for _ in range(cprofiled)])
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)
    return seconds


def profile_maddpg(backend: str, iterations: int, cprofiled: int = 0) -> None:
    import ray
    from ray.rllib.execution.rollout_ops import synchronous_parallel_sample

    from marl.experiment import load_config

    # Updates from the first iteration on; the 4 worlds of RLlib's runner are the config's old layout.
    overrides = [f"scenario.backend={backend}", "training.learning_starts=1024"]
    if backend == "pettingzoo":
        overrides.append("resources.num_envs_per_env_runner=4")
    config = load_config(REPO / "configs" / "maddpg_simple_spread.yaml", overrides)
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    algo = config.training.to_rllib(config, num_gpus_per_learner=0).build_algo()
    phases: dict[str, list[float]] = {name: [] for name in ("sample", "replay add", "train batches", "updates", "weight sync")}
    try:
        whole = time_iterations(algo, iterations, cprofiled)
        for _ in range(iterations):
            t0 = time.perf_counter()
            episodes = synchronous_parallel_sample(worker_set=algo.env_runner_group, concat=True, _uses_new_env_runners=True)
            t1 = time.perf_counter()
            algo.replay_buffer.add_episodes(episodes, algo._action_to_vector)
            t2 = time.perf_counter()
            batches = [algo._train_batch() for _ in range(algo.config.updates_per_iteration)]
            t3 = time.perf_counter()
            for batch in batches:
                algo.learner_group.update(batch=batch, timesteps=algo._timesteps())
            t4 = time.perf_counter()
            algo.env_runner_group.sync_weights(from_worker_or_learner_group=algo.learner_group, inference_only=True)
            t5 = time.perf_counter()
            for name, seconds in zip(phases, np.diff([t0, t1, t2, t3, t4, t5])):
                phases[name].append(seconds)
        steps = config.training.env_steps_per_iteration
    finally:
        algo.stop()
        ray.shutdown()
    iteration_ms = np.median(whole) * 1000
    print(f"maddpg {backend}: iteration {iteration_ms:.0f} ms ({steps / iteration_ms * 1000:,.0f} env steps/s) | "
          + ", ".join(f"{name} {np.median(values) * 1000:.0f} ms" for name, values in phases.items()))


if __name__ == "__main__":
    main()
