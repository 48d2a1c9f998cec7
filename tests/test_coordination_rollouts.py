"""Rollout datasets, interventions and counterfactual influence from a real checkpoint.

One tiny MAPPO run on speaker-listener (1 iteration, real local Ray) gives the checkpoint;
the checks are about alignment and known answers, not learning:
- the dataset's rewards give the same team returns as `marl evaluate` on the same seeds;
- the state recorded before step t+1 holds the message the speaker sent at step t;
- a fixed message shows up in the action column and in the world;
- the speaker sees only its goal, so the listener's influence on it is exactly 0, while the
  listener, which hears the message, is influenced by the speaker.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from coordination.rollouts import (
    Intervention,
    actions_table,
    collect_rollouts,
    diversity_matrix,
    episode_returns,
    influence_matrix,
    paired_returns,
    save_rollouts,
)
from marl.experiment import load_config
from marl.evaluation import CheckpointPolicies, StepActions, evaluate
from marl.training.checkpoints import latest_checkpoint
from marl.training.runner import train
from tests.conftest import REPO, tiny_overrides


@pytest.fixture(scope="module")
def speaker_listener_checkpoint(tmp_path_factory):
    config = load_config(REPO / "configs" / "mappo_simple_speaker_listener.yaml", tiny_overrides("mappo"))
    run_dir = train(config, runs_root=tmp_path_factory.mktemp("runs"), echo=lambda _: None, max_iterations=1)
    return latest_checkpoint(run_dir)


def test_dataset_rows_columns_and_returns_match_evaluate(speaker_listener_checkpoint, tmp_path):
    frame = collect_rollouts(speaker_listener_checkpoint, episodes=3, seed=50)
    assert len(frame) == 3 * 25 * 2
    assert {"episode", "step", "agent", "action", "prob_0", "prob_4", "reward", "x", "y", "landmark_2_y"} <= set(frame.columns)
    speaker = frame[frame.agent == "speaker_0"]
    assert speaker["prob_3"].isna().all()  # 3 messages: prob_0..prob_2 only
    np.testing.assert_allclose(speaker[["prob_0", "prob_1", "prob_2"]].sum(axis=1), 1.0, atol=1e-5)
    assert speaker["goal_landmark"].isin([0, 1, 2]).all()
    expected = evaluate(speaker_listener_checkpoint, episodes=3, seed=50).team_returns
    np.testing.assert_allclose(episode_returns(frame).to_numpy(), expected, rtol=1e-6)
    path = save_rollouts(frame, tmp_path / "rollouts.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(path), frame)
    assert actions_table(frame).shape == (75, 2)


def test_recorded_message_is_the_speakers_previous_action(speaker_listener_checkpoint):
    frame = collect_rollouts(speaker_listener_checkpoint, episodes=2, seed=7, explore=True)
    speaker = frame[frame.agent == "speaker_0"].sort_values(["episode", "step"])
    for _, episode in speaker.groupby("episode"):
        np.testing.assert_array_equal(episode["message"].to_numpy()[1:], episode["action"].to_numpy()[:-1])


def test_fixed_message_intervention(speaker_listener_checkpoint):
    frame = collect_rollouts(speaker_listener_checkpoint, episodes=2, seed=3, intervention=Intervention("speaker_0", "fix", value=2))
    speaker = frame[frame.agent == "speaker_0"]
    assert (speaker["action"] == 2).all()
    assert (speaker[speaker.step > 0]["message"] == 2).all()
    actual, intervened = paired_returns(speaker_listener_checkpoint, Intervention("speaker_0", "fix", value=2), episodes=2, seed=3)
    assert actual.shape == intervened.shape == (2,)


def test_influence_follows_what_each_agent_observes(speaker_listener_checkpoint):
    influence = influence_matrix(speaker_listener_checkpoint, episodes=1, seed=11)
    assert list(influence.index) == list(influence.columns) == ["speaker_0", "listener_0"]
    assert np.isnan(influence.loc["speaker_0", "speaker_0"])
    assert influence.loc["listener_0", "speaker_0"] == pytest.approx(0.0, abs=1e-6)  # float32 noise only
    assert influence.loc["speaker_0", "listener_0"] > abs(influence.loc["listener_0", "speaker_0"])


class MessageFollowingPolicies(CheckpointPolicies):
    """Hand-made speaker-listener policies with a known influence, on the real scenario.

    The speaker says 0 or 1 with probability 1/2 each, whatever it sees; the listener
    picks action 1 + (the message it heard) with probability 1 - 4e (e = 0.01), every
    other action with e. Message m moves the listener's distribution to p_m, and the
    marginal over messages is (p_0 + p_1) / 2, so its influence is KL(p_m || (p_0 + p_1)/2).
    """

    def act(self, observations, action_spaces, *, explore):
        probabilities = {"speaker_0": np.array([0.5, 0.5, 0.0])}
        heard = int(np.argmax(observations["listener_0"][8:11])) if observations["listener_0"][8:11].any() else 0
        listener = np.full(5, 0.01)
        listener[1 + heard] = 0.96
        probabilities["listener_0"] = listener
        return StepActions({"speaker_0": 0, "listener_0": 1 + heard}, probabilities, {})


def test_influence_of_a_known_message_following_policy(speaker_listener_checkpoint):
    influence = influence_matrix(MessageFollowingPolicies.from_checkpoint(speaker_listener_checkpoint), episodes=1, seed=0)
    p0, p1 = np.array([0.01, 0.96, 0.01, 0.01, 0.01]), np.array([0.01, 0.01, 0.96, 0.01, 0.01])
    marginal = (p0 + p1) / 2
    expected = float(np.sum(p0 * np.log(p0 / marginal)))  # = KL(p1 || marginal) by symmetry
    assert influence.loc["speaker_0", "listener_0"] == pytest.approx(expected, rel=1e-5)
    assert influence.loc["listener_0", "speaker_0"] == pytest.approx(0.0, abs=1e-12)


class _Discrete:
    shape = ()
    n = 5


def test_intervention_kinds_without_ray():
    spaces = {"a": _Discrete(), "b": _Discrete()}
    actions = {"a": 1, "b": 3}
    rng = np.random.default_rng(0)
    assert Intervention("a", "fix", value=4).apply(actions, spaces, rng) == {"a": 4, "b": 3}
    assert Intervention("a", "zero").apply(actions, spaces, rng) == {"a": 0, "b": 3}
    assert Intervention("a", "swap", other="b").apply(actions, spaces, rng) == {"a": 3, "b": 1}
    drawn = {Intervention("a", "random").apply(actions, spaces, rng)["a"] for _ in range(200)}
    assert drawn == set(range(5))
    assert actions == {"a": 1, "b": 3}  # not modified in place
    assert Intervention("c", "zero").apply(actions, spaces, rng) == actions  # an agent that left
    with pytest.raises(ValueError, match="needs a value"):
        Intervention("a", "fix")
    with pytest.raises(ValueError, match="other agent"):
        Intervention("a", "swap")


def test_marl_analyze_writes_metrics_figures_and_report(speaker_listener_checkpoint, tmp_path, capsys):
    from marl.cli import main

    out = tmp_path / "analysis"
    assert main(["analyze", str(speaker_listener_checkpoint), "--out", str(out), "--episodes", "4", "--influence-episodes", "1"]) == 0
    assert "report.md" in capsys.readouterr().out
    for name in ("rollouts.parquet", "metrics.json", "action_mi.csv", "action_mi.png", "influence.csv", "influence.png", "episode.gif", "report.md"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    speaker = metrics["communication"]["speaker_0"]
    assert 0.0 <= speaker["positive_signalling_nats"] <= speaker["positive_signalling_max_nats"] + 1e-9
    listening = speaker["positive_listening"]
    assert listening["low"] <= listening["estimate"] <= listening["high"]
    assert listening["estimate"] == pytest.approx(speaker["team_return_actual_messages"] - speaker["team_return_random_messages"])
    mi = pd.read_csv(out / "action_mi.csv", index_col=0)
    assert list(mi.index) == ["speaker_0", "listener_0"] and np.allclose(mi.to_numpy(), mi.to_numpy().T)
    assert "landmark_coverage_last_step" not in metrics  # landmarks are goals here, not places to occupy


def test_analyze_spread_landmarks(tmp_path):
    """A shared policy without agent ids: the agents are interchangeable, diversity exactly 0."""
    from coordination.analyze import analyze

    config = load_config(
        REPO / "configs" / "mappo_simple_spread.yaml", [*tiny_overrides("mappo"), "policies.sharing=shared", "policies.agent_id_in_obs=false"]
    )
    checkpoint = latest_checkpoint(train(config, runs_root=tmp_path, echo=lambda _: None, max_iterations=1))
    metrics = analyze(checkpoint, tmp_path / "analysis", episodes=4, influence_episodes=1)
    assert 0.0 <= metrics["landmark_coverage_last_step"] <= 1.0
    assert 0.0 <= metrics["assignment_entropy"] <= metrics["assignment_entropy_max"] + 1e-9
    assert set(metrics["per_agent_landmark_entropy"]) == {"agent_0", "agent_1", "agent_2"}
    assert "communication" not in metrics
    influence = pd.read_csv(tmp_path / "analysis" / "influence.csv", index_col=0)
    off_diagonal = influence.to_numpy()[~np.eye(3, dtype=bool)]
    assert np.all(off_diagonal >= -1e-6) and np.isnan(np.diag(influence.to_numpy())).all()
    diversity = pd.read_csv(tmp_path / "analysis" / "policy_diversity.csv", index_col=0)
    np.testing.assert_allclose(diversity.to_numpy(), 0.0, atol=1e-6)


def test_per_agent_policies_differ_and_speaker_listener_cannot_be_compared(speaker_listener_checkpoint, tmp_path):
    config = load_config(REPO / "configs" / "mappo_simple_spread.yaml", tiny_overrides("mappo"))  # per-agent policies
    checkpoint = latest_checkpoint(train(config, runs_root=tmp_path, echo=lambda _: None, max_iterations=1))
    diversity = diversity_matrix(checkpoint, episodes=1)
    assert np.allclose(np.diag(diversity.to_numpy()), 0.0)
    assert (diversity.to_numpy()[~np.eye(3, dtype=bool)] > 0).all()
    across = diversity_matrix(speaker_listener_checkpoint, episodes=1).to_numpy()
    assert np.isnan(across[~np.eye(2, dtype=bool)]).all()  # different spaces: not comparable


def test_joint_policy_rollouts_have_one_row_per_agent_with_its_parents(tmp_path):
    """BN-MAPPO acts for the whole team; the dataset still has a row per agent with its own
    reward (the coordination game's reward is shared), its parents form a DAG, and the empty
    graph has no parents. Greedy BN rollouts still sample graphs, from generators seeded per
    episode, so their returns are those of `marl evaluate` on the same seeds."""
    import networkx as nx

    overrides = ["resources.num_env_runners=0", "resources.num_envs_per_env_runner=2", "training.train_batch_size=200",
                 "training.num_epochs=1", "stop.env_steps=200"]
    config = load_config(REPO / "configs" / "bn_mappo_coordination_game.yaml", overrides)
    checkpoint = latest_checkpoint(train(config, runs_root=tmp_path, echo=lambda _: None, max_iterations=1))
    frame = collect_rollouts(checkpoint, episodes=2, seed=5)
    agents = ["agent_0", "agent_1", "agent_2"]
    assert len(frame) == 2 * 25 * 3 and list(pd.unique(frame.agent)) == agents
    assert (frame.groupby(["episode", "step"])["reward"].nunique() == 1).all()
    for _, rows in frame.groupby(["episode", "step"]):
        graph = nx.DiGraph([(parent, row.agent) for row in rows.itertuples() for parent in agents
                            if parent != row.agent and getattr(row, f"parent_{parent}") == 1.0])
        assert nx.is_directed_acyclic_graph(graph)
    np.testing.assert_allclose(episode_returns(frame).to_numpy(), evaluate(checkpoint, episodes=2, seed=5).team_returns, rtol=1e-6)
    policies = CheckpointPolicies.from_checkpoint(checkpoint)
    policies.set_execution_graph("empty")
    empty = collect_rollouts(policies, episodes=1, seed=5)
    assert (empty[[f"parent_{a}" for a in agents]].fillna(0.0) == 0.0).all().all()
    from coordination.analyze import analyze

    metrics = analyze(checkpoint, tmp_path / "analysis", episodes=3)
    assert 0.0 <= metrics["dag"]["edge_density"] <= 1.0
    for name in ("dag.png", "dag_edge_frequency.csv", "action_mi.csv", "action_mi_given_state.csv"):
        assert (tmp_path / "analysis" / name).is_file(), name
    given_state = pd.read_csv(tmp_path / "analysis" / "action_mi_given_state.csv", index_col=0)
    assert (given_state.to_numpy() >= -1e-12).all() and list(given_state.index) == agents
    assert "influence" not in metrics  # a joint policy acts for the whole team
