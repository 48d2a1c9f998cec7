"""DPO (Su & Lu, "Decentralized Policy Optimization") on the PPO family's actor-critic."""

from marl.algorithms.dpo.config import DPOConfig

__all__ = ["DPOConfig"]
