"""`marl analyze CHECKPOINT --out DIR`: one checkpoint's coordination metrics, figures and report.

Writes into DIR:
    rollouts.parquet     the greedy rollout dataset (coordination.rollouts.collect_rollouts)
    metrics.json         every number below, plus `marl evaluate`'s returns and task metrics
    action_mi.csv/.png   agent x agent action mutual information (nats; diagonal = entropy)
    action_mi_given_state.csv/.png   the same conditional on the scenario's state, where it
                         exposes a discrete one with few values (the coordination game)
    influence.csv/.png   agent x agent causal influence (row on column, nats)
    policy_diversity.csv/.png  agent x agent mean Jensen-Shannon distance of their policies on
                         the same states (agents with the same spaces; others NaN)
    episode.gif          the first episode
    dag_edge_frequency.csv, dag.png   joint (BN) policies: how often each agent acted as a
                         parent of each other in the rollouts, and the graph drawn
    report.md            a short summary with the figures

Scenario-specific parts, chosen from what the dataset holds:
- landmarks and positions (simple_spread): landmark coverage within 0.1 and the
  agent -> nearest-landmark assignment at the last recorded step, its entropy across
  episodes and each agent's landmark entropy;
- an agent that does not move but speaks and sees a goal landmark (speaker-listener's
  speaker): positive signalling I(message; goal) and positive listening (team return
  with its actual messages minus with uniformly random ones, same seeds, bootstrap CI).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from coordination.metrics import (
    assignment_entropy,
    dag_statistics,
    landmark_coverage,
    nearest_landmark_assignment,
    pairwise_action_mi,
    per_agent_landmark_entropy,
    positive_listening,
    positive_signalling,
)
from coordination.plots import plot_dag, plot_matrix
from coordination.rollouts import (
    Intervention,
    actions_table,
    collect_rollouts,
    diversity_matrix,
    episode_returns,
    influence_matrix,
    save_rollouts,
)
from marl.evaluation import evaluate

REACHED = 0.1


def analyze(checkpoint: str | Path, out: str | Path, *, episodes: int = 50, influence_episodes: int = 5, seed: int = 1000) -> dict[str, Any]:
    """Compute everything for one checkpoint into `out`; returns the metrics dict."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    frame = collect_rollouts(checkpoint, episodes=episodes, seed=seed)
    save_rollouts(frame, out / "rollouts.parquet")
    evaluation = evaluate(checkpoint, episodes=episodes, seed=seed, render_path=out / "episode.gif")
    metrics: dict[str, Any] = {"checkpoint": str(checkpoint), "episodes": episodes, "evaluation": evaluation.summary()}

    matrices = {}
    joint = any(column.startswith("parent_") for column in frame.columns)
    if "action" in frame and frame["action"].notna().all():
        table = actions_table(frame)
        matrices["action_mi"] = pairwise_action_mi(table)
        state = discrete_state_labels(frame, table.index)
        if state is not None:  # remove the shared cause: agents reacting to the same state
            matrices["action_mi_given_state"] = pairwise_action_mi(table, state=state)
        if not joint:  # both step agents one by one; a joint policy acts for the whole team
            matrices["influence"] = influence_matrix(checkpoint, episodes=influence_episodes, seed=seed)
            matrices["policy_diversity"] = diversity_matrix(checkpoint, episodes=influence_episodes, seed=seed)
    if joint:
        frequency, statistics = graph_statistics(frame)
        frequency.to_csv(out / "dag_edge_frequency.csv")
        plot_dag(frequency, path=out / "dag.png")
        metrics["dag"] = statistics
    for name, matrix in matrices.items():
        matrix.to_csv(out / f"{name}.csv")
        plot_matrix(matrix, title=_TITLES[name], path=out / f"{name}.png")
        metrics[name] = {row: {col: _number(v) for col, v in values.items()} for row, values in matrix.to_dict("index").items()}

    metrics.update(landmark_metrics(frame))
    metrics.update(communication_metrics(frame, checkpoint, episodes=episodes, seed=seed))
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))
    (out / "report.md").write_text(report(metrics, sorted(matrices)))
    return metrics


_TITLES = {
    "action_mi": "action mutual information (nats)",
    "action_mi_given_state": "action mutual information given the state (nats)",
    "influence": "causal influence, row on column (nats)",
    "policy_diversity": "policy diversity: mean JS distance on shared states",
}


def _number(value) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)


def _last_step_positions(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray] | None:
    """Agent and landmark positions at each episode's last recorded step: (E, n, 2), (E, L, 2)."""
    landmark_x = sorted(c for c in frame.columns if c.startswith("landmark_") and c.endswith("_x"))
    if not landmark_x or "x" not in frame:
        return None
    last = frame[frame.step == frame.groupby("episode")["step"].transform("max")].sort_values(["episode", "agent"])
    agents = last["agent"].nunique()
    agent_pos = last[["x", "y"]].to_numpy().reshape(-1, agents, 2)
    first_rows = last.groupby("episode").head(1)
    landmark_pos = np.stack([first_rows[[c, c[:-2] + "_y"]].to_numpy() for c in landmark_x], axis=1)
    return agent_pos, landmark_pos


def landmark_metrics(frame: pd.DataFrame) -> dict[str, Any]:
    """Coverage and who-goes-where, for scenarios with landmarks that agents should occupy."""
    positions = _last_step_positions(frame)
    if positions is None or "goal_landmark" in frame:
        return {}
    agent_pos, landmark_pos = positions
    assignments = nearest_landmark_assignment(agent_pos, landmark_pos)
    agents = sorted(frame["agent"].unique())
    return {
        "landmark_coverage_last_step": float(np.mean(landmark_coverage(agent_pos, landmark_pos, REACHED))),
        "assignment_entropy": assignment_entropy(assignments),
        # ln of the number of distinct assignments possible: n! permutations, at most one per episode.
        "assignment_entropy_max": float(np.log(min(math.factorial(agent_pos.shape[1]), len(assignments)))),
        "per_agent_landmark_entropy": dict(zip(agents, map(float, per_agent_landmark_entropy(assignments)))),
    }


MAX_STATE_LABELS = 64
"""Condition action MI on the scenario's state only when it takes few values (e.g. the
coordination game's bits): with more labels than that the plug-in estimate has too few
samples per state to mean anything."""


def discrete_state_labels(frame: pd.DataFrame, index: pd.MultiIndex) -> np.ndarray | None:
    """One label per (episode, step) of `index` from the `state_<k>` columns, or None when the
    scenario exposes no such state or it takes more than MAX_STATE_LABELS values."""
    columns = sorted((c for c in frame.columns if c.startswith("state_")), key=lambda c: int(c.split("_")[1]))
    if not columns:
        return None
    per_step = frame.drop_duplicates(["episode", "step"]).set_index(["episode", "step"]).loc[index, columns]
    labels = per_step.astype(str).agg("|".join, axis=1).to_numpy()
    return labels if len(set(labels)) <= MAX_STATE_LABELS else None


def graph_statistics(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, float]]:
    """A joint policy's execution graphs in a rollout dataset: the edge frequency matrix (row
    = parent) and the mean density and depth (coordination.metrics.dag_statistics)."""
    agents = list(pd.unique(frame["agent"]))
    steps = frame.sort_values(["episode", "step"]).groupby(["episode", "step"], sort=False)
    adjacency = np.stack([
        np.array([[0.0 if parent == child else float(rows.set_index("agent").loc[child, f"parent_{parent}"]) for child in agents] for parent in agents])
        for _, rows in steps
    ])
    statistics = dag_statistics(adjacency)
    frequency = pd.DataFrame(statistics.edge_frequency, index=agents, columns=agents)
    return frequency, {"edge_density": statistics.edge_density, "mean_depth": statistics.mean_depth}


def speakers(frame: pd.DataFrame) -> list[str]:
    """Agents that never move, send messages and see a goal landmark (mpe2's speaker)."""
    if not {"message", "goal_landmark", "vx", "vy"} <= set(frame.columns):
        return []
    found = []
    for agent, rows in frame.groupby("agent"):
        if rows["goal_landmark"].notna().all() and rows["message"].notna().any() and not rows[["vx", "vy"]].any().any():
            found.append(agent)
    return found


def spoken_words(rows: pd.DataFrame) -> np.ndarray:
    """A speaker's word at each of its rows: its Discrete action, or, for a Box message (mpe2's
    `continuous_actions`), the channel it weights most, the same argmax the `message` column
    records from the world. Counting distinct Box vectors instead would make every step a
    different word, and the signalling estimate would only measure the sample size."""
    if "action" in rows and rows["action"].notna().all():
        return rows["action"].to_numpy()
    channels = sorted((c for c in rows.columns if c.startswith("action_") and rows[c].notna().all()), key=lambda c: int(c.split("_")[1]))
    return rows[channels].to_numpy().argmax(axis=1)


def communication_metrics(frame: pd.DataFrame, checkpoint, *, episodes: int, seed: int) -> dict[str, Any]:
    """Signalling and listening per speaker; `frame` holds the greedy rollouts of seeds
    seed, seed+1, ..., which are the actual-message side of the paired comparison."""
    results = {}
    actual = episode_returns(frame).to_numpy()
    for speaker in speakers(frame):
        rows = frame[frame.agent == speaker]
        intervened = collect_rollouts(checkpoint, episodes=episodes, seed=seed, intervention=Intervention(speaker, "random"))
        intervened = episode_returns(intervened).to_numpy()
        listening = positive_listening(actual, intervened, np.random.default_rng(seed), paired=True)
        results[speaker] = {
            "positive_signalling_nats": positive_signalling(spoken_words(rows), rows["goal_landmark"].to_numpy()),
            "positive_signalling_max_nats": float(np.log(rows["goal_landmark"].nunique())),
            "positive_listening": {"estimate": listening.estimate, "low": listening.low, "high": listening.high},
            "team_return_actual_messages": float(actual.mean()),
            "team_return_random_messages": float(intervened.mean()),
        }
    return {"communication": results} if results else {}


def report(metrics: dict[str, Any], figures: list[str]) -> str:
    evaluation = metrics["evaluation"]
    lines = [
        "# Coordination report",
        "",
        f"Checkpoint: `{metrics['checkpoint']}`; {metrics['episodes']} greedy episodes.",
        "",
        f"- team return: {evaluation['team_return']['mean']:.2f} ± {evaluation['team_return']['std']:.2f}",
    ]
    lines += [f"- {name}: {entry['mean']:.3f}" for name, entry in evaluation["metrics"].items()]
    for key in ("landmark_coverage_last_step", "assignment_entropy"):
        if key in metrics:
            lines.append(f"- {key.replace('_', ' ')}: {metrics[key]:.3f}")
    for speaker, entry in metrics.get("communication", {}).items():
        listening = entry["positive_listening"]
        lines.append(
            f"- {speaker}: positive signalling {entry['positive_signalling_nats']:.3f} of "
            f"{entry['positive_signalling_max_nats']:.3f} nats; positive listening {listening['estimate']:.2f} "
            f"[{listening['low']:.2f}, {listening['high']:.2f}] (team return, actual minus random messages)"
        )
    if "dag" in metrics:
        dag = metrics["dag"]
        lines.append(f"- execution graphs: edge density {dag['edge_density']:.3f}, mean depth {dag['mean_depth']:.2f} (dag.png)")
    lines += ["", "![episode](episode.gif)", ""]
    lines += [f"![{name}]({name}.png)" for name in figures]
    return "\n".join(lines) + "\n"


def checkpoint_curve(run_dir: str | Path, metric, *, episodes: int = 20, seed: int = 1000) -> pd.DataFrame:
    """`metric(rollouts DataFrame) -> float` for every checkpoint a run kept, by env steps.

    Returns columns checkpoint, iteration, env_steps, value (one row per checkpoint).
    """
    from marl.training.checkpoints import complete_checkpoints, read_meta

    rows = []
    for checkpoint in complete_checkpoints(Path(run_dir)):
        meta = read_meta(checkpoint)
        frame = collect_rollouts(checkpoint, episodes=episodes, seed=seed)
        rows.append({"checkpoint": str(checkpoint), "iteration": meta.get("iteration"), "env_steps": meta.get("env_steps"), "value": metric(frame)})
    return pd.DataFrame(rows)


def find_checkpoint(env_var: str, run_prefix: str, runs_root: str | Path = "runs") -> Path:
    """The checkpoint a notebook analyses: `$env_var` if set (a checkpoint or run directory),
    else the latest checkpoint of the newest run `runs_root/<run_prefix>-*`."""
    import os

    from marl.training.checkpoints import resolve_checkpoint

    given = os.environ.get(env_var)
    if given:
        return resolve_checkpoint(given)
    runs = sorted(Path(runs_root).glob(f"{run_prefix}-*"))
    if not runs:
        raise FileNotFoundError(
            f"no run {runs_root}/{run_prefix}-*: train one (see the notebook's first cell) or set {env_var} to a checkpoint"
        )
    return resolve_checkpoint(runs[-1])
