"""Actor-critic networks for the PPO family (IPPO, MAPPO), as an RLlib TorchRLModule.

The observation is the adapter's flat vector `[own obs | agent id | global state]`
(see marl.envs.adapter). The actor reads `[own obs | agent id]` only, so execution
is decentralised. The critic reads:
- IPPO: the same local input as the actor, V(o_i);
- MAPPO: `[agent id | global state]`, a centralised V(s).
Actor and critic share no layers (MAPPO's reference keeps them separate).

Image observations (rank-3 frames, `model.encoder: auto | cnn`): the actor and the critic
each put a convolutional encoder (marl/core/encoders.py) before their MLP; a centralised
critic encodes every agent's frame with one shared encoder and concatenates the features,
instead of one layer over all agents' raw pixels. Its frames are the row's own observation
and the other agents' (`peers`) from the train batch's PEER_OBS column, which the learner
connector builds; they are not in the observation, so the env runners' modules, which only
act, never see them. Frames may arrive as uint8: the encoder scales them.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import torch
from torch import nn
from ray.rllib.core.columns import Columns
from ray.rllib.core.distribution.torch.torch_distribution import TorchCategorical, TorchDiagGaussian
from ray.rllib.core.rl_module.apis.value_function_api import ValueFunctionAPI
from ray.rllib.core.rl_module.torch import TorchRLModule
from ray.rllib.utils.annotations import override

from marl.core.encoders import DEFAULT_CONV, ConvEncoder, PerAgentEncoder
from marl.core.keys import PEER_OBS
from marl.core.networks import in_return_units, mlp, value_head
from marl.rllib.acting import EpisodeRandomness, ModuleActions, act_with_distribution

class ActorCriticModule(TorchRLModule, ValueFunctionAPI):
    """model_config keys: obs_dim, id_dim, state_dim, hidden, activation,
    centralized_critic, value_normalization, initial_log_std; for images also encoder
    ("cnn"), obs_shape (H, W, C), conv [(channels, kernel, stride), ...] and obs_scale, and for
    a centralised critic whose frames are kept apart peers (how many other agents) and
    scenario_agents (their order in PEER_OBS)."""

    @override(TorchRLModule)
    def setup(self):
        cfg = self.model_config
        self.obs_dim, self.id_dim, self.state_dim = cfg["obs_dim"], cfg["id_dim"], cfg["state_dim"]
        self.centralized_critic = bool(cfg["centralized_critic"])
        self.peers = int(cfg.get("peers", 0)) if self.centralized_critic else 0
        self.scenario_agents = list(cfg.get("scenario_agents", []))
        if self.centralized_critic and self.state_dim == 0 and self.peers == 0:
            raise ValueError("a centralised critic needs the global state in the observation (state_dim > 0) or its peers' frames")
        actor_in = self.obs_dim + self.id_dim
        critic_in = actor_in
        if self.centralized_critic:
            critic_in = self.id_dim + (self.obs_dim * (1 + self.peers) if self.peers else self.state_dim)
        self.actor_encoder = self.critic_encoder = None
        if cfg.get("encoder") == "cnn":
            actor_in, critic_in = self._build_encoders(cfg)

        if isinstance(self.action_space, gym.spaces.Discrete):
            self.action_dist_cls = TorchCategorical
            actor_out = int(self.action_space.n)
            self.log_std = None
        elif isinstance(self.action_space, gym.spaces.Box):
            self.action_dist_cls = TorchDiagGaussian
            actor_out = int(math.prod(self.action_space.shape))
            # State-independent log std, as in MAPPO/PPO for continuous control.
            self.log_std = nn.Parameter(torch.full((actor_out,), float(cfg.get("initial_log_std", 0.0))))
        else:
            raise ValueError(f"unsupported action space {self.action_space}")

        self.actor = mlp(actor_in, cfg["hidden"], actor_out, cfg["activation"], out_gain=0.01)
        self.critic, self.value_normalizer = value_head(
            critic_in, cfg["hidden"], cfg["activation"], normalize=cfg.get("value_normalization", False)
        )

    def _build_encoders(self, cfg: dict[str, Any]) -> tuple[int, int]:
        """Convolutional encoders for actor and critic; returns their MLPs' input sizes."""
        def encoder() -> ConvEncoder:
            return ConvEncoder(cfg["obs_shape"], cfg.get("conv") or DEFAULT_CONV, cfg.get("obs_scale", 1.0))

        self.actor_encoder = encoder()
        if self.peers:  # its own frame, then its peers' from PEER_OBS
            self.critic_encoder = PerAgentEncoder(encoder(), 1 + self.peers)
        elif self.centralized_critic:  # the state is every agent's frame, side by side (checked in the config)
            self.critic_encoder = PerAgentEncoder(encoder(), self.state_dim // self.obs_dim)
        else:
            self.critic_encoder = encoder()
        return self.actor_encoder.out_dim + self.id_dim, self.critic_encoder.out_dim + self.id_dim

    # -- slicing the flat observation ------------------------------------------
    def actor_input(self, obs: torch.Tensor) -> torch.Tensor:
        if self.actor_encoder is not None:
            own, agent_id = obs[..., : self.obs_dim], obs[..., self.obs_dim : self.obs_dim + self.id_dim]
            return torch.cat([self.actor_encoder(own), _floats(agent_id)], dim=-1)
        return _floats(obs[..., : self.obs_dim + self.id_dim])

    def critic_input(self, obs: torch.Tensor, peer_obs: torch.Tensor | None = None) -> torch.Tensor:
        """`peer_obs`: the other agents' observations (PEER_OBS), for a critic with `peers`."""
        if not self.centralized_critic and self.critic_encoder is None:
            return _floats(obs[..., : self.obs_dim + self.id_dim])
        agent_id = _floats(obs[..., self.obs_dim : self.obs_dim + self.id_dim])
        if self.peers:
            if peer_obs is None:
                raise ValueError(f"this centralised critic reads its {self.peers} peers' frames from the batch column {PEER_OBS!r}")
            frames = torch.cat([obs[..., : self.obs_dim], peer_obs], dim=-1)
        elif self.centralized_critic:
            frames = obs[..., self.obs_dim + self.id_dim :]
        else:
            frames = obs[..., : self.obs_dim]
        features = self.critic_encoder(frames) if self.critic_encoder is not None else _floats(frames)
        return torch.cat([agent_id, features], dim=-1)

    # -- policy ------------------------------------------------------------------
    def action_dist_inputs(self, obs: torch.Tensor) -> torch.Tensor:
        out = self.actor(self.actor_input(obs))
        if self.log_std is not None:
            out = torch.cat([out, self.log_std.expand_as(out)], dim=-1)
        return out

    @override(TorchRLModule)
    def _forward(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        return {Columns.ACTION_DIST_INPUTS: self.action_dist_inputs(batch[Columns.OBS])}

    # -- values ------------------------------------------------------------------
    def normalized_values(self, batch: dict[str, Any]) -> torch.Tensor:
        """The critic's raw output: normalised units when value normalisation is on."""
        return self.critic(self.critic_input(batch[Columns.OBS], batch.get(PEER_OBS))).squeeze(-1)

    @override(ValueFunctionAPI)
    def compute_values(self, batch: dict[str, Any], embeddings: Any = None) -> torch.Tensor:
        """Values in return units (what GAE needs)."""
        return in_return_units(self.normalized_values(batch), self.value_normalizer)

    # -- acting outside RLlib (marl/rllib/acting.py) ----------------------------------
    def act_in_evaluation(self, obs: torch.Tensor, *, explore: bool, randomness: EpisodeRandomness, memory: list[Any]) -> ModuleActions:
        """A sample of the actor's distribution (exploring) or its mode; Discrete actions with their probabilities."""
        return act_with_distribution(self, {Columns.OBS: obs}, explore=explore, generator=randomness.torch)


def _floats(x: torch.Tensor) -> torch.Tensor:
    """Network input as floats: uint8 frames (and ids stored with them) arrive as bytes."""
    return x if x.is_floating_point() else x.float()
