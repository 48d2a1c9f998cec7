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
"""

from __future__ import annotations

import importlib
import json
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.multi_rl_module import MultiRLModule
from ray.rllib.utils.spaces.space_utils import unsquash_action

from marl.algorithms.maddpg.replay import SUBPOLICY
from marl.envs.adapter import PettingZooMultiAgentEnv
from marl.envs.metrics import metrics_for, wants_benchmark_data
from marl.errors import ConfigError

from marl.core.agents import teams_of
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


class CheckpointPolicies:
    """The checkpoint's modules, acting for every agent through its policy mapping."""

    def __init__(self, checkpoint: str | Path):
        self.checkpoint = resolve_checkpoint(checkpoint)
        self.meta = read_meta(self.checkpoint)
        modules = MultiRLModule.from_checkpoint(str(self.checkpoint / RL_MODULE_PATH))
        # As the env runners did: PPO's Gaussian acts in [-1, 1] and is rescaled; MADDPG's
        # module returns env-unit actions. (Checkpoints from before this key: rescaled.)
        self._set_modules(modules, self.meta["policy_mapping"], normalize_actions=self.meta.get("normalize_actions", True))

    @classmethod
    def from_modules(cls, modules, mapping: dict[str, str], *, normalize_actions: bool = True) -> "CheckpointPolicies":
        """Policies from modules in memory (tests, notebooks), without a checkpoint or an env."""
        policies = cls.__new__(cls)
        policies.checkpoint, policies.meta = None, {}
        policies._set_modules(modules, mapping, normalize_actions=normalize_actions)
        return policies

    def _set_modules(self, modules, mapping: dict[str, str], *, normalize_actions: bool) -> None:
        self.modules = modules
        self.mapping: dict[str, str] = dict(mapping)
        self.normalize_actions = normalize_actions
        # Policy ensembles (MADDPG's ensemble_size K > 1): each agent acts with one sub-policy per
        # episode, drawn in `start_episode`, as in training.
        self._subpolicy: dict[str, int] = {}
        # Joint policies act for the whole team in one forward pass, over a graph of agents;
        # `last_joint_output[team agent]` keeps the last pass's per-agent view (rollout datasets).
        self.last_joint_output: dict[str, dict[str, np.ndarray]] = {}
        self.joint = any(hasattr(self.modules[policy_id], "execution_graph") for policy_id in set(self.mapping.values()))

    def start_episode(self, agents: list[str], rng: np.random.Generator) -> None:
        """Draw each agent's sub-policy for the coming episode (modules without an ensemble: nothing)."""
        self._subpolicy = {}
        for agent in agents:
            size = getattr(self.modules[self.mapping[agent]], "ensemble_size", 1)
            if size > 1:
                self._subpolicy[agent] = int(rng.integers(size))

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

    def act(self, observations: dict[str, np.ndarray], action_spaces, *, explore: bool) -> dict[str, Any]:
        """One action per agent: policies act on their agents' observations as a batch."""
        return self.act_with_probabilities(observations, action_spaces, explore=explore)[0]

    @torch.no_grad()
    def act_with_probabilities(
        self, observations: dict[str, np.ndarray], action_spaces, *, explore: bool
    ) -> tuple[dict[str, Any], dict[str, np.ndarray | None]]:
        """Each agent's action and, for Discrete actions, its policy's action probabilities
        (None for Box actions and for joint policies, whose agents' probabilities depend on
        each other's actions)."""
        by_policy: dict[str, list[str]] = {}
        for agent in observations:
            by_policy.setdefault(self.mapping[agent], []).append(agent)
        actions, probabilities = {}, {}
        for policy_id, agents in by_policy.items():
            module = self.modules[policy_id]
            obs = torch.as_tensor(np.stack([observations[a] for a in agents]))
            if self.joint:  # the module picks every agent's action itself, in its graph's order
                forward = module.forward_exploration if explore else module.forward_inference
                output = forward({Columns.OBS: obs})
                for row, (agent, action) in enumerate(zip(agents, output[Columns.ACTIONS].numpy())):
                    actions[agent], probabilities[agent] = action, None
                    self.last_joint_output[agent] = joint_output_per_agent(output, row)
                continue
            batch = {Columns.OBS: obs}
            if self._subpolicy:
                batch[SUBPOLICY] = torch.as_tensor([self._subpolicy.get(a, 0) for a in agents])
            logits = module.forward_inference(batch)[Columns.ACTION_DIST_INPUTS]
            dist = module.get_inference_action_dist_cls().from_logits(logits)
            chosen = (dist if explore else dist.to_deterministic()).sample().numpy()
            for row, (agent, action) in enumerate(zip(agents, chosen)):
                space = action_spaces[agent]
                if not space.shape:
                    actions[agent] = int(action)
                    probabilities[agent] = torch.softmax(logits[row], dim=-1).numpy()
                else:
                    actions[agent] = unsquash_action(action, space) if self.normalize_actions else action
                    probabilities[agent] = None
        return actions, probabilities


def joint_output_per_agent(output: dict[str, Any], row: int) -> dict[str, np.ndarray]:
    """A joint policy's forward output for one team (batch row): every agent's action
    probabilities given its parents' actual actions, (n, A), and the graph it acted on,
    (n, n) with [j, i] = 1 when j is a parent of i."""
    from marl.algorithms.bn.module import ADJACENCY

    logits = output[Columns.ACTION_DIST_INPUTS][row]
    n = output[Columns.ACTIONS].shape[-1]
    return {
        "probabilities": torch.softmax(logits.reshape(n, -1), dim=-1).numpy(),
        "adjacency": output[ADJACENCY][row].reshape(n, n).numpy(),
    }


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
    policies = CheckpointPolicies(checkpoint)
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
    frames: list[np.ndarray] = []
    try:
        with one_torch_thread():
            for episode in range(episodes):
                observations, infos = env.reset(seed=seed + episode)
                policies.start_episode(list(env.possible_agents), np.random.default_rng(seed + episode))
                metrics = metrics_for(policies.meta["env_config"]["scenario"]["name"])
                returns = dict.fromkeys(env.possible_agents, 0.0)
                recording = render_path is not None and episode == 0
                if recording:
                    frames.append(env.render())
                while True:
                    actions = policies.act(observations, env.action_spaces, explore=explore)
                    observations, rewards, terminateds, truncateds, infos = env.step(actions)
                    for agent, reward in rewards.items():
                        returns[agent] += reward
                    if metrics:  # per-agent infos (a team env keeps them aside)
                        metrics.step(env.env, getattr(env, "agent_infos", infos))
                    if recording:
                        frames.append(env.render())
                    if terminateds["__all__"] or truncateds["__all__"]:
                        break
                result.team_returns.append(sum(returns.values()))
                for agent, value in returns.items():
                    result.agent_returns[agent].append(value)
                for name, value in (metrics.result(env.env) if metrics else {}).items():
                    result.scenario_metrics.setdefault(name, []).append(value)
    finally:
        env.close()
    if render_path:
        write_gif(frames, render_path)
    return result


def is_joint_policy_checkpoint(checkpoint: str | Path) -> bool:
    """Whether the checkpoint holds joint (Bayesian-network) policies, from its metadata alone."""
    return read_meta(resolve_checkpoint(checkpoint)).get("env_class", "").endswith(":TeamMultiAgentEnv")


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
