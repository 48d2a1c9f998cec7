"""The launch files in configs/cluster/ cannot run here (no second machine, no Kubernetes):
check what can be checked — Ray's schema, and that their commands train a shipped config."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import jsonschema
import ray.autoscaler
import yaml

from marl.cli import _parser
from marl.experiment import load_config
from tests.conftest import REPO

CLUSTER = REPO / "configs" / "cluster"


def _check_train_command(command: str) -> None:
    args = _parser().parse_args(shlex.split(command)[1:])
    assert args.command == "train" and args.address == "auto"
    load_config(REPO / args.config, args.overrides)  # a shipped config, valid overrides


def test_cluster_launcher_config_passes_rays_schema_and_trains_a_shipped_config():
    text = (CLUSTER / "ray-cluster.yaml").read_text()
    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    jsonschema.validate(yaml.safe_load(text), schema)
    commands = re.findall(r"(marl train [^'\n]+)", text)
    assert commands
    for command in commands:
        _check_train_command(command)


def test_rayjob_manifest_trains_a_shipped_config_with_token_auth():
    job = yaml.safe_load((CLUSTER / "rayjob.yaml").read_text())
    assert job["apiVersion"] == "ray.io/v1" and job["kind"] == "RayJob"
    assert job["spec"]["rayClusterSpec"]["rayVersion"] == ray.__version__
    assert job["spec"]["rayClusterSpec"]["authOptions"] == {"mode": "token"}
    _check_train_command(job["spec"]["entrypoint"])
