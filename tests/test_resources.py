"""Learner GPU resolution: `auto` falls back to the CPU, an impossible request fails early."""

import pytest

from marl.errors import ConfigError
from marl.training.resources import resolve_num_gpus_per_learner


@pytest.mark.parametrize(
    "requested,cluster_gpus,learners,expected",
    [("auto", 0, 0, 0.0), ("auto", 1, 0, 1.0), ("auto", 1, 2, 0.0), ("auto", 4, 2, 1.0), (0, 0, 0, 0.0), (0.5, 1, 2, 0.5)],
)
def test_gpus_resolve_from_the_cluster(requested, cluster_gpus, learners, expected):
    assert resolve_num_gpus_per_learner(requested, cluster_gpus, learners) == expected


def test_gpu_asked_for_where_there_is_none_is_a_one_line_error():
    with pytest.raises(ConfigError) as info:
        resolve_num_gpus_per_learner(1, 0, 0)
    message = str(info.value)
    assert "\n" not in message and "num_gpus_per_learner" in message and "auto" in message
