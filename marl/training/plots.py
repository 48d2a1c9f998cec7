"""Figures shared by `marl sweep` and the benchmark scripts: one style for every learning curve."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def plot_curves(
    path: Path,
    runs: dict[str, dict[int, tuple[np.ndarray, np.ndarray]]],
    ylabel: str = "team return (sum over agents)",
    ylim: tuple[float, float] | None = None,
) -> None:
    """Mean and min/max band over seeds per label; `runs[label][seed] = (env_steps, value)`.

    Each label's seeds are interpolated on a common grid up to the shortest of its runs.
    `ylim` zooms in where a steep start (Aloha's random play: -8,000) would flatten the rest.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, seeds in runs.items():
        grid = np.linspace(0, min(steps.max() for steps, _ in seeds.values()), 200)
        values = np.array([np.interp(grid, steps, returns) for steps, returns in seeds.values()])
        line, = ax.plot(grid, values.mean(0), label=f"{label} ({len(seeds)} seeds)")
        ax.fill_between(grid, values.min(0), values.max(0), alpha=0.2, color=line.get_color())
    ax.set_xlabel("env steps")
    ax.set_ylabel(ylabel)
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
