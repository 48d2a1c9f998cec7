"""Learner resources resolved from what the Ray cluster really has.

RLlib on its own raises (local learner) or waits forever (remote learners) when a
GPU is requested that the cluster lacks; we decide before building anything.
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
            f"{requested * learners:g} GPU(s) but the Ray cluster has {cluster_gpus:g}; "
            "set num_gpus_per_learner: auto (GPU where there is one) or 0"
        )
    return float(requested)
