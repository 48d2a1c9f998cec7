"""The package's layers, checked on its import graph: imports point down a floor, never up or in a circle.

Every `import` counts, also those inside functions (they run later, but they are still a
dependency) and those under `if TYPE_CHECKING:` (a type named from a floor above is a design
leak too). Imports of packages outside the project (ray, torch, ...) are not edges.
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx
import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("marl", "scenarios", "coordination")

# Bottom to top; a module may import its own floor and the floors below it.
LAYERS: list[tuple[str, ...]] = [
    ("marl.errors", "marl.core"),  # shared maths, networks, agent mappings: no Ray, no scenarios
    ("scenarios", "marl.envs"),  # scenarios and the PettingZoo adapter
    ("marl.config",),  # the experiment schema and the algorithm settings contract
    ("marl.rllib",),  # RLlib pieces any algorithm uses: env runners, connectors, faults, resources
    ("marl.algorithms",),  # one folder per algorithm (+ common.py, the RLlib config they share)
    ("marl.experiment",),  # the registry of algorithms, loading and validating experiments, templates
    ("marl.training", "marl.evaluation"),  # running an experiment, evaluating its checkpoints
    ("coordination",),  # the coordination-analysis library
    ("marl.cli", "marl.__main__", "marl"),  # the command line on top
]


def floor_of(module: str) -> int:
    matches = [
        (len(prefix), floor)
        for floor, prefixes in enumerate(LAYERS)
        for prefix in prefixes
        if module == prefix or module.startswith(prefix + ".")
    ]
    if not matches:
        raise AssertionError(f"{module} is on no floor: add it to LAYERS in {Path(__file__).name}")
    return max(matches)[1]


def project_modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def imported_names(module: str, path: Path) -> set[str]:
    """Every module name an import statement of `module` refers to (relative imports resolved)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module
            names.add(source)
            names.update(f"{source}.{alias.name}" for alias in node.names)  # `from pkg import submodule`
    return names


def import_graph() -> nx.DiGraph:
    modules = project_modules()
    graph = nx.DiGraph()
    graph.add_nodes_from(modules)
    for module, path in modules.items():
        for name in imported_names(module, path):
            while name and name not in modules:  # `marl.core.agents.teams_of` -> `marl.core.agents`
                name = name.rpartition(".")[0]
            if name and name != module:
                graph.add_edge(module, name)
    return graph


GRAPH = import_graph()


def test_the_walk_sees_the_package():
    assert GRAPH.number_of_nodes() > 50 and GRAPH.has_edge("marl.algorithms.ppo.config", "marl.config")


def test_no_import_circle():
    circles = [sorted(component) for component in nx.strongly_connected_components(GRAPH) if len(component) > 1]
    assert not circles, f"import circles: {circles}"


@pytest.mark.parametrize("module", sorted(GRAPH.nodes))
def test_imports_point_down(module):
    upward = [
        f"{module} (floor {floor_of(module)}) imports {target} (floor {floor_of(target)})"
        for target in GRAPH.successors(module)
        if floor_of(target) > floor_of(module)
    ]
    assert not upward, "; ".join(upward)


# Which algorithm folders build on another one, and why; any other import between two
# algorithm folders is shared code that belongs in marl/core or marl/algorithms/common.py.
ALGORITHM_BASES = {
    "bn": {"ppo"},  # BN-MAPPO is MAPPO (its config, learner, clipped surrogate) plus a graph over the agents
    "dpo": {"ppo"},  # DPO swaps the PPO family's policy loss on the same actor-critic, config and learner
}


def algorithm_folder(module: str) -> str | None:
    parts = module.split(".")
    return parts[2] if len(parts) > 2 and parts[:2] == ["marl", "algorithms"] and parts[2] != "common" else None


@pytest.mark.parametrize("module", sorted(m for m in GRAPH.nodes if algorithm_folder(m)))
def test_algorithm_folders_hold_only_what_is_theirs(module):
    own = algorithm_folder(module)
    borrowed = {
        target
        for target in GRAPH.successors(module)
        if algorithm_folder(target) not in (None, own) and algorithm_folder(target) not in ALGORITHM_BASES.get(own, set())
    }
    assert not borrowed, f"{module} imports {sorted(borrowed)} from another algorithm's folder; move what they share to marl/core"


ALGORITHM_AGNOSTIC = ("marl.training", "marl.evaluation", "coordination")


@pytest.mark.parametrize("module", sorted(m for m in GRAPH.nodes if m.startswith(ALGORITHM_AGNOSTIC)))
def test_training_evaluation_and_coordination_know_no_algorithm(module):
    """They reach an algorithm only through its settings (marl.config.AlgorithmSettings) and its
    modules' `act_in_evaluation` (marl.rllib.acting): a new algorithm needs no change there."""
    known = sorted(target for target in GRAPH.successors(module) if target.startswith("marl.algorithms"))
    assert not known, f"{module} imports {known}"
