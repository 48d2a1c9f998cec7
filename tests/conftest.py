"""What many test modules share: the repository's paths, tiny training budgets, building an
experiment from a shipped config, reading a run's metrics, and a Learner without a cluster.

Plain helpers (imported as `from tests.conftest import ...`), kept here rather than in one
test module that the others import from.
"""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import numpy as np
import torch
import yaml

from marl.config import ExperimentConfig
from marl.experiment import load_config

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"

TINY = [
    "resources.num_env_runners=1",
    "resources.num_envs_per_env_runner=2",
    "stop.env_steps=100000",
    "checkpoint.every_iterations=2",
]
# 200 env steps per iteration, and few updates, whatever the algorithm calls them.
TINY_PPO_TRAINING = ["training.train_batch_size=200", "training.num_epochs=2"]
TINY_TRAINING = {
    "maddpg": [
        "training.env_steps_per_iteration=200",
        "training.batch_size=64",
        "training.learning_starts=100",  # updates from the first iteration on
        "training.updates_per_iteration=2",
    ],
}


def load_benchmark(name: str):
    """benchmarks/<name>.py (a script, not a package) loaded as a module."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_overrides(algorithm: str) -> list[str]:
    """TINY plus the algorithm's own small-budget training settings."""
    return TINY + TINY_TRAINING.get(algorithm, TINY_PPO_TRAINING)


def algorithm_of(config_name: str) -> str:
    """The `algorithm` a shipped config names (`bn_mappo_aloha` -> `bn_mappo`)."""
    return yaml.safe_load((CONFIGS / f"{config_name}.yaml").read_text())["algorithm"]


def tiny_config(config_name: str, *extra: str) -> ExperimentConfig:
    """A shipped config on the tiny budget, with `extra` overrides last."""
    return load_config(CONFIGS / f"{config_name}.yaml", tiny_overrides(algorithm_of(config_name)) + list(extra))


def metrics_rows(run_dir: Path) -> list[dict]:
    """A run's metrics.csv, one dict per iteration."""
    with (run_dir / "metrics.csv").open() as handle:
        return list(csv.DictReader(handle))


def local_learner(rllib_config):
    """The RLlib Learner of `rllib_config`, built in this process (no Ray cluster)."""
    specs = rllib_config.rl_module_spec.rl_module_specs
    return rllib_config.build_learner(spaces={pid: (spec.observation_space, spec.action_space) for pid, spec in specs.items()})


# -- MADDPG's learner on a hand-made joint batch (test_maddpg_learner, _ensemble, _inference) --

AGENTS = ["agent_0", "agent_1", "agent_2"]
GAMMA, TAU, LOGITS_REG = 0.9, 0.25, 0.1
ROWS = 8


def build_maddpg_learner(*overrides: str):
    """MADDPG's learner on simple_spread (N=3), hidden [8], the constants above, one critic per
    agent (the paper's MADDPG; the shipped config trains twin critics)."""
    config = load_config(
        REPO / "configs" / "maddpg_simple_spread.yaml",
        ["model.hidden=[8]", f"training.gamma={GAMMA}", f"training.tau={TAU}", f"training.logits_reg={LOGITS_REG}",
         "training.twin_critics=false", *overrides],
    )
    rllib_config = config.training.to_rllib(config, num_gpus_per_learner=0)
    return local_learner(rllib_config), rllib_config


def hand_rows(seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """Joint rows for simple_spread N=3 (obs 18, one-hot actions 5); agent_2 absent in the last 2 rows."""
    rng = np.random.default_rng(seed)
    rows = {}
    for index, agent in enumerate(AGENTS):
        mask = np.ones(ROWS, np.float32)
        if agent == "agent_2":
            mask[-2:] = 0.0
        terminated = np.zeros(ROWS, np.float32)
        terminated[index] = 1.0  # each agent has one terminal row
        rows[agent] = {
            "obs": rng.normal(size=(ROWS, 18)).astype(np.float32) * mask[:, None],
            "actions": np.eye(5, dtype=np.float32)[rng.integers(0, 5, ROWS)] * mask[:, None],
            "rewards": rng.normal(size=ROWS).astype(np.float32) * mask,
            "next_obs": rng.normal(size=(ROWS, 18)).astype(np.float32) * mask[:, None],
            "terminated": terminated * mask,
            "mask": mask,
        }
    return rows


def tensor_batch(rows) -> dict[str, torch.Tensor]:
    """One module's train batch as the learner receives it (tensors)."""
    from marl.algorithms.maddpg.learner import joint_train_batch

    batch = joint_train_batch(rows, ["agent_0"]).policy_batches["agent_0"]
    return {key: torch.as_tensor(value) for key, value in batch.items()}
