"""Real training: a local Ray, real RLlib algorithms, real PettingZoo scenarios, a few iterations.

Batches are tiny so that each run takes seconds on two cores; what is checked is the
plumbing (shapes, counters, checkpoints, resume, evaluation), not learning.
"""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time

import pytest

from marl.algorithms.common import policy_mapping
from marl.algorithms.dpo.losses import adapt_coefficient
from marl.experiment import build_config
from marl.core.keys import BETA_KL, BETA_SQRT_KL, CLIP_FRAC, KL, MADDPG_TERMS, PPO_TERMS, SQRT_KL, SURROGATE_LOSS
from marl.evaluation import evaluate
from marl.experiment.registry import ALGORITHMS
from marl.training.checkpoints import complete_checkpoints, latest_checkpoint, read_meta
from marl.training.runner import resume, train
from tests.conftest import REPO, metrics_rows, tiny_config, tiny_overrides

# (config, extra overrides, action kind): every algorithm runs on each scenario its
# capability flags allow.
SCENARIOS = {
    # RLlib's stock env runner over the PettingZoo scenario.
    "spread_discrete": ("simple_spread", ["scenario.backend=pettingzoo"], "discrete"),
    "spread_continuous": (
        "simple_spread", ["scenario.backend=pettingzoo", "scenario.kwargs.continuous_actions=true"], "continuous"
    ),
    "speaker_listener_per_agent": ("simple_speaker_listener", ["scenario.backend=pettingzoo"], "discrete"),
    # Heterogeneous agents made uniform by a SuperSuit chain, then one shared policy.
    "speaker_listener_padded_shared": (
        "simple_speaker_listener",
        ["scenario.backend=pettingzoo", "scenario.wrappers=[pad_observations_v0, pad_action_space_v0]",
         "policies.sharing=shared"],
        "discrete",
    ),
    # The fast path (the shipped mpe2 configs' backend): the same experiments sampled by the
    # vectorized env runner.
    "spread_vectorized": ("simple_spread", ["scenario.backend=vectorized"], "discrete"),
    "spread_continuous_vectorized": (
        "simple_spread", ["scenario.backend=vectorized", "scenario.kwargs.continuous_actions=true"], "continuous"
    ),
    "speaker_listener_vectorized": ("simple_speaker_listener", ["scenario.backend=vectorized"], "discrete"),
}


# The scenarios' agents, to name the policies each sharing mode gives.
AGENTS = {"simple_spread": ["agent_0", "agent_1", "agent_2"], "simple_speaker_listener": ["speaker_0", "listener_0"]}
# Logged per policy by every algorithm of the PPO family, and by each algorithm on top.
LOGGED_TERMS = {
    "ippo": PPO_TERMS + (CLIP_FRAC,),
    "mappo": PPO_TERMS + (CLIP_FRAC,),
    "dpo": PPO_TERMS + (BETA_KL, BETA_SQRT_KL, KL, SQRT_KL, SURROGATE_LOSS),
    "maddpg": MADDPG_TERMS,
}


def _backend(overrides: list[str]) -> str:
    return next(o.split("=", 1)[1] for o in overrides if o.startswith("scenario.backend="))


# Algorithms whose tiny training runs live in their own test file, on their own scenarios:
# bn_mappo acts for the whole team (one shared actor, uniform agents) and is trained in
# tests/test_bn_training.py on the coordination game and Aloha.
TRAINED_ELSEWHERE = {"bn_mappo"}


def _pairs():
    for algorithm, entry in ALGORITHMS.items():
        if algorithm in TRAINED_ELSEWHERE:
            continue
        for key, (scenario, overrides, kind) in SCENARIOS.items():
            cls = entry.config_class
            supported = cls.supports_continuous_actions() if kind == "continuous" else cls.supports_discrete_actions()
            if supported and cls.supports_backend(_backend(overrides)):
                yield pytest.param(algorithm, scenario, overrides, id=f"{algorithm}-{key}")


@pytest.mark.parametrize("algorithm,scenario,overrides", list(_pairs()))
def test_every_algorithm_trains_on_every_supported_scenario(tmp_path, algorithm, scenario, overrides):
    config = tiny_config(f"{algorithm}_{scenario}", *overrides)
    lines: list[str] = []
    run_dir = train(config, runs_root=tmp_path, echo=lines.append, max_iterations=2)

    rows = metrics_rows(run_dir)
    assert [int(r["iteration"]) for r in rows] == [1, 2]
    assert int(rows[-1]["env_steps"]) >= 400
    assert float(rows[-1]["episode_return_mean"]) == pytest.approx(float(rows[-1]["episode_return_mean"]))  # not NaN
    policies = sorted(set(policy_mapping(config, AGENTS[scenario]).values()))
    for policy in policies:
        for term in LOGGED_TERMS[algorithm]:
            assert f"{policy}/{term}" in rows[-1], f"{policy}/{term} missing from metrics.csv"
    assert any(line.startswith("iter ") and "steps/s" in line and "ETA" in line for line in lines)
    assert (run_dir / "tensorboard").is_dir() and any((run_dir / "tensorboard").iterdir())


def test_dpo_resume_continues_with_the_adapted_coefficients(tmp_path):
    """DPO's penalty coefficients are learner state: a resumed run must not restart them at 1.

    Row k logs the coefficients iteration k used and the KL it measured; the coefficients
    of iteration k+1 (what the checkpoint after k holds) follow from them by the rule.
    """
    config = tiny_config("dpo_simple_spread")
    run_dir = train(config, runs_root=tmp_path, echo=lambda _: None, max_iterations=2)
    resume(run_dir, echo=lambda _: None, max_iterations=1)
    rows = metrics_rows(run_dir)
    assert [int(r["iteration"]) for r in rows] == [1, 2, 3]
    target = config.training.kl_target

    for policy in AGENTS["simple_spread"]:
        def used(row):
            return float(row[f"{policy}/beta_kl"]), float(row[f"{policy}/beta_sqrt_kl"])

        def adapted(row):
            beta_kl, beta_sqrt_kl = used(row)
            return (
                adapt_coefficient(beta_kl, float(row[f"{policy}/kl"]), target),
                adapt_coefficient(beta_sqrt_kl, float(row[f"{policy}/sqrt_kl"]), math.sqrt(target)),
            )

        assert used(rows[0]) == (1.0, 1.0)
        assert used(rows[1]) == adapted(rows[0]), "adaptation within a run"
        assert used(rows[2]) == adapted(rows[1]), "after resume: the coefficients the checkpoint held"
        assert used(rows[2]) != (1.0, 1.0), "coefficients never moved: the check above proves nothing"


def test_policy_groups_train_one_module_per_group(tmp_path):
    config = tiny_config(
        "mappo_coordination_game",
        "policies.sharing=groups",
        "policies.groups={pair: [agent_0, agent_1], solo: [agent_2]}",
    )
    run_dir = train(config, runs_root=tmp_path, echo=lambda _: None, max_iterations=1)
    row = metrics_rows(run_dir)[-1]
    assert "pair/pg_loss" in row and "solo/pg_loss" in row


def test_agent_leaving_early_keeps_each_agents_rewards_its_own(tmp_path):
    """a1 terminates after 2 steps, a0 and a2 run 5: RLlib must credit each agent its own rewards.

    Rewards are index + step + action (see tests/scenarios_for_tests.py), so per-agent
    episode returns lie in known, disjoint ranges: a1 in [5, 7], a0 in [15, 20], a2 in [25, 30].
    """
    config = build_config(
        {
            "algorithm": "mappo",
            "scenario": {"name": "tests.scenarios_for_tests:leaving_agents_env"},
            "policies": {"sharing": "shared"},
            "training": {"train_batch_size": 100, "num_epochs": 2},
            "resources": {"num_env_runners": 1, "num_envs_per_env_runner": 2},
            "stop": {"env_steps": 100000},
        }
    )
    run_dir = train(config, runs_root=tmp_path, echo=lambda _: None, max_iterations=2)
    row = {key: float(value) for key, value in metrics_rows(run_dir)[-1].items() if value != ""}
    assert row["episode_len_mean"] == 5
    assert 5 <= row["return/a1"] <= 7
    assert 15 <= row["return/a0"] <= 20
    assert 25 <= row["return/a2"] <= 30
    assert row["episode_return_mean"] == pytest.approx(row["return/a0"] + row["return/a1"] + row["return/a2"], rel=1e-6)


@pytest.mark.parametrize("backend", ["pettingzoo", "vectorized"])
def test_checkpoint_resume_keeps_counters_and_evaluate_renders(tmp_path, backend):
    config = tiny_config("mappo_simple_spread", f"scenario.backend={backend}")
    run_dir = train(config, runs_root=tmp_path, echo=lambda _: None, max_iterations=3)
    first = latest_checkpoint(run_dir)
    assert read_meta(first)["iteration"] == 3
    assert read_meta(first)["env_steps"] == int(metrics_rows(run_dir)[-1]["env_steps"])

    lines: list[str] = []
    resume(run_dir, echo=lines.append, max_iterations=2)
    rows = metrics_rows(run_dir)
    assert [int(r["iteration"]) for r in rows] == [1, 2, 3, 4, 5], "resume must continue, not restart or repeat"
    steps = [int(r["env_steps"]) for r in rows]
    assert steps == sorted(steps) and steps[3] > steps[2], "env-step counter must continue across the resume"
    assert read_meta(latest_checkpoint(run_dir))["iteration"] == 5
    assert len(complete_checkpoints(run_dir)) <= config.checkpoint.keep

    gif = tmp_path / "episode.gif"
    result = evaluate(run_dir, episodes=3, render_path=gif)
    summary = result.summary()
    assert summary["episodes"] == 3 and len(result.team_returns) == 3
    assert set(summary["agent_return"]) == {"agent_0", "agent_1", "agent_2"}
    assert result.team_returns[0] == pytest.approx(sum(result.agent_returns[a][0] for a in summary["agent_return"]))
    assert {"collisions", "min_dist_sum_mean", "occupied_landmarks_final"} <= set(summary["metrics"])
    assert gif.stat().st_size > 1000
    json.loads(result.json_line())


def test_cli_train_ctrl_c_writes_final_checkpoint_then_evaluate(tmp_path):
    """The user's path: `marl train`, Ctrl-C, `marl evaluate` on what was saved."""
    command = [sys.executable, "-m", "marl.cli", "train", str(REPO / "configs" / "ippo_simple_spread.yaml"), *tiny_overrides("ippo"),
               "checkpoint.every_iterations=1000", "--runs-dir", "runs"]  # relative, as users type it
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path)
    output = []
    deadline = time.time() + 180
    for line in process.stdout:
        output.append(line)
        if line.startswith("iter ") and time.time() < deadline:
            process.send_signal(signal.SIGINT)
            deadline = 0  # one Ctrl-C only
    assert process.wait(timeout=120) == 0, "".join(output)
    text = "".join(output)
    assert "stop requested" in text and "checkpoint:" in text, text
    run_dir = next(p for p in (tmp_path / "runs").iterdir() if p.is_dir() and p.name.startswith("ippo_"))
    assert latest_checkpoint(run_dir) is not None

    evaluated = subprocess.run(
        [sys.executable, "-m", "marl.cli", "evaluate", str(run_dir.relative_to(tmp_path)), "--episodes", "2"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    assert evaluated.returncode == 0, evaluated.stderr
    summary = json.loads(evaluated.stdout.strip().splitlines()[-1])
    assert summary["episodes"] == 2


def test_cli_rejects_bad_config_in_one_line_before_ray_starts(tmp_path):
    started = time.time()
    result = subprocess.run(
        [sys.executable, "-m", "marl.cli", "train", str(REPO / "configs" / "mappo_simple_spread.yaml"), "training.lrr=1"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "training.lrr" in result.stderr
    assert not (tmp_path / "runs").exists(), "no run directory for a rejected config"
    assert time.time() - started < 30


@pytest.mark.parametrize("backend", ["vectorized", "pettingzoo"])
def test_threads_of_driver_and_env_runners_are_the_configured_ones(tmp_path, backend):
    """Explicit counts unlike every default (torch: all cores in the driver; Ray: OMP_NUM_THREADS=1
    in a 1-CPU actor), read back from the live processes, BLAS included."""
    import torch

    from marl.rllib.threads import limit_threads

    pytest.importorskip("threadpoolctl")
    config = tiny_config(
        "mappo_simple_spread", f"scenario.backend={backend}", "resources.threads.driver=1", "resources.threads.env_runner=2"
    )
    seen, lines = {}, []

    def probe(runner):
        from threadpoolctl import threadpool_info

        return torch.get_num_threads(), sorted({info["num_threads"] for info in threadpool_info()})

    def look(algo, row):
        seen["driver"] = torch.get_num_threads()
        seen["runners"] = algo.env_runner_group.foreach_env_runner(probe, local_env_runner=False)
        return True

    before = torch.get_num_threads()
    try:
        train(config, runs_root=tmp_path, echo=lines.append, max_iterations=1, on_iteration=look)
    finally:
        limit_threads(before)
    assert seen["driver"] == 1
    assert seen["runners"] == [(2, [2])]
    assert "threads (torch, numpy/BLAS): driver 1 (learner in it), env runners 2 each" in lines
