"""An experiment from YAML or a dict to a validated ExperimentConfig, training section included.

The schema lives in `marl.config`; this floor sits above the algorithms because the
`training` section is validated against the settings class the registry names for the
chosen algorithm. No Ray, RLlib or torch is imported: a bad config fails in well under a
second, before anything expensive starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from marl.config import ExperimentConfig, apply_overrides, describe_validation_error
from marl.envs.registry import resolve_factory
from marl.errors import ConfigError
from marl.experiment.registry import ALGORITHMS
from marl.experiment.shipped import find_config


def build_config(raw: dict[str, Any]) -> ExperimentConfig:
    """Validate a plain dict into an ExperimentConfig (training section included)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"config must be a mapping of sections, got {type(raw).__name__}")
    raw = dict(raw)
    algorithm = raw.get("algorithm")
    if isinstance(algorithm, str) and algorithm not in ALGORITHMS:
        raise ConfigError(f"algorithm: unknown algorithm {algorithm!r}; choose one of {sorted(ALGORITHMS)} (`marl algorithms`)")
    training_raw = raw.pop("training", None) or {}
    try:
        config = ExperimentConfig.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(describe_validation_error(error, ExperimentConfig)) from None
    settings_class = ALGORITHMS[config.algorithm].config_class
    if not isinstance(training_raw, dict):
        raise ConfigError(f"training: must be a mapping, got {type(training_raw).__name__}")
    try:
        training = settings_class.model_validate(training_raw)
    except ValidationError as error:
        raise ConfigError(describe_validation_error(error, settings_class, prefix="training.")) from None
    config.training = training
    if config.model.encoder == "cnn" and not training.supports_image_encoder():
        raise ConfigError(
            f"model.encoder: {config.algorithm} has no convolutional encoder (ippo, mappo and dpo do); use model.encoder: "
            "auto, and shrink image observations with SuperSuit wrappers (README, 'Writing a scenario')"
        )
    resolve_factory(config.scenario.name)  # an unknown scenario is a one-line error now, not after Ray's import
    training.check_compatible(config)
    return config


def load_config(path: str | Path, overrides: list[str] | None = None) -> ExperimentConfig:
    """Read a YAML experiment file (or a shipped config by name), apply dotted overrides and validate it."""
    return build_config(read_config_file(path, overrides))


def read_config_file(path: str | Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """A YAML experiment file (or a shipped config by name) as a plain dict with dotted
    overrides applied, not yet validated."""
    path = find_config(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({error.__class__.__name__})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections (algorithm, scenario, ...)")
    return apply_overrides(raw, overrides or [])
