"""The coordination notebooks run top to bottom on tiny checkpoints, and are committed clean.

A fixture trains the checkpoints each notebook reads (1-2 iterations, real local Ray) and
points the notebooks at them through their environment variables; the notebooks are then
executed in a fresh Jupyter kernel (nbclient), as a user would run them.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from marl.training.runner import train
from tests.conftest import REPO, algorithm_of, tiny_config

NOTEBOOKS = sorted((REPO / "coordination" / "notebooks").glob("*.ipynb"))
# Which checkpoints each notebook reads: environment variable -> config trained for it.
INPUTS = {
    "01_spread_landmarks.ipynb": {"MARL_SPREAD_MAPPO": "mappo_simple_spread", "MARL_SPREAD_MADDPG": "maddpg_simple_spread"},
    "02_speaker_listener_communication.ipynb": {"MARL_SPEAKER_LISTENER": "mappo_simple_speaker_listener"},
    "03_bn_graphs.ipynb": {"MARL_BN_RUN": "bn_mappo_coordination_game"},
}
# BN-MAPPO trains in the driver, and its annealing schedule runs over stop.env_steps.
EXTRA = {"bn_mappo": ["resources.num_env_runners=0", "stop.env_steps=400"]}


def test_every_notebook_has_its_inputs_listed():
    assert {path.name for path in NOTEBOOKS} == set(INPUTS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_without_outputs(path: Path):
    book = nbformat.read(path, as_version=4)
    for cell in book.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, f"{path.name}: clear the outputs before committing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_on_tiny_checkpoints(path: Path, tmp_path, monkeypatch):
    for variable, config_name in INPUTS[path.name].items():
        config = tiny_config(config_name, "checkpoint.every_iterations=1", *EXTRA.get(algorithm_of(config_name), []))
        run_dir = train(config, runs_root=tmp_path / "runs", echo=lambda _: None, max_iterations=2)
        monkeypatch.setenv(variable, str(run_dir))
    monkeypatch.setenv("MARL_NOTEBOOK_EPISODES", "3")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    book = nbformat.read(path, as_version=4)
    NotebookClient(book, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(REPO)}}).execute()
    errors = [output for cell in book.cells if cell.cell_type == "code" for output in cell.outputs if output.output_type == "error"]
    assert not errors
