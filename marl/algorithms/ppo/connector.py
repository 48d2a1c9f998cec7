"""The PPO family's train batch, built from sampled episodes in one pass.

RLlib's default learner pipeline for PPO (`AlgorithmConfig.build_learner_connector` plus
`PPOLearner.build`) walks every episode chunk through a chain of pieces: append a bootstrap
time step to each chunk (`AddOneTsToEpisodesAndTruncate`), collect observations and the
other columns item by item, map agents to modules, batch, convert to tensors, then
`GeneralAdvantageEstimation` runs the critic and a per-row Python loop. With hundreds of
short chunks per update (16 worlds x 25-step episodes x agents) that costs about as much
as the gradient steps themselves (docs/performance.md).

`PPOTrainBatch` replaces that whole pipeline for feed-forward modules and produces the
same batch: per module, the same rows (each chunk's steps plus one bootstrap row with the
final observation, the last action and extra outputs repeated, reward 0 and
`loss_mask` False), the same `terminateds` / `truncateds` conventions, advantages
standardised over the module's rows, value targets from `marl.core.gae` (equal to RLlib's
`compute_value_targets`), and `vf_preds` (the critic's predictions in return units, the
anchor of MAPPO's clipped value loss). tests/test_ppo_connector.py checks it column by
column against RLlib's pipeline. Rows are ordered by episode, then agent (RLlib's order
follows a set of agent ids, salted per process; ours sorts them, `marl/rllib/ordering.py`), which
only changes how minibatches are shuffled.

A centralised critic over image observations (`module.peers > 0`, ObservationLayout.peers)
also gets PEER_OBS: for each row, the other agents' observations at the same step, taken from
the episode the row belongs to. Sampling thus stores every frame once, in its own agent's
observations, instead of once more per agent in every agent's state part.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
import torch
from ray.rllib.connectors.connector_v2 import ConnectorV2
from ray.rllib.core.columns import Columns
from ray.rllib.env.single_agent_episode import SingleAgentEpisode
from ray.rllib.evaluation.postprocessing import Postprocessing
from ray.rllib.utils.annotations import override

from marl.core.gae import standardize, value_targets
from marl.core.keys import PEER_OBS
from marl.rllib.ordering import single_agent_episodes_in_order


# Rows per critic pass when the connector computes the sampled values: bounds the memory of
# convolutional activations on large frames; vectors fit in one pass anyway.
VALUE_ROWS_PER_PASS = 512


class PPOTrainBatch(ConnectorV2):
    """Episodes -> {module_id: columns as tensors} for the PPO family's losses (module docstring)."""

    def __init__(self, input_observation_space=None, input_action_space=None, *, gamma: float, lambda_: float):
        super().__init__(input_observation_space, input_action_space)
        self.gamma = gamma
        self.lambda_ = lambda_

    @override(ConnectorV2)
    def __call__(self, *, rl_module, batch: dict[str, Any], episodes, **kwargs) -> dict[str, Any]:
        trajectories: dict[str, list[SingleAgentEpisode]] = defaultdict(list)
        owners: dict[str, list[Any]] = defaultdict(list)  # the multi-agent episode of each trajectory
        for episode in episodes:
            for agent_episode in single_agent_episodes_in_order([episode], agents_that_stepped_only=False):
                if len(agent_episode) > 0:
                    trajectories[agent_episode.module_id].append(agent_episode)
                    owners[agent_episode.module_id].append(episode)
        # A fixed module order: with data-parallel learners each module's gradients are
        # all-reduced in the order its loss is built (the batch's key order), and learners
        # whose shards met the agents in another order would sum one module's gradients
        # into another's.
        for module_id in sorted(trajectories):
            module_trajectories = trajectories[module_id]
            module = rl_module[module_id].unwrapped()
            if module.is_stateful():
                raise ValueError(
                    f"module {module_id!r} is stateful; PPOTrainBatch builds batches for feed-forward "
                    "modules only (set training.learner_connector: rllib)"
                )
            batch[module_id] = self._module_batch(module, module_trajectories, owners[module_id])
        return batch

    def _module_batch(self, module, trajectories: list[SingleAgentEpisode], owners: list[Any]) -> dict[str, torch.Tensor]:
        columns = extended_columns(trajectories)
        if getattr(module, "peers", 0):
            columns[PEER_OBS] = peer_observations(trajectories, owners, module.scenario_agents, module.obs_dim)
        device = next(module.parameters()).device
        tensors = {key: torch.from_numpy(value).to(device) for key, value in columns.items()}
        rows = len(columns[Columns.REWARDS])
        per_pass = VALUE_ROWS_PER_PASS if getattr(module, "critic_encoder", None) is not None else rows
        with torch.no_grad():
            values = np.concatenate([
                module.compute_values({key: value[start : start + per_pass] for key, value in tensors.items()}).float().cpu().numpy()
                for start in range(0, rows, per_pass)
            ])
        targets = value_targets(
            values, columns[Columns.REWARDS], columns[Columns.TERMINATEDS], columns[Columns.TRUNCATEDS], self.gamma, self.lambda_
        )
        derived = {
            Postprocessing.ADVANTAGES: standardize(targets - values).astype(np.float32),
            Postprocessing.VALUE_TARGETS: targets,
            Columns.VF_PREDS: values,
        }
        tensors.update({key: torch.from_numpy(value).to(device) for key, value in derived.items()})
        return tensors


def extended_columns(trajectories: list[SingleAgentEpisode]) -> dict[str, np.ndarray]:
    """The trajectories' rows, each followed by its bootstrap row, as numpy columns.

    A trajectory of L steps gives L + 1 rows: its L steps, then the final observation with
    the last action and extra model outputs repeated and reward 0 (what RLlib's
    `AddOneTsToEpisodesAndTruncate` appends). The last real step carries the chunk's flags:
    terminated as recorded, truncated when the chunk was truncated or is still running.
    """
    lengths = np.array([len(t) for t in trajectories])
    rows = int((lengths + 1).sum())
    last_step = np.cumsum(lengths + 1) - 2
    observations, actions, rewards = [], [], []
    extras: dict[str, list[np.ndarray]] = defaultdict(list)
    for trajectory, length in zip(trajectories, lengths):
        observations.append(np.asarray(trajectory.get_observations(slice(0, length + 1))))
        steps = np.asarray(trajectory.get_actions(slice(0, length)))
        actions += [steps, steps[-1:]]
        rewards += [np.asarray(trajectory.get_rewards(slice(0, length)), dtype=np.float32), np.zeros(1, np.float32)]
        for key in trajectory.extra_model_outputs:
            values = np.asarray(trajectory.get_extra_model_outputs(key, slice(0, length)))
            extras[key] += [values, values[-1:]]
    terminated = np.array([t.is_terminated for t in trajectories])
    truncated = np.array([t.is_truncated or not t.is_terminated for t in trajectories])
    columns = {
        Columns.OBS: _as_network_input(np.concatenate(observations)),
        Columns.ACTIONS: np.concatenate(actions),
        Columns.REWARDS: np.concatenate(rewards),
        Columns.LOSS_MASK: np.ones(rows, dtype=bool),
        Columns.TERMINATEDS: np.zeros(rows, dtype=bool),
        Columns.TRUNCATEDS: np.zeros(rows, dtype=bool),
    }
    columns[Columns.LOSS_MASK][last_step + 1] = False
    columns[Columns.TERMINATEDS][last_step] = terminated
    columns[Columns.TRUNCATEDS][last_step] = truncated
    columns.update({key: np.concatenate(parts) for key, parts in extras.items()})
    return columns


def _as_network_input(observations: np.ndarray) -> np.ndarray:
    """float32, except bytes (uint8 frames), which the module's encoder scales itself."""
    return observations if observations.dtype == np.uint8 else observations.astype(np.float32, copy=False)


def peer_observations(trajectories: list[SingleAgentEpisode], owners: list[Any], agents: list[str], obs_dim: int) -> np.ndarray:
    """For each row of `extended_columns(trajectories)`: the other agents' own observations
    (the first `obs_dim` entries of theirs: the frame, without id) at the same step, side by
    side in `agents`' order (`owners[i]`: the multi-agent episode of `trajectories[i]`). Steps
    are matched by the agents' own step counts, which are the env's for agents that act at
    every step; an agent that has left (or not yet come) gives zeros."""
    blocks = []
    for trajectory, episode in zip(trajectories, owners):
        own = np.asarray(trajectory.get_observations(slice(0, len(trajectory) + 1)))[:, :obs_dim]
        others = [
            _aligned_observations(trajectory, episode.agent_episodes.get(agent), own)
            for agent in agents
            if agent != trajectory.agent_id
        ]
        blocks.append(np.concatenate(others, axis=-1))
    return np.concatenate(blocks)


def _aligned_observations(trajectory: SingleAgentEpisode, other: SingleAgentEpisode | None, own: np.ndarray) -> np.ndarray:
    """`other`'s observations at `trajectory`'s rows (`own`: its observations, for shape and dtype)."""
    aligned = np.zeros_like(own)
    if other is None:
        return aligned
    theirs = np.asarray(other.get_observations(slice(0, len(other) + 1)))[:, : own.shape[1]]
    offset = trajectory.t_started - other.t_started  # row i is their step i + offset
    first, last = max(0, -offset), min(len(own), len(theirs) - offset)
    if last > first:
        aligned[first:last] = theirs[first + offset : last + offset]
    return aligned
