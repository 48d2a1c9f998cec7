"""Scenario faults reach the driver: an env runner that keeps them, and the callbacks that raise them.

Why this is needed: RLlib's `FaultAwareApply.apply` (every remote call on an env runner)
ends the runner's process on any exception so that Ray restarts it
(`restart_failed_env_runners`), and the driver only logs the error. That is right for a
process killed or a node lost, but a scenario bug repeats in the restarted runner, for
ever, and the driver never learns what it was.

So `FaultReportingEnvRunner` (RLlib's MultiAgentEnvRunner, the pettingzoo backend's
runner) treats a `ScenarioFault` (raised by the guard around the scenario,
`marl/envs/guard.py`) differently: it records the fault, raises it to the caller and stays
alive. The driver's sampling marks it unhealthy and goes on without it; then one of two
driver-side callbacks, whichever comes first, asks the unhealthy or just-restored runners
for a recorded fault and raises it out of `algo.train()`:

- `on_train_result`, at the end of the iteration in which the fault happened;
- `on_env_runners_recreated`, when RLlib's health probe brings the runner back (before the
  next training step of the same iteration).

Every other exception keeps RLlib's handling (log, end the process, Ray restarts it),
except a failure right after such a restart, before the runner sampled anything: a runner
that fails again as soon as it is back is not transient, so it is recorded as a fault too.
Real process deaths (killed, out of memory, lost node) still restart as before.

With `num_env_runners: 0` the driver samples itself and the fault simply propagates out of
`algo.train()`. `marl.training.runner` finds it in either case (`find_scenario_fault`).
"""

from __future__ import annotations

import logging
import traceback
from typing import Any, Callable

import ray
from ray.rllib.env.multi_agent_env_runner import MultiAgentEnvRunner
from ray.rllib.utils.actor_manager import FaultAwareApply
from ray.rllib.utils.annotations import override

from marl.errors import ScenarioFault, find_scenario_fault

FAULT_QUERY_TIMEOUT_S = 5.0  # a runner being restarted by Ray answers late: it holds no fault anyway
CRASH_LOOP_HINT = "a failure that repeats as soon as Ray restarts the env runner is not transient: fix it"


def _raiser(error: Exception) -> Callable[[Any], Any]:
    def raise_error(_runner):
        raise error

    return raise_error


class FaultReportingEnvRunner(MultiAgentEnvRunner):
    """RLlib's multi-agent env runner, keeping a scenario fault instead of dying of it (module docstring)."""

    def __init__(self, config, **kwargs):
        super().__init__(config=config, **kwargs)
        self.recorded_fault: ScenarioFault | None = None
        self._samples_done = 0

    @override(MultiAgentEnvRunner)
    def sample(self, **kwargs):
        episodes = super().sample(**kwargs)
        self._samples_done += 1
        return episodes

    @override(FaultAwareApply)
    def apply(self, func, *args, **kwargs):
        try:
            return func(self, *args, **kwargs)
        except Exception as error:
            fault = find_scenario_fault(error) or self._crash_loop_fault(error)
            if fault is None:
                return super().apply(_raiser(error))  # RLlib's own handling: log, exit, Ray restarts us
            self.recorded_fault = fault
            raise fault from None

    def _crash_loop_fault(self, error: Exception) -> ScenarioFault | None:
        """The error as a fault when this runner was just restarted by Ray and has not sampled since."""
        if self._samples_done or not self.worker_index or not ray.get_runtime_context().was_current_actor_reconstructed:
            return None
        lines = str(error).strip().splitlines()
        problem = f"env runner {self.worker_index} failed again right after Ray restarted it: {type(error).__name__}" + (
            f": {lines[0]}" if lines else ""
        )
        scenario = self.config.env_config.get("scenario", {}).get("name", "?")
        return ScenarioFault(scenario, "sample", problem, CRASH_LOOP_HINT, "".join(traceback.format_exception(error)))


def _drop_all(record) -> bool:
    return False


def recorded_fault(runner) -> ScenarioFault | None:
    return getattr(runner, "recorded_fault", None)


def raise_recorded_fault(env_runner_group, indices: list[int]) -> None:
    """Raise the first fault that one of these remote env runners recorded."""
    if not indices:
        return
    # A runner Ray is still restarting answers with an error that RLlib logs and we ignore:
    # it cannot hold a fault, and RLlib already logged its failure once.
    manager_logger = logging.getLogger("ray.rllib.utils.actor_manager")
    manager_logger.addFilter(_drop_all)
    try:
        faults = env_runner_group.foreach_env_runner(
            recorded_fault,
            remote_worker_ids=list(indices),
            local_env_runner=False,
            healthy_only=False,
            timeout_seconds=FAULT_QUERY_TIMEOUT_S,
        )
    finally:
        manager_logger.removeFilter(_drop_all)
    for fault in faults:
        if fault is not None:
            raise fault


def stop_on_fault_after_restore(*, env_runner_group, env_runner_indices, **kwargs) -> None:
    """`on_env_runners_recreated` callback: a runner brought back may be one that recorded a fault."""
    raise_recorded_fault(env_runner_group, env_runner_indices)


def stop_on_fault_after_iteration(*, algorithm, **kwargs) -> None:
    """`on_train_result` callback: ask the runners that dropped out during the iteration.

    Costs nothing while every runner is healthy. Remote runner ids are 1..N (RLlib's
    EnvRunnerGroup numbers them so, and a restarted runner keeps its id).
    """
    group = algorithm.env_runner_group
    if group is None:
        return
    healthy = set(group.healthy_env_runner_ids())
    raise_recorded_fault(group, [i for i in range(1, group.num_remote_env_runners() + 1) if i not in healthy])
