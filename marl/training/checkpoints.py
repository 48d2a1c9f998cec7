"""Checkpoints written atomically, and found again.

A checkpoint is written into a hidden temporary directory and renamed into place
only once complete, so a crash mid-write never leaves a half checkpoint that looks
finished. `latest` (a one-line text file, replaced atomically) names the newest
complete one. Each checkpoint carries `marl.json`: the resolved experiment config,
the scenario adapter settings and the counters, so it is usable on its own.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from marl.errors import CheckpointError

META_FILE = "marl.json"
LATEST_FILE = "latest"
PREFIX = "iter_"
TMP_PREFIX = ".tmp-"


def checkpoint_root(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


def write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def save_checkpoint(algo, run_dir: Path, meta: dict[str, Any], keep: int) -> Path:
    """Save `algo` as checkpoints/iter_NNNNNN atomically and prune old ones."""
    root = checkpoint_root(Path(run_dir).resolve())  # RLlib writes only to absolute paths
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{PREFIX}{meta['iteration']:06d}"
    # A run has one writer: any temporary directory is a write that crashed.
    for stale in root.glob(f"{TMP_PREFIX}*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = root / f"{TMP_PREFIX}{final.name}-{os.getpid()}"
    algo.save_to_path(str(tmp))
    write_text_atomic(tmp / META_FILE, json.dumps(meta, indent=2))
    if final.exists():  # re-saving the same iteration (e.g. after a resume)
        shutil.rmtree(final)
    os.rename(tmp, final)
    write_text_atomic(root / LATEST_FILE, final.name + "\n")
    for old in complete_checkpoints(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def complete_checkpoints(run_dir: Path) -> list[Path]:
    """Finished checkpoints, oldest first (temporary directories are never listed)."""
    root = checkpoint_root(run_dir)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith(PREFIX) and (p / META_FILE).is_file())


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint named by `latest`, else the newest complete one."""
    root = checkpoint_root(run_dir)
    pointer = root / LATEST_FILE
    if pointer.is_file():
        named = root / pointer.read_text().strip()
        if (named / META_FILE).is_file():
            return named
    found = complete_checkpoints(run_dir)
    return found[-1] if found else None


def resolve_checkpoint(path: str | Path) -> Path:
    """The checkpoint a user means, made absolute: a checkpoint directory, the `latest`
    pointer file, a run's `checkpoints/` folder or a run directory (-> its latest checkpoint)."""
    given = path
    path = Path(path).resolve()
    if (path / META_FILE).is_file():
        return path
    if path.is_file() and path.name == LATEST_FILE:  # checkpoints/latest names the newest checkpoint
        path = path.parent.parent
    elif path.name == checkpoint_root(path.parent).name and path.is_dir():
        path = path.parent
    latest = latest_checkpoint(path)
    if latest is not None:
        return latest
    if not path.exists():
        raise CheckpointError(f"{str(given)!r} does not exist; pass a run directory (runs/<name>-<time>) or one of its checkpoints")
    raise CheckpointError(
        f"{str(given)!r} holds no finished checkpoint: pass a run directory, its checkpoints/latest, or a "
        f"checkpoints/{PREFIX}NNNNNN directory (a run writes one every checkpoint.every_iterations and at the end)"
    )


def read_meta(checkpoint: Path) -> dict[str, Any]:
    return json.loads((Path(checkpoint) / META_FILE).read_text())
