"""How a BN-MAPPO run's coordination graph forms and dissolves, read from its run directory.

The learner logs, every iteration, the statistics of the graphs it re-sampled in its
training pass (marl/algorithms/bn/learner.py): edge density, depth, how often agent j was a
parent of agent i (`edge_freq_<j>_<i>`), and the annealing schedule's target density tau and
weight alpha. These functions turn `metrics.csv` into tidy tables for plots.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from marl.core.keys import EDGE_DENSITY, GRAPH_TERMS, edge_frequency_key
from marl.envs.scenario import ScenarioSpec
from marl.training.runner import load_run_config


def _graph_column(frame: pd.DataFrame, name: str) -> str | None:
    """The metrics.csv column of a learner statistic, whatever module logged it."""
    return next((c for c in frame.columns if c == name or c.endswith("/" + name)), None)


def dag_history(run_dir: str | Path) -> pd.DataFrame:
    """env_steps plus the graph statistics (marl.core.keys.GRAPH_TERMS present in the run), one row per iteration."""
    frame = pd.read_csv(Path(run_dir) / "metrics.csv")
    columns = {name: _graph_column(frame, name) for name in GRAPH_TERMS}
    found = {name: column for name, column in columns.items() if column is not None}
    if EDGE_DENSITY not in found:
        raise ValueError(f"{run_dir}: metrics.csv has no {EDGE_DENSITY} column; is it a bn_mappo run?")
    return frame[["env_steps", *found.values()]].rename(columns={c: n for n, c in found.items()})


def run_agents(run_dir: str | Path) -> list[str]:
    """The run's scenario agents, in the fixed order the graph indices refer to."""
    scenario = load_run_config(run_dir).scenario
    env = ScenarioSpec(name=scenario.name, kwargs=scenario.kwargs, wrappers=scenario.wrappers).make()
    try:
        return list(env.possible_agents)
    finally:
        env.close()


def edge_frequency(run_dir: str | Path, *, iteration: int = -1) -> pd.DataFrame:
    """agent x agent: how often the row agent was a parent of the column agent, at one
    logged iteration (default: the last; negative indices count from the end)."""
    frame = pd.read_csv(Path(run_dir) / "metrics.csv")
    agents = run_agents(run_dir)
    row = frame.iloc[iteration]
    matrix = pd.DataFrame(0.0, index=agents, columns=agents)
    for j, parent in enumerate(agents):
        for i, child in enumerate(agents):
            column = _graph_column(frame, edge_frequency_key(j, i))
            if column is not None and pd.notna(row[column]):
                matrix.loc[parent, child] = float(row[column])
    return matrix
