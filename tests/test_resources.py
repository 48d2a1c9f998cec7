"""Learner GPU resolution: `auto` falls back to the CPU, an impossible request fails early."""

import os

import pytest

from marl.errors import ConfigError
from marl.rllib.resources import resolve_num_gpus_per_learner


@pytest.mark.parametrize(
    "requested,cluster_gpus,learners,expected",
    [("auto", 0, 0, 0.0), ("auto", 1, 0, 1.0), ("auto", 1, 2, 0.0), ("auto", 4, 2, 1.0), (0, 0, 0, 0.0), (0.5, 1, 2, 0.5)],
)
def test_gpus_resolve_from_the_cluster(requested, cluster_gpus, learners, expected):
    assert resolve_num_gpus_per_learner(requested, cluster_gpus, learners) == expected


def test_gpu_asked_for_where_there_is_none_is_a_one_line_error():
    with pytest.raises(ConfigError) as info:
        resolve_num_gpus_per_learner(1, 0, 0)
    message = str(info.value)
    assert "\n" not in message and "num_gpus_per_learner" in message and "auto" in message


# -- CPUs: env runners, remote learners and the driver against the cluster (no Ray) ------------

import subprocess
import sys
import time

from marl.config import ResourcesConfig
from marl.rllib.resources import ClusterCapacity, capacity_line, resolve_num_env_runners

TWO_CORES = ClusterCapacity(2, 0, "this machine")


@pytest.mark.parametrize(
    "fields,cpus,driver_cpus,expected",
    [
        ({"num_env_runners": 2}, 2, 0, 2),  # outside Tune the driver reserves no Ray CPU (as before)
        ({"num_env_runners": 0}, 1, 0, 0),
        ({"num_env_runners": "auto"}, 2, 0, 1),  # auto leaves the driver a core
        ({"num_env_runners": "auto"}, 16, 0, 15),
        ({"num_env_runners": "auto"}, 1, 0, 0),
        ({"num_env_runners": "auto", "num_cpus_per_env_runner": 2}, 16, 0, 7),
        ({"num_env_runners": "auto"}, 16, 1, 15),  # in a Tune trial the driver's CPU is already reserved
        ({"num_env_runners": "auto", "num_learners": 2}, 16, 0, 13),
        ({"num_env_runners": 1, "num_learners": 1}, 2, 0, 1),
    ],
)
def test_env_runners_resolve_against_the_cpus(fields, cpus, driver_cpus, expected):
    resources = ResourcesConfig(**fields)
    capacity = ClusterCapacity(cpus, 0, "the Ray cluster")
    assert resolve_num_env_runners(resources, capacity, driver_cpus=driver_cpus) == expected


def test_gpu_learners_reserve_no_cpu():
    resources = ResourcesConfig(num_env_runners="auto", num_learners=2)
    assert resolve_num_env_runners(resources, ClusterCapacity(4, 2, "the Ray cluster"), num_gpus_per_learner=1) == 3


def test_too_many_env_runners_is_one_line_with_the_fit():
    with pytest.raises(ConfigError) as info:
        resolve_num_env_runners(ResourcesConfig(num_env_runners=100), TWO_CORES)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("resources.num_env_runners: 100 env runners x 1 CPU need 100 CPUs; this machine has 2")
    assert "num_env_runners <= 2" in message and "auto" in message


def test_tune_trials_count_the_drivers_cpu_in_the_message():
    with pytest.raises(ConfigError, match=r"2 env runners x 1 CPU \+ 1 for the driver need 3 CPUs; .* <= 1"):
        resolve_num_env_runners(ResourcesConfig(num_env_runners=2), ClusterCapacity(2, 0, "the Ray cluster"), driver_cpus=1)


def test_too_many_remote_learners_names_num_learners():
    with pytest.raises(ConfigError, match=r"^resources.num_learners: 3 remote learner\(s\).*use num_learners <= 2"):
        resolve_num_env_runners(ResourcesConfig(num_env_runners=0, num_learners=3), TWO_CORES)


def test_capacity_line_says_what_fits():
    resources = ResourcesConfig(num_env_runners=1)
    line = capacity_line(resources, TWO_CORES, requested="auto")
    assert line == "resources: 1 (auto) env runner(s) x 1 CPU; 1 of this machine's 2 CPUs reserved in Ray, up to 2 env runners fit"


def test_auto_is_a_valid_value_and_negative_counts_are_not():
    assert ResourcesConfig(num_env_runners="auto").num_env_runners == "auto"
    with pytest.raises(ValueError):
        ResourcesConfig(num_env_runners=-1)


def test_cli_rejects_env_runners_the_machine_cannot_host_before_starting_ray(tmp_path):
    """The whole CLI path: one line, exit code 2, no Ray started, fast (the check runs before RLlib
    is imported; the generous bound allows for a loaded shared machine)."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "marl.cli", "train", str(REPO / "configs" / "mappo_simple_spread.yaml"),
         "resources.num_env_runners=100", "--runs-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=60, env={**os.environ, "RAY_ADDRESS": ""},
    )
    elapsed = time.perf_counter() - start
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: resources.num_env_runners: 100 env runners"), done.stderr
    assert not list(tmp_path.iterdir())  # nothing built: no run directory
    assert elapsed < 15, elapsed


# -- threads per process -------------------------------------------------------------------------

from types import SimpleNamespace

from marl.rllib.resources import actor_threads, driver_threads, threads_line
from tests.conftest import REPO


@pytest.mark.parametrize("requested,cpus,expected", [("auto", 1, 1), ("auto", 0.5, 1), ("auto", 0, 1), ("auto", 3.5, 3), (4, 1, 4)])
def test_actor_threads_follow_the_granted_cpus(requested, cpus, expected):
    assert actor_threads(requested, cpus) == expected


@pytest.mark.parametrize(
    "requested,node,runners,large,expected",
    [("auto", 16, 14, True, 2), ("auto", 2, 0, True, 2), ("auto", 2, 2, True, 1), ("auto", 16, 0, False, 1), (3, 2, 2, False, 3)],
)
def test_driver_threads_are_what_the_env_runners_leave_for_large_updates_else_one(requested, node, runners, large, expected):
    assert driver_threads(requested, node, runners, large_cpu_update=large) == expected


def test_threads_line_names_every_kind_of_process_that_runs():
    assert threads_line(2, 0, 1, 0, 1) == "threads (torch, numpy/BLAS): driver 2 (learner in it)"
    assert threads_line(2, 14, 1, 2, 1) == "threads (torch, numpy/BLAS): driver 2, env runners 1 each, remote learners 1 each"


def test_only_a_remote_learner_resizes_its_process():
    torch = pytest.importorskip("torch")
    from marl.rllib.threads import LEARNER_THREADS_KEY, limit_learner_threads, limit_threads

    before = torch.get_num_threads()
    target = 1 if before != 1 else 2
    try:
        limit_learner_threads(SimpleNamespace(learner_config_dict={LEARNER_THREADS_KEY: target}, num_learners=0))
        assert torch.get_num_threads() == before, "a local learner keeps the driver's threads"
        limit_learner_threads(SimpleNamespace(learner_config_dict={LEARNER_THREADS_KEY: target}, num_learners=2))
        assert torch.get_num_threads() == target
    finally:
        limit_threads(before)


# -- `num_gpus_per_learner: auto` takes the GPU only where the update is big enough ------------


@pytest.mark.parametrize("work,expected", [(None, 1.0), (1e8, 0.0), (2e9, 1.0), (1e10, 1.0)])
def test_auto_gpu_needs_enough_work(work, expected):
    assert resolve_num_gpus_per_learner("auto", 1, 0, work=work, min_work=2e9) == expected


def test_work_never_overrides_an_explicit_gpu_request():
    assert resolve_num_gpus_per_learner(1, 1, 0, work=1.0, min_work=2e9) == 1.0


@pytest.mark.parametrize(
    "config_name,overrides,usable,expected",
    [
        ("mappo_simple_spread", [], 1, 0.0),  # 2.7e8: measured slower on an H200's GPU
        ("maddpg_simple_spread", [], 1, 0.0),  # 8.9e7: likewise
        ("mappo_simple_spread", ["model.hidden=[256, 256]", "training.train_batch_size=22400"], 1, 1.0),  # 1e10
        ("mappo_simple_spread", ["resources.large_update_work=0"], 1, 1.0),
        ("mappo_simple_spread", ["model.hidden=[256, 256]", "training.train_batch_size=22400"], 0, 0.0),  # no GPU
    ],
)
def test_auto_gpu_choice_of_shipped_and_large_configs(config_name, overrides, usable, expected):
    from marl.experiment import load_config
    from marl.rllib.resources import choose_learner_gpus

    config = load_config(REPO / "configs" / f"{config_name}.yaml", overrides)
    gpus, reason = choose_learner_gpus(config, usable)
    assert gpus == expected, reason
    assert reason.startswith("auto")
