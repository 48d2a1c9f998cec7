"""Rollout datasets from checkpoints, with interventions and counterfactual re-evaluation.

`collect_rollouts` runs a checkpoint's policies (any of our algorithms: the RLModules are
loaded from the checkpoint and stepped in this process, as `marl evaluate` does) and
returns a tidy DataFrame, one row per (episode, step, agent):

    episode, step, agent, action, prob_0 .. prob_{A-1} (Discrete actions), reward,
    and the scenario's own state where it exposes it:
    - mpe2 worlds: the agent's position and velocity (x, y, vx, vy), its message (the
      index of its communication channel, for agents that speak), the landmark it has to
      bring its partner to (goal_landmark: speaker-listener's speaker, reference), and
      every landmark's position (landmark_<j>_x / _y, the same on every agent's row);
    - other scenarios with a `state()`: its entries as state_<k>.

`save_rollouts` writes it as parquet. An `Intervention` replaces one agent's action
(= its message, for mpe2's speaker) before the world steps: fixed to a value, zeroed, a
uniformly random one, or swapped with another agent's. `paired_returns` runs the same
seeds with and without an intervention (the input of
`coordination.metrics.positive_listening`). `influence_matrix` measures causal influence
(Jaques et al. 2019): for every state, each agent k's alternative actions are tried on
copies of the world and every other agent j's next action distribution is re-evaluated.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from coordination.metrics import policy_diversity, social_influence
from marl.evaluation import CheckpointPolicies, EpisodeRecorder, Step, run_episodes


@dataclass(frozen=True)
class Intervention:
    """Replace `agent`'s action before each step.

    kind: `fix` (to `value`), `zero` (action 0, or zeros for Box actions), `random`
    (uniform over the agent's action space, drawn from the rollout's generator) or
    `swap` (exchange with agent `other`'s action; both must share an action space).
    """

    agent: str
    kind: Literal["fix", "zero", "random", "swap"]
    value: Any = None
    other: str | None = None

    def __post_init__(self):
        if self.kind == "fix" and self.value is None:
            raise ValueError("Intervention(kind='fix') needs a value")
        if self.kind == "swap" and self.other is None:
            raise ValueError("Intervention(kind='swap') needs the other agent")

    def apply(self, actions: dict[str, Any], action_spaces, rng: np.random.Generator) -> dict[str, Any]:
        if self.agent not in actions:
            return actions  # the agent has left the episode
        actions = dict(actions)
        space = action_spaces[self.agent]
        if self.kind == "fix":
            actions[self.agent] = self.value
        elif self.kind == "zero":
            actions[self.agent] = 0 if not space.shape else np.zeros(space.shape, space.dtype)
        elif self.kind == "random":
            actions[self.agent] = int(rng.integers(space.n)) if not space.shape else rng.uniform(space.low, space.high).astype(space.dtype)
        elif self.other in actions:
            actions[self.agent], actions[self.other] = actions[self.other], actions[self.agent]
        return actions


def _policies(checkpoint: str | Path | CheckpointPolicies) -> CheckpointPolicies:
    return checkpoint if isinstance(checkpoint, CheckpointPolicies) else CheckpointPolicies.from_checkpoint(checkpoint)


def world_state_fields(env) -> dict[str, dict[str, float]]:
    """The scenario's own state per agent (see the module docstring); {} if it exposes none.

    `env` is the PettingZoo parallel env (the adapter's `.env`).
    """
    raw = env.unwrapped
    world = getattr(raw, "world", None)
    if world is None:
        try:
            state = np.asarray(raw.state(), dtype=float).ravel()
        except (AttributeError, NotImplementedError):
            return {}
        shared = {f"state_{k}": float(v) for k, v in enumerate(state)}
        return {agent: dict(shared) for agent in env.agents}
    landmarks = {}
    for j, landmark in enumerate(world.landmarks):
        landmarks[f"landmark_{j}_x"], landmarks[f"landmark_{j}_y"] = map(float, landmark.state.p_pos)
    fields = {}
    for agent in world.agents:
        row = dict(landmarks)
        row["x"], row["y"] = map(float, agent.state.p_pos)
        row["vx"], row["vy"] = map(float, agent.state.p_vel)
        if not agent.silent and world.dim_c > 0:
            channel = np.asarray(agent.state.c)
            row["message"] = float(np.argmax(channel)) if channel.any() else np.nan
        goal = getattr(agent, "_goal_b", None)
        if goal is not None:
            row["goal_landmark"] = float(next(j for j, landmark in enumerate(world.landmarks) if landmark is goal))
        fields[agent.name] = row
    return fields


def collect_rollouts(
    checkpoint: str | Path | CheckpointPolicies,
    *,
    episodes: int = 20,
    explore: bool = False,
    seed: int = 1000,
    intervention: Intervention | None = None,
) -> pd.DataFrame:
    """Run `episodes` episodes (seeds seed, seed+1, ...) and return one row per (episode, step, agent)."""
    policies = _policies(checkpoint)
    env = policies.make_env(seed=seed)
    dataset = DatasetRecorder(intervention, np.random.default_rng(seed))
    try:
        run_episodes(policies, env, dataset, episodes=episodes, seed=seed, explore=explore)
    finally:
        env.close()
    return pd.DataFrame(dataset.rows)


class DatasetRecorder(EpisodeRecorder):
    """`collect_rollouts`' rows; applies the intervention, drawing from `rng`."""

    def __init__(self, intervention: Intervention | None, rng: np.random.Generator):
        self.intervention, self.rng = intervention, rng
        self.rows: list[dict[str, Any]] = []

    def before_step(self, env, step: Step) -> None:
        self.state = world_state_fields(env.env)
        if self.intervention is not None:
            step.actions = self.intervention.apply(step.actions, env.action_spaces, self.rng)

    def after_step(self, env, step: Step) -> None:
        if hasattr(env, "team_agents"):  # a joint policy: one row per team agent, with its parents
            self.rows += _team_rows(step, env, self.state)
            return
        for agent, action in step.actions.items():
            self.rows.append(
                _row(step.episode, step.step, agent, action, step.chosen.probabilities.get(agent), step.rewards.get(agent, 0.0), self.state.get(agent, {}))
            )


def _row(episode: int, step: int, agent: str, action, probabilities, reward: float, state: dict[str, float]) -> dict[str, Any]:
    row: dict[str, Any] = {"episode": episode, "step": step, "agent": agent}
    if np.ndim(action) == 0:
        row["action"] = int(action)
    else:
        row.update({f"action_{k}": float(v) for k, v in enumerate(np.ravel(action))})
    if probabilities is not None:
        row.update({f"prob_{k}": float(p) for k, p in enumerate(probabilities)})
    row["reward"] = float(reward)
    row.update(state)
    return row


def _team_rows(step: Step, env, state) -> list[dict[str, Any]]:
    """Rows of a joint (Bayesian-network) policy's step: each team agent's action, its action
    probabilities given its parents' actual actions, its own reward, and `parent_<agent>` = 1
    for each agent it conditioned on (the sampled graph; all 0 under the empty graph)."""
    (team, joint), = step.actions.items()
    details = step.chosen.details[team]
    rows = []
    for i, agent in enumerate(env.team_agents):
        row = _row(step.episode, step.step, agent, int(np.asarray(joint).reshape(-1)[i]), details["agent_probabilities"][i],
                   env.agent_rewards.get(agent, 0.0), state.get(agent, {}))
        row.update({f"parent_{other}": float(details["adjacency"][j, i]) for j, other in enumerate(env.team_agents) if j != i})
        rows.append(row)
    return rows


def save_rollouts(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write the dataset as parquet (columns as in `collect_rollouts`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)
    return path


def episode_returns(frame: pd.DataFrame) -> pd.Series:
    """Team return per episode (rewards summed over agents and steps)."""
    return frame.groupby("episode")["reward"].sum()


def paired_returns(
    checkpoint: str | Path, intervention: Intervention, *, episodes: int = 20, seed: int = 1000, explore: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Team returns of the same seeds without and with `intervention`."""
    actual = collect_rollouts(checkpoint, episodes=episodes, seed=seed, explore=explore)
    intervened = collect_rollouts(checkpoint, episodes=episodes, seed=seed, explore=explore, intervention=intervention)
    return episode_returns(actual).to_numpy(), episode_returns(intervened).to_numpy()


def actions_table(frame: pd.DataFrame) -> pd.DataFrame:
    """(episode, step) x agent table of discrete actions (the input of `pairwise_action_mi`)."""
    table = frame.pivot(index=["episode", "step"], columns="agent", values="action")
    return table[list(pd.unique(frame["agent"]))].dropna().astype(int)  # the scenario's agent order


def influence_matrix(checkpoint: str | Path | CheckpointPolicies, *, episodes: int = 5, seed: int = 1000) -> pd.DataFrame:
    """Mean causal influence (nats) of each agent (row) on each other agent (column).

    At every step of greedy rollouts, for each agent k with Discrete actions, each of its
    actions a' is played from the same world state (the others play their actual actions)
    and every other agent j's action distribution at the next step is recomputed: that
    gives p(a_j | a', s). With k's policy pi_k(a' | s) and j's actual next distribution it is
    `coordination.metrics.social_influence`. In simultaneous-move scenarios an agent can
    only influence another through the world, so the influence is on the next step.
    """
    policies = _policies(checkpoint)
    env = policies.make_env(seed=seed)
    influence = InfluenceRecorder(policies, list(env.possible_agents), [a for a in env.possible_agents if not env.action_spaces[a].shape])
    try:
        run_episodes(policies, env, influence, episodes=episodes, seed=seed, explore=False)
    finally:
        env.close()
    return influence.totals / influence.counts.where(influence.counts > 0)


class InfluenceRecorder(EpisodeRecorder):
    """`influence_matrix`'s sums: at each step, every discrete agent k's alternative actions are
    played from a snapshot of the world; the next step's actual distributions complete the terms."""

    def __init__(self, policies: CheckpointPolicies, agents: list[str], discrete: list[str]):
        self.policies, self.discrete = policies, discrete
        self.totals = pd.DataFrame(0.0, index=agents, columns=agents)
        self.counts = pd.DataFrame(0, index=agents, columns=agents)

    def start(self, env, episode: int) -> None:
        self.previous = None  # the last step's (counterfactual next distributions, k's probabilities)

    def before_step(self, env, step: Step) -> None:
        if self.previous is not None:
            self._add(*self.previous, actual_next=step.chosen.probabilities)
        state = WorldSnapshot(env)
        counterfactual = {k: _next_distributions(self.policies, env, state, step.actions, k) for k in self.discrete if k in step.actions}
        state.restore(env)
        self.previous = counterfactual, step.chosen.probabilities

    def _add(self, counterfactual, probabilities, *, actual_next) -> None:
        for k, alternatives in counterfactual.items():
            for j in self.discrete:
                if j == k or j not in actual_next or any(j not in c for c in alternatives):
                    continue
                rows = np.stack([c[j] for c in alternatives])
                self.totals.loc[k, j] += social_influence(actual_next[j], rows, probabilities[k])
                self.counts.loc[k, j] += 1


class WorldSnapshot:
    """A copy of a scenario's mutable state (the innermost env's attributes, its RNG included)
    that can be put back, to try alternative actions from one state.

    PettingZoo's envs pickle by re-running their constructor (EzPickle), so a deepcopy of
    the env would be a fresh, un-reset env; copying the attributes keeps the state.
    Attributes that cannot be copied (rendering resources such as fonts) are not state and
    are left alone.
    """

    def __init__(self, env):
        memo: dict = {}  # one memo for all attributes: objects they share stay shared in the copy
        self._attributes = {}
        for name, value in env.env.unwrapped.__dict__.items():
            try:
                self._attributes[name] = copy.deepcopy(value, memo)
            except TypeError:
                continue
        self._agents = list(env.agents)

    def restore(self, env) -> None:
        env.env.unwrapped.__dict__.update(copy.deepcopy(self._attributes))
        env.agents = list(self._agents)


def _next_distributions(policies: CheckpointPolicies, env, state: WorldSnapshot, actions: dict[str, Any], agent: str):
    """For each action a' of `agent`, from `state`: every agent's next action distribution."""
    results = []
    for alternative in range(env.action_spaces[agent].n):
        state.restore(env)
        observations, *_ = env.step({**actions, agent: alternative})
        results.append(policies.act(observations, env.action_spaces, explore=False).probabilities)
    return results


def diversity_matrix(checkpoint: str | Path | CheckpointPolicies, *, episodes: int = 5, seed: int = 1000) -> pd.DataFrame:
    """Mean Jensen-Shannon distance between agents' policies on the same states.

    Greedy rollouts give every agent's observations; each agent's policy is then evaluated
    on all of them ("what would agent i do in agent j's place": j's own observation, with
    i's one-hot id where observations carry one) and `coordination.metrics.policy_diversity`
    compares the distributions row by row. Only agents with Discrete actions and the same
    observation and action spaces are compared (others are NaN). 0: interchangeable
    agents; large: specialised roles.
    """
    policies = _policies(checkpoint)
    env = policies.make_env(seed=seed)
    agents = [a for a in env.possible_agents if not env.action_spaces[a].shape]
    groups: dict[tuple, list[str]] = {}
    for agent in agents:
        groups.setdefault((env.layouts[agent].obs_dim, env.action_spaces[agent].n), []).append(agent)
    seen = ObservationsRecorder(agents)
    try:
        run_episodes(policies, env, seen, episodes=episodes, seed=seed, explore=False)
        matrix = pd.DataFrame(np.nan, index=env.possible_agents, columns=env.possible_agents)
        for members in groups.values():
            states = np.concatenate([np.stack(seen.observations[a]) for a in members])
            probabilities = {agent: _policy_on(policies, env, agent, states) for agent in members}
            matrix.loc[members, members] = policy_diversity(probabilities).to_numpy()
    finally:
        env.close()
    return matrix


class ObservationsRecorder(EpisodeRecorder):
    """Every observation each of `agents` acted on."""

    def __init__(self, agents: list[str]):
        self.observations: dict[str, list[np.ndarray]] = {agent: [] for agent in agents}

    def before_step(self, env, step: Step) -> None:
        for agent, seen in self.observations.items():
            if agent in step.observations:
                seen.append(np.asarray(step.observations[agent]))


def _policy_on(policies: CheckpointPolicies, env, agent: str, states: np.ndarray) -> np.ndarray:
    """`agent`'s action probabilities on laid-out observations of any agent of its group."""
    layout = env.layouts[agent]
    states = states.copy()
    if layout.id_dim:
        states[:, layout.obs_dim : layout.obs_dim + layout.id_dim] = env._agent_ids[agent]
    return np.stack([policies.act({agent: row}, env.action_spaces, explore=False).probabilities[agent] for row in states])
