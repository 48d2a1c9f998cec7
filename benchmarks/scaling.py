#!/usr/bin/env python3
"""Rollout scaling: env steps/s for 1, 2, 4, ... env runners, and the scaling efficiency.

Weak scaling: every env runner samples the same `--steps-per-runner` env steps per
iteration (train_batch_size = runners x steps-per-runner), so perfect scaling means n
runners sample n times as many steps in the same time. For each runner count the config is
built with our algorithm build (the same RLlib config `marl train` uses), sampled for
`--warmup` + `--iterations` rounds and trained for `--iterations` iterations; it reports

  sample_steps_per_s   env steps / wall-clock time of a sampling round: every runner
                       samples one rollout fragment per env in parallel and ships its
                       episodes to the driver, as in training (timed here: RLlib's own
                       timers are smoothed over iterations, start-up included)
  efficiency           sample_steps_per_s(n) / (n x sample_steps_per_s(1))
  train_steps_per_s    env steps / wall-clock time of whole iterations (sampling and the
                       learner update, which grows with the batch: not expected to scale)
  nodes                distinct Ray nodes the env runners ran on

Cluster: by default a local multi-node Ray cluster (ray.cluster_utils.Cluster) with a head
without CPUs (the driver and learner run in this process) and one node of
`--cpus-per-node` CPUs per env runner of the largest count; or `--address` an existing
cluster, where Ray places the runners. Results go to --out (CSV) and are printed.

usage: python benchmarks/scaling.py --runners 1 2 4 8 --iterations 5 --out benchmarks/results/scaling.csv
       python benchmarks/scaling.py --address auto --runners 1 2 4 8 16 32
"""

from __future__ import annotations

import argparse
import csv
import time
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def efficiency(rates: dict[int, float]) -> dict[int, float]:
    """throughput(n) / (n x throughput(1)) per runner count (needs the 1-runner rate)."""
    base = rates[1]
    return {n: rate / (n * base) for n, rate in rates.items()}


@contextmanager
def cluster(address: str | None, nodes: int, cpus_per_node: int):
    """Connect to `address`, or start a local multi-node cluster for the measurement."""
    import ray

    if address:
        ray.init(address=address, log_to_driver=False)
        try:
            yield
        finally:
            ray.shutdown()
        return
    from ray.cluster_utils import Cluster

    local = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    try:
        for _ in range(nodes):
            local.add_node(num_cpus=cpus_per_node)
        local.wait_for_nodes()
        ray.init(address=local.address, log_to_driver=False)
        yield
    finally:
        ray.shutdown()
        local.shutdown()


def measure(
    config_path: Path, overrides: list[str], runners: int, steps_per_runner: int, warmup: int, iterations: int,
    train_iterations: int | None = None,
) -> dict:
    """One runner count on the connected Ray: sampling rounds, then `train_iterations` (default:
    `iterations`; 0 skips training, whose cost grows with the batch) whole iterations."""
    import ray

    from marl.experiment import load_config
    from marl.rllib.resources import learner_gpus_for
    from marl.training.runner import env_runner_nodes

    config = load_config(config_path, [
        *overrides, f"resources.num_env_runners={runners}", f"training.train_batch_size={runners * steps_per_runner}",
        "stop.env_steps=1000000000",
    ])
    algo = config.training.to_rllib(config, num_gpus_per_learner=learner_gpus_for(config, ray)).build_algo()
    try:
        nodes = len(set(env_runner_nodes(algo)))
        for _ in range(warmup):
            sampling_round(algo)
        tick = time.perf_counter()
        sampled = sum(sampling_round(algo) for _ in range(iterations))
        sample_s = time.perf_counter() - tick
        train_iterations = iterations if train_iterations is None else train_iterations
        start = end = 0
        train_s = float("nan")
        if train_iterations:
            start = algo.train()["num_env_steps_sampled_lifetime"]  # the first iteration includes start-up
            tick = time.perf_counter()
            for _ in range(train_iterations):
                end = algo.train()["num_env_steps_sampled_lifetime"]
            train_s = time.perf_counter() - tick
    finally:
        algo.stop()
    return {
        "env_runners": runners,
        "nodes": nodes,
        "env_steps": int(sampled),
        "sample_steps_per_s": sampled / sample_s,
        "train_steps_per_s": (end - start) / train_s,
    }


def sampling_round(algo) -> int:
    """All remote env runners sample once in parallel; env steps the driver received."""
    batches = algo.env_runner_group.foreach_env_runner(lambda runner: runner.sample(), local_env_runner=False)
    return sum(episode.env_steps() for episodes in batches for episode in episodes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "mappo_simple_spread.yaml")
    parser.add_argument("overrides", nargs="*", help="dotted config overrides, e.g. resources.num_envs_per_env_runner=8")
    parser.add_argument("--runners", type=int, nargs="+", default=[1, 2, 4], help="env runner counts (1 is always measured)")
    parser.add_argument("--steps-per-runner", type=int, default=4000, help="env steps each runner samples per iteration")
    parser.add_argument("--warmup", type=int, default=1, help="iterations before measuring (start-up, first compile)")
    parser.add_argument("--iterations", type=int, default=5, help="measured iterations per runner count")
    parser.add_argument("--address", help="an existing Ray cluster; default: a local multi-node one")
    parser.add_argument("--cpus-per-node", type=int, default=1, help="local cluster: CPUs of each node (one node per runner)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "scaling.csv")
    args = parser.parse_args()
    counts = sorted(set(args.runners) | {1})

    rows = []
    with cluster(args.address, max(counts), args.cpus_per_node):
        for runners in counts:
            row = measure(args.config, args.overrides, runners, args.steps_per_runner, args.warmup, args.iterations)
            rows.append(row)
            print(f"{runners:3d} env runner(s) on {row['nodes']} node(s): {row['sample_steps_per_s']:10,.0f} sampled steps/s, "
                  f"{row['train_steps_per_s']:9,.0f} steps/s with training", flush=True)
    rates = efficiency({row["env_runners"]: row["sample_steps_per_s"] for row in rows})
    for row in rows:
        row["efficiency"] = rates[row["env_runners"]]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"\n{'runners':>7s} {'nodes':>5s} {'sampled steps/s':>15s} {'efficiency':>10s}")
    for row in rows:
        print(f"{row['env_runners']:7d} {row['nodes']:5d} {row['sample_steps_per_s']:15,.0f} {row['efficiency']:10.2f}")
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
