"""The return so far of episodes that have not finished: progress to show on long episodes.

RLlib reports an episode's return only once it ends, so a run whose episodes outlast an
iteration (long simulators, agents that never die) shows `nan` until then. This
`on_sample_end` callback keeps, per env runner, each ongoing episode's return summed
over its sampled chunks, and logs their mean under `PARTIAL_RETURN`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ray.rllib.utils.metrics.metrics_logger import MetricsLogger

PARTIAL_RETURN = "episode_return_partial"


class PartialReturns:
    """RLlib `on_sample_end` callback (one copy per env runner: the config is copied into each)."""

    def __init__(self):
        self._so_far: dict[str, float] = {}

    def __call__(self, *, metrics_logger: MetricsLogger, samples, **kwargs) -> None:
        ongoing = {}
        for chunk in samples:
            if not chunk.is_done:  # a finished episode's return is RLlib's own metric
                ongoing[chunk.id_] = self._so_far.get(chunk.id_, 0.0) + float(chunk.get_return())
        self._so_far = ongoing  # episodes dropped by a reset disappear with the chunks
        if ongoing:
            metrics_logger.log_value(PARTIAL_RETURN, sum(ongoing.values()) / len(ongoing), reduce="mean", window=1)
