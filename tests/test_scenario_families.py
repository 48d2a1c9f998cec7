"""Every algorithm on PettingZoo scenarios we did not tune for: agents that die, continuous
actions, heterogeneous agents, long episodes.

Configs come from `marl init` (what a user with their own scenario starts from), shrunk to
a couple of tiny iterations; what is checked is that training runs and writes its
checkpoint, and that each scenario really has the property it stands for here.
"""

from __future__ import annotations

import pytest
import yaml

from marl.config import apply_overrides

from marl.experiment import build_config
from marl.envs.scenario import ScenarioSpec
from marl.experiment.registry import ALGORITHMS
from marl.experiment.templates import template_yaml
from marl.training.checkpoints import latest_checkpoint
from marl.training.runner import train

pytest.importorskip("Box2D", reason="multiwalker needs Box2D (the test extra installs it)")

# property -> (scenario, kwargs, actions)
FAMILIES = {
    # Walkers that fall are removed one by one (terminate_on_fall=False): agents leave, Box actions.
    "agents_fall_continuous": ("pettingzoo.sisl.multiwalker_v9:parallel_env", {"terminate_on_fall": False, "max_cycles": 150}, "continuous"),
    # Knights and archers die when a zombie reaches them; vector observations; 900-step episodes.
    "agents_die_long_episodes": ("pettingzoo.butterfly.knights_archers_zombies_v11:parallel_env", {}, "discrete"),
    # Three kinds of agents with different observation and action spaces.
    "heterogeneous": ("simple_world_comm_v3", {}, "discrete"),
}
TINY = {
    "maddpg": ["training.env_steps_per_iteration=200", "training.batch_size=32", "training.learning_starts=100",
               "training.updates_per_iteration=1"],
}
TINY_PPO = ["training.train_batch_size=200", "training.num_epochs=1"]
COMMON = ["resources.num_env_runners=0", "resources.num_envs_per_env_runner=2", "checkpoint.every_iterations=100"]

PAIRS = [
    pytest.param(algorithm, family, id=f"{algorithm}-{family}")
    for algorithm in sorted(ALGORITHMS)
    for family, (_, _, actions) in FAMILIES.items()
    if actions == "discrete" or ALGORITHMS[algorithm].config_class.supports_continuous_actions()
]


@pytest.mark.parametrize(("algorithm", "family"), PAIRS)
def test_every_algorithm_trains_on_each_scenario_family(algorithm, family, tmp_path):
    scenario, kwargs, _ = FAMILIES[family]
    raw = yaml.safe_load(template_yaml(algorithm, scenario, kwargs))
    config = build_config(apply_overrides(raw, COMMON + TINY.get(algorithm, TINY_PPO)))
    lines: list[str] = []
    run_dir = train(config, runs_root=tmp_path, echo=lines.append, max_iterations=2)
    progress = [line for line in lines if line.startswith("iter ")]
    assert len(progress) == 2, lines
    assert latest_checkpoint(run_dir) is not None
    assert "nan" not in " ".join(progress)


def _first_departure(scenario: str, kwargs: dict, seed: int = 0) -> int | None:
    """The step at which an agent first leaves while others play on, under random actions."""
    env = ScenarioSpec(scenario, kwargs).make()
    env.reset(seed=seed)
    for agent in env.possible_agents:
        env.action_space(agent).seed(seed)
    step = 0
    while env.agents:
        before = len(env.agents)
        env.step({agent: env.action_space(agent).sample() for agent in env.agents})
        step += 1
        if 0 < len(env.agents) < before:
            return step
    env.close()
    return None


def test_the_families_have_the_properties_they_stand_for():
    walker, walker_kwargs, _ = FAMILIES["agents_fall_continuous"]
    assert _first_departure(walker, walker_kwargs) is not None  # a walker falls and leaves, the others go on
    kaz, _, _ = FAMILIES["agents_die_long_episodes"]
    env = ScenarioSpec(kaz).make()
    assert env.unwrapped.max_cycles >= 900
    env.close()
    world_comm = ScenarioSpec("simple_world_comm_v3").make()
    spaces = {(world_comm.observation_space(a).shape, str(world_comm.action_space(a))) for a in world_comm.possible_agents}
    assert len(spaces) >= 2
    world_comm.close()


def test_raw_image_observations_are_announced_with_the_wrappers_that_shrink_them():
    from marl.envs.validation import IMAGE_FIX, image_observation_problem

    pong = "pettingzoo.butterfly.cooperative_pong_v6:parallel_env"
    problem = image_observation_problem(ScenarioSpec(pong))
    assert problem is not None and "an image (280, 480, 3)" in problem and IMAGE_FIX in problem
    shrunk = ScenarioSpec(pong, wrappers=["color_reduction_v0", {"resize_v1": {"x_size": 64, "y_size": 64}}])
    assert image_observation_problem(shrunk) is None
    assert image_observation_problem(ScenarioSpec("simple_spread_v3")) is None
    assert image_observation_problem(ScenarioSpec(pong), conv_encoder=True) is None  # ippo/mappo/dpo read frames
