"""Resources resolved from what the Ray cluster really has, checked before anything is built.

Env runners: the requested count (or `auto`) against the cluster's CPUs, with Ray's own
accounting (below), so a request that would make Ray wait forever fails with one line; for a
local run this happens before Ray is even imported (`marl train` checks the raw config).

RLlib on its own raises (local learner) or waits forever (remote learners) when a
GPU is requested that the cluster lacks; we decide before building anything.

Which GPUs count: remote learners are actors Ray places on any node, so the whole
cluster's; the local learner (num_learners: 0) runs in the driver process, so only its
own node's (a driver on a CPU head node cannot use a GPU on a worker node).
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass
from typing import Literal

from marl.errors import ConfigError


# -- GPUs: `auto` picks the GPU only where an update is big enough to pay for it --------------
#
# Measured on one H200 with 16 cores (../shared/device/README.md, 2026-12-01): MAPPO's shipped
# config (update work 2.7e8, below) trained at 2,200 env steps/s with the GPU learner against
# 3,400 with the CPU learner; MADDPG's (8.9e7) at 2,100 against 3,100. Kernel launches and
# transfers cost more than the arithmetic they save at those sizes. So `auto` takes the GPU
# only when one gradient step's work reaches `resources.large_update_work` (default 2e9:
# an order of magnitude above both losing configs, below the 1e10 of the 14-runner, 256x256,
# 22,400-row workload). Where exactly the GPU starts to win has not been measured yet:
# `benchmarks/hardware.py` times both learners on each workload and prints each one's work,
# which is how the default is to be set.


def update_work(rllib_config) -> float:
    """One gradient step's work: the parameters of all modules x the rows of one minibatch.

    A proxy for the FLOPs of a forward and backward pass (both scale with it for MLPs),
    computed from the built (CPU) modules and the config's minibatch, before any learner exists.
    """
    module = rllib_config.rl_module_spec.build()
    params = sum(p.numel() for module_id in module.keys() for p in module[module_id].parameters())
    rows = getattr(rllib_config, "minibatch_size", None) or rllib_config.train_batch_size_per_learner
    return float(params) * float(rows)


def resolve_num_gpus_per_learner(
    requested: float | Literal["auto"],
    cluster_gpus: float,
    num_learners: int,
    *,
    work: float | None = None,
    min_work: float = 0.0,
) -> float:
    """GPUs per learner: `auto` -> 1 if the cluster has a GPU for every learner and the update's
    `work` (when given) reaches `min_work`, else 0. An explicit request the cluster cannot
    meet fails in one line (RLlib would raise late or wait forever)."""
    learners = max(1, num_learners)
    if requested == "auto":
        return 1.0 if cluster_gpus >= learners and (work is None or work >= min_work) else 0.0
    if requested * learners > cluster_gpus:
        raise ConfigError(
            f"resources.num_gpus_per_learner: {requested} x {learners} learner(s) needs "
            f"{requested * learners:g} GPU(s) but the Ray cluster has {cluster_gpus:g} "
            f"{'for remote learners' if num_learners else 'on the driver node (num_learners: 0)'}; "
            "set num_gpus_per_learner: auto (GPU where there is one) or 0"
        )
    return float(requested)


def choose_learner_gpus(config, usable_gpus: float) -> tuple[float, str]:
    """`resources.num_gpus_per_learner` of an experiment resolved against `usable_gpus`, and the
    reason, for the run's first lines. The update's work is only computed when `auto` has a
    GPU to choose (it builds the modules once on the CPU)."""
    resources = config.resources
    requested, learners = resources.num_gpus_per_learner, resources.num_learners
    if requested != "auto" or usable_gpus < max(1, learners):
        gpus = resolve_num_gpus_per_learner(requested, usable_gpus, learners)
        return gpus, "as configured" if requested != "auto" else "auto: no GPU for every learner"
    work = update_work(config.training.to_rllib(with_num_env_runners(config, 0), num_gpus_per_learner=0))
    threshold = resources.large_update_work
    gpus = resolve_num_gpus_per_learner(requested, usable_gpus, learners, work=work, min_work=threshold)
    relation = ">=" if gpus else "<"
    return gpus, f"auto: update work {work:.2g} {relation} resources.large_update_work {threshold:.2g}"


def usable_learner_gpus(ray, num_learners: int) -> float:
    """GPUs the learners can use on the connected Ray cluster (see the module docstring)."""
    if num_learners > 0:
        return ray.cluster_resources().get("GPU", 0.0)
    here = ray.get_runtime_context().get_node_id()
    return next((node["Resources"].get("GPU", 0.0) for node in ray.nodes() if node["NodeID"] == here and node["Alive"]), 0.0)


def learner_gpus_for(config, ray) -> float:
    """`resources.num_gpus_per_learner` of an experiment config, resolved on the connected cluster."""
    return choose_learner_gpus(config, usable_learner_gpus(ray, config.resources.num_learners))[0]


# -- CPUs: what the requested actors need against what the cluster has ------------------------
#
# What Ray actually reserves (RLlib 2.60, read in ray/rllib/algorithms/utils.py and
# env/env_runner_group.py): outside Tune, `build_algo()` starts each remote env runner as an
# actor asking `num_cpus_per_env_runner` CPUs and each remote learner one asking
# `num_cpus_per_learner` (`auto`: 1 without a GPU, 0 with one); the driver, its local env
# runner and a local learner (num_learners: 0) reserve nothing. An actor that asks more than
# the cluster has left waits forever, so that sum must fit. Under Tune (`marl sweep`) the trial
# also holds RLlib's main-process bundle (`default_resource_request`): 1 CPU for the driver.


@dataclass(frozen=True)
class ClusterCapacity:
    """CPUs and GPUs Ray can hand out, and where they were counted (for messages)."""

    cpus: float
    gpus: float
    where: str  # "this machine" or "the Ray cluster"


def local_cpu_count() -> int:
    """CPUs this process may use: its affinity mask, capped by a cgroup (container) quota.

    Counted without Ray, so a local run is checked before Ray is imported; the local Ray
    instance is then started with exactly this many CPUs (`ray_session`), so the check and
    Ray's scheduler agree.
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cpus = os.cpu_count() or 1
    quota = _cgroup_cpu_quota()
    return max(1, min(cpus, int(quota)) if quota else cpus)


def _cgroup_cpu_quota() -> float | None:
    """CPUs of a cgroup v2 `cpu.max` quota (`max` or no file: none)."""
    try:
        limit, period = open("/sys/fs/cgroup/cpu.max").read().split()[:2]
    except (OSError, ValueError):
        return None
    return None if limit == "max" else float(limit) / float(period)


def learner_cpus(num_learners: int, num_gpus_per_learner: float) -> float:
    """CPUs Ray reserves for remote learners (RLlib's `num_cpus_per_learner: auto`)."""
    return num_learners * (0.0 if num_gpus_per_learner else 1.0)


def env_runners_that_fit(capacity: ClusterCapacity, cpus_per_runner: float, reserved_cpus: float) -> int:
    """How many env runners fit in the CPUs left after `reserved_cpus` (never negative)."""
    return max(0, math.floor((capacity.cpus - reserved_cpus) / cpus_per_runner + 1e-9))


def resolve_num_env_runners(
    resources, capacity: ClusterCapacity, *, num_gpus_per_learner: float = 0.0, driver_cpus: float = 0.0
) -> int:
    """`resources.num_env_runners` checked against `capacity`; `auto` -> the most that fit.

    `driver_cpus`: CPUs Ray reserves for the driver (0 for `marl train`, 1 in a Tune trial;
    see above). `auto` also leaves one CPU for the driver, which samples nothing but learns:
    on 2 cores it gives 1 runner, on 16 cores 15. Raises ConfigError with one line saying
    what was asked, what there is and what fits, instead of the hang Ray would give.
    """
    learners = learner_cpus(resources.num_learners, num_gpus_per_learner)
    reserved = driver_cpus + learners
    per_runner = resources.num_cpus_per_env_runner
    if reserved > capacity.cpus:
        raise ConfigError(
            f"resources.num_learners: {resources.num_learners} remote learner(s) x 1 CPU"
            f"{f' + {driver_cpus:g} for the driver' if driver_cpus else ''} need {reserved:g} CPUs; "
            f"{capacity.where} has {capacity.cpus:g}: use num_learners <= {max(0, math.floor(capacity.cpus - driver_cpus))} "
            "(0: the learner runs in the driver)"
        )
    fit = env_runners_that_fit(capacity, per_runner, reserved)
    if resources.num_env_runners == "auto":
        return env_runners_that_fit(capacity, per_runner, reserved + (0 if driver_cpus else 1))
    requested = resources.num_env_runners
    if requested * per_runner + reserved > capacity.cpus + 1e-9:
        extras = "".join(
            f" + {cpus:g} for {what}" for cpus, what in ((learners, "remote learners"), (driver_cpus, "the driver")) if cpus
        )
        raise ConfigError(
            f"resources.num_env_runners: {requested} env runners x {per_runner:g} CPU{extras} need "
            f"{requested * per_runner + reserved:g} CPUs; {capacity.where} has {capacity.cpus:g}: "
            f"use num_env_runners <= {fit}, or `auto`"
        )
    return requested


def with_num_env_runners(config, num_env_runners: int):
    """`config` with `resources.num_env_runners` resolved (a copy; the same object if unchanged)."""
    if config.resources.num_env_runners == num_env_runners:
        return config
    resolved = config.model_copy(deep=True)
    resolved.resources.num_env_runners = num_env_runners
    return resolved


def capacity_line(
    resources, capacity: ClusterCapacity, *, requested: int | str, num_gpus_per_learner: float = 0.0, driver_cpus: float = 0.0
) -> str:
    """The one line a run prints: the env runners it reserves (and what was asked), and what would fit."""
    reserved = driver_cpus + learner_cpus(resources.num_learners, num_gpus_per_learner)
    used = resources.num_env_runners * resources.num_cpus_per_env_runner + reserved
    fit = env_runners_that_fit(capacity, resources.num_cpus_per_env_runner, reserved)
    asked = f" ({requested})" if requested == "auto" else ""
    return (
        f"resources: {resources.num_env_runners}{asked} env runner(s) x {resources.num_cpus_per_env_runner:g} CPU; "
        f"{used:g} of {capacity.where}'s {capacity.cpus:g} CPUs reserved in Ray, up to {fit} env runners fit"
    )


def starts_local_ray(address: str | None) -> bool:
    """Whether `marl train` will start a fresh local Ray (no cluster to join): then this
    machine's CPUs are the cluster's, and they can be checked before Ray is imported."""
    ray = sys.modules.get("ray")  # looked up, not imported: this check must not wait for Ray
    return not address and not os.environ.get("RAY_ADDRESS") and not (ray is not None and ray.is_initialized())


def local_env_runners(resources) -> int:
    """Before Ray starts: the env runners (`auto` resolved) checked against this machine's CPUs.

    Learner GPUs are not known yet; a GPU learner reserves no CPU, so assuming none is the
    stricter check. The local Ray is then started with exactly these CPUs (`runner.ray_session`).
    """
    requested_gpus = resources.num_gpus_per_learner
    gpus = 0.0 if requested_gpus == "auto" else float(requested_gpus)
    capacity = ClusterCapacity(local_cpu_count(), 0.0, "this machine")
    return resolve_num_env_runners(resources, capacity, num_gpus_per_learner=gpus)


def precheck_raw_resources(raw_resources, address: str | None) -> None:
    """The CLI's first check, on the config file's raw `resources` section, before the whole
    config is validated (which imports RLlib): a run that cannot fit fails in a second.
    A section that does not validate is left to the full validation, which names the key."""
    if not starts_local_ray(address):
        return
    from pydantic import ValidationError

    from marl.config import ResourcesConfig

    try:
        resources = ResourcesConfig.model_validate(raw_resources or {})
    except ValidationError:
        return
    local_env_runners(resources)


# -- threads per process (applied by marl/rllib/threads.py) -----------------------------------


def actor_threads(requested: int | str, granted_cpus: float) -> int:
    """Threads of a Ray actor: the setting, or (`auto`) its granted CPUs rounded down, at least 1."""
    return requested if requested != "auto" else max(1, math.floor(granted_cpus + 1e-9))


def driver_threads(requested: int | str, node_cpus: float, env_runner_cpus_on_node: float, *, large_cpu_update: bool) -> int:
    """Threads of the driver (and a local learner): the setting, or (`auto`) 1, unless the
    learner in it runs a large update on the CPU: then what its node has left after the env
    runners Ray placed there, at least 1.

    Why one thread for small updates: torch's intra-op pool (all cores by default) made the
    shipped MAPPO ~10x slower at 2 threads than at 1 on a 2-core machine that others were
    loading too (docs/performance.md): for a 128x128 MLP the threads mostly wait for each other,
    and any other busy process (env runners, a neighbour) deschedules one of them.
    """
    if requested != "auto":
        return requested
    return max(1, math.floor(node_cpus - env_runner_cpus_on_node + 1e-9)) if large_cpu_update else 1


def threads_line(driver: int, env_runners: int, env_runner_threads: int, learners: int, learner_threads: int) -> str:
    """The line a run prints once about its thread pools."""
    parts = [f"driver {driver}" + (" (learner in it)" if not learners else "")]
    if env_runners:
        parts.append(f"env runners {env_runner_threads} each")
    if learners:
        parts.append(f"remote learners {learner_threads} each")
    return "threads (torch, numpy/BLAS): " + ", ".join(parts)
