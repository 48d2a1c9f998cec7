"""`marl sweep` without Ray: the search space, the per-setting statistics, bad input.

The sweep itself (Tune trials on a multi-node cluster) is tested in test_cluster.py.
"""

from __future__ import annotations

import math
import subprocess
import sys
import time

import numpy as np
import pytest

from marl.errors import ConfigError
from marl.training.sweep import (
    Setting,
    final_return,
    parse_grid,
    search_settings,
    split_values,
    summarize,
    validated_configs,
)
from tests.conftest import REPO

SPREAD = REPO / "configs" / "mappo_simple_spread.yaml"


def test_values_split_on_top_level_commas_only():
    assert split_values("3e-4,1e-3") == ["3e-4", "1e-3"]
    assert split_values("[64,64],[128, 128]") == ["[64,64]", "[128, 128]"]
    assert split_values("{a: 1, b: 2},x") == ["{a: 1, b: 2}", "x"]
    with pytest.raises(ConfigError):
        split_values("1,,2")


def test_grid_is_the_full_product_in_order():
    settings = search_settings(parse_grid(["training.lr=1,2", "model.hidden=[8],[16,16]"]), None, np.random.default_rng(0))
    assert [s.overrides for s in settings] == [
        ("training.lr=1", "model.hidden=[8]"),
        ("training.lr=1", "model.hidden=[16,16]"),
        ("training.lr=2", "model.hidden=[8]"),
        ("training.lr=2", "model.hidden=[16,16]"),
    ]
    assert settings[1].label == "training.lr=1 model.hidden=[16,16]" and settings[1].value("model.hidden") == "[16,16]"
    assert search_settings([], None, np.random.default_rng(0)) == [Setting(())], "no grid: the base config once"


def test_random_search_draws_distinct_settings_within_bounds():
    dimensions = parse_grid(["training.lr=loguniform(1e-5,1e-2)", "training.num_epochs=2,4,8"])
    settings = search_settings(dimensions, 6, np.random.default_rng(1))
    assert len(set(settings)) == 6
    for setting in settings:
        assert 1e-5 <= float(setting.value("training.lr")) <= 1e-2
        assert setting.value("training.num_epochs") in {"2", "4", "8"}
    assert settings == search_settings(dimensions, 6, np.random.default_rng(1)), "the draws follow the search seed"
    with pytest.raises(ConfigError, match="exceeds the 3 distinct settings"):
        search_settings(parse_grid(["training.num_epochs=2,4,8"]), 4, np.random.default_rng(0))
    with pytest.raises(ConfigError, match="--samples"):
        search_settings(dimensions, None, np.random.default_rng(0))


@pytest.mark.parametrize(
    "spec,problem",
    [("seed=1,2", "--seeds"), ("training.lr", "KEY=V1,V2"), ("training.lr=loguniform(0,1)", "LOW > 0")],
)
def test_bad_grid_specs_are_one_line_errors(spec, problem):
    with pytest.raises(ConfigError, match=problem):
        parse_grid([spec])


def test_summary_statistics_over_seeds():
    row = summarize([1.0, 2.0, 3.0])
    assert row["seeds"] == 3 and row["mean"] == 2.0 and row["std"] == pytest.approx(1.0)
    half = 4.302652729911275 / math.sqrt(3)  # Student t, 2 degrees of freedom, 97.5 % quantile
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((2.0 - half, 2.0 + half))
    one = summarize([5.0])
    assert one["mean"] == 5.0 and math.isnan(one["std"]) and math.isnan(one["ci_low"]), "one seed: no spread claimed"
    assert summarize([1.0, math.nan, 3.0])["seeds"] == 2, "a trial without a finished episode is not a zero"
    assert final_return([math.nan, -80.0, -70.0, math.nan]) == -70.0


def test_every_trial_config_is_validated_before_ray(tmp_path):
    settings = search_settings(parse_grid(["training.lr=1e-3,3e-4"]), None, np.random.default_rng(0))
    configs = validated_configs(SPREAD, ["stop.env_steps=1000"], settings, [0, 7], "spread")
    assert sorted(configs) == [(0, 0), (0, 7), (1, 0), (1, 7)]
    assert configs[(1, 7)].training.lr == 3e-4 and configs[(1, 7)].seed == 7 and configs[(1, 7)].name == "spread-s1-seed7"
    bad = search_settings(parse_grid(["training.num_epochs=2,zero"]), None, np.random.default_rng(0))
    with pytest.raises(ConfigError, match="training.num_epochs=zero.*training.num_epochs"):
        validated_configs(SPREAD, [], bad, [0], "spread")


def test_cli_rejects_an_unknown_grid_key_in_one_line_before_ray(tmp_path):
    started = time.time()
    result = subprocess.run(
        [sys.executable, "-m", "marl.cli", "sweep", str(SPREAD), "--grid", "training.lrr=1e-3,3e-4", "--seeds", "0", "1"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().count("\n") == 0 and "training.lrr" in result.stderr and "unknown key" in result.stderr
    assert not (tmp_path / "sweeps").exists()
    assert time.time() - started < 30


def test_report_averages_finished_trials_and_lists_failed_ones(tmp_path):
    """The tables from hand-made trial histories: the failed trial is listed, not averaged."""
    from marl.training.sweep import _report

    settings = search_settings(parse_grid(["training.lr=1e-3,3e-4"]), None, np.random.default_rng(0))

    def history(*returns):
        return [{"iteration": i + 1, "env_steps": 100 * (i + 1), "episode_return_mean": r, "run_dir": f"runs/{i}",
                 "node_id": "n1"} for i, r in enumerate(returns)]

    rows = {
        (0, 0): history(math.nan, -80.0, -70.0),
        (0, 1): history(-90.0, -60.0),
        (1, 0): history(-85.0, -75.0),
        (1, 1): history(-95.0),  # died after one iteration
    }
    lines: list[str] = []
    result = _report(tmp_path, settings, [0, 1], rows, {(1, 1): "RayTaskError: boom"}, lines.append)

    first, second = result.summary
    assert (first["setting"], first["training.lr"], first["seeds"], first["mean"]) == ("training.lr=1e-3", "1e-3", 2, -65.0)
    assert first["std"] == pytest.approx(math.sqrt(50.0))
    assert (second["seeds"], second["mean"]) == (1, -75.0) and math.isnan(second["std"])
    assert [t["failed"] for t in result.trials] == [False, False, False, True]
    assert {"summary.csv", "trials.csv", "curves.csv", "curves.png"} <= {p.name for p in tmp_path.iterdir()}
    assert len((tmp_path / "curves.csv").read_text().splitlines()) == 1 + 2 + 2 + 2 + 1, "finite points only"
    assert any("seed 1), left out of the summary: RayTaskError: boom" in line for line in lines)
