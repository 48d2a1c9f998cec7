#!/usr/bin/env python3
"""Resident memory of a MADDPG training process with a full joint replay buffer.

Builds MADDPG from a config (default: configs/maddpg_simple_spread.yaml) on an embedded local
Ray, fills its joint replay buffer to capacity with random rows (the same shapes training
stores: every agent's observation, one-hot action, reward, next observation, terminated flag
and presence mask), trains a few iterations, checkpoints and restores, and prints the
driver's resident memory after each stage and its peak. The driver holds the learner, the
buffer and (with 0 env runners) the sampling env runner: the whole training process.

Issue 4's target: under 2 GiB resident with a 1e6-transition buffer on simple_spread.

usage: python benchmarks/maddpg_memory.py [--config configs/maddpg_simple_spread.yaml] [--iterations 3]
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def rss_mib() -> float:
    """The process's current resident set size, MiB."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def random_rows(buffer, rows: int, rng: np.random.Generator) -> dict:
    """`rows` joint transitions with the buffer's fields and shapes (random values: only the
    size matters; every row is written into the buffer, so its pages become resident)."""
    columns = {}
    for agent in buffer.agents:
        obs_dim, action_dim = buffer.obs_dims[agent], buffer.action_dims[agent]
        known = {
            "obs": rng.random((rows, obs_dim), dtype=np.float32),
            "actions": np.eye(action_dim, dtype=np.float32)[rng.integers(0, action_dim, rows)],
            "rewards": rng.random(rows, dtype=np.float32),
            "next_obs": rng.random((rows, obs_dim), dtype=np.float32),
            "mask": np.ones(rows, np.float32),
        }
        columns[agent] = {field: known.get(field, np.zeros(rows, np.float32)) for field in buffer.fields}
    return columns


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(REPO / "configs" / "maddpg_simple_spread.yaml"))
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--chunk", type=int, default=50_000, help="rows added per call while filling")
    args = parser.parse_args()

    from marl.experiment import load_config
    from marl.training.runner import ray_session

    config = load_config(args.config, ["training.learning_starts=1024"])
    rng = np.random.default_rng(0)
    with ray_session(None):
        algo = config.training.to_rllib(config, num_gpus_per_learner=0).build_algo()
        try:
            print(f"built: rss {rss_mib():.0f} MiB")
            buffer = algo.replay_buffer
            while len(buffer) < buffer.capacity:
                buffer.add(random_rows(buffer, min(args.chunk, buffer.capacity - len(buffer)), rng))
            print(f"buffer full: {len(buffer):,} rows x {buffer.bytes_per_row} B = {buffer.nbytes / 2**20:.0f} MiB; rss {rss_mib():.0f} MiB")
            for i in range(args.iterations):
                start = time.time()
                algo.train()
                print(f"iteration {i + 1} ({time.time() - start:.1f} s): rss {rss_mib():.0f} MiB")
            with tempfile.TemporaryDirectory() as directory:
                start = time.time()
                algo.save_to_path(directory)
                size = os.path.getsize(os.path.join(directory, "replay_buffer.npz")) / 2**20
                print(f"checkpoint ({time.time() - start:.1f} s, replay file {size:.0f} MiB): rss {rss_mib():.0f} MiB")
                start = time.time()
                algo.restore_from_path(directory)
                print(f"restore ({time.time() - start:.1f} s): rss {rss_mib():.0f} MiB")
            print(f"peak rss (ru_maxrss) {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
        finally:
            algo.stop()


if __name__ == "__main__":
    main()
