"""benchmarks/checkpoint_curves.py: a scenario metric at every kept checkpoint of a real (tiny) run."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest

from marl.training.runner import train
from tests.conftest import load_benchmark, tiny_config

curves = load_benchmark("checkpoint_curves")


@pytest.mark.parametrize(
    "name, expected",
    [("maddpg_sqrt_seed2-20261201-170136", ("maddpg_sqrt", 2)), ("ddpg_local_seed0", ("ddpg_local", 0))],
)
def test_label_and_seed_from_learning_py_run_names(name, expected):
    assert curves.label_and_seed(Path(name)) == expected


def test_a_run_not_named_by_learning_py_is_rejected():
    with pytest.raises(SystemExit, match="LABEL_seedN"):
        curves.label_and_seed(Path("my_run"))


def test_every_kept_checkpoint_is_evaluated(tmp_path, monkeypatch):
    config = tiny_config(
        "maddpg_simple_speaker_listener", "name=tiny_seed0", "checkpoint.every_iterations=1", "checkpoint.keep=3"
    )
    run_dir = train(config, runs_root=tmp_path / "runs", echo=lambda _: None, max_iterations=2)
    out = tmp_path / "curves"
    monkeypatch.setattr(sys, "argv", ["checkpoint_curves.py", str(run_dir), "--episodes", "2", "--out", str(out)])
    curves.main()
    with (out / "checkpoint_curves.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(row["label"], int(row["seed"]), int(row["env_steps"])) for row in rows] == [("tiny", 0, 200), ("tiny", 0, 400)]
    assert all(float(row["reached_target"]) in (0.0, 0.5, 1.0) for row in rows)
    assert (out / "checkpoint_curves.png").stat().st_size > 0
