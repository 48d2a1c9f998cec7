"""marl: cooperative multi-agent reinforcement learning on Ray RLlib's new API stack."""

__version__ = "0.1.0"
