"""Context-aware Bayesian-network policies (Chen & Zhang, ICML 2023): BN-MAPPO."""

from marl.algorithms.bn.config import BNMAPPOConfig

__all__ = ["BNMAPPOConfig"]
