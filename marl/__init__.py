"""marl: cooperative multi-agent reinforcement learning on Ray RLlib's new API stack.

Built in floors, each importing only those below it (README, "Layout"; tests/test_layers.py):
core -> envs -> config -> rllib -> algorithms -> experiment -> training, evaluation -> cli.
"""

__version__ = "0.1.0"
