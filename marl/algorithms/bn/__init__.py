"""Context-aware Bayesian-network policies (Chen & Zhang, ICML 2023): BN-MAPPO."""
