#!/usr/bin/env python3
"""The PPO learner's train batch: our one-pass builder vs RLlib's learner connector pipeline.

Samples 2,048 env steps at a time with the fast path (16 worlds, MAPPO at the equal-work
workload of benchmarks/throughput.py, in this process, no Ray) and hands copies of the same
episodes to two learners that differ only in `training.learner_connector` (`vectorized`:
marl/algorithms/ppo/connector.py; `rllib`: RLlib's pipeline with GeneralAdvantageEstimation).
Prints medians, over the iterations after the first three, of the time to build the batch
alone and of the whole learner update (batch + 4 epochs x 4 minibatches).

usage: python benchmarks/train_batch.py [--iterations 14]
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from throughput import EQUAL_WORK  # noqa: E402  (the same workload as the throughput table)


def build(builder: str):
    from marl.experiment import load_config

    overrides = EQUAL_WORK + ["resources.num_env_runners=0", "resources.num_envs_per_env_runner=16", f"training.learner_connector={builder}"]
    config = load_config(REPO / "configs" / "mappo_simple_spread.yaml", overrides)
    rllib = config.training.to_rllib(config, num_gpus_per_learner=0)
    specs = rllib.rl_module_spec.rl_module_specs
    learner = rllib.build_learner(spaces={pid: (spec.observation_space, spec.action_space) for pid, spec in specs.items()})
    return rllib, learner


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=14)
    args = parser.parse_args()

    from marl.rllib.vectorized_env_runner import VectorizedMultiAgentEnvRunner

    rllib, ours = build("vectorized")
    _, stock = build("rllib")
    stock.module.set_state(ours.module.get_state())
    runner = VectorizedMultiAgentEnvRunner(config=rllib, worker_index=0)
    times: dict[str, list[float]] = {}
    try:
        for _ in range(args.iterations):
            episodes = runner.sample(num_timesteps=2048, explore=True)
            for name, learner in (("ours", ours), ("rllib", stock)):
                copied = copy.deepcopy(episodes)  # RLlib's pipeline extends episodes in place
                start = time.perf_counter()
                learner._learner_connector(rl_module=learner.module, batch={}, episodes=copied, shared_data={}, metrics=learner.metrics)
                times.setdefault(f"{name} batch", []).append(time.perf_counter() - start)
                copied = copy.deepcopy(episodes)
                start = time.perf_counter()
                learner.update(episodes=copied, timesteps={"num_env_steps_sampled_lifetime": 10**6}, num_epochs=rllib.num_epochs,
                               minibatch_size=rllib.minibatch_size, shuffle_batch_per_epoch=True)
                times.setdefault(f"{name} update", []).append(time.perf_counter() - start)
    finally:
        runner.stop()
    for name, values in times.items():
        print(f"{name:14s} {np.median(values[3:]) * 1e3:7.1f} ms (median of {len(values) - 3})")


if __name__ == "__main__":
    main()
