"""`marl train`: run an experiment on a local or existing Ray cluster, resumably.

The loop is RLlib's own `algo.train()`; around it we keep a run directory:

    runs/<name>-<timestamp>/
        config.yaml        the resolved experiment config
        metrics.csv        one row per iteration
        tensorboard/       the same metrics for TensorBoard
        checkpoints/       iter_NNNNNN/ (atomic) and `latest`
        scenario_error.txt only after a scenario fault: its traceback (marl/training/faults.py)

Ctrl-C (or SIGTERM) finishes the current iteration, writes a checkpoint and stops;
a second Ctrl-C aborts at once. `resume(run_dir)` continues from the latest
checkpoint with the same iteration and env-step counters.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Callable

import numpy as np
import yaml

from marl.config import ExperimentConfig, config_to_dict

from marl.experiment import build_config
from marl.envs.scenario import ScenarioSpec
from marl.envs.validation import RENDER_FIX, check_parallel_api, check_scenario_data, image_observation_problem, render_problem
from marl.errors import CheckpointError, ScenarioFault
from marl.training.checkpoints import latest_checkpoint, read_meta, save_checkpoint
from marl.rllib.threads import limit_threads
from marl.core.agents import teams_of
from marl.training.faults import faults_reported, write_fault_report
from marl.training.logs import LOG_FILE, ray_logs_to_file
from marl.training.metrics import MetricsWriter, flatten_result, progress_line, returns_text
from marl.rllib.resources import (
    ClusterCapacity,
    actor_threads,
    capacity_line,
    choose_learner_gpus,
    driver_threads,
    learner_cpus,
    local_cpu_count,
    local_env_runners,
    resolve_num_env_runners,
    starts_local_ray,
    threads_line,
    update_work,
    usable_learner_gpus,
    with_num_env_runners,
)

Printer = Callable[[str], None]
RUN_DIR_LINE = "run directory: "  # the first line a run prints (a sweep's trials read it)
# Called after every iteration with the algorithm and the iteration's metrics row
# (Tune trials report through it; tests use it to reach the live algorithm). A true
# return value stops training after this iteration, with a final checkpoint.
IterationHook = Callable[[object, dict], bool | None]


def echo_line(line: str) -> None:
    """Print and flush: progress must reach a log file or pipe as it happens."""
    print(line, flush=True)


def new_run_dir(config: ExperimentConfig, runs_root: str | Path = "runs") -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    runs_root = Path(runs_root).resolve()  # RLlib's checkpoint writer needs absolute paths
    run_dir = runs_root / f"{config.run_name}-{stamp}"
    suffix = 1
    while run_dir.exists():
        suffix += 1
        run_dir = runs_root / f"{config.run_name}-{stamp}-{suffix}"
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False))
    return run_dir


def load_run_config(run_dir: str | Path) -> ExperimentConfig:
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise CheckpointError(f"{str(run_dir)!r} is not a run directory (no config.yaml); pass the directory `marl train` printed")
    return build_config(yaml.safe_load(path.read_text()))


def cluster_capacity(ray) -> ClusterCapacity:
    """The connected Ray cluster's CPUs and GPUs, as its scheduler counts them."""
    total = ray.cluster_resources()
    return ClusterCapacity(total.get("CPU", 0.0), total.get("GPU", 0.0), "the Ray cluster")


@contextmanager
def ray_session(address: str | None):
    """Join `address`, or start an embedded local Ray; always shut it down.

    Without an address Ray's own `ray.init()` would join the cluster last started on this
    machine with `ray start` (it reads /tmp/ray/ray_current_cluster), so a local run asks
    for a fresh local instance explicitly. Under `ray job submit` (RAY_ADDRESS is set) the
    job joins its cluster.

    Inside a Ray task or actor (a Tune trial) Ray is already connected: use that
    connection and leave it open.
    """
    import ray

    if ray.is_initialized():
        yield ray
        return
    if address:
        ray.init(address=address, log_to_driver=False)
    elif os.environ.get("RAY_ADDRESS"):
        ray.init(log_to_driver=False)
    else:
        ray.init(address="local", num_cpus=local_cpu_count(), include_dashboard=False, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()


class _StopRequest:
    """First SIGINT/SIGTERM: stop after this iteration. Second SIGINT: abort now."""

    def __init__(self, echo: Printer):
        self.requested = False
        self.echo = echo

    def __call__(self, signum, frame):
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        self.echo("stop requested: finishing this iteration, then writing a checkpoint (Ctrl-C again aborts)")

    @contextmanager
    def installed(self):
        if threading.current_thread() is not threading.main_thread():
            yield self  # a Tune trial runs us in a thread, where signals cannot be handled; Tune stops trials itself
            return
        previous = {sig: signal.signal(sig, self) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def train(
    config: ExperimentConfig,
    *,
    run_dir: Path | None = None,
    runs_root: str | Path = "runs",
    address: str | None = None,
    echo: Printer = echo_line,
    max_iterations: int | None = None,
    on_iteration: IterationHook | None = None,
) -> Path:
    """Train `config` (or continue the run in `run_dir`); returns the run directory."""
    requested_runners = config.resources.num_env_runners
    local = starts_local_ray(address)
    if local:  # first of all: 100 env runners on 2 cores fail here, within a second
        config = with_num_env_runners(config, local_env_runners(config.resources))
    resuming = run_dir is not None
    checkpoint = latest_checkpoint(run_dir) if resuming else None
    if resuming and checkpoint is None:
        raise CheckpointError(f"{str(run_dir)!r} has no finished checkpoint to resume from; start a new run instead")
    # Cheap checks first: a broken scenario fails here, before Ray starts.
    spec = ScenarioSpec(**config.scenario.model_dump())
    try:
        tolerated = checks_before_ray(config, spec)
    except ScenarioFault as fault:
        raise write_fault_report(fault, run_dir or new_run_dir(config, runs_root)) from None
    for warning in config.training.budget_warnings(config, max_iterations=max_iterations):
        echo(f"WARNING: {warning}")
    if not resuming:
        run_dir = new_run_dir(config, runs_root)
    echo(f"{RUN_DIR_LINE}{run_dir}")
    if tolerated is not None:
        echo(f"WARNING: {tolerated} -- going on: resources.restart_failed_sub_environments is true")
    warn_if_cannot_render(spec, echo)
    conv_encoder = config.training.supports_image_encoder() and config.model.encoder != "mlp"
    if (problem := image_observation_problem(spec, conv_encoder=conv_encoder)) is not None:
        echo(f"WARNING: {problem}")

    with ray_logs_to_file(run_dir), ray_session(address) as ray, faults_reported(run_dir):
        num_gpus, gpu_reason = choose_learner_gpus(config, usable_learner_gpus(ray, config.resources.num_learners))
        in_trial = not local and ray.get_runtime_context().worker.mode == ray.WORKER_MODE
        # A Tune trial's placement group also holds the driver's CPU (RLlib's main-process bundle).
        driver_cpus = 1.0 if in_trial else 0.0
        capacity = cluster_capacity(ray)
        config = with_num_env_runners(
            config, resolve_num_env_runners(config.resources, capacity, num_gpus_per_learner=num_gpus, driver_cpus=driver_cpus)
        )
        echo(capacity_line(config.resources, capacity, requested=requested_runners, num_gpus_per_learner=num_gpus, driver_cpus=driver_cpus))
        rllib_config = config.training.to_rllib(config, num_gpus_per_learner=num_gpus)
        echo(
            f"{config.algorithm} on {config.scenario.name}: policies {sorted(rllib_config.policies)}, "
            f"{config.resources.num_env_runners} env runner(s) x {config.resources.num_envs_per_env_runner} env(s), "
            f"learner on {'GPU' if num_gpus else 'CPU'} ({gpu_reason})"
        )
        algo = rllib_config.build_algo()
        try:
            echo(apply_driver_threads(algo, config, ray, num_gpus))
            start = {"iteration": None, "env_steps": 0}
            if checkpoint is not None:
                algo.restore_from_path(str(checkpoint))
                start = read_meta(checkpoint)
                echo(f"resumed from {checkpoint.name} (iteration {start['iteration']}, {start['env_steps']:,} env steps)")
            if config.resources.num_env_runners:
                alive = sum(node["Alive"] for node in ray.nodes())
                echo(f"env runners on {len(set(env_runner_nodes(algo)))} of the cluster's {alive} node(s)")
            echo(f"Ray's and RLlib's log: {run_dir / LOG_FILE}")
            _loop(algo, config, run_dir, start["iteration"], start["env_steps"], echo, max_iterations, on_iteration)
        finally:
            algo.stop()
    return run_dir


def apply_driver_threads(algo, config: ExperimentConfig, ray, num_gpus_per_learner: float) -> str:
    """Size this process's thread pools (resources.threads.driver) once the env runners are
    placed; returns the line that states every process's threads."""
    resources = config.resources
    here = ray.get_runtime_context().get_node_id()
    node_cpus = next((node["Resources"].get("CPU", 0.0) for node in ray.nodes() if node["NodeID"] == here), 0.0)
    runners_here = env_runner_nodes(algo).count(here) if resources.num_env_runners else 0
    large_cpu_update = (
        resources.threads.driver == "auto" and not num_gpus_per_learner and resources.num_learners == 0
        and update_work(algo.config) >= resources.large_update_work
    )
    threads = driver_threads(
        resources.threads.driver, node_cpus, runners_here * resources.num_cpus_per_env_runner, large_cpu_update=large_cpu_update
    )
    limit_threads(threads)
    return threads_line(
        threads,
        resources.num_env_runners,
        actor_threads(resources.threads.env_runner, resources.num_cpus_per_env_runner),
        resources.num_learners,
        actor_threads(resources.threads.learner, learner_cpus(1, num_gpus_per_learner)),
    )


def checks_before_ray(config: ExperimentConfig, spec: ScenarioSpec) -> ScenarioFault | None:
    """PettingZoo's API test and a couple of checked random episodes; raises what they find.

    A scenario fault is returned instead (to be printed as a warning) when the config opts
    into `resources.restart_failed_sub_environments`: the user declared the scenario flaky,
    and RLlib will rebuild a copy that fails during training.
    """
    try:
        check_parallel_api(spec)
        check_scenario_data(spec, np.random.default_rng(config.seed))
    except ScenarioFault as fault:
        if config.resources.restart_failed_sub_environments:
            return fault
        raise
    return None


def warn_if_cannot_render(spec: ScenarioSpec, echo: Printer) -> None:
    """Say now, not after training, when `marl evaluate --render` will fail for this scenario."""
    problem = render_problem(spec)
    if problem:
        echo(f"WARNING: scenario {spec.name!r} cannot render: {problem}. `marl evaluate --render` will not work; to fix it, {RENDER_FIX}")


def _checkpoint_meta(algo, config: ExperimentConfig, row: dict[str, float]) -> dict:
    return {
        "iteration": int(row["iteration"]),
        "env_steps": int(row["env_steps"]),
        "config": config_to_dict(config),
        "env_config": dict(algo.config.env_config),
        # The env class the runners used (the team adapter for joint policies), as module:name.
        "env_class": f"{algo.config.env.__module__}:{algo.config.env.__qualname__}",
        "policy_mapping": dict(algo.config.policy_mapping_fn.mapping),
        # Whether the env runners rescaled Box actions from [-1, 1] (evaluation must do the same).
        "normalize_actions": bool(algo.config.normalize_actions),
    }


def env_runner_nodes(algo) -> list[str]:
    """The Ray node id of each remote env runner (healthy ones), in runner order."""
    import ray

    return algo.env_runner_group.foreach_env_runner(
        lambda runner: ray.get_runtime_context().get_node_id(), local_env_runner=False
    )


def _loop(algo, config, run_dir, start_iteration, start_steps, echo, max_iterations, on_iteration) -> None:
    writer = MetricsWriter(run_dir, resume_from_iteration=start_iteration)
    teams = _announce_teams(algo, config, echo)
    target = config.stop.env_steps
    stop = _StopRequest(echo)
    row = None
    started = time.time()
    try:
        with stop.installed():
            iterations = 0
            while True:
                tick = time.time()
                previous_steps = row["env_steps"] if row else start_steps
                row = flatten_result(algo.train())
                iterations += 1
                row["steps_per_s"] = (row["env_steps"] - previous_steps) / max(time.time() - tick, 1e-9)
                writer.write(row)
                echo(progress_line(
                    row, target_steps=target, steps_per_s=row["steps_per_s"], elapsed_s=time.time() - started, teams=teams
                ))
                hook_stops = bool(on_iteration(algo, row)) if on_iteration is not None else False
                done = (
                    row["env_steps"] >= target or stop.requested or hook_stops
                    or (max_iterations and iterations >= max_iterations)
                )
                if done or int(row["iteration"]) % config.checkpoint.every_iterations == 0:
                    path = save_checkpoint(algo, run_dir, _checkpoint_meta(algo, config, row), config.checkpoint.keep)
                    echo(f"checkpoint: {path}")
                if done:
                    echo(
                        f"done: {int(row['env_steps']):,} env steps, {returns_text(row, teams)}. "
                        f"Resume with: marl train --resume {run_dir}"
                    )
                    break
    finally:
        writer.close()


def _announce_teams(algo, config: ExperimentConfig, echo: Printer) -> dict[str, list[str]]:
    """The teams whose returns the progress line shows apart (a mixed game), said once at the start."""
    teams = teams_of(list(algo.config.policy_mapping_fn.mapping), config.teams)
    if len(teams) > 1:
        listed = "; ".join(f"{team}: {', '.join(members)}" for team, members in teams.items())
        how = "from the config's `teams`" if config.teams else "by agent name; set `teams:` in the config to group them otherwise"
        echo(f"teams ({how}): {listed}")
    return teams


def resume(
    run_dir: str | Path,
    *,
    address: str | None = None,
    echo: Printer = echo_line,
    max_iterations: int | None = None,
    on_iteration: IterationHook | None = None,
) -> Path:
    """Continue the run in `run_dir` from its latest checkpoint."""
    run_dir = Path(run_dir).resolve()
    return train(
        load_run_config(run_dir), run_dir=run_dir, address=address, echo=echo, max_iterations=max_iterations,
        on_iteration=on_iteration,
    )
