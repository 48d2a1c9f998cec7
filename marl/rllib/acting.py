"""Acting outside RLlib (`marl evaluate`, coordination rollouts): one method every RLModule of ours has.

    module.act_in_evaluation(obs, *, explore, randomness, memory) -> ModuleActions

- `obs`: (B, obs_dim) tensor, one row per agent (or team) the module acts for, laid out as
  the env runners laid it out (the adapter's flat observation);
- `explore`: sample actions (True) or take the most likely ones (False);
- `randomness`: the episode's generators (`EpisodeRandomness`): `torch` for every draw of a
  forward pass (exploration noise, sampled graphs), `numpy` for draws made once per episode;
- `memory`: per row, what the module returned for that agent at its previous step of the
  episode (None at its first step): per-episode choices such as an ensemble's sub-policy.

The caller groups agents by policy, keeps `memory` per agent for the episode, and turns
rows back into env actions (Discrete: an int; Box: unsquashed when the run normalised
actions, as RLlib's env runner does). Nothing here knows any algorithm.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator, Protocol

import gymnasium as gym
import numpy as np
import torch
from ray.rllib.core.columns import Columns


@dataclass
class EpisodeRandomness:
    """The generators of one evaluation episode, both seeded from the episode's seed."""

    numpy: np.random.Generator
    torch: torch.Generator

    @classmethod
    def from_seed(cls, seed: int) -> "EpisodeRandomness":
        return cls(np.random.default_rng(seed), torch.Generator().manual_seed(seed))


@dataclass
class ModuleActions:
    """What a module's `act_in_evaluation` returns, one row per input row."""

    actions: np.ndarray
    """(B, ...) in the module's action units (Box: before unsquashing)."""
    probabilities: np.ndarray | None = None
    """(B, A): each row's action probabilities for Discrete actions; None otherwise (Box
    actions; a team's joint action, whose agents' probabilities are in `details`)."""
    details: dict[str, np.ndarray] = field(default_factory=dict)
    """(B, ...) per row: what else a rollout dataset may record (a team policy's graph)."""
    memory: list[Any] | None = None
    """Per row: handed back at that agent's next step of the episode; None: nothing to keep."""


class ActsInEvaluation(Protocol):
    def act_in_evaluation(
        self, obs: torch.Tensor, *, explore: bool, randomness: EpisodeRandomness, memory: list[Any]
    ) -> ModuleActions: ...


@contextmanager
def drawing_from(generator: torch.Generator) -> Iterator[None]:
    """Torch's global generator draws from `generator` inside the block (RLlib's
    distributions and our modules sample from the global one); outside, it is untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.set_rng_state(generator.get_state())
        try:
            yield
        finally:
            generator.set_state(torch.get_rng_state())


@torch.no_grad()
def act_with_distribution(module, batch: dict[str, Any], *, explore: bool, generator: torch.Generator) -> ModuleActions:
    """A per-agent module's actions from its inference distribution: a sample when exploring,
    else the distribution's deterministic action; Discrete actions come with their probabilities."""
    logits = module.forward_inference(batch)[Columns.ACTION_DIST_INPUTS]
    distribution = module.get_inference_action_dist_cls().from_logits(logits)
    with drawing_from(generator):
        actions = (distribution if explore else distribution.to_deterministic()).sample()
    discrete = isinstance(module.action_space, gym.spaces.Discrete)
    return ModuleActions(actions.numpy(), torch.softmax(logits, dim=-1).numpy() if discrete else None)
