"""The checkpoint file protocol: a write that dies half-way never becomes the last checkpoint.

No Ray here: `save_checkpoint` only needs an object with RLlib's `save_to_path`, so a
writer that dies after its first file stands in for a driver killed mid-write.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from marl.training.checkpoints import complete_checkpoints, latest_checkpoint, read_meta, save_checkpoint


class Writer:
    """Writes checkpoint files like Algorithm.save_to_path; optionally dies after the first."""

    def __init__(self, dies_mid_write: bool = False):
        self.dies_mid_write = dies_mid_write

    def save_to_path(self, path: str) -> None:
        Path(path).mkdir(parents=True)
        (Path(path) / "algorithm_state.pkl").write_bytes(b"state")
        if self.dies_mid_write:
            raise KeyboardInterrupt  # what a second Ctrl-C does mid-write
        (Path(path) / "learner_group").mkdir()


def _meta(iteration: int) -> dict:
    return {"iteration": iteration, "env_steps": 200 * iteration}


def test_interrupted_write_never_becomes_the_latest_checkpoint(tmp_path):
    save_checkpoint(Writer(), tmp_path, _meta(2), keep=3)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(Writer(dies_mid_write=True), tmp_path, _meta(4), keep=3)

    root = tmp_path / "checkpoints"
    assert any(p.name.startswith(".tmp-") for p in root.iterdir()), "the half-written directory should be on disk"
    assert [p.name for p in complete_checkpoints(tmp_path)] == ["iter_000002"]
    assert latest_checkpoint(tmp_path).name == "iter_000002"
    assert read_meta(latest_checkpoint(tmp_path))["env_steps"] == 400


def test_leftovers_of_a_killed_writer_are_ignored_then_cleaned_up(tmp_path):
    save_checkpoint(Writer(), tmp_path, _meta(2), keep=3)
    root = tmp_path / "checkpoints"
    # A process killed mid-write: its temporary directory (another pid) stays behind, and
    # a checkpoint directory copied in without its marl.json is not a finished checkpoint.
    (root / ".tmp-iter_000003-99999" / "learner_group").mkdir(parents=True)
    (root / "iter_000004" / "learner_group").mkdir(parents=True)
    (root / "latest").write_text("iter_000004\n")  # even if `latest` names it

    assert latest_checkpoint(tmp_path).name == "iter_000002"
    save_checkpoint(Writer(), tmp_path, _meta(5), keep=3)
    assert latest_checkpoint(tmp_path).name == "iter_000005"
    assert not list(root.glob(".tmp-*")), "stale temporary directories are removed by the next write"
    assert [p.name for p in complete_checkpoints(tmp_path)] == ["iter_000002", "iter_000005"]
