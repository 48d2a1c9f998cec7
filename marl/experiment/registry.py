"""Algorithm registry: a name -> its settings class (`marl.config.AlgorithmSettings`).

The settings class is the algorithm's `training` section and builds its RLlib config. Its
capability flags (`has_centralized_critic()`, `supports_continuous_actions()`,
`supports_discrete_actions()`, `supports_image_encoder()`, `supports_backend()`) let tests
parametrize over every valid (algorithm, scenario) pair.
"""

from __future__ import annotations

from dataclasses import dataclass

from marl.algorithms.bn import BNMAPPOConfig
from marl.algorithms.dpo import DPOConfig
from marl.algorithms.maddpg import MADDPGConfig
from marl.algorithms.ppo import IPPOConfig, MAPPOConfig
from marl.config import AlgorithmSettings


@dataclass(frozen=True)
class AlgorithmEntry:
    name: str
    config_class: type[AlgorithmSettings]
    summary: str


ALGORITHMS: dict[str, AlgorithmEntry] = {
    entry.name: entry
    for entry in [
        AlgorithmEntry("ippo", IPPOConfig, "PPO per agent with local critics V(o_i)"),
        AlgorithmEntry("mappo", MAPPOConfig, "PPO with a centralised critic V(s)"),
        AlgorithmEntry("dpo", DPOConfig, "decentralised PPO-like surrogate with adaptive sqrt-KL and KL penalties (Su & Lu)"),
        AlgorithmEntry(
            "bn_mappo", BNMAPPOConfig, "MAPPO with a joint policy over a learned, annealed DAG of agents (Chen & Zhang)"
        ),
        AlgorithmEntry("maddpg", MADDPGConfig, "off-policy: Gumbel-softmax actors, critics Q_i(all obs, all actions), joint replay; policy ensembles, inferred policies"),
    ]
}
