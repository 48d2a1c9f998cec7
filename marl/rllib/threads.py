"""Thread pools of each process sized to the CPUs Ray granted it.

torch's intra-op pool and numpy's BLAS (OpenBLAS) each start one thread per core of the
machine unless told otherwise. Ray 2.60 sets OMP_NUM_THREADS = floor(num_cpus) (at least 1)
in its worker processes, which both honour at start-up, but never in the driver: on a 16-core
machine the driver's learner ran torch with 16 threads while 14 env runners used the same
cores. Here every process sets its pools explicitly from `resources.threads`
(marl/config.py; `auto` = the CPUs Ray reserved for it, marl/rllib/resources.py):

- the driver (and a local learner in it): `limit_threads` from `marl.training.runner.train`;
- remote env runners: an `on_environment_created` callback (`env_runner_threads_callback`),
  RLlib's hook that runs in each env runner when it builds its env;
- remote learners: `limit_learner_threads`, called from our learners' `build()`.

numpy/BLAS pools are set with threadpoolctl where it is installed (a dependency; a machine
without it keeps BLAS at what OMP_NUM_THREADS said when numpy loaded).
"""

from __future__ import annotations

import os

LEARNER_THREADS_KEY = "marl_threads_per_learner"  # in `config.learner_config_dict`
_blas_limits = []  # threadpoolctl limiters, kept referenced for the process's lifetime


def limit_threads(threads: int) -> dict[str, int]:
    """torch intra-op, OpenMP and BLAS pools of this process to `threads`; what each now uses.

    Also sets OMP_NUM_THREADS / OPENBLAS_NUM_THREADS / MKL_NUM_THREADS for processes this
    one starts later.
    """
    import torch

    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = str(threads)
    torch.set_num_threads(threads)
    pools = {"torch": torch.get_num_threads()}
    try:
        from threadpoolctl import threadpool_info, threadpool_limits
    except ImportError:
        return pools
    _blas_limits.append(threadpool_limits(limits=threads))
    pools.update({info["internal_api"]: info["num_threads"] for info in threadpool_info()})
    return pools


def env_runner_threads_callback(*, env_runner, threads: int, **kwargs) -> None:
    """RLlib `on_environment_created` callback: size a remote env runner's pools.

    The local env runner lives in the driver (worker_index 0), whose pools the driver's own
    setting governs; it is left alone.
    """
    if env_runner.worker_index:
        limit_threads(threads)


def limit_learner_threads(config) -> None:
    """In a remote learner (num_learners >= 1): its pools to the configured threads.

    A local learner runs in the driver and keeps the driver's setting.
    """
    threads = config.learner_config_dict.get(LEARNER_THREADS_KEY)
    if threads and config.num_learners > 0:
        limit_threads(threads)
