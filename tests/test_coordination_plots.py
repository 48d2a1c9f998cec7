"""The coordination figures draw what they are given (no Ray)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd

from coordination.plots import plot_curve, plot_dag, plot_matrix, plot_trajectories

AGENTS = ["a", "b", "c"]


def test_dag_draws_only_edges_above_the_threshold(tmp_path):
    frequency = pd.DataFrame([[0, 0.9, 0.01], [0, 0, 0.5], [0, 0, 0]], index=AGENTS, columns=AGENTS)
    axes = plot_dag(frequency, threshold=0.05, path=tmp_path / "dag.png")
    assert (tmp_path / "dag.png").stat().st_size > 0
    drawn = [patch for patch in axes.patches]  # one arrow per edge
    assert len(drawn) == 2


def test_matrix_curve_and_trajectories_write_pngs(tmp_path):
    matrix = pd.DataFrame(np.eye(3), index=AGENTS, columns=AGENTS)
    matrix.iloc[0, 0] = np.nan
    plot_matrix(matrix, title="m", path=tmp_path / "m.png")
    plot_curve(pd.DataFrame({"env_steps": [1, 2], "value": [0.1, 0.2]}), label="v", path=tmp_path / "c.png")
    frame = pd.DataFrame(
        [{"episode": 0, "step": t, "agent": a, "x": t * i, "y": -t, "landmark_0_x": 1.0, "landmark_0_y": 1.0}
         for t in range(3) for i, a in enumerate(AGENTS)]
    )
    axes = plot_trajectories(frame, episode=0, path=tmp_path / "t.png")
    assert len(axes.get_legend().get_texts()) == 3
    for name in ("m.png", "c.png", "t.png"):
        assert (tmp_path / name).stat().st_size > 0


def test_dag_history_and_edge_frequency_read_the_learners_columns(tmp_path):
    import yaml

    from coordination.dags import dag_history, edge_frequency

    config = {"algorithm": "bn_mappo", "scenario": {"name": "coordination_game", "kwargs": {"n_agents": 3}}, "stop": {"env_steps": 400}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    rows = pd.DataFrame({
        "iteration": [1, 2], "env_steps": [200, 400],
        "team/edge_density": [0.9, 0.1], "team/dag_depth": [2.0, 0.0], "team/tau": [1.0, 0.0],
        "team/edge_freq_0_1": [0.8, 0.05], "team/edge_freq_2_0": [0.3, 0.0],
    })
    rows.to_csv(tmp_path / "metrics.csv", index=False)
    history = dag_history(tmp_path)
    assert list(history.columns) == ["env_steps", "edge_density", "dag_depth", "tau"]
    assert history["edge_density"].tolist() == [0.9, 0.1]
    first = edge_frequency(tmp_path, iteration=0)
    assert first.loc["agent_0", "agent_1"] == 0.8 and first.loc["agent_2", "agent_0"] == 0.3
    assert first.to_numpy().sum() == 0.8 + 0.3
    assert edge_frequency(tmp_path).loc["agent_0", "agent_1"] == 0.05
