"""Experiments: the algorithm registry, loading and validating experiment configs, the shipped
configs and `marl init`'s templates. The floor above the algorithms (it names them all) and
below training, evaluation and the CLI, which take an ExperimentConfig from here."""

from marl.experiment.loading import build_config, load_config, read_config_file
from marl.experiment.registry import ALGORITHMS

__all__ = ["ALGORITHMS", "build_config", "load_config", "read_config_file"]
