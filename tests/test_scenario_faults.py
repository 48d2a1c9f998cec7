"""A faulty scenario stops `marl train` within seconds, in one line (real Ray, real RLlib, real mpe2).

The scenarios are simple_spread with one planted fault (tests/scenarios_for_tests.py). Most
strike from a copy's 6th episode on, so the checks before Ray pass and the fault first
happens inside RLlib's sampling, after a checkpoint was written: in a remote env runner
(which RLlib would otherwise restart into the same crash for ever) or, with
`num_env_runners=0`, in the driver.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from marl.training.checkpoints import latest_checkpoint, read_meta
from tests.conftest import REPO

FAULTY = "tests.scenarios_for_tests:faulty_spread"
# 200 env steps per iteration with 2 copies per runner: a copy's 6th episode (25 steps each)
# starts in iteration 2 or 3, after the checkpoint of iteration 1.
TINY = [
    "scenario.backend=pettingzoo",
    "resources.num_envs_per_env_runner=2",
    "training.train_batch_size=200",
    "training.num_epochs=2",
    "checkpoint.every_iterations=1",
]
LIMIT_S = 60


def marl_train(tmp_path: Path, *overrides: str, max_iterations: int = 20) -> tuple[subprocess.CompletedProcess, float]:
    """`marl train` as a user runs it; the test scenarios import from the repository root."""
    command = [sys.executable, "-m", "marl.cli", "train", str(REPO / "configs" / "mappo_simple_spread.yaml"), *TINY,
               *overrides, "--runs-dir", "runs", "--max-iterations", str(max_iterations)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    started = time.time()
    # Its own process group: a run that hangs is killed with the Ray processes it started.
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=env,
                               start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=3 * LIMIT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr), time.time() - started


def assert_fault_reported(result, elapsed: float, call: str, expected: str) -> Path:
    """Exit code 2, an `error:` last line naming scenario, call and problem, and the report file; the run dir."""
    assert result.returncode == 2, result.stdout + result.stderr
    assert elapsed < LIMIT_S, f"the run took {elapsed:.0f} s to stop"
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith(f"error: scenario '{FAULTY}' {call}(): ") and expected in line, line
    assert "Traceback" not in result.stderr, "the one line should be all the user sees of the fault"
    report = Path(line.rsplit("full report: ", 1)[1].rstrip(")"))
    assert report.name == "scenario_error.txt" and report.is_file()
    assert expected in report.read_text()
    return report.parent


def assert_checkpoint_intact(run_dir: Path) -> None:
    checkpoint = latest_checkpoint(run_dir)
    assert checkpoint is not None, "the checkpoint written before the fault is gone"
    assert read_meta(checkpoint)["iteration"] >= 1


# vectorized: the fast path over a scenario without a twin runs guarded PettingZoo copies.
@pytest.mark.parametrize("backend", ["pettingzoo", "vectorized"])
def test_step_exception_in_remote_env_runner_stops_the_run(tmp_path, backend):
    result, elapsed = marl_train(
        tmp_path, f"scenario.name={FAULTY}", "scenario.kwargs={fault: step_raises, episode: 6, step: 3}",
        "resources.num_env_runners=1", f"scenario.backend={backend}",
    )
    run_dir = assert_fault_reported(result, elapsed, "step", "raised RuntimeError: planted step fault (step 3)")
    assert "Traceback (most recent call last)" in (run_dir / "scenario_error.txt").read_text()
    assert "iter     1 " in result.stdout, "the fault should strike inside Ray, after the checks before it"
    assert_checkpoint_intact(run_dir)


def test_reset_exception_when_sampling_in_the_driver_stops_the_run(tmp_path):
    result, elapsed = marl_train(
        tmp_path, f"scenario.name={FAULTY}", "scenario.kwargs={fault: reset_raises, episode: 6}",
        "resources.num_env_runners=0",
    )
    run_dir = assert_fault_reported(result, elapsed, "reset", "raised RuntimeError: planted reset fault (reset 6)")
    assert "iter     1 " in result.stdout
    assert_checkpoint_intact(run_dir)


def test_nan_reward_in_remote_env_runner_stops_the_run(tmp_path):
    result, elapsed = marl_train(
        tmp_path, f"scenario.name={FAULTY}", "scenario.kwargs={fault: nan_reward, episode: 6, step: 3}",
        "resources.num_env_runners=1",
    )
    run_dir = assert_fault_reported(result, elapsed, "step", "agent 'agent_2' reward nan is NaN or inf")
    assert_checkpoint_intact(run_dir)


def test_observation_outside_its_space_stops_the_run_before_ray_starts(tmp_path):
    result, elapsed = marl_train(
        tmp_path, f"scenario.name={FAULTY}", "scenario.kwargs={fault: obs_out_of_space, episode: 1, step: 2}",
        "resources.num_env_runners=1",
    )
    assert_fault_reported(result, elapsed, "step", "agent 'agent_0' observation [")
    assert "has shape (17,)" in result.stderr
    assert "Started a local Ray instance" not in result.stderr, "the checks before Ray should have caught it"


def test_scenario_that_cannot_render_warns_at_train_time(tmp_path):
    result, _ = marl_train(
        tmp_path, "scenario.name=tests.scenarios_for_tests:spread_without_render", "scenario.kwargs={N: 3}",
        "resources.num_env_runners=0", max_iterations=1,
    )
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stdout.splitlines() if line.startswith("WARNING: ")]
    assert len(warnings) == 1, result.stdout
    assert "spread_without_render" in warnings[0] and "`marl evaluate --render` will not work" in warnings[0]
    assert "accept a `render_mode` keyword" in warnings[0]


def test_runner_failing_again_right_after_its_restart_stops_the_run(tmp_path):
    """A failure outside the scenario (RLlib cannot map the scenario's extra agent 'ghost' to a
    policy) keeps RLlib's handling once: the runner's process ends and Ray restarts it. When the
    restarted runner fails again before it sampled anything, that is a crash loop: stop."""
    result, elapsed = marl_train(
        tmp_path, f"scenario.name={FAULTY}", "scenario.kwargs={fault: ghost_agent, only_in_ray_actors: true}",
        "resources.num_env_runners=1", "resources.delay_between_env_runner_restarts_s=0",
    )
    assert_fault_reported(result, elapsed, "sample", "env runner 1 failed again right after Ray restarted it: KeyError: 'ghost'")


def test_restart_failed_sub_environments_lets_a_flaky_scenario_train_on(tmp_path):
    """Opted in, a scenario that raises now and then trains on: RLlib rebuilds the failed copies.

    Each copy fails at the first step of its 7th reset (the adapter's constructor resets once),
    after 125 clean steps, so the 2 copies fill a 200-step sample() between failures (RLlib
    restarts the count after each); 4 iterations of 200 steps take each copy through 400 steps,
    so every copy fails and is rebuilt several times."""
    result, _ = marl_train(
        tmp_path, f"scenario.name={FAULTY}", "scenario.kwargs={fault: step_raises, episode: 7, step: 1}",
        "resources.num_env_runners=1", "resources.restart_failed_sub_environments=true", max_iterations=4,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "iter     4 " in result.stdout and "done:" in result.stdout

