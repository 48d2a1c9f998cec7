#!/usr/bin/env python3
"""Where one MAPPO training iteration spends its time, on either sampling backend.

Builds MAPPO on simple_spread at the equal-work workload (benchmarks/throughput.py), warms
up, then times whole `algo.train()` calls and, separately, the three phases PPO's
training_step runs one after another: sampling 2,048 env steps on the env runners,
the learner update (learner connector with GAE, then 4 epochs x 4 minibatches) and the
weight sync back to the runners. Prints medians over 10 iterations.

RLlib's own `timers` in the results are smoothed averages that still carry the slow
first iteration for a long time, so they are not used here.

usage: python benchmarks/profile_iteration.py [--backend vectorized] [--runners 0]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import _our_config  # noqa: E402  (the same workload as the throughput table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", default="vectorized", choices=["pettingzoo", "vectorized"])
    parser.add_argument("--runners", type=int, default=2, help="env runners (0: sample in the driver); 16 worlds in all")
    parser.add_argument("--iterations", type=int, default=10)
    args = parser.parse_args()

    import ray
    from ray.rllib.execution.rollout_ops import synchronous_parallel_sample

    ray.init(address="local", num_cpus=max(2, args.runners + 1), include_dashboard=False, log_to_driver=False)
    algo = _our_config("mappo", args.backend, 10**9, args.runners).build_algo()
    try:
        for _ in range(3):
            algo.train()  # start-up and the first weight syncs
        whole, sample, learn, sync = [], [], [], []
        for _ in range(args.iterations):
            start = time.perf_counter()
            algo.train()
            whole.append(time.perf_counter() - start)
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


if __name__ == "__main__":
    main()
