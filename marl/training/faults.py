"""A scenario fault ends `marl train` with one line and a report file in the run directory.

The fault itself is raised where the scenario runs (`marl/envs/guard.py`) and carried to
the driver (`marl/rllib/faults.py`); here the driver writes what one line cannot hold
(the scenario's traceback, the whole offending value) to `<run_dir>/scenario_error.txt`
and raises the fault again, now naming that file. The CLI prints it as `error: ...` and
exits with 2; no checkpoint is written after a fault, so the last one stays as it was.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path

from marl.errors import ScenarioFault, find_scenario_fault

REPORT_NAME = "scenario_error.txt"
# RLlib logs a failed env-runner call (with the remote traceback) on these loggers before
# going on without the runner; for a scenario fault the one line we print says it all.
NOISY_LOGGERS = ("ray.rllib", "ray.rllib.utils.actor_manager")


def write_fault_report(fault: ScenarioFault, run_dir: str | Path) -> ScenarioFault:
    """Write the fault's details into the run directory; the fault again, naming the file."""
    path = Path(run_dir) / REPORT_NAME
    path.write_text(f"{fault}\n\n{fault.details}\n")
    return fault.with_report(str(path))


class _DropScenarioFaults(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        return "ScenarioFault" not in text and not (record.exc_info and find_scenario_fault(record.exc_info[1]))


@contextmanager
def faults_reported(run_dir: str | Path):
    """Turn a ScenarioFault anywhere in an exception's chain into the reported one-line fault."""
    quiet = _DropScenarioFaults()
    loggers = [logging.getLogger(name) for name in NOISY_LOGGERS]
    for logger in loggers:
        logger.addFilter(quiet)
    try:
        yield
    except Exception as error:
        fault = find_scenario_fault(error)
        if fault is None:
            raise
        raise write_fault_report(fault, run_dir) from None
    finally:
        for logger in loggers:
            logger.removeFilter(quiet)
