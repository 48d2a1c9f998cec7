"""Per-iteration metrics: a flat row for the CSV and TensorBoard, and the progress line."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

from marl.rllib.partial_returns import PARTIAL_RETURN
from marl.training.checkpoints import write_text_atomic

# RLlib's per-module learner stats that are bookkeeping rather than learning signals.
_SKIPPED_LEARNER_KEYS = ("num_", "weights_seq_no", "diff_num_grad_updates", "module_train_batch_size")
# Counters stay integers in the CSV.
_COUNTERS = ("iteration", "env_steps")


def _number(key: str, value) -> int | float:
    return int(float(value)) if key in _COUNTERS else float(value)


def flatten_result(result: dict[str, Any]) -> dict[str, float]:
    """The numbers worth plotting from one `algo.train()` result, under stable keys.

    - env_steps, iteration, time_total_s
    - episode_return_mean (team return: summed over agents), episode_len_mean
    - episode_return_partial: the mean return so far of episodes still running (RLlib's runner only)
    - return/<agent>: each agent's mean episode return
    - <policy>/<term>: the learner's loss terms (pg_loss, vf_loss, entropy, approx_kl, ...)
    - env_runners_healthy, env_runner_restarts: remote env runners alive now, and how
      often Ray restarted one that died (0 and 0 without remote env runners)
    """
    runners = result.get("env_runners", {})
    row: dict[str, float] = {
        "iteration": result.get("training_iteration", 0),
        "env_steps": result.get("num_env_steps_sampled_lifetime", 0),
        "time_total_s": result.get("time_total_s", 0.0),
        "episode_return_mean": runners.get("episode_return_mean", math.nan),
        "episode_len_mean": runners.get("episode_len_mean", math.nan),
    }
    if PARTIAL_RETURN in runners:
        row[PARTIAL_RETURN] = runners[PARTIAL_RETURN]
    fault_tolerance = result.get("fault_tolerance", {})
    if "num_healthy_workers" in fault_tolerance:
        row["env_runners_healthy"] = fault_tolerance["num_healthy_workers"]
        row["env_runner_restarts"] = fault_tolerance.get("num_remote_worker_restarts", 0)
    for agent, value in sorted(runners.get("agent_episode_returns_mean", {}).items()):
        row[f"return/{agent}"] = value
    for module_id, stats in sorted(result.get("learners", {}).items()):
        if module_id == "__all_modules__" or not isinstance(stats, dict):
            continue
        for key, value in sorted(stats.items()):
            if key.startswith(_SKIPPED_LEARNER_KEYS) or isinstance(value, dict):
                continue
            try:
                row[f"{module_id}/{key}"] = float(value)
            except (TypeError, ValueError):
                continue
    return {key: _number(key, value) for key, value in row.items()}


class MetricsWriter:
    """Appends rows to metrics.csv and TensorBoard in the run directory.

    The CSV header grows when a new metric appears (the file is rewritten with the
    union of columns), and on resume rows past the restored iteration are dropped so
    the file never holds an iteration twice.
    """

    def __init__(self, run_dir: Path, resume_from_iteration: int | None = None):
        from tensorboardX import SummaryWriter

        self.path = Path(run_dir) / "metrics.csv"
        self.rows: list[dict[str, float]] = []
        if self.path.is_file():
            with self.path.open(newline="") as handle:
                self.rows = [{k: _number(k, v) for k, v in row.items() if v != ""} for row in csv.DictReader(handle)]
        if resume_from_iteration is not None:
            self.rows = [row for row in self.rows if row.get("iteration", 0) <= resume_from_iteration]
            self._rewrite()
        self.columns = list(dict.fromkeys(key for row in self.rows for key in row))
        self.tensorboard = SummaryWriter(str(Path(run_dir) / "tensorboard"))

    def write(self, row: dict[str, float]) -> None:
        self.rows.append(row)
        new_columns = [key for key in row if key not in self.columns]
        self.columns += new_columns
        if new_columns or not self.path.is_file():
            self._rewrite()
        else:
            with self.path.open("a", newline="") as handle:
                csv.DictWriter(handle, self.columns).writerow(row)
        step = int(row["env_steps"])
        for key, value in row.items():
            if key not in _COUNTERS and math.isfinite(value):
                self.tensorboard.add_scalar(key, value, step)
        self.tensorboard.flush()

    def _rewrite(self) -> None:
        columns = list(dict.fromkeys(key for row in self.rows for key in row))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, columns)
        writer.writeheader()
        writer.writerows(self.rows)
        write_text_atomic(self.path, buffer.getvalue())
        self.columns = columns

    def close(self) -> None:
        self.tensorboard.close()


def _clock(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "--:--:--"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def returns_text(row: dict[str, float], teams: dict[str, list[str]] | None = None) -> str:
    """The return part of a progress line: the team return, or one return per team in a mixed
    game (never a sum of opposing sides), or, before any episode has finished, the return so far."""
    if not math.isfinite(row.get("episode_return_mean", math.nan)):
        partial = row.get(PARTIAL_RETURN, math.nan)
        return "no episode finished yet" + (f" (return so far {partial:.2f})" if math.isfinite(partial) else "")
    if teams and len(teams) > 1:
        per_team = {team: sum(row.get(f"return/{agent}", math.nan) for agent in members) for team, members in teams.items()}
        return "returns " + ", ".join(f"{team} {value:.2f}" for team, value in per_team.items())
    return f"team return {row['episode_return_mean']:.2f}"


def progress_line(
    row: dict[str, float], *, target_steps: int, steps_per_s: float, elapsed_s: float, teams: dict[str, list[str]] | None = None
) -> str:
    """One line per iteration: iteration, env steps, return(s), throughput, ETA."""
    remaining = max(0.0, target_steps - row["env_steps"])
    eta = remaining / steps_per_s if steps_per_s > 0 else math.inf
    return (
        f"iter {int(row['iteration']):5d} | env steps {int(row['env_steps']):>11,} / {target_steps:,} | "
        f"{returns_text(row, teams):<21} | {steps_per_s:7,.0f} steps/s | "
        f"elapsed {_clock(elapsed_s)} | ETA {_clock(eta)}"
    )
