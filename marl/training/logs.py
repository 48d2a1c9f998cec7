"""Ray's and RLlib's own log lines go to the run directory, not the console.

Every run used to open with four lines the user can do nothing about (token
authentication, RLlib's "new API stack" notice, a deprecation inside RLlib, GPU
monitoring), and a diverging run printed thousands of repeated RLlib warnings. The
console shows our progress lines and Ray's errors; everything Ray logs at INFO and
above is kept in `<run_dir>/ray.log` for when something goes wrong.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path

LOG_FILE = "ray.log"
# Ray's and RLlib's top loggers: each has its own console handler and does not propagate
# (RLlib's, Tune's and Ray's other loggers propagate to one of them).
RAY_LOGGERS = ("ray", "ray.rllib")


@contextmanager
def ray_logs_to_file(run_dir: Path | None, console_level: int = logging.ERROR):
    """While active: Ray's and RLlib's log records go to `run_dir/ray.log` (nowhere with
    `run_dir=None`: evaluation, which owns no run directory); the console gets `console_level` and up.

    Ray and RLlib install their own console handlers when imported, so we import them first,
    turn those handlers' levels up and add ours beside them.
    """
    import ray.rllib  # noqa: F401  (configures the loggers; ours must come after)

    file_handler = logging.FileHandler(Path(run_dir) / LOG_FILE) if run_dir is not None else logging.NullHandler()
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    loggers = [logging.getLogger(name) for name in RAY_LOGGERS]
    handler_levels = [(handler, handler.level) for logger in loggers for handler in logger.handlers]
    logger_levels = [(logger, logger.level) for logger in loggers]
    for handler, level in handler_levels:
        handler.setLevel(max(level, console_level))
    for logger in loggers:
        logger.addHandler(file_handler)
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        for logger, level in logger_levels:
            logger.removeHandler(file_handler)
            logger.setLevel(level)
        for handler, level in handler_levels:
            handler.setLevel(level)
        file_handler.close()
