"""Figures for coordination analyses (matplotlib): each draws on the given axes (or a new
figure), writes a PNG when given a path, and returns the axes so notebooks can compose them."""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd


def _axes(axes, size):
    if axes is not None:
        return axes.figure, axes
    import matplotlib.pyplot as plt  # headless machines fall back to Agg by themselves

    return plt.subplots(figsize=size)


def _save(figure, path: str | Path | None) -> None:
    if path is not None:
        import matplotlib.pyplot as plt

        figure.tight_layout()
        figure.savefig(path, dpi=100)
        plt.close(figure)


def plot_matrix(matrix: pd.DataFrame, *, title: str, axes=None, path: str | Path | None = None):
    """Heat map of an agent x agent matrix (NaN shown as '-'), values written in the cells."""
    figure, axes = _axes(axes, (1.2 * len(matrix) + 2, 1.0 * len(matrix) + 1.5))
    image = axes.imshow(matrix.to_numpy(dtype=float), cmap="viridis")
    axes.set_xticks(range(len(matrix.columns)), matrix.columns, rotation=45, ha="right")
    axes.set_yticks(range(len(matrix.index)), matrix.index)
    for (i, j), value in np.ndenumerate(matrix.to_numpy(dtype=float)):
        axes.text(j, i, "-" if np.isnan(value) else f"{value:.3f}", ha="center", va="center", color="white", fontsize=8)
    figure.colorbar(image, ax=axes)
    axes.set_title(title, fontsize=9)
    _save(figure, path)
    return axes




def plot_trajectories(frame: pd.DataFrame, episode: int, *, axes=None, path: str | Path | None = None):
    """Agents' paths (x, y) in one episode of a rollout dataset, with the landmarks."""
    figure, axes = _axes(axes, (4.5, 4.5))
    rows = frame[frame.episode == episode]
    for agent, path_rows in rows.groupby("agent", sort=False):
        path_rows = path_rows.sort_values("step")
        axes.plot(path_rows["x"], path_rows["y"], marker=".", markersize=3, label=agent)
        axes.plot(path_rows["x"].iloc[-1], path_rows["y"].iloc[-1], "o", color=axes.lines[-1].get_color())
    first = rows.iloc[0]
    for j in range(sum(1 for c in rows.columns if c.startswith("landmark_") and c.endswith("_x"))):
        axes.plot(first[f"landmark_{j}_x"], first[f"landmark_{j}_y"], "kx", markersize=10)
    axes.set_aspect("equal")
    axes.legend(fontsize=7)
    axes.set_title(f"episode {episode}: paths (o = last step, x = landmarks)", fontsize=9)
    _save(figure, path)
    return axes


def plot_dag(edge_frequency: pd.DataFrame, *, threshold: float = 0.05, axes=None, path: str | Path | None = None):
    """A coordination graph drawn with networkx: an edge i -> j where it was sampled in more
    than `threshold` of the samples, its width its frequency."""
    figure, axes = _axes(axes, (4, 4))
    graph = nx.DiGraph()
    graph.add_nodes_from(edge_frequency.index)
    for source in edge_frequency.index:
        for target in edge_frequency.columns:
            weight = float(edge_frequency.loc[source, target])
            if source != target and weight > threshold:
                graph.add_edge(source, target, weight=weight)
    layout = nx.circular_layout(graph)
    widths = [4 * graph.edges[e]["weight"] for e in graph.edges]
    nx.draw_networkx(graph, layout, ax=axes, node_color="#cfe2f3", width=widths or 1.0, arrows=True, font_size=8)
    axes.set_axis_off()
    _save(figure, path)
    return axes


def plot_curve(curve: pd.DataFrame, *, label: str, axes=None, path: str | Path | None = None):
    """A metric over training (the output of `coordination.analyze.checkpoint_curve`)."""
    figure, axes = _axes(axes, (5, 3))
    axes.plot(curve["env_steps"], curve["value"], marker="o")
    axes.set_xlabel("env steps")
    axes.set_ylabel(label)
    _save(figure, path)
    return axes
