"""Reject a scenario that breaks the PettingZoo parallel API, before Ray starts."""

from __future__ import annotations

import contextlib
import io

from pettingzoo.test import parallel_api_test

from marl.envs.adapter import ScenarioSpec
from marl.errors import ScenarioError


def check_parallel_api(spec: ScenarioSpec, num_cycles: int = 50) -> None:
    """Run PettingZoo's own parallel API test on the wrapped scenario.

    Raises ScenarioError with one line naming the broken rule; the test's chatter
    on stdout is swallowed.
    """
    env = spec.make()
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            parallel_api_test(env, num_cycles=num_cycles)
    except Exception as error:  # the API test raises AssertionError, scenarios raise anything
        detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ScenarioError(
            f"scenario {spec.name!r} breaks the PettingZoo parallel API: {detail} "
            "(fix the scenario; `pettingzoo.test.parallel_api_test` reproduces this)"
        ) from None
    finally:
        env.close()
