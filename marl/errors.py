"""Errors that reach the user as one line: what is wrong and how to fix it."""


class MarlError(Exception):
    """Base class: the CLI prints these as a single line instead of a traceback."""


class ConfigError(MarlError):
    """The experiment config is invalid (unknown key, wrong type, impossible combination)."""


class ScenarioError(MarlError):
    """A scenario cannot be resolved or breaks the PettingZoo parallel API."""


class CheckpointError(MarlError):
    """No usable checkpoint where one was expected."""
