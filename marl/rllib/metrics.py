"""Logging many metrics without `MetricsLogger.log_dict`'s tree traversal.

`log_dict` walks its dict with dm-tree before it calls `log_value` per leaf: ~0.1 ms a
call. The hot paths call it a lot (the learners once per minibatch and module, RLlib's
env runner three times per finished episode), which made it ~10 % of a fast-path MAPPO
iteration (`docs/performance.md`). These helpers make the same `log_value` calls under
the same keys, with the same reduction, directly.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from ray.rllib.utils.metrics import (
    EPISODE_AGENT_RETURN_MEAN,
    EPISODE_AGENT_STEPS,
    EPISODE_DURATION_SEC_MEAN,
    EPISODE_LEN_MAX,
    EPISODE_LEN_MEAN,
    EPISODE_LEN_MIN,
    EPISODE_MODULE_RETURN_MEAN,
    EPISODE_RETURN_MAX,
    EPISODE_RETURN_MEAN,
    EPISODE_RETURN_MIN,
)
from ray.rllib.utils.metrics.metrics_logger import MetricsLogger


def log_terms(metrics: MetricsLogger, terms: Mapping[str, Any], *, key: str, window: int = 1) -> None:
    """`metrics.log_dict(terms, key=key, window=window)` for a flat dict of named terms."""
    for name, value in terms.items():
        metrics.log_value((key, name), value, reduce="mean", window=window)


def log_episode_metrics(
    metrics: MetricsLogger,
    *,
    window: int,
    length: int,
    episode_return: float,
    seconds: float,
    agents: Mapping[str, float] | None = None,
    modules: Mapping[str, float] | None = None,
    agent_steps: Mapping[str, int] | None = None,
) -> None:
    """What RLlib 2.60's `MultiAgentEnvRunner._log_episode_metrics` logs for one finished episode."""
    for key, value in ((EPISODE_LEN_MEAN, length), (EPISODE_RETURN_MEAN, episode_return), (EPISODE_DURATION_SEC_MEAN, seconds)):
        metrics.log_value(key, value, reduce="mean", window=window)
    if agents is not None:
        for group, values in ((EPISODE_AGENT_RETURN_MEAN, agents), (EPISODE_AGENT_STEPS, agent_steps), (EPISODE_MODULE_RETURN_MEAN, modules)):
            for name, value in (values or {}).items():
                metrics.log_value((group, name), value, reduce="mean", window=window)
    for reduce, keys in (("min", (EPISODE_LEN_MIN, EPISODE_RETURN_MIN)), ("max", (EPISODE_LEN_MAX, EPISODE_RETURN_MAX))):
        metrics.log_value(keys[0], length, reduce=reduce, window=window)
        metrics.log_value(keys[1], episode_return, reduce=reduce, window=window)


def episode_window(metrics_num_episodes_for_smoothing: int, num_env_runners: int) -> int:
    """RLlib's per-runner smoothing window: the runners' windows are merged in the driver."""
    return max(1, int(math.ceil(metrics_num_episodes_for_smoothing / (num_env_runners or 1))))
