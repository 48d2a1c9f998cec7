"""The experiment configs shipped with marl: found by name from anywhere.

`shipped_configs()`: the YAML experiments in the checkout's `configs/`, or, for an
installed package, in `<prefix>/share/marl/configs` (pyproject's data-files), so that
`marl configs` lists them and `marl train mappo_simple_spread` finds one by name anywhere.
"""

from __future__ import annotations

import os
import sys
import sysconfig
from pathlib import Path

import yaml

from marl.errors import ConfigError

SHIPPED_SUBDIR = Path("share") / "marl" / "configs"


def shipped_configs_dir() -> Path | None:
    """Where the shipped configs are: the checkout (editable install), else the installed data files."""
    checkout = Path(__file__).resolve().parents[2] / "configs"
    candidates = [checkout, Path(sys.prefix) / SHIPPED_SUBDIR, Path(sysconfig.get_path("data")) / SHIPPED_SUBDIR]
    if f"{os.name}_user" in sysconfig.get_scheme_names():  # `pip install --user`
        candidates.append(Path(sysconfig.get_path("data", f"{os.name}_user")) / SHIPPED_SUBDIR)
    return next((path for path in candidates if path.is_dir() and any(path.glob("*.yaml"))), None)


def shipped_configs() -> dict[str, Path]:
    """name (file stem) -> path of every shipped experiment config."""
    root = shipped_configs_dir()
    return {path.stem: path for path in sorted(root.glob("*.yaml"))} if root else {}


def find_config(name_or_path: str | Path) -> Path:
    """An existing file as given, else a shipped config by name (`mappo_simple_spread[.yaml]`)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = shipped_configs()
    found = shipped.get(path.stem) if path.parent == Path(".") or str(path).startswith("configs/") else None
    if found is not None:
        return found
    raise ConfigError(
        f"config file {str(name_or_path)!r} does not exist; `marl configs` lists the shipped ones "
        "(use a name such as mappo_simple_spread), `marl init ALGORITHM SCENARIO` writes one for your scenario"
    )


def describe_shipped() -> list[str]:
    """One line per shipped config: name, algorithm, scenario."""
    lines = []
    for name, path in shipped_configs().items():
        raw = yaml.safe_load(path.read_text()) or {}
        scenario = (raw.get("scenario") or {}).get("name", "?")
        lines.append(f"{name:36s} {raw.get('algorithm', '?'):9s} {scenario}   ({path})")
    return lines
