"""MADDPG's networks as an RLlib TorchRLModule: actor mu_i(o_i), critic Q_i, and their targets.

One module per policy. It controls `agents` (one agent under `policies.sharing: per_agent`,
several under `shared` / `groups`) and knows the joint agent order `all_agents`, because
its critic reads every agent's observation and action:

    centralized:  Q_i(o_1..o_N, a_1..a_N [, one-hot of i among the module's agents])
    local:        Q_i(o_i, a_i)                   (independent DDPG, the paper's baseline)

The one-hot is appended only when the module controls more than one agent, so that a
shared centralized critic knows whose return it predicts (the joint input is the same
for every agent). Observations are the adapter's flat `[own obs | agent id]` vectors
(no global-state part: the joint input is built from the agents' own observations).

Actions are Gumbel-softmax samples of the actor's logits (see marl/core/gumbel.py):
- Discrete(n): straight-through (hard) one-hot; the env gets its argmax (an int);
- Box (mpe2's `continuous_actions=True`, a 5-dim force in [0, 1]): the soft sample
  (the reference's variant, `hard: false`) or the hard one-hot, sent as is.
The critic sees the same vectors: one-hot for Discrete, the flat sample for Box.

Policy ensembles (`ensemble_size` K > 1, see ensemble.py): `actor` and `target_actor` are
`ActorEnsemble`s of K networks; each row's sub-policy comes in the batch's `subpolicy`
column (drawn per episode by the env runner's `DrawSubPolicy` connector) and is returned
with the action, so the episode records it. Without the column, sub-policy 0 acts;
`act_in_evaluation` draws one per agent and episode itself, as the connector does in training.

Twin critics (`twin_critics`): `twin_critic` and `target_twin_critic`, a second Q_i with the same
input, for the clipped double-Q target (see the learner).

Value rescaling (`value_rescaling`, marl/core/value_rescaling.py): the critics output h(Q);
`q_value` maps them back to returns.

Inferred policies (`infer_policies`): `approx_policies[j]` (and its target copy) approximates
agent j's policy for every agent j this module does not control; the critic target then
uses their target copies instead of the other agents' own target actors (see the learner).

Exploration noise comes from the module's own torch.Generator (`exploration_generator`), seeded
from the process's torch seed (which RLlib sets per env runner from the experiment seed and
the runner's index) and the module's agents, so a run is reproducible whatever else draws
from torch's global generator in that process, and two agents never share a noise stream.

`forward_exploration` returns ACTIONS (a sample), so RLlib's GetActions connector does not
sample again; `forward_inference` returns the greedy action (argmax; softmax(logits) for
soft Box actions). Both also return the logits as ACTION_DIST_INPUTS with a matching
distribution class, from which `act_in_evaluation` (`marl evaluate`, the coordination
library) samples or takes the greedy action.
"""

from __future__ import annotations

import math
import zlib
from typing import Any

import gymnasium as gym
import torch
import torch.nn.functional as F
from torch import nn
from ray.rllib.core.columns import Columns
from ray.rllib.core.distribution.distribution import Distribution
from ray.rllib.core.distribution.torch.torch_distribution import TorchCategorical, TorchDeterministic
from ray.rllib.core.rl_module.apis import InferenceOnlyAPI
from ray.rllib.core.rl_module.torch import TorchRLModule
from ray.rllib.utils.annotations import override

from marl.algorithms.maddpg.ensemble import ActorEnsemble
from marl.core.gumbel import gumbel_softmax
from marl.core.keys import SUBPOLICY
from marl.core.networks import mlp
from marl.core.value_rescaling import ValueRescaling, unscale
from marl.rllib.acting import EpisodeRandomness, ModuleActions, act_with_distribution

# Sub-networks the env runners do not need (left out of inference-only modules and weight syncs).
TRAINING_ONLY = [
    "critic",
    "target_actor",
    "target_critic",
    "twin_critic",
    "target_twin_critic",
    "approx_policies",
    "target_approx_policies",
]


class GumbelSoftmaxDistribution(Distribution):
    """Gumbel-softmax over the last dimension of the logits, at temperature 1, for Box actions.

    `sample()` is a (soft or, in the subclass, hard one-hot) Gumbel-softmax sample; the
    deterministic version is softmax(logits) (soft) or one_hot(argmax) (hard). Only what
    action selection needs: no log-probabilities (MADDPG's losses use none).
    """

    hard = False

    def __init__(self, logits: torch.Tensor):
        self.logits = logits

    @classmethod
    @override(Distribution)
    def from_logits(cls, logits: torch.Tensor, **kwargs) -> "GumbelSoftmaxDistribution":
        return cls(logits)

    @override(Distribution)
    def rsample(self, *, sample_shape=None, **kwargs) -> torch.Tensor:
        return gumbel_softmax(self.logits, hard=self.hard, generator=None)

    @override(Distribution)
    def sample(self, *, sample_shape=None, **kwargs) -> torch.Tensor:
        with torch.no_grad():
            return self.rsample()

    @override(Distribution)
    def to_deterministic(self) -> TorchDeterministic:
        return TorchDeterministic(loc=greedy_vector(self.logits, hard=self.hard))

    @override(Distribution)
    def logp(self, value, **kwargs):
        raise NotImplementedError("MADDPG's Gumbel-softmax actions have no log-probability")

    @override(Distribution)
    def kl(self, other, **kwargs):
        raise NotImplementedError("MADDPG's Gumbel-softmax actions have no KL")

    @override(Distribution)
    def entropy(self, **kwargs):
        raise NotImplementedError("MADDPG's Gumbel-softmax actions have no entropy")

    @staticmethod
    @override(Distribution)
    def required_input_dim(space: gym.Space, **kwargs) -> int:
        return int(math.prod(space.shape))


class HardGumbelSoftmaxDistribution(GumbelSoftmaxDistribution):
    """The straight-through variant: one-hot samples."""

    hard = True


def greedy_vector(logits: torch.Tensor, *, hard: bool) -> torch.Tensor:
    """The noise-free action vector: one_hot(argmax logits) when hard, softmax(logits) when soft."""
    if hard:
        return F.one_hot(logits.argmax(dim=-1), logits.shape[-1]).to(logits.dtype)
    return torch.softmax(logits, dim=-1)


class MADDPGModule(TorchRLModule, InferenceOnlyAPI):
    """model_config keys: agents (this module's agents), all_agents (the joint order),
    obs_dims and action_dims (per agent, every agent), hidden, activation,
    critic ("centralized" | "local"), hard, temperature, ensemble_size (default 1),
    infer_policies (default false), value_rescaling (default "none"), critic_hidden (default: hidden)."""

    @override(TorchRLModule)
    def setup(self):
        cfg = self.model_config
        self.agents: list[str] = list(cfg["agents"])
        self.all_agents: list[str] = list(cfg["all_agents"])
        self.obs_dims: dict[str, int] = dict(cfg["obs_dims"])
        self.action_dims: dict[str, int] = dict(cfg["action_dims"])
        self.centralized = cfg["critic"] == "centralized"
        self.temperature = float(cfg.get("temperature", 1.0))
        self.discrete = isinstance(self.action_space, gym.spaces.Discrete)
        if not self.discrete and not isinstance(self.action_space, gym.spaces.Box):
            raise ValueError(f"MADDPG supports Discrete and Box actions, got {self.action_space}")
        # An integer action can only be a hard sample.
        self.hard = bool(cfg["hard"]) or self.discrete
        self.ensemble_size = int(cfg.get("ensemble_size", 1))
        self.actor_output_gain = float(cfg.get("actor_output_gain", 0.01))
        self.value_rescaling: ValueRescaling = cfg.get("value_rescaling", "none")
        self._exploration_generator: torch.Generator | None = None  # created at the first exploring forward
        hidden, activation = list(cfg["hidden"]), cfg["activation"]
        critic_hidden = list(cfg.get("critic_hidden") or hidden)

        self.actor = self._make_actor(hidden, activation)
        if self.inference_only:
            return
        self.critic = mlp(self.critic_input_dim(), critic_hidden, 1, activation, out_gain=1.0)
        self.target_actor = self._make_actor(hidden, activation)
        self.target_critic = mlp(self.critic_input_dim(), critic_hidden, 1, activation, out_gain=1.0)
        pairs = [(self.actor, self.target_actor), (self.critic, self.target_critic)]
        if cfg.get("twin_critics", False):  # clipped double Q: a second critic, its own target
            self.twin_critic = mlp(self.critic_input_dim(), critic_hidden, 1, activation, out_gain=1.0)
            self.target_twin_critic = mlp(self.critic_input_dim(), critic_hidden, 1, activation, out_gain=1.0)
            pairs.append((self.twin_critic, self.target_twin_critic))
        others = [agent for agent in self.all_agents if agent not in self.agents]
        if cfg.get("infer_policies", False) and others:  # one policy for all agents has no others to infer

            def approximations() -> nn.ModuleDict:
                return nn.ModuleDict({agent: mlp(self.obs_dims[agent], hidden, self.action_dims[agent], activation, out_gain=0.01) for agent in others})

            self.approx_policies = approximations()
            self.target_approx_policies = approximations()
            pairs.append((self.approx_policies, self.target_approx_policies))
        for online, target in pairs:
            target.load_state_dict(online.state_dict())
            target.requires_grad_(False)

    def _make_actor(self, hidden: list[int], activation: str) -> nn.Module:
        """mu_i(o_i) -> logits: one MLP, or an ActorEnsemble of `ensemble_size` of them."""
        first = self.agents[0]

        def one() -> nn.Module:
            return mlp(self.obs_dims[first], hidden, self.action_dims[first], activation, out_gain=self.actor_output_gain)

        return one() if self.ensemble_size == 1 else ActorEnsemble([one() for _ in range(self.ensemble_size)])

    def actor_logits(self, observations: torch.Tensor, subpolicy: torch.Tensor | None = None, *, target: bool = False) -> torch.Tensor:
        """Logits of the (target) actor; with an ensemble, row b's sub-policy is `subpolicy[b]`."""
        actor = self.target_actor if target else self.actor
        if self.ensemble_size == 1:
            return actor(observations)
        return actor(observations, subpolicy)

    @property
    def has_twin_critic(self) -> bool:
        """Whether this module trains a second critic (`twin_critics`, clipped double Q)."""
        return hasattr(self, "twin_critic")

    def q_value(self, critic_input: torch.Tensor) -> torch.Tensor:
        """Q_i in return units, (B,): the critic's output mapped back through h^-1 (value_rescaling)."""
        return unscale(self.critic(critic_input).squeeze(-1), self.value_rescaling)

    def infers(self, agent: str) -> bool:
        """Whether this module approximates `agent`'s policy (infer_policies, an agent it does not control)."""
        return hasattr(self, "approx_policies") and agent in self.approx_policies

    # -- critic input ---------------------------------------------------------------
    def critic_input_dim(self) -> int:
        if not self.centralized:
            first = self.agents[0]
            return self.obs_dims[first] + self.action_dims[first]
        member_id = len(self.agents) if len(self.agents) > 1 else 0
        return sum(self.obs_dims.values()) + sum(self.action_dims.values()) + member_id

    def critic_input(self, agent: str, observations: dict[str, torch.Tensor], actions: dict[str, torch.Tensor]) -> torch.Tensor:
        """Agent `agent`'s critic input from every agent's (B, obs_dim) observations and (B, action_dim) action vectors."""
        if not self.centralized:
            return torch.cat([observations[agent], actions[agent]], dim=-1)
        parts = [observations[a] for a in self.all_agents] + [actions[a] for a in self.all_agents]
        if len(self.agents) > 1:
            batch = observations[agent].shape[0]
            member = torch.zeros(batch, len(self.agents), dtype=observations[agent].dtype, device=observations[agent].device)
            member[:, self.agents.index(agent)] = 1.0
            parts.append(member)
        return torch.cat(parts, dim=-1)

    # -- actions ---------------------------------------------------------------------
    def action_vector(self, logits: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """A differentiable Gumbel-softmax action vector (what the critic sees) from logits.

        `generator` None draws the noise from torch's global generator (the learner's, which
        RLlib seeds from the experiment seed in the learner's process)."""
        return gumbel_softmax(logits, temperature=self.temperature, hard=self.hard, generator=generator)

    def target_vector(self, logits: torch.Tensor, *, greedy: bool) -> torch.Tensor:
        """The action vector a' of a target actor's logits: noise-free when `greedy`, else a sample."""
        return greedy_vector(logits, hard=self.hard) if greedy else self.action_vector(logits)

    def exploration_generator(self, device: torch.device) -> torch.Generator:
        """This module's noise stream for acting: seeded on first use from the process's torch seed
        (RLlib: experiment seed + env runner index) and a stable hash of the module's agents."""
        if self._exploration_generator is None or self._exploration_generator.device != torch.device(device):
            generator = torch.Generator(device=device)
            generator.manual_seed((torch.initial_seed() + zlib.crc32(",".join(self.agents).encode())) % 2**63)
            self._exploration_generator = generator
        return self._exploration_generator

    def env_action(self, vector: torch.Tensor) -> torch.Tensor:
        """The env's action for an action vector: the index for Discrete, the vector in the Box's shape."""
        if self.discrete:
            return vector.argmax(dim=-1) + int(self.action_space.start)
        return vector.reshape(*vector.shape[:-1], *self.action_space.shape)

    @override(TorchRLModule)
    def _forward_exploration(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        logits = self.actor_logits(batch[Columns.OBS], batch.get(SUBPOLICY))
        return self._with_subpolicy(batch, {Columns.ACTION_DIST_INPUTS: logits, Columns.ACTIONS: self.env_action(self.action_vector(logits, self.exploration_generator(logits.device)))})

    @override(TorchRLModule)
    def _forward_inference(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        logits = self.actor_logits(batch[Columns.OBS], batch.get(SUBPOLICY))
        return self._with_subpolicy(batch, {Columns.ACTION_DIST_INPUTS: logits, Columns.ACTIONS: self.env_action(greedy_vector(logits, hard=self.hard))})

    @staticmethod
    def _with_subpolicy(batch: dict[str, Any], out: dict[str, Any]) -> dict[str, Any]:
        """Pass the sub-policy index through, so RLlib stores it with the action (an extra model output)."""
        if SUBPOLICY in batch:
            out[SUBPOLICY] = batch[SUBPOLICY]
        return out

    @override(TorchRLModule)
    def _forward_train(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        # The learner needs every module at once (target actions of all agents), so the
        # MADDPG learner runs the networks itself; nothing to compute per module here.
        return {}

    # -- distributions (for act_in_evaluation; the env runners get ACTIONS directly) --
    def _action_dist_cls(self) -> type:
        if self.discrete:
            return TorchCategorical
        return HardGumbelSoftmaxDistribution if self.hard else GumbelSoftmaxDistribution

    @override(TorchRLModule)
    def get_inference_action_dist_cls(self) -> type:
        return self._action_dist_cls()

    @override(TorchRLModule)
    def get_exploration_action_dist_cls(self) -> type:
        return self._action_dist_cls()

    @override(TorchRLModule)
    def get_train_action_dist_cls(self) -> type:
        return self._action_dist_cls()

    @override(InferenceOnlyAPI)
    def get_non_inference_attributes(self) -> list[str]:
        return list(TRAINING_ONLY)

    # -- acting outside RLlib (marl/rllib/acting.py) -----------------------------------
    def act_in_evaluation(self, obs: torch.Tensor, *, explore: bool, randomness: EpisodeRandomness, memory: list[Any]) -> ModuleActions:
        """A Gumbel-softmax sample (exploring; Discrete: a sample of the categorical) or the greedy
        action, in env units. With an ensemble, each agent acts with one sub-policy per episode,
        drawn at its first step (memory None) from `randomness.numpy`, as DrawSubPolicy does in training."""
        batch = {Columns.OBS: obs}
        if self.ensemble_size > 1:
            memory = [int(randomness.numpy.integers(self.ensemble_size)) if drawn is None else drawn for drawn in memory]
            batch[SUBPOLICY] = torch.as_tensor(memory)
        acted = act_with_distribution(self, batch, explore=explore, generator=randomness.torch)
        acted.memory = memory if self.ensemble_size > 1 else None
        return acted
