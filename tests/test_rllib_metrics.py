"""The flat metric loggers log exactly what RLlib's `log_dict`-based code logs (no Ray needed)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from ray.rllib.env.multi_agent_env_runner import MultiAgentEnvRunner
from ray.rllib.utils.metrics.metrics_logger import MetricsLogger

from marl.rllib.metrics import episode_window, log_episode_metrics, log_terms


def _episodes(count: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    for _ in range(count):
        length = int(rng.integers(1, 26))
        agents = {"agent_0": float(rng.normal()), "agent_1": float(rng.normal())}
        yield dict(
            length=length, ret=sum(agents.values()), sec=float(rng.random()), agents=agents,
            modules={"shared": sum(agents.values())}, agent_steps={agent: length for agent in agents},
        )


@pytest.mark.parametrize("num_env_runners", [0, 2])
def test_episode_metrics_equal_rllibs_over_and_beyond_the_window(num_env_runners):
    config = SimpleNamespace(metrics_num_episodes_for_smoothing=10, num_env_runners=num_env_runners)
    theirs, mine = MetricsLogger(), MetricsLogger()
    runner = SimpleNamespace(config=config, metrics=theirs)
    for episode in _episodes(37):  # more episodes than the window: only the newest count
        MultiAgentEnvRunner._log_episode_metrics(runner, **episode)
        log_episode_metrics(
            mine, window=episode_window(10, num_env_runners), length=episode["length"], episode_return=episode["ret"],
            seconds=episode["sec"], agents=episode["agents"], modules=episode["modules"], agent_steps=episode["agent_steps"],
        )
    expected, got = theirs.reduce(), mine.reduce()
    assert got.keys() == expected.keys()
    assert _flatten(got) == pytest.approx(_flatten(expected))


def test_log_terms_equal_log_dict_with_a_key():
    theirs, mine = MetricsLogger(), MetricsLogger()
    for step in range(5):
        terms = {"pg_loss": 0.1 * step, "entropy": 1.0 - 0.01 * step}
        theirs.log_dict(terms, key="agent_0", window=1)
        log_terms(mine, terms, key="agent_0")
    got = _flatten(mine.reduce())
    assert got == pytest.approx(_flatten(theirs.reduce()))
    assert got[("agent_0", "pg_loss")] == pytest.approx(0.4)  # window 1: the last value


def _flatten(tree: dict, prefix: tuple = ()) -> dict:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, prefix + (key,)))
        else:
            flat[prefix + (key,)] = float(value)
    return flat
