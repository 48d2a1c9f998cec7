"""MADDPG on a mixed cooperative-competitive scenario, and per-team evaluation.

simple_tag: 3 adversaries (obs 16) chase 1 good agent (obs 14), each maximising its own
reward; a real 2-iteration run (local Ray), then `marl evaluate` reports the returns of
the two teams. The team grouping itself is checked without Ray.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from marl.core.agents import teams_of
from marl.errors import ConfigError
from marl.evaluation import EvaluationResult, evaluate
from marl.training.runner import train
from tests.conftest import REPO, metrics_rows, tiny_config

TAG_AGENTS = ["adversary_0", "adversary_1", "adversary_2", "agent_0"]


def test_teams_by_name_prefix_or_given_mapping():
    assert teams_of(TAG_AGENTS) == {"adversary": ["adversary_0", "adversary_1", "adversary_2"], "agent": ["agent_0"]}
    assert teams_of(["speaker_0", "listener_0"]) == {"speaker": ["speaker_0"], "listener": ["listener_0"]}
    given = {"chasers": ["adversary_0", "adversary_1", "adversary_2"], "prey": ["agent_0"]}
    assert teams_of(TAG_AGENTS, given) == given
    with pytest.raises(ConfigError, match="no team"):
        teams_of(TAG_AGENTS, {"chasers": ["adversary_0"]})
    with pytest.raises(ConfigError, match="unknown agent"):
        teams_of(TAG_AGENTS, {"all": [*TAG_AGENTS, "agent_9"]})
    with pytest.raises(ConfigError, match="both"):
        teams_of(TAG_AGENTS, {"a": TAG_AGENTS, "b": ["agent_0"]})


def test_per_team_returns_sum_each_teams_agents():
    result = EvaluationResult(
        episodes=2,
        team_returns=[6.0, -3.0],
        agent_returns={"adversary_0": [1.0, 0.0], "adversary_1": [2.0, -1.0], "agent_0": [3.0, -2.0]},
        teams=teams_of(["adversary_0", "adversary_1", "agent_0"]),
    )
    assert result.per_team_returns() == {"adversary": [3.0, -1.0], "agent": [3.0, -2.0]}
    assert result.summary()["per_team_return"]["adversary"]["mean"] == pytest.approx(1.0)
    assert "team adversary" in result.table()
    one_team = EvaluationResult(1, [1.0], {"agent_0": [0.5], "agent_1": [0.5]}, teams=teams_of(["agent_0", "agent_1"]))
    assert one_team.summary()["per_team_return"] == {}  # cooperative: the team return says it all


def test_a_wrong_teams_mapping_is_rejected_before_training():
    config = tiny_config("maddpg_simple_tag", "teams={prey: [agent_0]}")
    with pytest.raises(ConfigError, match="no team"):
        config.training.to_rllib(config, num_gpus_per_learner=0)


def test_simple_tag_trains_each_agent_on_its_own_reward_and_evaluates_per_team(tmp_path):
    config = tiny_config("maddpg_simple_tag", "resources.num_env_runners=0")  # sampling in the driver, as the config ships
    run_dir = train(config, runs_root=tmp_path, echo=lambda _: None, max_iterations=2)
    row = metrics_rows(run_dir)[-1]
    for agent in TAG_AGENTS:  # one actor-critic per agent, different observation sizes
        assert np.isfinite(float(row[f"{agent}/critic_loss"])), agent

    result = evaluate(run_dir, episodes=2, explore=True)
    per_team = result.per_team_returns()
    assert set(per_team) == {"adversary", "agent"}
    for episode in range(2):
        assert per_team["adversary"][episode] == pytest.approx(sum(result.agent_returns[a][episode] for a in TAG_AGENTS[:3]))
        assert per_team["agent"][episode] == pytest.approx(result.agent_returns["agent_0"][episode])
    # A competitive game: the prey's reward is not the adversaries' (tagging pays them and costs it).
    assert result.agent_returns["adversary_0"] == result.agent_returns["adversary_1"]  # adversaries share their reward
    cli = subprocess.run(
        [sys.executable, "-m", "marl.cli", "evaluate", str(run_dir), "--episodes", "1"],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )
    assert cli.returncode == 0, cli.stderr
    assert "team adversary" in cli.stdout and "team agent" in cli.stdout
    assert set(json.loads(cli.stdout.strip().splitlines()[-1])["per_team_return"]) == {"adversary", "agent"}
