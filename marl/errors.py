"""Errors that reach the user as one line: what is wrong and how to fix it."""


class MarlError(Exception):
    """Base class: the CLI prints these as a single line instead of a traceback."""


class ConfigError(MarlError):
    """The experiment config is invalid (unknown key, wrong type, impossible combination)."""


class ScenarioError(MarlError):
    """A scenario cannot be resolved or breaks the PettingZoo parallel API."""


class CheckpointError(MarlError):
    """No usable checkpoint where one was expected."""


class ScenarioFault(ScenarioError):
    """A scenario's `reset()`/`step()` raised, or returned data its spaces forbid, while running.

    Raised in whichever process steps the scenario (an env runner, the driver, a check) and
    carried back to the driver by Ray, so every field is plain data and the class pickles
    by its fields. `details` holds what one line cannot: the scenario's own traceback or
    the full offending value. The driver writes it to a file in the run directory and
    sets `report_path`, which the one-line message then names.
    """

    def __init__(self, scenario: str, call: str, problem: str, hint: str, details: str = "", report_path: str | None = None):
        self.scenario, self.call, self.problem, self.hint = scenario, call, problem, hint
        self.details, self.report_path = details, report_path
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"; full report: {self.report_path}" if self.report_path else ""
        return f"scenario {self.scenario!r} {self.call}(): {self.problem} ({self.hint}{where})"

    def __reduce__(self):
        return type(self), (self.scenario, self.call, self.problem, self.hint, self.details, self.report_path)

    def with_report(self, report_path: str) -> "ScenarioFault":
        """The same fault, naming the file that holds its details."""
        return type(self)(self.scenario, self.call, self.problem, self.hint, self.details, report_path)


def find_scenario_fault(error: BaseException | None) -> ScenarioFault | None:
    """The ScenarioFault behind `error`, through `raise ... from`, implicit chaining and Ray's
    RayTaskError (which keeps the remote exception as `.cause`); None if there is none."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        cause = getattr(error, "cause", None)  # first: RayTaskError(ScenarioFault) is also a ScenarioFault, a hollow one
        if isinstance(cause, BaseException):
            error = cause
        elif isinstance(error, ScenarioFault):
            return error
        else:
            error = error.__cause__ or error.__context__
    return None
