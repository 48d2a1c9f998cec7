#!/usr/bin/env python3
"""Run a marl command or a script under the ORIGINAL particle world's integration order (issue 17).

openai/multiagent-particle-envs (the MADDPG paper's environment) integrates a step as
    v <- v (1 - damping) + F / m dt;   p <- p + v dt        (the new velocity moves the agent now)
mpe2 (1.1.1) and our vectorized twin of it (marl/envs/vectorized/mpe.py) as
    p <- p + v dt;   v <- v (1 - damping) + F / m dt        (the force moves the agent a step later)
so in mpe2 an action changes no reward of its own step, only the next ones. This script patches
both (mpe2's `World.integrate_state` and `VectorWorld.integrate`) in its own process and then runs the
command, to measure what the order does to learning. A diagnostic, not a scenario to ship: the
shipped configs train on mpe2 as it is. Sampling must happen in this process
(`resources.num_env_runners: 0`, the shipped MADDPG configs' setting); env-runner processes
would step the unpatched physics.

usage: python benchmarks/original_mpe_physics.py -m marl.cli train CONFIG [overrides] --runs-dir DIR
       python benchmarks/original_mpe_physics.py benchmarks/speaker_listener_diagnosis.py RUN_DIR
"""

from __future__ import annotations

import runpy
import sys

import numpy as np
from mpe2._mpe_utils import core

from marl.envs.vectorized import mpe as vectorized_mpe


def integrate_state(self, p_force) -> None:
    """openai/multiagent-particle-envs' World.integrate_state (no max_speed: unused by these scenarios)."""
    for i, entity in enumerate(self.entities):
        if not entity.movable:
            continue
        entity.state.p_vel = entity.state.p_vel * (1 - self.damping)
        if p_force[i] is not None:
            entity.state.p_vel += (p_force[i] / entity.mass) * self.dt
        entity.state.p_pos += entity.state.p_vel * self.dt


def vectorized_integrate(self, force: np.ndarray) -> None:
    """`VectorWorld.integrate` with the original order: velocity first, then position."""
    self.vel *= 1 - vectorized_mpe.DAMPING
    self.vel += force * vectorized_mpe.DT
    self.pos += self.vel * vectorized_mpe.DT


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    core.World.integrate_state = integrate_state
    vectorized_mpe.VectorWorld.integrate = vectorized_integrate
    if sys.argv[1] == "-m":
        module, sys.argv = sys.argv[2], sys.argv[2:]
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    else:
        sys.argv = sys.argv[1:]
        runpy.run_path(sys.argv[0], run_name="__main__")


if __name__ == "__main__":
    main()
