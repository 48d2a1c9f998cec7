"""Sampling overlapped with learning: the remote env runners sample the next batch while the
learner updates on the one already collected (the PPO family's `training_step`,
marl/algorithms/ppo/algorithm.py).

How the weights stay at most one update old: every sample request carries the weights to
sample with (an object ref of the learner's inference-only module state, taken right after
an update). A request launched before update k therefore samples with the weights of update
k-1, and its batch is learned from at update k+1: one update old. An on-policy learner stays
correct as long as its importance ratio divides by the probability the behaviour policy had
(PPO's ACTION_LOGP, stored at sampling time), which it does already.

Why the weights ride on the request instead of RLlib's `EnvRunnerGroup.sync_weights`: that
sends `set_state` as a separate remote call and skips a runner that still has one in flight
(`max_requests_in_flight_per_env_runner`), so behind a long sample a sync could be dropped
and the lag grow to two updates. A request that carries its weights cannot lose them.

Fault tolerance is RLlib's: each request goes through the runner's `apply` (our
`FaultReportingEnvRunner` records a scenario fault there), a failed request marks the runner
unhealthy, the collection tops up from the healthy ones, and RLlib's loop restores restarted
runners between training steps (with the local env runner's weights, which the algorithm
keeps current).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import ray
from ray.rllib.core import COMPONENT_LEARNER, COMPONENT_RL_MODULE
from ray.rllib.utils.metrics import WEIGHTS_SEQ_NO

logger = logging.getLogger(__name__)

SAMPLE_TAG = "marl_overlapped_sample"
"""The actor manager's tag of our sample requests (its in-flight limit counts per tag)."""


def sample_with_weights(runner, weights: dict | None = None) -> tuple[list, dict, int]:
    """On a remote env runner: take the given weights (none: keep its own), sample one
    rollout, and return the episodes, the runner's metrics and the weights version it sampled with."""
    if weights is not None:
        runner.set_state(weights)
    episodes = runner.sample()
    return episodes, runner.get_metrics(), runner._weights_seq_no


def learner_weights(learner_group, policies: set[str] | None = None) -> dict:
    """The learner's inference-only module weights and their version (WEIGHTS_SEQ_NO), as
    `EnvRunnerGroup.sync_weights` takes them from a LearnerGroup."""
    modules = [COMPONENT_RL_MODULE + "/" + p for p in policies] if policies else [COMPONENT_RL_MODULE]
    state = learner_group.get_state(components=[COMPONENT_LEARNER + "/" + m for m in modules], inference_only=True)
    state = state[COMPONENT_LEARNER]
    return {key: value for key, value in state.items() if key in (COMPONENT_RL_MODULE, WEIGHTS_SEQ_NO)}


@dataclass
class Collected:
    """One train batch gathered from the env runners."""

    episodes: list = field(default_factory=list)
    metrics: list[dict] = field(default_factory=list)
    weights_versions: list[int] = field(default_factory=list)
    """WEIGHTS_SEQ_NO each rollout was sampled with."""
    env_steps: int = 0


class OverlappedSampler:
    """Launches sample requests on the remote env runners and gathers their results."""

    def __init__(self, env_runner_group, *, train_batch_env_steps: int, rollout_env_steps: int, timeout_s: float | None):
        self.group = env_runner_group
        self.target = train_batch_env_steps
        self.rollout = max(1, rollout_env_steps)
        """Env steps of one runner's rollout (rollout_fragment_length x num_envs_per_env_runner)."""
        self.timeout_s = timeout_s
        self.busy: set[int] = set()
        """Runners with a request of ours pending."""

    def launch(self, weights_ref: Any | None, limit: int | None = None) -> None:
        """Ask idle healthy runners (at most `limit`) for one more rollout each."""
        idle = [i for i in self.group.healthy_env_runner_ids() if i not in self.busy][:limit]
        if idle:  # an empty id list would mean every runner to RLlib's actor manager
            self.group.foreach_env_runner_async(
                sample_with_weights, tag=SAMPLE_TAG, kwargs={"weights": weights_ref}, remote_worker_ids=idle
            )
            self.busy.update(idle)

    def collect(self, weights_ref: Any | None) -> Collected:
        """The rollouts in flight, topped up (with `weights_ref`, from only as many idle runners as
        the batch still lacks: a runner restored meanwhile must not overfill it) until a train
        batch is full, as `synchronous_parallel_sample` does. Stops early when no runner is
        healthy or the runners stall past the timeout (the batch is then short or empty)."""
        collected = Collected()
        while collected.env_steps < self.target:
            self._forget_finished(returned=set())
            missing = self.target - collected.env_steps - len(self.busy) * self.rollout
            if missing > 0:
                self.launch(weights_ref, limit=-(-missing // self.rollout))
            if not self.group.num_in_flight_async_reqs(tag=SAMPLE_TAG):
                logger.warning("no healthy env runner to sample from; RLlib restores restarted runners before the next step")
                break
            # Waits for every pending request (or the timeout); a runner that died answers with
            # an error here, is marked unhealthy by RLlib and drops out of the results.
            ready = self.group.fetch_ready_async_reqs(tags=SAMPLE_TAG, timeout_seconds=self.timeout_s)
            self._forget_finished(returned={runner for runner, _ in ready})
            if not ready and self.busy:
                logger.warning("env runners returned no sample within sample_timeout_s; training on what arrived")
                break
            for _runner_id, (episodes, metrics, version) in ready:
                collected.episodes.extend(episodes)
                collected.metrics.append(metrics)
                collected.weights_versions.append(version)
                collected.env_steps += sum(episode.env_steps() for episode in episodes)
        return collected

    def _forget_finished(self, returned: set[int]) -> None:
        """Runners no longer busy: those that answered or failed, and all of them once nothing of
        ours is in flight (a request to a runner Ray was restarting can vanish unanswered: seen in
        tests/test_cluster.py's killed runner, which then stayed "busy" and the batch came up short)."""
        if not self.group.num_in_flight_async_reqs(tag=SAMPLE_TAG):
            self.busy.clear()
            return
        healthy = set(self.group.healthy_env_runner_ids())
        self.busy = {i for i in self.busy if i in healthy and i not in returned}


def put(weights: dict | None):
    """Weights into the object store once, shared by every runner's request."""
    return None if weights is None else ray.put(weights)
