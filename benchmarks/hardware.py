#!/usr/bin/env python3
"""What a machine gives our training, in one command: cores, threads, CPU vs GPU learner, scaling.

Sections, each measured in its own process (no Ray or thread setting leaks between them),
each skipped with a printed reason where the machine lacks what it needs:

  single    one core's speed: the raw mpe2 simple_spread in one process (PettingZoo API,
            random actions) and the vectorized twin (16 worlds per call); a torch 128x128
            MLP forward+backward on 2048 rows at 1 thread, then at 2, 4, ... threads up to
            the machine's cores (does the driver gain from torch's default of all cores?)
  learners  the shipped MAPPO and MADDPG configs (simple_spread, fast path, sampling in the
            driver) trained with the CPU learner and with the GPU learner (skipped without
            CUDA), plus MAPPO's CPU learner with its driver at all cores (torch's default;
            `auto` gives a small update 1 thread); each row also gives
            one gradient step's work (parameters x minibatch rows), the quantity the
            `num_gpus_per_learner: auto` rule compares against `resources.large_update_work`
  scaling   benchmarks/scaling.py's sampling rounds over 1, 2, 4, 8, 14 env runners, on both
            backends (counts above the machine's cores - 1 are skipped: the driver keeps one)
  large     MAPPO with 14 env runners (capped as above), train batch 22,400, 256x256
            networks, 5 epochs, CPU learner and GPU learner, then the last of them again with
            sampling overlapped with learning (`training.overlap_sampling=true`)

Figures go to OUT/hardware.csv and OUT/hardware.md (one table) and are printed as they come.
The default budget fits in about 7 minutes on a 16-core machine; `--quick` shortens every
measurement (for a development machine: a few minutes on 2 cores).

usage: python benchmarks/hardware.py [--out DIR] [--tag NAME] [--quick] [--sections single learners scaling large]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
SECTIONS = ["single", "learners", "scaling", "large"]
RUNNER_COUNTS = [1, 2, 4, 8, 14]
LARGE = ["model.hidden=[256, 256]", "training.train_batch_size=22400", "training.num_epochs=5", "stop.env_steps=1000000000"]
# MADDPG's shipped config learns only after 25,600 env steps: start at 2,048 so the timed
# iterations include its updates.
MADDPG_EARLY = ["training.learning_starts=2048"]
FIELDS = ["section", "name", "backend", "learner", "env_runners", "threads", "value", "unit", "work", "seconds", "note"]


def cores() -> int:
    from marl.rllib.resources import local_cpu_count

    return local_cpu_count()


def has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


# -- measurements (each runs in its own process through `--one`) -----------------------------


def single_core(seconds: float) -> list[dict]:
    """Raw env steps/s and the MLP at 1..cores threads."""
    from throughput import raw_env_rate, vectorized_env_rate

    rows = [
        _row("single", "raw mpe2 simple_spread N=3, 1 process", raw_env_rate(seconds), "env steps/s", threads=1),
        _row("single", "vectorized simple_spread, 16 worlds/call", vectorized_env_rate(16, seconds), "env steps/s", threads=1),
    ]
    threads = 1
    while threads <= cores():
        rows.append(_row("single", "torch MLP 128x128 fwd+bwd, 2048 rows", mlp_rate(threads, seconds), "passes/s", threads=threads))
        threads *= 2
    if threads // 2 != cores():
        rows.append(_row("single", "torch MLP 128x128 fwd+bwd, 2048 rows", mlp_rate(cores(), seconds), "passes/s", threads=cores()))
    return rows


def mlp_rate(threads: int, seconds: float, hidden: int = 128, rows: int = 2048) -> float:
    """Forward+backward passes/s of a tanh MLP (54 inputs: MAPPO's critic on spread) at `threads`."""
    import torch

    torch.set_num_threads(threads)
    net = torch.nn.Sequential(
        torch.nn.Linear(54, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, 1)
    )
    x = torch.randn(rows, 54)
    for _ in range(5):
        net(x).sum().backward()
    passes, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        net(x).sum().backward()
        passes += 1
    return passes / (time.perf_counter() - start)


def train_rate(config_name: str, overrides: list[str], gpus: int, seconds: float, warmup_steps: int = 0) -> dict:
    """Env steps/s of whole training iterations (sampling and learning) after start-up.

    Iterations run until `warmup_steps` env steps were sampled (at least one: start-up), then
    for `seconds` (at least one iteration). Ray runs locally with the machine's cores.
    """
    import ray

    from marl.experiment import load_config
    from marl.rllib.threads import limit_threads
    from marl.rllib.resources import driver_threads, local_env_runners, update_work, with_num_env_runners

    config = load_config(REPO / "configs" / f"{config_name}.yaml", [*overrides, f"resources.num_gpus_per_learner={gpus}"])
    config = with_num_env_runners(config, local_env_runners(config.resources))
    ray.init(address="local", num_cpus=cores(), include_dashboard=False, log_to_driver=False)
    try:
        rllib_config = config.training.to_rllib(config, num_gpus_per_learner=gpus)
        work = update_work(rllib_config)
        algo = rllib_config.build_algo()
        resources = config.resources
        large = not gpus and resources.num_learners == 0 and work >= resources.large_update_work
        threads = driver_threads(
            resources.threads.driver, cores(), resources.num_env_runners * resources.num_cpus_per_env_runner, large_cpu_update=large
        )
        limit_threads(threads)  # as `marl train` does (its runners all run on this one node)
        try:
            steps = algo.train()["num_env_steps_sampled_lifetime"]
            while steps < warmup_steps:
                steps = algo.train()["num_env_steps_sampled_lifetime"]
            start, tick, iterations = steps, time.perf_counter(), 0
            while iterations == 0 or time.perf_counter() - tick < seconds:
                steps = algo.train()["num_env_steps_sampled_lifetime"]
                iterations += 1
            elapsed = time.perf_counter() - tick
        finally:
            algo.stop()
    finally:
        ray.shutdown()
    return {"rate": (steps - start) / elapsed, "work": work, "seconds": elapsed, "threads": threads,
            "env_runners": config.resources.num_env_runners, "iterations": iterations}


def scaling(backend: str, counts: list[int], quick: bool) -> list[dict]:
    """benchmarks/scaling.py's sampling rounds on one local Ray node with the machine's cores."""
    import ray

    from scaling import efficiency, measure

    overrides = [f"scenario.backend={backend}", "resources.num_envs_per_env_runner=8"]
    steps_per_runner = 800 if quick else (2000 if backend == "pettingzoo" else 4000)
    ray.init(address="local", num_cpus=cores(), include_dashboard=False, log_to_driver=False)
    try:
        measured = [
            measure(REPO / "configs" / "mappo_simple_spread.yaml", overrides, n, steps_per_runner, 1, 1 if quick else 2, 0)
            for n in counts
        ]
    finally:
        ray.shutdown()
    ratios = efficiency({m["env_runners"]: m["sample_steps_per_s"] for m in measured})
    return [
        _row("scaling", "MAPPO sampling rounds, 8 envs per runner", m["sample_steps_per_s"], "env steps/s", backend=backend,
             env_runners=m["env_runners"], note=f"efficiency {ratios[m['env_runners']]:.2f}")
        for m in measured
    ]


def _row(section: str, name: str, value: float, unit: str, **fields) -> dict:
    return {"section": section, "name": name, "value": value, "unit": unit, **fields}


def run_one(kind: str, args: dict) -> list[dict]:
    """One measurement in this process (called through `--one`)."""
    if kind == "single":
        return single_core(args["seconds"])
    if kind == "scaling":
        return scaling(args["backend"], args["counts"], args["quick"])
    result = train_rate(args["config"], args["overrides"], args["gpus"], args["seconds"], args.get("warmup_steps", 0))
    return [_row(args["section"], args["name"], result["rate"], "env steps/s", backend="vectorized",
                 learner="GPU" if args["gpus"] else "CPU", env_runners=result["env_runners"], threads=result["threads"],
                 work=f"{result['work']:.2g}", seconds=round(result["seconds"], 1), note=f"{result['iterations']} iterations")]


# -- the plan --------------------------------------------------------------------------------


def plan(sections: list[str], quick: bool, gpu: bool, machine_cores: int) -> tuple[list[tuple[str, dict]], list[str]]:
    """The measurements to run, and a line per one skipped (and why)."""
    seconds = 4.0 if quick else 10.0
    jobs, skipped = [], []
    learners = ["CPU", "GPU"] if gpu else ["CPU"]
    if not gpu:
        skipped.append("GPU learner rows: no CUDA device (torch.cuda.is_available() is False)")
    if "single" in sections:
        jobs.append(("single", {"seconds": 2.0 if quick else 3.0}))
    if "learners" in sections:
        for config, overrides, warmup in (("mappo_simple_spread", [], 0), ("maddpg_simple_spread", MADDPG_EARLY, 3000)):
            for learner in learners:
                jobs.append(("train", {"section": "learners", "name": f"{config.split('_')[0].upper()} shipped config",
                                       "config": config, "overrides": overrides, "gpus": int(learner == "GPU"),
                                       "seconds": seconds, "warmup_steps": warmup}))
        jobs.append(("train", {"section": "learners", "name": "MAPPO shipped config, driver at all cores",
                               "config": "mappo_simple_spread", "overrides": [f"resources.threads.driver={machine_cores}"],
                               "gpus": 0, "seconds": seconds}))
    most = max(0, machine_cores - 1)  # one core stays with the driver
    counts = [n for n in RUNNER_COUNTS if n <= most]
    if len(counts) < len(RUNNER_COUNTS):
        skipped.append(f"scaling/large: env runner counts above {most} (this machine's {machine_cores} cores - 1 for the driver)")
    if "scaling" in sections and counts:
        for backend in ("vectorized", "pettingzoo"):
            jobs.append(("scaling", {"backend": backend, "counts": counts, "quick": quick}))
    if "large" in sections:
        runners = min(14, max(1, most))
        layout = [*LARGE, f"resources.num_env_runners={runners}", f"resources.num_envs_per_env_runner={max(1, 32 // runners)}"]
        # The last run samples the next batch while the learner updates (training.overlap_sampling):
        # whether that pays with many runners decides its `auto` (off since the 2-core measurements).
        variants = [(learner, "", []) for learner in learners] + [(learners[-1], ", sampling overlapped", ["training.overlap_sampling=true"])]
        for learner, suffix, extra in variants:
            jobs.append(("train", {"section": "large", "name": f"MAPPO 256x256, batch 22,400, 5 epochs{suffix}",
                                   "config": "mappo_simple_spread", "overrides": [*layout, *extra],
                                   "gpus": int(learner == "GPU"), "seconds": 1.0 if quick else 10.0}))
    return jobs, skipped


def run_job(kind: str, args: dict, timeout: float) -> list[dict]:
    """`--one` in a fresh process; a failure or timeout becomes a row saying so."""
    command = [sys.executable, __file__, "--one", kind, json.dumps(args)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    except subprocess.TimeoutExpired:
        return [_row(args.get("section", kind), args.get("name", kind), float("nan"), "", note=f"timed out after {timeout:.0f} s")]
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["?"])[-1][:200]
        return [_row(args.get("section", kind), args.get("name", kind), float("nan"), "", note=f"failed: {last}")]
    return json.loads(done.stdout.strip().splitlines()[-1])


def markdown(rows: list[dict], header: str) -> str:
    lines = [header, "", "| section | measurement | backend | learner | env runners | threads | value | unit | work | note |",
             "|---|---|---|---|---:|---:|---:|---|---:|---|"]
    for row in rows:
        value = row.get("value")
        shown = f"{value:,.0f}" if isinstance(value, float) and value == value else "-"
        lines.append("| " + " | ".join(str(x) for x in (
            row["section"], row["name"], row.get("backend", ""), row.get("learner", ""), row.get("env_runners", ""),
            row.get("threads", ""), shown, row.get("unit", ""), row.get("work", ""), row.get("note", ""))) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="output folder (default: benchmarks/results/hardware/<tag>)")
    parser.add_argument("--tag", default=socket.gethostname(), help="names the default output folder (default: hostname)")
    parser.add_argument("--quick", action="store_true", help="short measurements (a development machine)")
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=SECTIONS)
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one[0], json.loads(args.one[1]))))
        return

    machine_cores, gpu = cores(), has_cuda()
    out = args.out or REPO / "benchmarks" / "results" / "hardware" / args.tag
    out.mkdir(parents=True, exist_ok=True)
    header = (f"{args.tag}: {machine_cores} cores usable, {platform.processor() or platform.machine()}, "
              f"GPU: {_gpu_name() if gpu else 'none'}; {'--quick, ' if args.quick else ''}{time.strftime('%Y-%m-%d %H:%M')}")
    print(header, flush=True)
    jobs, skipped = plan(args.sections, args.quick, gpu, machine_cores)
    for line in skipped:
        print(f"skipped: {line}", flush=True)
    started, rows = time.time(), []
    for kind, job in jobs:
        timeout = 240 if kind == "scaling" else 150
        for row in run_job(kind, job, timeout):
            rows.append(row)
            value = row["value"]
            shown = f"{value:12,.0f}" if value == value else "           -"
            where = ", ".join(f"{key} {row[key]}" for key in ("backend", "learner", "env_runners", "threads", "work") if row.get(key) not in (None, ""))
            print(f"[{time.time() - started:5.0f} s] {row['section']:8s} {row['name']:45s} {shown} {row.get('unit', ''):12s} "
                  f"{where} {row.get('note', '')}", flush=True)
    with (out / "hardware.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    notes = "".join(f"\nskipped: {line}" for line in skipped)
    (out / "hardware.md").write_text(markdown(rows, header + notes + f"\n\ntotal {time.time() - started:.0f} s"))
    print(f"total {time.time() - started:.0f} s; written: {out / 'hardware.csv'}, {out / 'hardware.md'}")


def _gpu_name() -> str:
    import torch

    return torch.cuda.get_device_name(0)


if __name__ == "__main__":
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    main()
