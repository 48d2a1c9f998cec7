"""The `marl` command line.

    marl train CONFIG [KEY=VALUE ...] [--address ADDR]   train (local Ray unless --address)
    marl train --resume RUN_DIR                         continue a run from its last checkpoint
    marl sweep CONFIG [KEY=VALUE ...] --grid KEY=V1,V2 ... --seeds 0 1 2 [--samples N] [--address ADDR]
                                                        grid / random search x seeds as Ray Tune trials
    marl evaluate CHECKPOINT [--episodes N] [--stochastic] [--render FILE.gif] [--dag sampled|empty|both]
    marl analyze CHECKPOINT --out DIR [--episodes N]     coordination metrics, figures and a report
    marl init ALGORITHM SCENARIO [KWARG=VALUE ...] [--out FILE]
                                                        write a config that fits the scenario's spaces
    marl configs                                        list the shipped configs (usable by name)
    marl scenarios                                      list the scenarios with their agents and spaces
    marl scenarios check SCENARIO [KEY=VALUE ...]       API, seed, data and render checks of one scenario
    marl algorithms                                     list the algorithms and what they support
"""

from __future__ import annotations

import argparse
import os
import sys

from marl.errors import MarlError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="marl", description="Cooperative multi-agent RL on Ray RLlib.")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train an experiment config (or --resume a run)")
    train.add_argument("config", nargs="?", help="experiment YAML (see configs/)")
    train.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, e.g. training.lr=3e-4")
    train.add_argument("--resume", metavar="RUN_DIR", help="continue this run from its latest checkpoint")
    train.add_argument("--address", help="join an existing Ray cluster (e.g. 'auto' or HOST:PORT); default: start a local one")
    train.add_argument("--runs-dir", default="runs", help="where new run directories go (default: runs/)")
    train.add_argument("--max-iterations", type=int, help="stop after this many iterations in this process")

    sweep = commands.add_parser("sweep", help="grid or random search and seeds of a config, as Ray Tune trials")
    sweep.add_argument("config", help="experiment YAML (see configs/)")
    sweep.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides for every trial")
    sweep.add_argument("--grid", nargs="+", action="extend", default=[], metavar="KEY=V1,V2",
                       help="searched values, e.g. training.lr=3e-4,1e-3 (with --samples also KEY=loguniform(LOW,HIGH))")
    sweep.add_argument("--seeds", nargs="+", type=int, default=[0], help="seeds per setting (default: 0)")
    sweep.add_argument("--samples", type=int, help="random search: draw N settings instead of the full grid")
    sweep.add_argument("--search-seed", type=int, default=0, help="seed of the random search's draws")
    sweep.add_argument("--address", help="run the trials on this Ray cluster (default: a local one)")
    sweep.add_argument("--out", help="output folder (default: sweeps/<run name>-<timestamp>)")
    sweep.add_argument("--max-iterations", type=int, help="stop each trial after this many iterations")

    evaluate = commands.add_parser("evaluate", help="evaluate a checkpoint (or a run directory's latest)")
    evaluate.add_argument("checkpoint")
    evaluate.add_argument("--episodes", type=int, default=10)
    evaluate.add_argument("--stochastic", action="store_true", help="sample actions instead of taking the most likely")
    evaluate.add_argument("--seed", type=int, default=1000, help="seed of the first episode (episode i uses seed+i)")
    evaluate.add_argument("--render", metavar="FILE.gif", help="write the first episode as an animated GIF")
    evaluate.add_argument(
        "--dag",
        choices=["sampled", "empty", "both"],
        help="joint policies (bn_mappo): act over sampled graphs (as trained), the empty graph "
        "(decentralised, no agent sees another's action), or report both (the default for them)",
    )

    analyze = commands.add_parser("analyze", help="coordination metrics, figures and a report for a checkpoint")
    analyze.add_argument("checkpoint", help="a checkpoint directory, or a run directory (its latest checkpoint)")
    analyze.add_argument("--out", required=True, metavar="DIR", help="where to write metrics, figures and report.md")
    analyze.add_argument("--episodes", type=int, default=50, help="greedy episodes for the dataset and metrics")
    analyze.add_argument("--influence-episodes", type=int, default=5, help="episodes for the (costlier) influence matrix")
    analyze.add_argument("--seed", type=int, default=1000)

    init = commands.add_parser("init", help="write an experiment config that fits a scenario's agents and spaces")
    init.add_argument("algorithm", help="an algorithm name (`marl algorithms`)")
    init.add_argument("scenario", help="a scenario name (`marl scenarios`) or package.module:factory")
    init.add_argument("overrides", nargs="*", metavar="KWARG=VALUE", help="the scenario's keyword arguments, e.g. N=5")
    init.add_argument("--out", help="file to write (default: <algorithm>_<scenario module>.yaml here)")
    init.add_argument("--force", action="store_true", help="overwrite an existing file")

    commands.add_parser("configs", help="list the shipped experiment configs (usable by name: marl train NAME)")
    scenarios = commands.add_parser("scenarios", help="list scenarios (agents, spaces, description), or `check` one")
    scenario_commands = scenarios.add_subparsers(dest="scenarios_command", metavar="check")
    check = scenario_commands.add_parser(
        "check", help="run the API, seed, data and render checks on a scenario and print its agents' spaces"
    )
    check.add_argument("scenario", help="a scenario name (see `marl scenarios`) or a package.module:factory path")
    check.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="keyword arguments for the factory, e.g. N=4")
    check.add_argument("--episodes", type=int, default=3, help="random episodes for the data check (default: 3)")
    check.add_argument("--seed", type=int, default=0, help="seed of the random episodes (default: 0)")
    commands.add_parser("algorithms", help="list algorithms and their capabilities")
    return parser


def _train(args) -> None:
    from marl.experiment import build_config, read_config_file
    from marl.errors import ConfigError
    from marl.rllib.resources import precheck_raw_resources

    if args.resume:
        if args.config or args.overrides:
            raise ConfigError("--resume takes only the run directory: the run's own config.yaml is used")
        from marl.training.runner import resume

        resume(args.resume, address=args.address, max_iterations=args.max_iterations)
        return
    if not args.config:
        raise ConfigError("give an experiment config (e.g. configs/mappo_simple_spread.yaml) or --resume RUN_DIR")
    raw = read_config_file(args.config, args.overrides)
    config = build_config(raw)  # before Ray and torch are imported: errors come in ~0.5 s
    precheck_raw_resources(raw.get("resources"), args.address)  # what fits the machine, before anything is built
    from marl.training.runner import train

    train(config, runs_root=args.runs_dir, address=args.address, max_iterations=args.max_iterations)


def _sweep(args) -> int:
    from marl.training.sweep import sweep

    result = sweep(
        args.config, args.overrides, args.grid, args.seeds, samples=args.samples, search_seed=args.search_seed,
        address=args.address, out=args.out, max_iterations=args.max_iterations,
    )
    return 1 if result.failed else 0


def _evaluate(args) -> None:
    from marl.evaluation import evaluate, is_joint_policy_checkpoint
    from marl.training.logs import ray_logs_to_file

    with ray_logs_to_file(None):  # RLlib's notices are not the user's business here
        graphs = [args.dag]
        if args.dag == "both" or (args.dag is None and is_joint_policy_checkpoint(args.checkpoint)):
            graphs = ["sampled", "empty"]
        for graph in graphs:
            render = args.render if graph == graphs[0] else None  # one animation: the first graph's
            result = evaluate(
                args.checkpoint, episodes=args.episodes, explore=args.stochastic, seed=args.seed, render_path=render, dag=graph
            )
            print(result.table())
            print(result.json_line())
        if args.render:
            print(f"animation: {args.render}")


def _init(args) -> None:
    from pathlib import Path

    from marl.config import apply_overrides
    from marl.errors import ConfigError
    from marl.experiment.templates import template_yaml

    kwargs = apply_overrides({}, args.overrides)
    text = template_yaml(args.algorithm, args.scenario, kwargs)
    short_name = args.scenario.split(":")[0].split(".")[-1]  # my_pkg.my_env:parallel_env -> my_env
    out = Path(args.out or f"{args.algorithm}_{short_name}.yaml")
    if out.exists() and not args.force:
        raise ConfigError(f"{out} exists; pass --force to overwrite it or --out to write elsewhere")
    out.write_text(text)
    print(f"wrote {out}; train it with: marl train {out}")


def _configs(args) -> None:
    from marl.experiment.shipped import describe_shipped

    for line in describe_shipped():
        print(line)


def _scenarios(args) -> int | None:
    if args.scenarios_command == "check":
        return _check_scenario(args)
    from marl.envs.scenario import ScenarioSpec
    from marl.envs.registry import known_scenarios
    from marl.envs.vectorized import vectorized_factory

    for name, entry in known_scenarios().items():
        try:
            env = ScenarioSpec(name).make()
            spaces = ", ".join(
                f"{agent}: obs {env.observation_space(agent).shape} act {env.action_space(agent)}" for agent in env.possible_agents
            )
            env.close()
        except Exception as error:  # a scenario that needs kwargs still gets listed
            spaces = f"(needs kwargs: {error})"
        fast = "  [vectorized twin]" if vectorized_factory(name) is not None else ""
        print(f"{name}{fast}\n    {entry.description}\n    {spaces}")


def _check_scenario(args) -> int:
    """`marl scenarios check`: each check's PASS/FAIL (WARN for rendering) and the spaces; 1 when one failed."""
    import numpy as np

    from marl.config import apply_overrides
    from marl.envs.scenario import ScenarioSpec
    from marl.envs.validation import run_checks

    kwargs = apply_overrides({}, args.overrides)
    spec = ScenarioSpec(args.scenario, kwargs)
    env = spec.make()  # a scenario that cannot even be built fails here, as a one-line ScenarioError
    print(f"scenario {args.scenario} {kwargs or ''}".rstrip())
    for agent in env.possible_agents:
        print(f"    {agent}: observation {env.observation_space(agent)}, action {env.action_space(agent)}")
    env.close()
    results = run_checks(spec, np.random.default_rng(args.seed), episodes=args.episodes)
    for result in results:
        print(f"{result.label}  {result.name:13s} {result.message}")
    failed = [result.name for result in results if result.label == "FAIL"]
    print(f"{len(results) - len(failed)} of {len(results)} checks passed" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


def _algorithms(args) -> None:
    from marl.experiment.registry import ALGORITHMS

    for name, entry in ALGORITHMS.items():
        cls = entry.config_class
        flags = [
            flag
            for flag, on in (
                ("centralized critic", cls.has_centralized_critic()),
                ("discrete actions", cls.supports_discrete_actions()),
                ("continuous actions", cls.supports_continuous_actions()),
                ("vectorized backend", cls.supports_backend("vectorized")),
            )
            if on
        ]
        print(f"{name:8s} {entry.summary}  [{', '.join(flags)}]")


def _analyze(args) -> None:
    from coordination.analyze import analyze
    from marl.training.checkpoints import resolve_checkpoint

    checkpoint = resolve_checkpoint(args.checkpoint)  # a clear error for a path that is not one
    metrics = analyze(checkpoint, args.out, episodes=args.episodes, influence_episodes=args.influence_episodes, seed=args.seed)
    print(f"team return {metrics['evaluation']['team_return']['mean']:.2f}; wrote {args.out}/report.md")


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    # KEY=VALUE overrides may stand anywhere on the line (`marl train cfg.yaml --max-iterations 1
    # training.lr=3e-4`); argparse takes positionals in one run only, so collect the rest here.
    overrides = [token for token in extra if "=" in token and not token.startswith("-")]
    unknown = [token for token in extra if token not in overrides]
    if unknown or (overrides and not hasattr(args, "overrides")):
        parser.error(f"unrecognized arguments: {' '.join(unknown or overrides)}")
    if overrides:
        args.overrides = [*args.overrides, *overrides]
    handlers = {
        "train": _train, "sweep": _sweep, "evaluate": _evaluate, "analyze": _analyze, "scenarios": _scenarios,
        "algorithms": _algorithms, "init": _init, "configs": _configs,
    }
    try:
        return handlers[args.command](args) or 0
    except MarlError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
