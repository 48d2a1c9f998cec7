"""Learner resources resolved from what the Ray cluster really has.

RLlib on its own raises (local learner) or waits forever (remote learners) when a
GPU is requested that the cluster lacks; we decide before building anything.

Which GPUs count: remote learners are actors Ray places on any node, so the whole
cluster's; the local learner (num_learners: 0) runs in the driver process, so only its
own node's (a driver on a CPU head node cannot use a GPU on a worker node).
"""

from __future__ import annotations

from typing import Literal

from marl.errors import ConfigError


def resolve_num_gpus_per_learner(requested: float | Literal["auto"], cluster_gpus: float, num_learners: int) -> float:
    """GPUs per learner: `auto` -> 1 if the cluster has a GPU for every learner, else 0."""
    learners = max(1, num_learners)
    if requested == "auto":
        return 1.0 if cluster_gpus >= learners else 0.0
    if requested * learners > cluster_gpus:
        raise ConfigError(
            f"resources.num_gpus_per_learner: {requested} x {learners} learner(s) needs "
            f"{requested * learners:g} GPU(s) but the Ray cluster has {cluster_gpus:g} "
            f"{'for remote learners' if num_learners else 'on the driver node (num_learners: 0)'}; "
            "set num_gpus_per_learner: auto (GPU where there is one) or 0"
        )
    return float(requested)


def usable_learner_gpus(ray, num_learners: int) -> float:
    """GPUs the learners can use on the connected Ray cluster (see the module docstring)."""
    if num_learners > 0:
        return ray.cluster_resources().get("GPU", 0.0)
    here = ray.get_runtime_context().get_node_id()
    return next((node["Resources"].get("GPU", 0.0) for node in ray.nodes() if node["NodeID"] == here and node["Alive"]), 0.0)


def learner_gpus_for(config, ray) -> float:
    """`resources.num_gpus_per_learner` of an experiment config, resolved on the connected cluster."""
    resources = config.resources
    available = usable_learner_gpus(ray, resources.num_learners)
    return resolve_num_gpus_per_learner(resources.num_gpus_per_learner, available, resources.num_learners)
