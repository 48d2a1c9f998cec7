"""A new user's first hour: the stumbles of issue 16, each held by a test.

README's commands, fast one-line config errors that name the fix, `marl init` for one's
own scenario, shipped configs found by name, the run's budget warning, `checkpoints/latest`,
GIF timing, overrides anywhere on the line, Ray's noise kept in the run directory, per-team
returns and the progress line before any episode has finished.
"""

from __future__ import annotations

import csv
import logging
import math
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from marl.cli import main
from marl.experiment import build_config, load_config
from marl.errors import CheckpointError, ConfigError, ScenarioError
from marl.experiment.registry import ALGORITHMS
from marl.rllib.partial_returns import PARTIAL_RETURN, PartialReturns
from marl.core.agents import teams_of
from marl.experiment.shipped import find_config, shipped_configs
from marl.experiment.templates import template_raw, template_yaml
from marl.training.checkpoints import META_FILE, resolve_checkpoint
from marl.training.logs import LOG_FILE, RAY_LOGGERS, ray_logs_to_file
from marl.training.metrics import progress_line
from tests.conftest import REPO

SPREAD = REPO / "configs" / "mappo_simple_spread.yaml"


def _readme_blocks() -> list[str]:
    return re.findall(r"```bash\n(.*?)```", (REPO / "README.md").read_text(), re.S)


# -- 1. README's two commands ----------------------------------------------------------


def test_readme_install_command_brings_what_its_test_command_needs():
    install, test_command = (block.strip() for block in _readme_blocks()[:2])
    assert "pytest" in test_command
    assert re.search(r"pip install [^&;]*-e \"?\.\[test\]\"?", install), install
    assert test_command in (REPO / ".ci" / "run").read_text(), "CI must run exactly the README's test command"


# -- 2. and 3. fast errors that name the fix -------------------------------------------


def test_validating_a_config_imports_neither_ray_nor_torch():
    script = (
        "import sys\n"
        "from marl.experiment import load_config\n"
        f"load_config({str(SPREAD)!r}, ['training.lr=1e-3'])\n"
        "heavy = [m for m in ('ray', 'torch', 'ray.rllib') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_cli_config_error_is_one_line_in_well_under_two_seconds(tmp_path):
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "marl.cli", "train", str(SPREAD), "training.lrr=1"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )
    elapsed = time.perf_counter() - started
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "did you mean 'lr'" in result.stderr
    # ~0.4 s on an idle 2-core machine; the margin is for a loaded CI machine.
    assert elapsed < 4, elapsed


def test_unknown_key_lists_the_closest_and_the_valid_keys():
    with pytest.raises(ConfigError) as error:
        load_config(REPO / "configs" / "maddpg_simple_spread.yaml", ["training.lr=1e-3"])
    message = str(error.value)
    assert "did you mean 'lr_actor' or 'lr_critic'" in message
    assert "valid keys of training:" in message and "learning_starts" in message
    with pytest.raises(ConfigError, match="did you mean 'num_env_runners'"):
        load_config(SPREAD, ["resources.num_env_runner=1"])
    with pytest.raises(ConfigError, match="did you mean 'stop'.*valid keys of the top level"):
        load_config(SPREAD, ["stopp.env_steps=1"])


def test_errors_name_the_users_key_and_every_accepted_form():
    with pytest.raises(ConfigError) as error:
        load_config(SPREAD, ["resources.num_env_runners=x"])
    message = str(error.value)
    assert message.startswith("resources.num_env_runners: ") and "constrained" not in message
    assert "valid integer" in message and "'auto'" in message
    with pytest.raises(ScenarioError, match="did you mean 'simple_spread_v3'"):
        load_config(SPREAD, ["scenario.name=simple_sprad_v3"])  # before Ray: at validation


def test_missing_stop_says_what_to_add():
    with pytest.raises(ConfigError, match=r"stop: required key is missing; add a section `stop: \{env_steps"):
        build_config({"algorithm": "mappo", "scenario": {"name": "simple_spread_v3"}})


# -- 4. configs for one's own scenario, shipped configs by name ------------------------

TEMPLATE_SCENARIOS = {
    "spread_discrete": ("simple_spread_v3", {}),
    "spread_continuous": ("simple_spread_v3", {"continuous_actions": True}),
    "world_comm_heterogeneous": ("simple_world_comm_v3", {}),
    "coordination_game": ("coordination_game", {}),
}


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
@pytest.mark.parametrize("scenario", sorted(TEMPLATE_SCENARIOS))
def test_init_writes_a_valid_config_or_says_why_not(algorithm, scenario):
    name, kwargs = TEMPLATE_SCENARIOS[scenario]
    continuous = kwargs.get("continuous_actions", False)
    if continuous and not ALGORITHMS[algorithm].config_class.supports_continuous_actions():
        with pytest.raises(ConfigError, match="needs Discrete actions"):
            template_raw(algorithm, name, kwargs)
        return
    text = template_yaml(algorithm, name, kwargs)
    config = build_config(yaml.safe_load(text))
    assert config.algorithm == algorithm and config.scenario.backend == "pettingzoo"
    assert config.scenario.kwargs == kwargs  # no mpe2 kwargs forced on another scenario
    if scenario == "world_comm_heterogeneous" and algorithm != "bn_mappo":
        assert config.policies.sharing == "per_agent"  # the agents' spaces differ
    for field in ALGORITHMS[algorithm].config_class.model_fields:
        assert re.search(rf"^  {field}: .*  # ", text, re.M), f"training.{field} is written out with its doc"


def test_init_config_trains_from_the_command_line(tmp_path):
    assert main(["init", "ippo", "simple_world_comm_v3", "--out", str(tmp_path / "mine.yaml")]) == 0
    assert main(["init", "ippo", "simple_world_comm_v3", "--out", str(tmp_path / "mine.yaml")]) == 2  # no overwrite
    result = subprocess.run(
        [sys.executable, "-m", "marl.cli", "train", "mine.yaml", "--max-iterations", "1",
         "training.train_batch_size=200", "training.num_epochs=1", "resources.num_env_runners=0"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "returns adversary" in result.stdout and "agent" in result.stdout  # a mixed game: per team


def test_shipped_configs_are_listed_found_by_name_and_packaged(tmp_path):
    on_disk = {path.stem for path in (REPO / "configs").glob("*.yaml")}
    assert set(shipped_configs()) == on_disk
    assert find_config("mappo_simple_spread") == SPREAD.resolve()
    assert find_config("mappo_simple_spread.yaml") == SPREAD.resolve()
    with pytest.raises(ConfigError, match="marl configs"):
        find_config("no_such_config")
    # A wheel (what `pip install .` installs) carries them as data files. Built from a copy:
    # setuptools writes build/ next to the sources, and a test leaves the checkout as it was.
    source = tmp_path / "src"
    source.mkdir()
    for part in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / part, source / part)
    for package in ("marl", "scenarios", "coordination", "configs"):
        shutil.copytree(REPO / package, source / package, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path)],
        check=True, capture_output=True, timeout=300,
    )
    wheel = next(tmp_path.glob("marl-*.whl"))
    packaged = {Path(name).stem for name in zipfile.ZipFile(wheel).namelist() if "/share/marl/configs/" in name}
    assert packaged == on_disk


# -- 5. a budget that cannot reach the first update ------------------------------------


def test_maddpg_budget_below_learning_starts_is_announced():
    config = load_config(REPO / "configs" / "maddpg_simple_spread.yaml", ["stop.env_steps=10000"])
    (warning,) = config.training.budget_warnings(config)
    assert "25,600" in warning and "10,000" in warning and "learning_starts" in warning
    config = load_config(REPO / "configs" / "maddpg_simple_spread.yaml")
    assert config.training.budget_warnings(config) == []
    assert len(config.training.budget_warnings(config, max_iterations=3)) == 1  # 3 x 1,000 env steps
    ppo = load_config(SPREAD, ["stop.env_steps=10"])
    assert ppo.training.budget_warnings(ppo) == []


# -- 6. checkpoints/latest --------------------------------------------------------------


def _fake_run(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    for iteration in (2, 4):
        checkpoint = run / "checkpoints" / f"iter_{iteration:06d}"
        checkpoint.mkdir(parents=True)
        (checkpoint / META_FILE).write_text("{}")
    (run / "checkpoints" / "latest").write_text("iter_000004\n")
    return run


def test_every_way_of_naming_a_checkpoint_resolves(tmp_path):
    run = _fake_run(tmp_path)
    newest = run / "checkpoints" / "iter_000004"
    for given in (run, run / "checkpoints", run / "checkpoints" / "latest", newest):
        assert resolve_checkpoint(given) == newest.resolve()
    assert resolve_checkpoint(run / "checkpoints" / "iter_000002").name == "iter_000002"
    with pytest.raises(CheckpointError, match="does not exist"):
        resolve_checkpoint(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="holds no finished checkpoint"):
        resolve_checkpoint(tmp_path / "empty")


# -- 7. GIF timing -----------------------------------------------------------------------


def test_gif_plays_at_the_requested_speed(tmp_path):
    from PIL import Image

    from marl.evaluation import write_gif

    # 21 frames: 3 still ones, then 18 that all differ.
    frames = [np.zeros((16, 16, 3), np.uint8)] * 3 + [np.full((16, 16, 3), 10 * i, np.uint8) for i in range(1, 19)]
    write_gif(frames, tmp_path / "e.gif", fps=10)
    gif = Image.open(tmp_path / "e.gif")
    delays = []
    for index in range(gif.n_frames):
        gif.seek(index)
        delays.append(gif.info["duration"])
    assert gif.n_frames == 19  # identical consecutive frames are stored once ...
    assert delays[0] == 300 and set(delays[1:]) == {100}  # ... for as long as they lasted
    assert sum(delays) == 21 * 100


# -- 9. overrides anywhere ---------------------------------------------------------------


def test_overrides_after_options_are_applied(capsys):
    assert main(["train", str(SPREAD), "--max-iterations", "1", "training.lrr=1"]) == 2
    assert "training.lrr" in capsys.readouterr().err  # validated, so it was read as an override
    with pytest.raises(SystemExit):
        main(["evaluate", "somewhere", "a=b"])  # a command without overrides refuses them


# -- 10. Ray's and RLlib's log lines go to the run directory ---------------------------


def test_ray_log_records_go_to_the_run_directory_not_the_console(tmp_path):
    loggers = [logging.getLogger(name) for name in RAY_LOGGERS]
    console = [handler for logger in loggers for handler in logger.handlers]
    before = [handler.level for handler in console]
    with ray_logs_to_file(tmp_path):
        assert all(handler.level >= logging.ERROR for handler in console)
        logging.getLogger("ray.rllib.algorithms.algorithm_config").warning("You are running PPO on the new API stack!")
        logging.getLogger("ray.tune.utils.util").warning("Install gputil for GPU system monitoring.")
    assert [handler.level for handler in console] == before
    text = (tmp_path / LOG_FILE).read_text()
    assert "new API stack" in text and "gputil" in text


# -- 11. and 12. what the progress line says -------------------------------------------


def test_name_prefix_teams_keep_a_leader_with_its_side():
    agents = ["leadadversary_0", "adversary_0", "adversary_1", "agent_0", "agent_1"]
    assert teams_of(agents) == {"adversary": agents[:3], "agent": agents[3:]}
    assert teams_of(["agent_0", "agent_1"]) == {"agent": ["agent_0", "agent_1"]}


def _row(**values) -> dict:
    return {"iteration": 3, "env_steps": 300, **values}


def test_progress_line_shows_per_team_returns_in_a_mixed_game():
    teams = {"adversary": ["adversary_0", "adversary_1"], "agent": ["agent_0"]}
    row = _row(episode_return_mean=5.0, **{"return/adversary_0": 10.0, "return/adversary_1": 10.0, "return/agent_0": -15.0})
    line = progress_line(row, target_steps=1000, steps_per_s=100, elapsed_s=3, teams=teams)
    assert "returns adversary 20.00, agent -15.00" in line and "team return" not in line
    one_team = progress_line(row, target_steps=1000, steps_per_s=100, elapsed_s=3, teams={"agent": ["agent_0"]})
    assert "team return 5.00" in one_team


def test_progress_line_before_any_episode_finished():
    line = progress_line(_row(episode_return_mean=math.nan), target_steps=1000, steps_per_s=100, elapsed_s=3)
    assert "no episode finished yet" in line and "nan" not in line
    partial = _row(episode_return_mean=math.nan, **{PARTIAL_RETURN: -12.5})
    assert "(return so far -12.50)" in progress_line(partial, target_steps=1000, steps_per_s=100, elapsed_s=3)


class _Chunk:
    def __init__(self, id_: str, ret: float, done: bool):
        self.id_, self._return, self.is_done = id_, ret, done

    def get_return(self) -> float:
        return self._return


class _Logger:
    def __init__(self):
        self.values = []

    def log_value(self, key, value, **kwargs):
        self.values.append((key, value))


def test_partial_returns_add_up_the_chunks_of_running_episodes():
    callback, logger = PartialReturns(), _Logger()
    callback(metrics_logger=logger, samples=[_Chunk("a", -1.0, False), _Chunk("b", -3.0, False)])
    callback(metrics_logger=logger, samples=[_Chunk("a", -1.0, False), _Chunk("b", -3.0, True), _Chunk("c", 0.0, False)])
    assert logger.values == [(PARTIAL_RETURN, -2.0), (PARTIAL_RETURN, -1.0)]  # (-1 -3)/2, then (a: -2, c: 0)/2
    callback(metrics_logger=logger, samples=[_Chunk("a", 1.0, True)])
    assert len(logger.values) == 2  # nothing running: nothing logged


def test_long_episodes_train_with_the_return_so_far(tmp_path):
    """Episodes of 1,000 steps, 200-step iterations: no episode ends, the line says what is known."""
    from marl.training.runner import train

    config = load_config(SPREAD, [
        "scenario.backend=pettingzoo", "scenario.kwargs.max_cycles=1000", "training.train_batch_size=200",
        "training.num_epochs=1", "resources.num_env_runners=0", "resources.num_envs_per_env_runner=2",
    ])
    lines: list[str] = []
    run_dir = train(config, runs_root=tmp_path, echo=lines.append, max_iterations=2)
    progress = [line for line in lines if line.startswith("iter ")]
    assert len(progress) == 2 and all("no episode finished yet (return so far -" in line for line in progress), progress
    rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
    assert all(math.isfinite(float(row[PARTIAL_RETURN])) for row in rows)
    assert not any("new API stack" in line for line in lines)
    assert (run_dir / LOG_FILE).is_file()

