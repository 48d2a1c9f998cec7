"""`marl sweep`: a grid or random search, and several seeds, as Ray Tune trials.

    marl sweep CONFIG [KEY=VALUE ...] --grid training.lr=3e-4,1e-3 model.hidden=[64,64],[128,128] \\
        --seeds 0 1 2 [--samples N] [--address ADDR]

Every combination of the `--grid` values (or, with `--samples N`, N settings drawn at
random from them; `KEY=loguniform(LOW,HIGH)` and `KEY=uniform(LOW,HIGH)` may then be
sampled too) is trained once per seed. A trial trains exactly as `marl train` does
(the same runner, run directory, checkpoints and metrics); Tune places trials on the
cluster with the resources the config asks for (a placement group with the driver's
CPU, the learners and one bundle per env runner) and runs as many side by side as fit.
Every setting is validated before Tune starts: a bad key or value is a one-line error.

OUT (default `sweeps/<run name>-<timestamp>/`) then holds:
    runs/          one run directory per trial (written on the node that ran the trial)
    trials.csv     per trial: setting, seed, failed, final team return, env steps, run directory, node
    summary.csv    per setting: seeds, mean, std and 95 % confidence interval of the
                   final team return (Student t over seeds; failed trials left out)
    curves.csv     setting, seed, env_steps, team_return for every iteration
    curves.png     mean and min/max over seeds per setting
    tune/          Tune's own experiment state
"""

from __future__ import annotations

import csv
import itertools
import math
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import numpy as np

from marl.config import ExperimentConfig, config_to_dict

from marl.experiment import build_config, load_config
from marl.errors import ConfigError
from marl.training.plots import plot_curves
from marl.training.runner import RUN_DIR_LINE, echo_line, ray_session

Printer = Callable[[str], None]
# Keys a sweep sets itself.
_RESERVED = {"seed": "use --seeds", "name": "trial names are set by the sweep"}
_DISTRIBUTION = re.compile(r"^(loguniform|uniform)\((.+),(.+)\)$")


# -- the search space (pure) ----------------------------------------------------------


def split_values(text: str) -> list[str]:
    """`a,[1,2],{x: 1}` -> ['a', '[1,2]', '{x: 1}']: commas inside brackets stay."""
    values, depth, current = [], 0, ""
    for char in text:
        if char in "[{(":
            depth += 1
        elif char in "]})":
            depth -= 1
        if char == "," and depth == 0:
            values.append(current.strip())
            current = ""
        else:
            current += char
    values.append(current.strip())
    if any(not value for value in values):
        raise ConfigError(f"--grid value list {text!r} has an empty value")
    return values


@dataclass(frozen=True)
class Dimension:
    """One searched key: listed values, or a distribution to sample (random search only)."""

    key: str
    values: tuple[str, ...] = ()
    distribution: tuple[str, float, float] | None = None

    def sample(self, rng: np.random.Generator) -> str:
        if self.distribution is None:
            return self.values[rng.integers(len(self.values))]
        kind, low, high = self.distribution
        if kind == "uniform":
            return repr(float(rng.uniform(low, high)))
        return repr(float(math.exp(rng.uniform(math.log(low), math.log(high)))))


def parse_grid(specs: list[str]) -> list[Dimension]:
    """`KEY=V1,V2` or `KEY=loguniform(LOW,HIGH)` per spec, each key once."""
    dimensions: list[Dimension] = []
    for spec in specs:
        key, sep, text = spec.partition("=")
        if not sep or not key or not text:
            raise ConfigError(f"--grid {spec!r}: expected KEY=V1,V2 (e.g. training.lr=3e-4,1e-3)")
        if key in _RESERVED:
            raise ConfigError(f"--grid {key}: not searchable here ({_RESERVED[key]})")
        if any(d.key == key for d in dimensions):
            raise ConfigError(f"--grid {key}: given twice; list all its values in one KEY=V1,V2")
        match = _DISTRIBUTION.match(text.replace(" ", ""))
        if match:
            kind, low, high = match.group(1), float(match.group(2)), float(match.group(3))
            if not low < high or (kind == "loguniform" and low <= 0):
                raise ConfigError(f"--grid {spec!r}: needs LOW < HIGH (and LOW > 0 for loguniform)")
            dimensions.append(Dimension(key, distribution=(kind, low, high)))
        else:
            dimensions.append(Dimension(key, values=tuple(split_values(text))))
    return dimensions


@dataclass(frozen=True)
class Setting:
    """One point of the search space, as dotted overrides."""

    overrides: tuple[str, ...]

    @property
    def label(self) -> str:
        return " ".join(self.overrides) or "base config"

    def value(self, key: str) -> str:
        return next(o.partition("=")[2] for o in self.overrides if o.partition("=")[0] == key)


def search_settings(dimensions: list[Dimension], samples: int | None, rng: np.random.Generator) -> list[Setting]:
    """The grid's every combination, or `samples` settings drawn at random (distinct where possible)."""
    if samples is None:
        sampled = [d.key for d in dimensions if d.distribution is not None]
        if sampled:
            raise ConfigError(f"--grid {sampled[0]}: a distribution needs random search; add --samples N")
        product = itertools.product(*[[f"{d.key}={v}" for v in d.values] for d in dimensions])
        return [Setting(tuple(point)) for point in product]
    if samples < 1:
        raise ConfigError("--samples must be at least 1")
    grid_size = math.prod(len(d.values) for d in dimensions if d.distribution is None)
    continuous = any(d.distribution is not None for d in dimensions)
    if not continuous and samples > grid_size:
        raise ConfigError(f"--samples {samples} exceeds the {grid_size} distinct settings of the grid; lower it or drop --samples")
    settings: list[Setting] = []
    while len(settings) < samples:
        setting = Setting(tuple(f"{d.key}={d.sample(rng)}" for d in dimensions))
        if setting not in settings:
            settings.append(setting)
    return settings


# -- the summary (pure) ---------------------------------------------------------------


def final_return(returns: list[float]) -> float:
    """A trial's final team return: its last finite value (early iterations may have no episode yet)."""
    finite = [value for value in returns if math.isfinite(value)]
    return finite[-1] if finite else math.nan


def summarize(finals: list[float], confidence: float = 0.95) -> dict[str, float]:
    """Mean, sample std and the Student-t confidence interval of the mean over seeds.

    With one seed the spread is unknown: std and the interval are NaN, not zero.
    """
    from scipy import stats

    values = np.array([value for value in finals if math.isfinite(value)], dtype=float)
    n = len(values)
    mean = float(values.mean()) if n else math.nan
    if n < 2:
        return {"seeds": n, "mean": mean, "std": math.nan, "ci_low": math.nan, "ci_high": math.nan}
    std = float(values.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * std / math.sqrt(n)
    return {"seeds": n, "mean": mean, "std": std, "ci_low": mean - half, "ci_high": mean + half}


# -- the sweep --------------------------------------------------------------------------


def validated_configs(
    config_path: str | Path, overrides: list[str], settings: list[Setting], seeds: list[int], name: str
) -> dict[tuple[int, int], ExperimentConfig]:
    """(setting index, seed) -> the trial's config; any bad key or value fails here, before Ray."""
    configs = {}
    for index, setting in enumerate(settings):
        for seed in seeds:
            try:
                config = load_config(config_path, [*overrides, *setting.overrides, f"seed={seed}", f"name={name}-s{index}-seed{seed}"])
            except ConfigError as error:
                raise ConfigError(f"sweep setting '{setting.label}': {error}") from None
            configs[(index, seed)] = config
    return configs


def trial_resources(config: ExperimentConfig, cluster_gpus: float):
    """RLlib's own placement group for the trial: driver (+ local learner), learners, env runners.

    The cluster's GPUs count even for a local learner: the bundle asking for one makes Tune
    start the trial on a node that has it (inside, the runner then finds it on its node).
    """
    from marl.rllib.resources import choose_learner_gpus

    gpus = choose_learner_gpus(config, cluster_gpus)[0]
    rllib_config = config.training.to_rllib(config, num_gpus_per_learner=gpus)
    return rllib_config.algo_class.default_resource_request(rllib_config)


def trial_env_runners(config: ExperimentConfig, ray) -> ExperimentConfig:
    """A trial's env runners checked against the whole cluster (`auto` resolved), counting
    the driver's CPU that RLlib's placement group holds: one line instead of a trial that
    Tune keeps pending forever."""
    from marl.rllib.resources import ClusterCapacity, choose_learner_gpus, resolve_num_env_runners, with_num_env_runners

    total = ray.cluster_resources()
    capacity = ClusterCapacity(total.get("CPU", 0.0), total.get("GPU", 0.0), "the Ray cluster")
    resources = config.resources
    gpus = choose_learner_gpus(config, capacity.gpus)[0]
    runners = resolve_num_env_runners(resources, capacity, num_gpus_per_learner=gpus, driver_cpus=1.0)
    return with_num_env_runners(config, runners)


def _trial(space: dict[str, Any]) -> None:
    """A Tune function trainable: `marl train` on the trial's config, reporting each iteration."""
    import ray
    from ray import tune

    from marl.training.runner import train

    node_id = ray.get_runtime_context().get_node_id()
    run_dir = ""

    def echo(line: str) -> None:
        nonlocal run_dir
        if line.startswith(RUN_DIR_LINE):
            run_dir = line[len(RUN_DIR_LINE):]
        print(line, flush=True)

    def report(algo, row: dict) -> None:
        tune.report({**row, "run_dir": run_dir, "node_id": node_id})

    params = space["trial"]
    train(build_config(params["config"]), runs_root=params["runs_root"], echo=echo,
          max_iterations=params["max_iterations"], on_iteration=report)


def _trial_name(trial) -> str:
    return f"setting{trial.config['trial']['setting']}-seed{trial.config['trial']['seed']}"


def _collector(settings: list[Setting], echo: Printer):
    """A Tune callback (driver side) that keeps every trial's reported rows and prints its progress."""
    from ray import tune

    class Collector(tune.Callback):
        def __init__(self):
            self.rows: dict[tuple[int, int], list[dict]] = {}

        def on_trial_result(self, iteration, trials, trial, result, **info):
            index, seed = trial.config["trial"]["setting"], trial.config["trial"]["seed"]
            row = {k: result.get(k) for k in ("iteration", "env_steps", "episode_return_mean", "run_dir", "node_id")}
            self.rows.setdefault((index, seed), []).append(row)
            echo(
                f"[{settings[index].label} | seed {seed}] iter {row['iteration']} | env steps {row['env_steps']:,} | "
                f"team return {row['episode_return_mean']:.2f}"
            )

        def on_trial_error(self, iteration, trials, trial, **info):
            echo(f"[{settings[trial.config['trial']['setting']].label} | seed {trial.config['trial']['seed']}] failed")

    return Collector()


@dataclass
class SweepResult:
    out: Path
    summary: list[dict]
    trials: list[dict]
    failed: dict[tuple[int, int], str]
    """(setting index, seed) -> the first line of the trial's error."""


def sweep(
    config_path: str | Path,
    overrides: list[str],
    grid: list[str],
    seeds: list[int],
    *,
    samples: int | None = None,
    search_seed: int = 0,
    address: str | None = None,
    out: str | Path | None = None,
    max_iterations: int | None = None,
    echo: Printer = echo_line,
) -> SweepResult:
    """Run the sweep as Tune trials, then write and print the summary."""
    if not seeds:
        raise ConfigError("--seeds needs at least one seed")
    settings = search_settings(parse_grid(grid), samples, np.random.default_rng(search_seed))
    base = load_config(config_path, overrides)
    configs = validated_configs(config_path, overrides, settings, seeds, base.run_name)
    out = Path(out or Path("sweeps") / f"{base.run_name}-{datetime.now():%Y%m%d-%H%M%S}").resolve()
    out.mkdir(parents=True, exist_ok=True)
    echo(f"sweep: {len(settings)} setting(s) x {len(seeds)} seed(s) = {len(configs)} trial(s); output in {out}")

    with ray_session(address) as ray:
        from ray import tune

        gpus = ray.cluster_resources().get("GPU", 0.0)
        configs = {key: trial_env_runners(config, ray) for key, config in configs.items()}
        resources = {index: trial_resources(configs[(index, seeds[0])], gpus) for index in range(len(settings))}
        trials = [
            {"setting": index, "seed": seed, "config": config_to_dict(config), "runs_root": str(out / "runs"),
             "max_iterations": max_iterations}
            for (index, seed), config in configs.items()
        ]
        collector = _collector(settings, echo)
        tuner = tune.Tuner(
            tune.with_resources(_trial, lambda space: resources[space["trial"]["setting"]]),
            param_space={"trial": tune.grid_search(trials)},
            tune_config=tune.TuneConfig(trial_name_creator=_trial_name, trial_dirname_creator=_trial_name),
            # Our callback prints one line per trial iteration; Tune's own tables would repeat them.
            run_config=tune.RunConfig(name="tune", storage_path=str(out), callbacks=[collector], verbose=0),
        )
        results = tuner.fit()
        failed = {
            (result.config["trial"]["setting"], result.config["trial"]["seed"]): (str(result.error).splitlines() or [repr(result.error)])[0]
            for result in results if result.error
        }
    return _report(out, settings, seeds, collector.rows, failed, echo)


def _report(
    out: Path, settings: list[Setting], seeds: list[int], rows: dict, failed: dict[tuple[int, int], str], echo: Printer
) -> SweepResult:
    """Write and print the per-trial and per-setting tables; failed trials are listed, not averaged."""
    keys = [o.partition("=")[0] for o in settings[0].overrides] if settings else []
    trials, summary, curves, plotted = [], [], [], {}
    for index, setting in enumerate(settings):
        finals = []
        for seed in seeds:
            history = rows.get((index, seed), [])
            if not history:
                continue
            returns = [float(r["episode_return_mean"]) for r in history]
            if (index, seed) not in failed:
                finals.append(final_return(returns))
            trials.append({"setting": setting.label, "seed": seed, "failed": (index, seed) in failed,
                           "final_return": final_return(returns),
                           "env_steps": int(history[-1]["env_steps"]), "iterations": int(history[-1]["iteration"]),
                           "run_dir": history[-1]["run_dir"], "node_id": history[-1]["node_id"]})
            points = [(int(r["env_steps"]), ret) for r, ret in zip(history, returns) if math.isfinite(ret)]
            curves += [(setting.label, seed, step, ret) for step, ret in points]
            if points:
                plotted.setdefault(setting.label, {})[seed] = tuple(np.array(v, dtype=float) for v in zip(*points))
        summary.append({"setting": setting.label, **{key: setting.value(key) for key in keys}, **summarize(finals)})

    _write_csv(out / "trials.csv", trials)
    _write_csv(out / "summary.csv", summary)
    _write_csv(out / "curves.csv", [dict(zip(("setting", "seed", "env_steps", "team_return"), c)) for c in curves])
    if plotted:
        plot_curves(out / "curves.png", plotted)
    echo(summary_table(summary))
    for (index, seed), error in failed.items():
        echo(f"trial failed ({settings[index].label} | seed {seed}), left out of the summary: {error}")
    echo(f"summary: {out / 'summary.csv'}; curves: {out / 'curves.png'}")
    return SweepResult(out, summary, trials, failed)


def summary_table(summary: list[dict]) -> str:
    """The per-setting summary as aligned text."""
    header = f"{'setting':40s} {'seeds':>5s} {'mean':>9s} {'std':>8s} {'95% CI':>21s}"
    lines = [header, "-" * len(header)]
    for row in summary:
        ci = f"[{row['ci_low']:8.2f}, {row['ci_high']:8.2f}]"
        lines.append(f"{row['setting'][:40]:40s} {row['seeds']:5d} {row['mean']:9.2f} {row['std']:8.2f} {ci:>21s}")
    return "\n".join(lines)


def _write_csv(path: Path, rows: list[dict]) -> None:
    columns = list(dict.fromkeys(key for row in rows for key in row)) or ["setting"]
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, columns)
        writer.writeheader()
        writer.writerows(rows)
