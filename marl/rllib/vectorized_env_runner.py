"""The fast sampling path: an RLlib env runner over a vectorized scenario backend.

RLlib's `MultiAgentEnvRunner` spends most of a training iteration on per-agent,
per-step Python: connector pipelines, one `add_env_step` per sub-env, metrics per
agent and step, a deep copy of every observation (`docs/performance.md`). For a
vectorized backend (`marl/envs/vectorized/`: a scenario's numpy twin, or copies of any
PettingZoo scenario whose agents stay until the end), this runner instead

- steps all `num_envs_per_env_runner` worlds with one numpy call;
- lays out every agent's `[own obs | one-hot id | state]` for all worlds at once
  (`marl.envs.adapter.layout_observations`, the adapter's own function);
- runs one forward pass per policy over all of its (world, agent) rows and takes the
  module's actions or samples them from its action distribution, as RLlib's
  `GetActions` connector does (so PPO's and MADDPG's modules both act here);
- records into step-major arrays and builds the episode chunks from them at the end
  (`marl.rllib.episodes`), so the learner side (GAE, value normalisation, every loss)
  runs unchanged on the same kind of data as with the stock runner;
- logs the same metrics (step counters once per call, episode returns and lengths
  through the stock `get_metrics`).

It is plugged in with `config.env_runners(env_runner_cls=...)` when a config says
`scenario.backend: vectorized` (`marl/algorithms/common.py`). Seeding matches the
adapter on the stock path: world i of runner w starts from
`distinct_seed(seed + w + i, w)`, later resets continue each world's generator. Like
the stock runner, finished worlds are reset between steps; unlike it, no step is
spent on the reset, so a call of `num_timesteps` returns exactly that many env steps.

Design notes and measurements: `docs/design-fast-path.md`.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from ray.rllib.callbacks.utils import make_callback
from ray.rllib.core.columns import Columns
from ray.rllib.env.env_context import EnvContext
from ray.rllib.env.multi_agent_episode import MultiAgentEpisode
from ray.rllib.utils.metrics import (
    NUM_AGENT_STEPS_SAMPLED,
    NUM_AGENT_STEPS_SAMPLED_LIFETIME,
    NUM_ENV_STEPS_SAMPLED,
    NUM_ENV_STEPS_SAMPLED_LIFETIME,
    NUM_EPISODES,
    NUM_EPISODES_LIFETIME,
    NUM_MODULE_STEPS_SAMPLED,
    NUM_MODULE_STEPS_SAMPLED_LIFETIME,
    WEIGHTS_SEQ_NO,
)
from ray.rllib.utils.annotations import override
from ray.rllib.utils.spaces.space_utils import clip_action, unsquash_action

from marl.core.agents import invert_mapping
from marl.envs.adapter import PettingZooMultiAgentEnv
from marl.envs.scenario import distinct_seed, layout_observations
from marl.envs.vectorized import make_vectorized
from marl.rllib.episodes import build_episode_chunk, slice_agents
from marl.rllib.faults import FaultReportingEnvRunner
from marl.rllib.metrics import episode_window, log_episode_metrics


class VectorizedEnv:
    """What RLlib's runner and connectors read from `self.env`: the spaces and the agents.

    The spaces come from one PettingZoo adapter (the same object the stock path builds),
    so modules, connectors and checkpoints are interchangeable between the two paths;
    stepping goes to the vectorized backend.
    """

    def __init__(self, env_config: dict[str, Any], num_envs: int):
        self.spec_adapter = PettingZooMultiAgentEnv(env_config)
        scenario = env_config["scenario"]
        self.backend = make_vectorized(scenario["name"], scenario["kwargs"], num_envs, scenario.get("wrappers"))
        self.num_envs = num_envs
        self.possible_agents = list(self.spec_adapter.possible_agents)
        if self.backend.possible_agents != self.possible_agents:
            raise RuntimeError(f"vectorized agents {self.backend.possible_agents} != scenario agents {self.possible_agents}")
        self.single_observation_space = gym.spaces.Dict(self.spec_adapter.observation_spaces)
        self.single_action_space = gym.spaces.Dict(self.spec_adapter.action_spaces)
        self.observation_space = self.single_observation_space
        self.action_space = self.single_action_space
        # RLlib reads per-agent spaces from `env.unwrapped.envs[0].unwrapped` (a vector env's sub-env).
        self.envs = [self.spec_adapter]

    @property
    def unwrapped(self) -> "VectorizedEnv":
        return self

    def close(self) -> None:
        self.spec_adapter.close()
        if hasattr(self.backend, "close"):  # stacked PettingZoo copies hold envs (numpy twins hold arrays)
            self.backend.close()


class VectorizedMultiAgentEnvRunner(FaultReportingEnvRunner):
    """`MultiAgentEnvRunner` whose `_sample` steps a vectorized backend (module docstring); a
    scenario fault in stacked PettingZoo copies stops the run as on the stock runner."""

    def __init__(self, config, **kwargs):
        _refuse_unsupported(config)
        super().__init__(config=config, **kwargs)

    @override(FaultReportingEnvRunner)
    def make_module(self) -> None:
        super().make_module()
        # Env-runner modules only ever act: eval mode once, instead of per forward pass (`_act`).
        self.module.foreach_module(lambda module_id, module: module.eval())

    # -- env -------------------------------------------------------------------------
    @override(FaultReportingEnvRunner)
    def make_env(self) -> None:
        if self.env is not None:
            self.env.close()
        env_config = dict(self.config.env_config)
        self.env = VectorizedEnv(env_config, self.config.num_envs_per_env_runner)
        self.num_envs = self.env.num_envs
        adapter = self.env.spec_adapter
        self._agents = self.env.possible_agents
        self._with_state = adapter.state_in_observation  # not when a critic's frames are kept apart
        self._env_state = adapter._env_state  # the critic's state is the scenario's state(), not the observations
        self._agent_ids = adapter._agent_ids
        self._module_of = {agent: self.config.policy_mapping_fn(agent, None) for agent in self._agents}
        self._members = invert_mapping(self._module_of)  # module -> its agents, in agent order
        self._bootstrap_at_time_limit = adapter.spec_.bootstrap_at_time_limit
        self._needs_initial_reset = True
        # As the stock runner's make_env: the hook the thread limits ride on (marl/rllib/threads.py).
        make_callback(
            "on_environment_created",
            callbacks_objects=self._callbacks,
            callbacks_functions=self.config.callbacks_on_environment_created,
            kwargs=dict(
                env_runner=self,
                metrics_logger=self.metrics,
                env=self.env,
                env_context=EnvContext(env_config, worker_index=self.worker_index, num_workers=self.config.num_env_runners),
            ),
        )

    def _reset_all(self) -> None:
        """Reset every world: seeded on the first call (as the stock path seeds), then not."""
        if self._needs_initial_reset and self._seed is not None:
            seeds = [distinct_seed(self._seed + i, self.worker_index or 0) for i in range(self.num_envs)]
        else:
            seeds = [None] * self.num_envs
        self._obs = self.env.backend.reset(seeds)
        self._episode_ids = [uuid.uuid4().hex for _ in range(self.num_envs)]
        self._episode_t = np.zeros(self.num_envs, dtype=np.int64)
        self._ongoing_episodes_for_metrics.clear()
        self._needs_initial_reset = False

    def _laid_out(self, observations: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Every agent's `[obs | id | state]` rows, with the state of the worlds as they are now."""
        adapter = self.env.spec_adapter
        own = adapter.own_parts(observations, lead=(self.num_envs,))  # frames pooled, in the layout's dtype
        state = None
        if self._with_state:
            if self._env_state:
                state = np.asarray(self.env.backend.state(), dtype=np.float32)
            else:
                state = np.concatenate([own[a] for a in self._agents], axis=-1).astype(np.float32, copy=False)
        return layout_observations(own, self._agent_ids, state, adapter.dtype)

    # -- acting ------------------------------------------------------------------------
    @torch.no_grad()
    def _act(self, laid_out: dict[str, np.ndarray], explore: bool) -> tuple[dict, dict, dict]:
        """Actions (as stored), actions for the env, and extra model outputs, per agent.

        One forward pass per module over all of its agents' rows (agent-major), then the
        module's action distribution as RLlib's `GetActions` connector uses it.
        """
        actions, for_env, extra = {}, {}, {}
        for module_id, members in self._members.items():
            module = self.module[module_id]
            obs = torch.from_numpy(np.concatenate([laid_out[a] for a in members])).to(self._device)
            batch = {Columns.OBS: obs}
            # The hooks behind forward_exploration/forward_inference: those only add an
            # eval()/train() round trip over all submodules per call, and these modules are
            # kept in eval mode (make_module) under no_grad (this method).
            out = module._forward_exploration(batch) if explore else module._forward_inference(batch)
            sampled = _actions_as_get_actions_would(module, out, explore)
            columns = {k: v.cpu().numpy() for k, v in out.items() if isinstance(v, torch.Tensor)}
            sampled = sampled.cpu().numpy()
            for k, agent in enumerate(members):
                rows = slice(k * self.num_envs, (k + 1) * self.num_envs)
                actions[agent] = sampled[rows]
                for_env[agent] = self._to_env(sampled[rows], agent)
                extra[agent] = {name: value[rows] for name, value in columns.items()}
        return actions, for_env, extra

    def _to_env(self, action: np.ndarray, agent: str) -> np.ndarray:
        """As RLlib's `NormalizeAndClipActions`: unsquash (or clip) Box actions for the env."""
        space = self.env.single_action_space[agent]
        if not isinstance(space, gym.spaces.Box):
            return action
        if self.config.normalize_actions:
            return unsquash_action(action, space)
        return clip_action(action, space) if self.config.clip_actions else action

    # -- sampling ------------------------------------------------------------------------
    @override(FaultReportingEnvRunner)
    def _sample(
        self,
        *,
        num_timesteps: int | None = None,
        num_episodes: int | None = None,
        explore: bool,
        random_actions: bool = False,
        force_reset: bool = False,
    ) -> list[MultiAgentEpisode]:
        if num_episodes is not None or random_actions or num_timesteps is None:
            raise NotImplementedError(
                "the vectorized env runner samples timesteps with the module's actions "
                "(batch_mode truncate_episodes); use scenario.backend: pettingzoo for episode or random sampling"
            )
        if force_reset or self._needs_initial_reset:
            self._reset_all()
        steps = -(-num_timesteps // self.num_envs)  # every call steps all worlds together
        data, done, terminated, final_obs, times = self._rollout(steps, explore)
        episodes = self._episodes(data, done, terminated, final_obs, times)
        self._log_counters(steps * self.num_envs, int(done.sum()))
        return episodes

    def _rollout(self, steps: int, explore: bool):
        """Step all worlds `steps` times; return step-major buffers per agent."""
        B = self.num_envs
        data = {agent: {"observations": [], "actions": [], "rewards": [], "extra": []} for agent in self._agents}
        done = np.zeros((steps, B), dtype=bool)  # the world's episode ended at this step
        all_terminated = np.zeros((steps, B), dtype=bool)  # ... by termination of every agent
        final_obs: dict[int, dict[str, np.ndarray]] = {}  # step -> laid-out obs of the worlds that ended there
        times = np.empty(steps + 1)
        laid_out = self._laid_out(self._obs)
        for t in range(steps):
            times[t] = time.perf_counter()
            actions, for_env, extra = self._act(laid_out, explore)
            observations, rewards, terminated, truncated = self.env.backend.step(for_env)
            for agent, columns in data.items():
                columns["observations"].append(laid_out[agent])
                columns["actions"].append(actions[agent])
                columns["rewards"].append(rewards[agent])
                columns["extra"].append(extra[agent])
            # Every agent acts until its world ends (no agent leaves early), so a world ends
            # when any agent is done; it counts as terminated only if all agents terminated.
            ended = np.logical_or.reduce([terminated[a] | truncated[a] for a in self._agents])
            done[t] = ended
            all_terminated[t] = np.logical_and.reduce([terminated[a] for a in self._agents])
            if ended.any():
                final_obs[t] = self._laid_out(observations)
                observations = self.env.backend.reset_done(ended, [None] * int(ended.sum()))
            laid_out = self._laid_out(observations)
        times[steps] = time.perf_counter()
        self._obs = observations
        self._last_laid_out = laid_out
        for agent, columns in data.items():
            columns["observations"] = np.stack(columns["observations"])
            columns["actions"] = np.stack(columns["actions"])
            columns["rewards"] = np.stack(columns["rewards"]).astype(np.float32)
            extra = columns["extra"]
            columns["extra"] = {k: np.stack([step[k] for step in extra]) for k in extra[0]}
            columns["extra"][WEIGHTS_SEQ_NO] = np.full((steps, B), self._weights_seq_no, dtype=np.int64)
        return data, done, all_terminated, final_obs, times

    def _episodes(self, data, done: np.ndarray, terminated: np.ndarray, final_obs, times: np.ndarray) -> list[MultiAgentEpisode]:
        """Cut each world's steps into episode chunks at its episode ends."""
        steps, B = done.shape
        spaces = (self.env.spec_adapter.observation_spaces, self.env.spec_adapter.action_spaces)
        returned = []
        for b in range(B):
            start = 0
            ends = list(np.flatnonzero(done[:, b]))
            for stop in ends + [steps]:
                if stop == steps and start == steps:
                    break  # the world ended on the last step: its next episode has no steps yet
                finished = stop < steps
                last = stop + 1 if finished else steps
                last_obs = {a: (final_obs[stop][a][b] if finished else self._last_laid_out[a][b]) for a in self._agents}
                chunk = build_episode_chunk(
                    episode_id=self._episode_ids[b],
                    env_t_started=int(self._episode_t[b]),
                    agents=slice_agents(data, b, start, last, last_obs),
                    module_ids=self._module_of,
                    observation_spaces=spaces[0],
                    action_spaces=spaces[1],
                    # By default as RLlib 2.60's `MultiAgentEpisode.add_env_step` ("Case 2"): an
                    # episode in which every agent is done counts as terminated, time limit or not,
                    # so its last value is not bootstrapped; the PettingZoo adapter records the same
                    # either way, so both paths learn the same (scenario.bootstrap_at_time_limit).
                    terminated=finished and (terminated[stop, b] or not self._bootstrap_at_time_limit),
                    truncated=finished and not terminated[stop, b],
                    start_time=times[start],
                    end_time=times[last],
                )
                returned.append(chunk)
                if finished:
                    self._done_episodes_for_metrics.append(chunk)
                    self._episode_ids[b] = uuid.uuid4().hex
                    self._episode_t[b] = 0
                    start = stop + 1
                else:
                    self._ongoing_episodes_for_metrics[chunk.id_].append(chunk)
                    self._episode_t[b] += last - start
        return returned

    @override(FaultReportingEnvRunner)
    def _log_episode_metrics(self, length, ret, sec, agents=None, modules=None, agent_steps=None) -> None:
        """RLlib's per-episode metrics (called by the stock `get_metrics`), logged without `log_dict`."""
        log_episode_metrics(
            self.metrics,
            window=episode_window(self.config.metrics_num_episodes_for_smoothing, self.config.num_env_runners),
            length=length, episode_return=ret, seconds=sec, agents=agents, modules=modules, agent_steps=agent_steps,
        )

    def _log_counters(self, env_steps: int, episodes: int) -> None:
        """The stock per-step counters, logged once with their totals (they are sums)."""
        self._log_env_steps(metric=self._metrics_num_env_steps_sampled, num_steps=env_steps)
        self.metrics.log_value(NUM_ENV_STEPS_SAMPLED, env_steps, reduce="sum")
        self.metrics.log_value(NUM_ENV_STEPS_SAMPLED_LIFETIME, env_steps, reduce="lifetime_sum", with_throughput=True)
        self.metrics.log_value(NUM_EPISODES, episodes, reduce="sum")
        self.metrics.log_value(NUM_EPISODES_LIFETIME, episodes, reduce="lifetime_sum")
        for agent in self._agents:
            self.metrics.log_value((NUM_AGENT_STEPS_SAMPLED, agent), env_steps, reduce="sum")
            self.metrics.log_value((NUM_AGENT_STEPS_SAMPLED_LIFETIME, agent), env_steps, reduce="lifetime_sum")
        for module_id, members in self._members.items():
            count = env_steps * len(members)
            self.metrics.log_value((NUM_MODULE_STEPS_SAMPLED, module_id), count, reduce="sum")
            self.metrics.log_value((NUM_MODULE_STEPS_SAMPLED_LIFETIME, module_id), count, reduce="lifetime_sum")


def _actions_as_get_actions_would(module, out: dict[str, Any], explore: bool) -> torch.Tensor:
    """Pop the module's actions from `out`, sampling them first as RLlib's `GetActions` connector does.

    A module that returns ACTIONS itself (MADDPG's Gumbel-softmax sample) is taken as is;
    otherwise the actions are drawn from its action distribution (the greedy one when not
    exploring) and their ACTION_LOGP is added to `out`. What stays in `out` is recorded
    as the episode's extra model outputs, as on the stock path.
    """
    if Columns.ACTIONS in out:
        return out.pop(Columns.ACTIONS)
    dist_cls = module.get_exploration_action_dist_cls() if explore else module.get_inference_action_dist_cls()
    dist = dist_cls.from_logits(out[Columns.ACTION_DIST_INPUTS])
    if not explore:
        dist = dist.to_deterministic()
    sampled = dist.sample()
    if Columns.ACTION_LOGP not in out:
        out[Columns.ACTION_LOGP] = dist.logp(sampled)
    return sampled


def _refuse_unsupported(config) -> None:
    """Setups the fast path does not reproduce fail here, not with silently different data."""
    from ray.rllib.callbacks.callbacks import RLlibCallback

    problems = []
    if config._env_to_module_connector is not None or config._module_to_env_connector is not None:
        problems.append("custom env-to-module / module-to-env connectors")
    callbacks = config.callbacks_class if isinstance(config.callbacks_class, (list, tuple)) else [config.callbacks_class]
    if any(cls is not RLlibCallback for cls in callbacks) or any(
        getattr(config, f"callbacks_{which}", None) for which in ("on_episode_start", "on_episode_step", "on_episode_end")
    ):
        problems.append("episode callbacks")
    if config.batch_mode != "truncate_episodes":
        problems.append(f"batch_mode {config.batch_mode!r}")
    if problems:
        raise ValueError(f"scenario.backend: vectorized does not support {', '.join(problems)}; use backend: pettingzoo")
