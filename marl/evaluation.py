"""`marl evaluate`: run a checkpoint's policies for N episodes, without Ray.

The trained RLModules are loaded straight from the checkpoint and stepped in this
process on the same adapter the env runners used (same observation layout), so
evaluation needs no cluster and can render frames.

Returns are reported per agent, summed over all agents ("team return", the objective
of a cooperative scenario) and, where the agents form more than one team (mixed
cooperative-competitive scenarios such as simple_tag: `adversary_*` against `agent_*`),
summed per team (`teams_of`).

Joint (Bayesian-network) policies (bn_mappo) act for the whole team at once and can
run with two execution graphs: `sampled` (agents see their parents' actions, as in
training) and `empty` (decentralised: nobody sees anybody's action).

Every module acts through its `act_in_evaluation` (marl/rllib/acting.py), so nothing here
knows an algorithm. `run_episodes` is the one episode loop (reset, act, step until done),
seeded per episode; `evaluate` and the coordination library (coordination/rollouts.py)
collect what they need with an `EpisodeRecorder`.
"""

from __future__ import annotations

import importlib
import itertools
import json
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from ray.rllib.core.rl_module.multi_rl_module import MultiRLModule
from ray.rllib.utils.spaces.space_utils import unsquash_action

from marl.envs.adapter import PettingZooMultiAgentEnv
from marl.envs.metrics import metrics_for, wants_benchmark_data
from marl.errors import ConfigError
from marl.core.agents import invert_mapping, teams_of
from marl.rllib.acting import ActsInEvaluation, EpisodeRandomness
from marl.training.checkpoints import read_meta, resolve_checkpoint

RL_MODULE_PATH = Path("learner_group") / "learner" / "rl_module"


@dataclass
class EvaluationResult:
    episodes: int
    team_returns: list[float]
    agent_returns: dict[str, list[float]]
    scenario_metrics: dict[str, list[float]] = field(default_factory=dict)
    teams: dict[str, list[str]] = field(default_factory=dict)
    """team -> agents; per-team returns are reported when there is more than one team."""

    def per_team_returns(self) -> dict[str, list[float]]:
        """team -> per-episode return summed over its agents (empty for a single team)."""
        if len(self.teams) < 2:
            return {}
        return {
            team: [float(sum(self.agent_returns[agent][episode] for agent in members)) for episode in range(len(self.team_returns))]
            for team, members in self.teams.items()
        }
    execution_graph: str | None = None  # joint policies: "sampled" or "empty"

    def summary(self) -> dict[str, Any]:
        def stats(values):
            return {"mean": float(np.mean(values)), "std": float(np.std(values))}

        graph = {} if self.execution_graph is None else {"dag": self.execution_graph}
        return {
            **graph,
            "episodes": self.episodes,
            "team_return": stats(self.team_returns),
            "per_team_return": {team: stats(values) for team, values in self.per_team_returns().items()},
            "agent_return": {agent: stats(values) for agent, values in self.agent_returns.items()},
            "metrics": {name: stats(values) for name, values in self.scenario_metrics.items()},
        }

    def table(self) -> str:
        summary = self.summary()
        title = "" if self.execution_graph is None else f"dag: {self.execution_graph}"
        lines = [f"{title:28s} {'mean':>10s} {'std':>10s}"]

        def add(name, entry):
            lines.append(f"{name:28s} {entry['mean']:10.3f} {entry['std']:10.3f}")

        add("team return", summary["team_return"])
        for team, entry in summary["per_team_return"].items():
            add(f"  team {team}", entry)
        for agent, entry in summary["agent_return"].items():
            add(f"  return {agent}", entry)
        for name, entry in summary["metrics"].items():
            add(name, entry)
        return "\n".join(lines)

    def json_line(self) -> str:
        return json.dumps(self.summary(), sort_keys=True)


@dataclass
class StepActions:
    """What the policies chose at one step, per agent."""

    actions: dict[str, Any]
    """The env's action."""
    probabilities: dict[str, np.ndarray | None]
    """Action probabilities for Discrete actions, else None (Box actions, a team's joint action)."""
    details: dict[str, dict[str, np.ndarray]]
    """A module's extras: for a team (joint policy), `agent_probabilities` (n, A), each member's
    action probabilities given its parents' actual actions, and `adjacency` (n, n) of the graph."""


def acts_for_teams(meta: dict[str, Any]) -> bool:
    """Whether a checkpoint's policies act for whole teams (joint policies, bn_mappo): its env is the team adapter."""
    return meta.get("env_class", "").endswith(":TeamMultiAgentEnv")


class CheckpointPolicies:
    """Trained modules acting for every agent through their policy mapping, outside RLlib.

    Every module acts through `act_in_evaluation` (marl/rllib/acting.py); what a module
    keeps per agent for the episode (`memory`) lives here, from `start_episode` on.
    """

    def __init__(self, modules: Mapping[str, ActsInEvaluation], mapping: dict[str, str], *, normalize_actions: bool = True, meta: dict[str, Any] | None = None):
        """`modules`: policy id -> module (a MultiRLModule or a dict; tests and notebooks pass
        modules in memory); `meta`: the checkpoint's metadata (needed by `make_env`)."""
        self.modules = modules
        self.mapping: dict[str, str] = dict(mapping)
        # As the env runners did: PPO's Gaussian acts in [-1, 1] and is rescaled; MADDPG's
        # module returns env-unit actions.
        self.normalize_actions = normalize_actions
        self.meta: dict[str, Any] = dict(meta or {})
        self.joint = acts_for_teams(self.meta)  # joint policies (bn_mappo): a whole team at once, over a graph of agents
        self._randomness: EpisodeRandomness | None = None
        self._memory: dict[str, Any] = {}

    @classmethod
    def from_checkpoint(cls, checkpoint: str | Path) -> "CheckpointPolicies":
        checkpoint = resolve_checkpoint(checkpoint)
        meta = read_meta(checkpoint)
        modules = MultiRLModule.from_checkpoint(str(checkpoint / RL_MODULE_PATH))
        # Checkpoints from before the normalize_actions key: rescaled.
        return cls(modules, meta["policy_mapping"], normalize_actions=meta.get("normalize_actions", True), meta=meta)

    def set_execution_graph(self, graph: str) -> None:
        """Joint policies: "sampled" (as trained) or "empty" (decentralised execution)."""
        for policy_id in set(self.mapping.values()):
            self.modules[policy_id].execution_graph = graph

    def make_env(self, render_mode: str | None = None, seed: int | None = None) -> PettingZooMultiAgentEnv:
        env_config = dict(self.meta["env_config"])
        scenario = dict(env_config["scenario"])
        if wants_benchmark_data(scenario["name"]):
            scenario["kwargs"] = {**scenario["kwargs"], "benchmark_data": True}
        env_config.update(scenario=scenario, render_mode=render_mode, seed=seed)
        module_name, _, class_name = self.meta.get("env_class", "marl.envs.adapter:PettingZooMultiAgentEnv").partition(":")
        return getattr(importlib.import_module(module_name), class_name)(env_config)

    def start_episode(self, randomness: EpisodeRandomness) -> None:
        """A new episode: its generators, and no memory yet (e.g. ensembles draw each agent's sub-policy at its first step)."""
        self._randomness, self._memory = randomness, {}

    @torch.no_grad()
    def act(self, observations: dict[str, np.ndarray], action_spaces, *, explore: bool) -> StepActions:
        """Every agent's env action: each policy acts on its agents' observations as one batch."""
        if self._randomness is None:
            raise RuntimeError("CheckpointPolicies.act: call start_episode(randomness) first")
        chosen = StepActions({}, {}, {})
        for policy_id, agents in invert_mapping({agent: self.mapping[agent] for agent in observations}).items():
            acted = self.modules[policy_id].act_in_evaluation(
                torch.as_tensor(np.stack([observations[agent] for agent in agents])),
                explore=explore,
                randomness=self._randomness,
                memory=[self._memory.get(agent) for agent in agents],
            )
            if acted.memory is not None:
                self._memory.update(zip(agents, acted.memory))
            for row, agent in enumerate(agents):
                chosen.actions[agent] = self._env_action(acted.actions[row], action_spaces[agent])
                chosen.probabilities[agent] = None if acted.probabilities is None else acted.probabilities[row]
                chosen.details[agent] = {name: values[row] for name, values in acted.details.items()}
        return chosen

    def _env_action(self, action: np.ndarray, space) -> Any:
        """A Discrete action as an int; Box actions unsquashed from [-1, 1] when the run normalised them."""
        if not space.shape:
            return int(action)
        return unsquash_action(action, space) if self.normalize_actions else action


# -- the episode loop ------------------------------------------------------------------------------


@dataclass
class Step:
    """One env step as `run_episodes` hands it to an `EpisodeRecorder`."""

    episode: int
    step: int
    observations: dict[str, np.ndarray]
    """What the agents acted on."""
    chosen: StepActions
    """What the policies chose."""
    actions: dict[str, Any]
    """What the env gets: the policies' actions unless `before_step` replaced them."""
    rewards: dict[str, float] = field(default_factory=dict)
    infos: dict[str, Any] = field(default_factory=dict)
    done: bool = False
    """Set after the step: the episode is over."""


class EpisodeRecorder:
    """What a caller of `run_episodes` collects; every hook does nothing unless overridden."""

    def start(self, env, episode: int) -> None:
        """After the reset."""

    def before_step(self, env, step: Step) -> None:
        """After the policies acted, before the env steps; may replace `step.actions`."""

    def after_step(self, env, step: Step) -> None:
        """After the env stepped: `step.rewards`, `step.infos` and `step.done` are set."""

    def end(self, env, episode: int) -> None:
        """After the episode's last step."""


def run_episodes(policies: CheckpointPolicies, env, recorder: EpisodeRecorder, *, episodes: int, seed: int, explore: bool) -> None:
    """Episode i: reset with seed + i, then act and step until every agent is done.

    Episode i's random draws (actions when exploring, sampled graphs, ensemble sub-policies)
    come from generators seeded with seed + i (`EpisodeRandomness`), none from global ones.
    """
    for episode in range(episodes):
        observations, _ = env.reset(seed=seed + episode)
        policies.start_episode(EpisodeRandomness.from_seed(seed + episode))
        recorder.start(env, episode)
        for t in itertools.count():
            chosen = policies.act(observations, env.action_spaces, explore=explore)
            step = Step(episode, t, observations, chosen, dict(chosen.actions))
            recorder.before_step(env, step)
            observations, step.rewards, terminateds, truncateds, step.infos = env.step(step.actions)
            step.done = terminateds["__all__"] or truncateds["__all__"]
            recorder.after_step(env, step)
            if step.done:
                break
        recorder.end(env, episode)


@contextmanager
def one_torch_thread():
    """Evaluation feeds the networks a few rows per env step: intra-op threads only add
    overhead, and on a busy machine they wait for each other (measured: 3x slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def evaluate(
    checkpoint: str | Path,
    *,
    episodes: int = 10,
    explore: bool = False,
    seed: int = 1000,
    render_path: str | Path | None = None,
    dag: str | None = None,
) -> EvaluationResult:
    """Run `episodes` episodes (greedy unless `explore`); render the first to a GIF.

    `dag` ("sampled" or "empty") is the execution graph of a joint policy (bn_mappo;
    default "sampled"); other checkpoints reject it.
    """
    policies = CheckpointPolicies.from_checkpoint(checkpoint)
    if dag is not None and not policies.joint:
        raise ConfigError("--dag applies to joint-policy checkpoints (bn_mappo) only; drop it for this checkpoint")
    if policies.joint:
        if dag not in (None, "sampled", "empty"):
            raise ConfigError(f"--dag must be sampled or empty, got {dag!r}")
        dag = dag or "sampled"
        policies.set_execution_graph(dag)
    env = policies.make_env(render_mode="rgb_array" if render_path else None, seed=seed)
    teams = teams_of(list(env.possible_agents), policies.meta["config"].get("teams"))
    result = EvaluationResult(episodes, [], {agent: [] for agent in env.possible_agents}, teams=teams, execution_graph=dag)
    recorder = ReturnsRecorder(result, policies.meta["env_config"]["scenario"]["name"], render=render_path is not None)
    try:
        with one_torch_thread():
            run_episodes(policies, env, recorder, episodes=episodes, seed=seed, explore=explore)
    finally:
        env.close()
    if render_path:
        write_gif(recorder.frames, render_path)
    return result


class ReturnsRecorder(EpisodeRecorder):
    """`evaluate`'s record: each episode's returns and scenario metrics, the first episode's frames."""

    def __init__(self, result: EvaluationResult, scenario: str, *, render: bool):
        self.result, self.scenario, self.render = result, scenario, render
        self.frames: list[np.ndarray] = []

    def start(self, env, episode: int) -> None:
        self.returns = dict.fromkeys(env.possible_agents, 0.0)
        self.metrics = metrics_for(self.scenario)
        self.recording = self.render and episode == 0
        if self.recording:
            self.frames.append(env.render())

    def after_step(self, env, step: Step) -> None:
        for agent, reward in step.rewards.items():
            self.returns[agent] += reward
        if self.metrics:  # per-agent infos (a team env keeps them aside)
            self.metrics.step(env.env, getattr(env, "agent_infos", step.infos))
        if self.recording:
            self.frames.append(env.render())

    def end(self, env, episode: int) -> None:
        self.result.team_returns.append(sum(self.returns.values()))
        for agent, value in self.returns.items():
            self.result.agent_returns[agent].append(value)
        for name, value in (self.metrics.result(env.env) if self.metrics else {}).items():
            self.result.scenario_metrics.setdefault(name, []).append(value)


def is_joint_policy_checkpoint(checkpoint: str | Path) -> bool:
    """Whether the checkpoint holds joint (Bayesian-network) policies, from its metadata alone."""
    return acts_for_teams(read_meta(resolve_checkpoint(checkpoint)))


def write_gif(frames: list[np.ndarray], path: str | Path, fps: int = 10) -> None:
    """An animated GIF at `fps` env steps per second, looping.

    Pillow's GIF encoder (which imageio uses) takes `duration` in milliseconds and always
    stores consecutive identical frames once, with their delays added: an agent standing
    still for 5 steps is one frame shown for 5 x 1000/fps ms, so the playing time stays exact.
    """
    import imageio.v3 as iio

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    images = np.stack([np.asarray(frame, dtype=np.uint8) for frame in frames])
    iio.imwrite(str(path), images, extension=".gif", duration=round(1000 / fps), loop=0)
