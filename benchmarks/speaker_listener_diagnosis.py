#!/usr/bin/env python3
"""Where communication breaks on mpe2's simple_speaker_listener: the speaker, the listener's
choice of landmark, or the listener's last few centimetres (issue 17).

For each run directory (or checkpoint) given, with greedy actions:
  speaker   the word it sends for each goal landmark (Discrete: the action; Box messages: the
            channel it weights most) and how often; I(word; goal) in nats (ln 3 = names the goal);
            for an MLP actor (MADDPG's), the share of hidden ReLU units active for at least one of
            the three goal colours, per layer (dead units cannot carry the goal any more)
  listener  per goal landmark, its mean final distance to each of the three landmarks: the
            smallest entry on the goal's own column means it picked the right landmark
  reached   share of episodes ending within 0.1 (marl evaluate's `reached_target`), within
            0.115 (listener and landmark touch: sizes 0.075 + 0.04) and within 0.2
  field     the listener's force when placed r away from its goal at rest, hearing the word
            the speaker uses for that goal: cos(force, direction to the goal) and |force|
            (the mpe2 force before its sensitivity of 5; 1 = full push). A listener that
            settles on the goal points at it and pushes less as r shrinks.

The field probe builds the listener's observation as mpe2 does ([velocity, landmark - own
position x 3, message]), so it needs the listener's own policy (`policies.sharing: per_agent`).

usage: python benchmarks/speaker_listener_diagnosis.py RUN_DIR [RUN_DIR ...] [--episodes 150]
"""

from __future__ import annotations

import argparse
import collections

import numpy as np

from coordination.metrics import positive_signalling
from marl.evaluation import CheckpointPolicies, EpisodeRecorder, one_torch_thread, run_episodes
from marl.training.checkpoints import resolve_checkpoint

SPEAKER, LISTENER = "speaker_0", "listener_0"
RADII = (0.05, 0.1, 0.2, 0.3, 0.5, 0.8)
TOUCH = 0.075 + 0.04  # mpe2 simple_speaker_listener: listener size + landmark size


def word(action) -> int:
    """A Discrete message as is; a Box message's largest channel."""
    action = np.asarray(action)
    return int(action) if action.ndim == 0 else int(action.argmax())


def force(action) -> np.ndarray:
    """mpe2's movement (before sensitivity) from a listener action: Discrete 1/2/3/4 = -x/+x/-y/+y;
    a Box action [noop, -x, +x, -y, +y] gives (a2 - a1, a4 - a3)."""
    action = np.asarray(action, dtype=np.float64)
    if action.ndim == 0:
        return {0: np.zeros(2), 1: np.array([-1.0, 0]), 2: np.array([1.0, 0]), 3: np.array([0, -1.0]), 4: np.array([0, 1.0])}[int(action)]
    return np.array([action[2] - action[1], action[4] - action[3]])


class Recorder(EpisodeRecorder):
    def __init__(self):
        self.words: list[int] = []
        self.goals: list[int] = []
        self.final: dict[int, list[list[float]]] = collections.defaultdict(list)

    def before_step(self, env, step):
        goal = self.goal_index(env)
        self.words.append(word(step.actions[SPEAKER]))
        self.goals.append(goal)

    def end(self, env, episode):
        world = env.env.unwrapped.world
        listener = next(agent for agent in world.agents if agent.name == LISTENER)
        self.final[self.goal_index(env)].append([float(np.linalg.norm(listener.state.p_pos - lm.state.p_pos)) for lm in world.landmarks])

    @staticmethod
    def goal_index(env) -> int:
        world = env.env.unwrapped.world
        speaker = next(agent for agent in world.agents if agent.name == SPEAKER)
        return world.landmarks.index(speaker.goal_b)


GOAL_COLOURS = np.array([[0.65, 0.15, 0.15], [0.15, 0.65, 0.15], [0.15, 0.15, 0.65]], dtype=np.float32)  # mpe2 landmark colours


def alive_units(policies: CheckpointPolicies) -> list[float] | None:
    """Per hidden layer of the speaker's MLP actor: the share of ReLU units active for some goal colour."""
    import torch

    actor = getattr(policies.modules[policies.mapping[SPEAKER]], "actor", None)
    first = actor[0] if isinstance(actor, torch.nn.Sequential) and len(actor) else None
    if not isinstance(first, torch.nn.Linear) or first.in_features != GOAL_COLOURS.shape[1]:
        return None  # not a plain MLP on the colour alone (e.g. a shared policy with agent ids)
    shares, hidden = [], torch.as_tensor(GOAL_COLOURS)
    with torch.no_grad():
        for layer in actor:
            hidden = layer(hidden)
            if isinstance(layer, torch.nn.ReLU):
                shares.append(float((hidden > 0).any(dim=0).float().mean()))
    return shares


def force_field(policies: CheckpointPolicies, env, words_for_goal: dict[int, int], rng: np.random.Generator, samples: int = 300):
    """cos(force, to goal) and |force| per radius, for random landmark layouts."""
    space = env.action_spaces[LISTENER]
    message_space = env.action_spaces[SPEAKER]
    channels = message_space.n if not message_space.shape else message_space.shape[0]
    rows = []
    for radius in RADII:
        cosines, magnitudes = [], []
        for _ in range(samples):
            landmarks = rng.uniform(-1, 1, (3, 2))
            goal = int(rng.integers(3))
            angle = rng.uniform(0, 2 * np.pi)
            position = landmarks[goal] + radius * np.array([np.cos(angle), np.sin(angle)])
            message = np.eye(channels)[words_for_goal.get(goal, 0)]
            obs = np.concatenate([[0.0, 0.0], (landmarks - position).ravel(), message]).astype(np.float32)
            push = force(policies.act({LISTENER: obs}, {LISTENER: space}, explore=False).actions[LISTENER])
            to_goal = (landmarks[goal] - position) / radius
            cosines.append(push @ to_goal / (np.linalg.norm(push) + 1e-9))
            magnitudes.append(np.linalg.norm(push))
        rows.append((radius, float(np.mean(cosines)), float(np.mean(magnitudes))))
    return rows


def diagnose(run: str, episodes: int, seed: int) -> None:
    from marl.rllib.acting import EpisodeRandomness

    checkpoint = resolve_checkpoint(run)
    policies = CheckpointPolicies.from_checkpoint(checkpoint)
    env = policies.make_env(seed=seed)
    recorder = Recorder()
    with one_torch_thread():
        run_episodes(policies, env, recorder, episodes=episodes, seed=seed, explore=False)
    words, goals = np.array(recorder.words), np.array(recorder.goals)
    print(f"\n{checkpoint}")
    print(f"speaker: I(word; goal) = {positive_signalling(words, goals):.3f} nats (ln 3 = {np.log(3):.3f})")
    shares = alive_units(policies)
    if shares is not None:
        print("  hidden units active for some goal: " + " / ".join(f"{share:.0%}" for share in shares))
    words_for_goal = {}
    for goal in range(3):
        sent = words[goals == goal]
        values, counts = np.unique(sent, return_counts=True)
        words_for_goal[goal] = int(values[counts.argmax()])
        print(f"  goal {goal}: word {words_for_goal[goal]} in {counts.max() / len(sent):.0%} of its steps")
    finals = []
    print("listener: mean final distance to landmarks 0 / 1 / 2, per goal")
    for goal in sorted(recorder.final):
        distances = np.array(recorder.final[goal])
        finals.extend(distances[:, goal])
        print(f"  goal {goal} ({len(distances)} episodes): {' / '.join(f'{d:.2f}' for d in distances.mean(0))}")
    finals = np.array(finals)
    print(
        f"reached: within 0.1 {np.mean(finals < 0.1):.0%}, within {TOUCH:.3f} (touching) {np.mean(finals < TOUCH):.0%}, "
        f"within 0.2 {np.mean(finals < 0.2):.0%}; final distance mean {finals.mean():.3f}, median {np.median(finals):.3f}"
    )
    if policies.mapping.get(LISTENER) != LISTENER:
        print("field: skipped (the listener shares a policy; the probe needs its own)")
        return
    policies.start_episode(EpisodeRandomness.from_seed(seed))
    print("field: r, cos(force, to goal), |force|")
    for radius, cosine, magnitude in force_field(policies, env, words_for_goal, np.random.default_rng(seed)):
        print(f"  r={radius:<4}  cos {cosine:+.2f}  |force| {magnitude:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="run directories or checkpoints")
    parser.add_argument("--episodes", type=int, default=150)
    parser.add_argument("--seed", type=int, default=10_000)
    args = parser.parse_args()
    for run in args.runs:
        diagnose(run, args.episodes, args.seed)


if __name__ == "__main__":
    main()
