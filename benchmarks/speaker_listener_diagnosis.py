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
  field     the listener's force when placed r away from its goal at rest, hearing the message
            the speaker sends for that goal (its last greedy message: the soft vector itself for
            Box messages, whose one-hot would be a message the listener never heard): cos(force, direction to the goal) and |force|
            (the mpe2 force before its sensitivity of 5; 1 = full push). A listener that
            settles on the goal points at it and pushes less as r shrinks.
  critic    (MADDPG checkpoints) the listener's critic on the same greedy episodes: its Q
            against the discounted return that followed (bootstrapped at the time limit as if
            the last reward went on), per phase of the episode, so Q - return > 0 is
            overestimation; and, per distance to the goal, cos(dQ/dforce, direction to the
            goal) with dQ/dforce the critic's action gradient mapped to mpe2's force: the
            direction the actor is pushed. Near 0 = the critic does not know where the goal is.
  peak      (MADDPG checkpoints) at each episode's final state, the listener's critic over listener
            positions on a grid around the goal (at rest, zero force, the rest of the state as it
            was): how far from the goal its maximum lies, whether it lies on the side where the
            listener stopped (cos with the final offset), and Q(final position) - Q(at the goal),
            which the true values make negative (reward -d^2 every step: at 0.2 from the goal
            about -0.04 / (1 - gamma) = -0.8 at gamma 0.95).

The field probe builds the listener's observation as mpe2 does ([velocity, landmark - own
position x 3, message]), so it needs the listener's own policy (`policies.sharing: per_agent`).

usage: python benchmarks/speaker_listener_diagnosis.py RUN_DIR [RUN_DIR ...] [--episodes 150] [--gamma 0.95]
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
        self.message_for_goal: dict[int, np.ndarray] = {}
        self.steps: list[dict] = []  # every step: what the critic probe needs
        self.rewards: list[list[float]] = []  # per episode, the listener's rewards

    def start(self, env, episode):
        self.rewards.append([])

    def before_step(self, env, step):
        goal = self.goal_index(env)
        self.words.append(word(step.actions[SPEAKER]))
        self.goals.append(goal)
        world = env.env.unwrapped.world
        listener = next(agent for agent in world.agents if agent.name == LISTENER)
        to_goal = world.landmarks[goal].state.p_pos - listener.state.p_pos
        self.message_for_goal[goal] = np.asarray(step.actions[SPEAKER], dtype=np.float32)
        self.steps.append({"t": step.step, "obs": dict(step.observations), "actions": dict(step.actions), "to_goal": to_goal.copy()})

    def after_step(self, env, step):
        self.rewards[-1].append(float(step.rewards[LISTENER]))

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


def resting_listener_observation(landmarks: np.ndarray, position: np.ndarray, message: np.ndarray) -> np.ndarray:
    """The listener's observation as mpe2 builds it, at rest: [velocity 0, landmark - position x 3, message]."""
    return np.concatenate([[0.0, 0.0], (landmarks - position).ravel(), message]).astype(np.float32)


def force_field(policies: CheckpointPolicies, env, message_for_goal: dict[int, np.ndarray], rng: np.random.Generator, samples: int = 300):
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
            heard = message_for_goal.get(goal, np.zeros(()))
            message = np.eye(channels)[int(heard)] if heard.ndim == 0 else heard.ravel()
            obs = resting_listener_observation(landmarks, position, message)
            push = force(policies.act({LISTENER: obs}, {LISTENER: space}, explore=False).actions[LISTENER])
            to_goal = (landmarks[goal] - position) / radius
            cosines.append(push @ to_goal / (np.linalg.norm(push) + 1e-9))
            magnitudes.append(np.linalg.norm(push))
        rows.append((radius, float(np.mean(cosines)), float(np.mean(magnitudes))))
    return rows


def returns_that_followed(rewards: list[list[float]], gamma: float) -> np.ndarray:
    """Per step of each episode, sum_k gamma^k r_{t+k}, continued past the time limit as if the
    last reward repeated forever (r_T / (1 - gamma)): the critic bootstraps there too."""
    out = []
    for episode in rewards:
        following, per_step = episode[-1] / (1 - gamma), []
        for reward in reversed(episode):
            following = reward + gamma * following
            per_step.append(following)
        out.extend(reversed(per_step))
    return np.array(out)


DISTANCE_BINS = ((0.0, 0.1), (0.1, 0.2), (0.2, 0.4), (0.4, np.inf))
PHASES = ((0, 5), (5, 15), (15, 25))


def critic_probe(checkpoint, recorder: Recorder, gamma: float):
    """Print the listener critic's bias against the returns that followed and its action gradient's
    direction; returns the listener's learner module (None when the checkpoint has no MADDPG critic)."""
    import torch
    from ray.rllib.core.rl_module.rl_module import RLModule

    path = checkpoint / "learner_group" / "learner" / "rl_module" / LISTENER
    if not path.exists():
        print("critic: skipped (no learner module for the listener in this checkpoint)")
        return None
    module = RLModule.from_checkpoint(path)
    if not hasattr(module, "critic_input"):
        print("critic: skipped (not a MADDPG checkpoint)")
        return None
    q_values, cosines = [], []
    for row in recorder.steps:
        observations = {agent: torch.as_tensor(np.asarray(obs, np.float32))[None] for agent, obs in row["obs"].items()}
        actions = {agent: torch.as_tensor(np.asarray(a, np.float32).reshape(-1))[None] for agent, a in row["actions"].items()}
        actions[LISTENER].requires_grad_(True)
        q = module.q_value(module.critic_input(LISTENER, observations, actions)).squeeze()  # in return units
        (gradient,) = torch.autograd.grad(q, actions[LISTENER])
        push = force(gradient[0].numpy())  # the same linear map from action to force, applied to dQ/da
        distance = float(np.linalg.norm(row["to_goal"]))
        q_values.append(q.item())
        cosines.append((distance, push @ row["to_goal"] / (np.linalg.norm(push) * distance + 1e-9)))
    q_values, followed = np.array(q_values), returns_that_followed(recorder.rewards, gamma)
    steps = np.array([row["t"] for row in recorder.steps])
    print(f"critic: Q vs the discounted return that followed (gamma {gamma})")
    for first, last in PHASES:
        rows = (steps >= first) & (steps < last)
        print(f"  steps {first:>2}-{last - 1:<2}  Q {q_values[rows].mean():+.2f}  return {followed[rows].mean():+.2f}  Q - return {np.mean(q_values[rows] - followed[rows]):+.2f}")
    print("critic: cos(dQ/dforce, to goal) per distance to the goal")
    distances, cosine = np.array(cosines).T
    for low, high in DISTANCE_BINS:
        rows = (distances >= low) & (distances < high)
        if rows.any():
            print(f"  d in [{low}, {high})  steps {rows.sum():>4}  cos {cosine[rows].mean():+.2f}")
    return module


PEAK_GRID = np.linspace(-0.4, 0.4, 17)  # listener offsets from the goal, per axis
PEAK_STATES = 60


def listener_at(obs: np.ndarray, to_goal: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """The listener's observation moved to `offset` from its goal, at rest; message unchanged."""
    landmarks_from_goal = np.asarray(obs[2:8], np.float64).reshape(3, 2) - to_goal
    return resting_listener_observation(landmarks_from_goal, offset, obs[8:])


def critic_peak(module, recorder: Recorder) -> dict[str, float]:
    """Where the listener critic's value over listener positions peaks, at the final states."""
    import torch

    final_step = max(row["t"] for row in recorder.steps)
    finals = [row for row in recorder.steps if row["t"] == final_step][:PEAK_STATES]
    grid = np.array([[dx, dy] for dx in PEAK_GRID for dy in PEAK_GRID])
    at_goal = int(np.argmin(np.linalg.norm(grid, axis=1)))
    zero_force = np.full(np.size(finals[0]["actions"][LISTENER]), 1.0 / np.size(finals[0]["actions"][LISTENER]), np.float32)
    distances, alignments, final_gaps, peak_gaps = [], [], [], []
    for row in finals:
        final_offset = -row["to_goal"]
        positions = np.vstack([grid, final_offset[None]])
        listener_obs = np.stack([listener_at(np.asarray(row["obs"][LISTENER]), row["to_goal"], p) for p in positions])
        count = len(positions)
        observations = {
            agent: torch.as_tensor(listener_obs if agent == LISTENER else np.repeat(np.asarray(obs, np.float32)[None], count, 0))
            for agent, obs in row["obs"].items()
        }
        actions = {
            agent: torch.as_tensor(np.repeat((zero_force if agent == LISTENER else np.asarray(a, np.float32).reshape(-1))[None], count, 0))
            for agent, a in row["actions"].items()
        }
        with torch.no_grad():
            q = module.q_value(module.critic_input(LISTENER, observations, actions)).numpy()
        peak = grid[int(np.argmax(q[:-1]))]
        distances.append(np.linalg.norm(peak))
        norm = np.linalg.norm(peak) * np.linalg.norm(final_offset)
        alignments.append(peak @ final_offset / norm if norm > 0 else 0.0)
        final_gaps.append(q[-1] - q[at_goal])
        peak_gaps.append(q[:-1].max() - q[at_goal])
    return {
        "peak_distance": float(np.mean(distances)), "peak_alignment": float(np.mean(alignments)),
        "final_minus_goal": float(np.mean(final_gaps)), "peak_minus_goal": float(np.mean(peak_gaps)),
    }


def diagnose(run: str, episodes: int, seed: int, gamma: float) -> None:
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
    module = critic_probe(checkpoint, recorder, gamma)
    if module is not None:
        peak = critic_peak(module, recorder)
        print(
            f"peak: the critic's value over positions at rest peaks {peak['peak_distance']:.2f} from the goal "
            f"(cos with where the listener stopped {peak['peak_alignment']:+.2f}); Q(final) - Q(goal) {peak['final_minus_goal']:+.3f}, "
            f"Q(peak) - Q(goal) {peak['peak_minus_goal']:+.3f} (final states of {min(PEAK_STATES, episodes)} episodes)"
        )
    if policies.mapping.get(LISTENER) != LISTENER:
        print("field: skipped (the listener shares a policy; the probe needs its own)")
        return
    policies.start_episode(EpisodeRandomness.from_seed(seed))
    print("field: r, cos(force, to goal), |force|")
    for radius, cosine, magnitude in force_field(policies, env, recorder.message_for_goal, np.random.default_rng(seed)):
        print(f"  r={radius:<4}  cos {cosine:+.2f}  |force| {magnitude:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="run directories or checkpoints")
    parser.add_argument("--episodes", type=int, default=150)
    parser.add_argument("--seed", type=int, default=10_000)
    parser.add_argument("--gamma", type=float, default=0.95, help="discount of the returns the critic is compared with (the run's)")
    args = parser.parse_args()
    for run in args.runs:
        diagnose(run, args.episodes, args.seed, args.gamma)


if __name__ == "__main__":
    main()
