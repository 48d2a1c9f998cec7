#!/usr/bin/env python3
"""What a good Aloha policy earns: hand-written joint policies, evaluated on scenarios/aloha.py.

Learning curves on Aloha only mean something next to what is reachable. This script
plays four hand-written policies on the scenario (its defaults unless overridden) and
prints the mean team return over many seeded episodes, summed over the agents as every
return in `marl` is (every agent receives the shared reward, so this is n times the
scenario's reward per episode; learning.py's curves and `marl evaluate` report the same):

  silence            nobody ever transmits (return 0)
  everyone           every agent transmits whenever its queue is non-empty
  best_fixed_set     the best *decentralised* stationary rule of this kind: a fixed
                     independent set of the neighbour graph transmits whenever it has
                     a packet, everyone else waits (every independent set is tried)
  correlated_greedy  agents decide in index order and each transmits when it has a
                     packet and no neighbour that decided before it transmits -- a rule
                     a Bayesian-network policy can express with the full DAG (each agent
                     sees its own queue and its parents' actions)

usage: python benchmarks/aloha_policies.py [--episodes 2000] [--seed 0] [KEY=VALUE ...]
       (KEY=VALUE go to scenarios.aloha.parallel_env, e.g. collision_penalty=1.0)
"""

from __future__ import annotations

import argparse
import itertools
from typing import Callable

import numpy as np
import yaml

from scenarios.aloha import parallel_env

# A joint rule: (backlogs, neighbour matrix) -> 0/1 action per agent.
JointRule = Callable[[np.ndarray, np.ndarray], np.ndarray]


def silence(backlogs: np.ndarray, neighbours: np.ndarray) -> np.ndarray:
    return np.zeros(len(backlogs), dtype=np.int64)


def everyone(backlogs: np.ndarray, neighbours: np.ndarray) -> np.ndarray:
    return (backlogs > 0).astype(np.int64)


def fixed_set(members: np.ndarray) -> JointRule:
    """Agents in `members` (a 0/1 mask) transmit whenever their queue is non-empty."""
    return lambda backlogs, neighbours: ((backlogs > 0) & members.astype(bool)).astype(np.int64)


def correlated_greedy(backlogs: np.ndarray, neighbours: np.ndarray) -> np.ndarray:
    actions = np.zeros(len(backlogs), dtype=np.int64)
    for i in range(len(backlogs)):
        earlier_neighbour_sends = bool(neighbours[i, :i] @ actions[:i])
        actions[i] = int(backlogs[i] > 0 and not earlier_neighbour_sends)
    return actions


def independent_sets(neighbours: np.ndarray) -> list[np.ndarray]:
    """Every non-empty independent set of the graph, as 0/1 masks (brute force: n <= ~16)."""
    n = len(neighbours)
    sets = []
    for bits in itertools.product((0, 1), repeat=n):
        mask = np.array(bits, dtype=np.int64)
        if mask.any() and mask @ neighbours @ mask == 0:
            sets.append(mask)
    return sets


def mean_return(rule: JointRule, env_kwargs: dict, episodes: int, seed: int) -> float:
    """Mean team return of `rule` over `episodes` episodes with seeds seed, seed+1, ..."""
    env = parallel_env(**env_kwargs)
    returns = []
    for episode in range(episodes):
        env.reset(seed=seed + episode)
        total = 0.0
        while env.agents:
            joint = rule(env.backlogs.copy(), env.neighbours)
            _, rewards, _, _, _ = env.step({a: int(joint[i]) for i, a in enumerate(env.agents)})
            total += sum(rewards.values())
        returns.append(total)
    return float(np.mean(returns))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("kwargs", nargs="*", help="KEY=VALUE passed to scenarios.aloha.parallel_env")
    args = parser.parse_args()
    env_kwargs = {key: yaml.safe_load(value) for key, value in (kv.split("=", 1) for kv in args.kwargs)}

    neighbours = parallel_env(**env_kwargs).neighbours
    # Rank the independent sets on a few episodes, then evaluate the winner on all of them.
    screening = max(50, args.episodes // 20)
    best = max(independent_sets(neighbours), key=lambda s: mean_return(fixed_set(s), env_kwargs, screening, args.seed))
    rules = {
        "silence": silence,
        "everyone": everyone,
        f"best_fixed_set {np.flatnonzero(best).tolist()}": fixed_set(best),
        "correlated_greedy": correlated_greedy,
    }
    print(f"aloha {env_kwargs or '(defaults)'}: mean team return (summed over agents) over {args.episodes} episodes")
    for name, rule in rules.items():
        print(f"  {name:32s} {mean_return(rule, env_kwargs, args.episodes, args.seed):9.2f}")


if __name__ == "__main__":
    main()
