"""Typed hyperparameters of DPO (Su & Lu, "Decentralized Policy Optimization").

Everything the PPO family's actor-critic uses (networks, GAE, value loss, entropy
bonus, RLlib builder) except PPO's ratio clip, plus DPO's two adaptive penalty
coefficients. Defaults follow the paper's reference settings (Su & Lu 2022, section 5 and
its released code): separate actor and critic per agent, lr 5e-4, 15 epochs, KL target
0.01, both coefficients starting at 1 and clamped to [1e-3, 1e3].
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator

from marl.algorithms.ppo.config import ActorCriticConfig

if TYPE_CHECKING:
    from ray.rllib.core.learner.learner import Learner


class DPOConfig(ActorCriticConfig):
    """DPO: per agent, -E[r A] + beta_sqrt E[sqrt KL] + beta_kl E[KL] - c_ent H, no ratio clip."""

    @classmethod
    def learner_class(cls) -> type[Learner]:
        from marl.algorithms.dpo.learner import DPOTorchLearner

        return DPOTorchLearner

    lr: float = Field(5e-4, gt=0)
    """Adam learning rate of actor and critic."""
    num_epochs: int = Field(15, ge=1)
    """Passes over each train batch."""
    kl_target: float = Field(0.01, gt=0)
    """Target d_t of the mean KL(pi_old || pi) per iteration; the sqrt-KL coefficient targets sqrt(d_t)."""
    initial_beta_kl: float = Field(1.0, gt=0)
    """Starting weight of the KL penalty (adapted every iteration)."""
    initial_beta_sqrt_kl: float = Field(1.0, gt=0)
    """Starting weight of the sqrt-KL penalty (adapted every iteration)."""
    coefficient_bounds: tuple[float, float] = (1e-3, 1e3)
    """[low, high] that both coefficients are clamped to after each adaptation."""
    shared_coefficients: bool = False
    """false: one coefficient pair per policy, adapted from that policy's KL (decentralised);
    true: one pair for all policies, adapted from the mean KL over the policies."""
    critic: Literal["local", "centralized"] = "local"
    """`local`: each agent's critic sees its own observation, V(o_i), as in DPO.
    `centralized`: the critic sees the global state, V(s). A DEVIATION from fully
    decentralised DPO (training then needs the global state), for ablations only."""

    @field_validator("coefficient_bounds")
    @classmethod
    def _ordered_bounds(cls, bounds: tuple[float, float]) -> tuple[float, float]:
        low, high = bounds
        if not 0 < low <= high:
            raise ValueError("needs 0 < low <= high")
        return bounds

    def uses_centralized_critic(self) -> bool:
        return self.critic == "centralized"
