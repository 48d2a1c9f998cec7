"""The PPO family on RLlib: IPPO (local critics) and MAPPO (centralised critic)."""

from marl.algorithms.ppo.config import IPPOConfig, MAPPOConfig, PPOFamilyConfig

__all__ = ["IPPOConfig", "MAPPOConfig", "PPOFamilyConfig"]
