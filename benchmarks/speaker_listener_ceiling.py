#!/usr/bin/env python3
"""What a speaker-listener team can score: a scripted pair with the goal known to both (issue 17).

The speaker sends the goal's one-hot word; the listener, a PD controller on the goal's relative
position, pushes force = clip(kp * (goal - position) - kd * velocity, -1, 1) per axis as mpe2's
soft Box action. Prints the greedy-evaluation figures our trained runs are compared with: team
return (summed over both agents), final distance and the share of episodes ending within 0.1
and within 0.115 (touching), on mpe2's simple_speaker_listener_v4 itself (25 steps).

usage: python benchmarks/speaker_listener_ceiling.py [--episodes 200] [--kp 4] [--kd 0.8]
"""

from __future__ import annotations

import argparse

import numpy as np

SPEAKER, LISTENER = "speaker_0", "listener_0"
TOUCH = 0.075 + 0.04


def listener_action(obs: np.ndarray, goal: int, kp: float, kd: float) -> np.ndarray:
    """mpe2's Box action [noop, -x, +x, -y, +y] for a PD force toward landmark `goal`."""
    velocity, to_goal = obs[:2], obs[2:8].reshape(3, 2)[goal]
    push = np.clip(kp * to_goal - kd * velocity, -1.0, 1.0)
    action = np.zeros(5, np.float32)
    action[1], action[2] = max(-push[0], 0.0), max(push[0], 0.0)
    action[3], action[4] = max(-push[1], 0.0), max(push[1], 0.0)
    return action


def run(episodes: int, kp: float, kd: float, seed: int = 1000) -> dict[str, float]:
    from mpe2 import simple_speaker_listener_v4

    env = simple_speaker_listener_v4.parallel_env(max_cycles=25, continuous_actions=True)
    returns, finals = [], []
    for episode in range(episodes):
        observations, _ = env.reset(seed=seed + episode)
        world = env.unwrapped.world
        speaker = next(agent for agent in world.agents if agent.name == SPEAKER)
        listener = next(agent for agent in world.agents if agent.name == LISTENER)
        goal = world.landmarks.index(speaker.goal_b)
        word = np.eye(3, dtype=np.float32)[goal]
        total = 0.0
        while env.agents:
            actions = {SPEAKER: word, LISTENER: listener_action(observations[LISTENER], goal, kp, kd)}
            observations, rewards, *_ = env.step(actions)
            total += sum(rewards.values())
        returns.append(total)
        finals.append(float(np.linalg.norm(listener.state.p_pos - speaker.goal_b.state.p_pos)))
    env.close()
    finals = np.array(finals)
    return {"team_return": float(np.mean(returns)), "final_distance": float(finals.mean()),
            "within_0.1": float(np.mean(finals < 0.1)), "touching": float(np.mean(finals < TOUCH))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--kp", type=float, default=4.0)
    parser.add_argument("--kd", type=float, default=0.8)
    args = parser.parse_args()
    result = run(args.episodes, args.kp, args.kd)
    print(f"scripted speaker + PD listener (kp {args.kp}, kd {args.kd}), {args.episodes} episodes: team return "
          f"{result['team_return']:.2f}, final distance {result['final_distance']:.3f}, within 0.1 {result['within_0.1']:.0%}, "
          f"touching {result['touching']:.0%}")


if __name__ == "__main__":
    main()
