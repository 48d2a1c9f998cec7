"""MADDPG (Lowe et al. 2017): decentralised actors, one centralised critic per agent.

`losses` holds the maths as pure torch and `replay` the joint replay buffer (every
agent's transition at the same env step in one row); both are tested without Ray.
On RLlib: `config` (typed hyperparameters), `module` (actor, critic, targets),
`learner` (the losses on joint batches) and `algorithm` (the off-policy training step);
`ensemble` holds the policy ensembles' sub-policy draw (an env-to-module connector).
"""

from marl.algorithms.maddpg.config import MADDPGConfig

__all__ = ["MADDPGConfig"]
