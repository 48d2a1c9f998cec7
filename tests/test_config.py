"""Experiment config loading, overrides, one-line errors, policy groups and the scenario probe (no Ray cluster)."""

from __future__ import annotations

import copy
from pathlib import Path

import gymnasium as gym
import pytest
import yaml

from marl.algorithms.common import learner_settings, policy_mapping, probe_scenario

from marl.core.agents import AgentToPolicy
from marl.config import AlgorithmSettings, ExperimentConfig, apply_overrides, config_to_dict
from marl.experiment import build_config, load_config
from marl.envs import resolve_factory
from marl.envs.wrappers import parse_wrappers
from marl.errors import ConfigError
from marl.experiment.registry import ALGORITHMS
from tests.conftest import REPO

CONFIGS = sorted([*REPO.glob("configs/*.yaml"), *REPO.glob("configs/*.yml")])
MAPPO_SPREAD = REPO / "configs" / "mappo_simple_spread.yaml"

MINIMAL = {
    "algorithm": "mappo",
    "scenario": {"name": "simple_spread_v3", "kwargs": {"N": 3}},
    "stop": {"env_steps": 1000},
}


def minimal(**sections) -> dict:
    raw = copy.deepcopy(MINIMAL)
    raw.update(sections)
    return raw


def write_yaml(tmp_path: Path, raw) -> Path:
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def one_line_config_error(call, *args, **kwargs) -> str:
    with pytest.raises(ConfigError) as info:
        call(*args, **kwargs)
    message = str(info.value)
    assert message.strip(), "empty error message"
    assert "\n" not in message, f"error message is not one line: {message!r}"
    return message


# -- shipped configs ----------------------------------------------------------------


def test_configs_folder_is_not_empty():
    assert CONFIGS, "no YAML files in configs/"


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_config_loads(path):
    config = load_config(path)
    assert isinstance(config, ExperimentConfig)
    entry = ALGORITHMS[config.algorithm]
    assert isinstance(config.training, entry.config_class)
    assert config.stop.env_steps > 0
    # the scenario resolves and the wrapper chain names real wrappers
    assert callable(resolve_factory(config.scenario.name))
    assert len(parse_wrappers(config.scenario.wrappers)) == len(config.scenario.wrappers)
    # the resolved config round-trips through plain data (what a run directory stores)
    data = config_to_dict(config)
    assert build_config(copy.deepcopy(data)) == config


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_config_overrides(path):
    plain = load_config(path)
    lr = "lr" if "lr" in type(plain.training).model_fields else "lr_actor"  # MADDPG has one per network
    config = load_config(path, [f"training.{lr}=3e-4", "resources.num_env_runners=1"])
    assert getattr(config.training, lr) == pytest.approx(3e-4)
    assert isinstance(getattr(config.training, lr), float)
    assert config.resources.num_env_runners == 1
    # untouched values stay as in the file
    assert config.stop == plain.stop
    assert config.scenario == plain.scenario


def _leaves(node, prefix=()):
    if isinstance(node, dict) and node:
        for key, value in node.items():
            yield from _leaves(value, (*prefix, key))
    else:
        yield prefix, node


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_config_keeps_every_value_of_the_file(path):
    raw = yaml.safe_load(path.read_text())
    resolved = config_to_dict(load_config(path))
    for keys, value in _leaves(raw):
        node = resolved
        for key in keys:
            node = node[key]
        if isinstance(value, float) or isinstance(node, float):
            assert node == pytest.approx(value), ".".join(keys)
        else:
            assert node == value, ".".join(keys)


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_config_fits_its_scenario(path):
    """Parameter sharing and spaces work out for the scenario (the driver-side probe)."""
    config = load_config(path)
    centralized = ALGORITHMS[config.algorithm].config_class.has_centralized_critic()
    probe = probe_scenario(config, global_state=centralized)
    assert sorted(probe.mapping) == sorted(probe.agents)
    for info in probe.policies.values():
        assert isinstance(info.action_space, (gym.spaces.Discrete, gym.spaces.Box))
        assert info.observation_space.shape == (info.layout.total_dim,)
        assert (info.layout.state_dim > 0) == centralized


def test_mappo_simple_spread_basics():
    config = load_config(MAPPO_SPREAD)
    assert config.algorithm == "mappo"
    assert config.scenario.name == "simple_spread_v3"
    assert config.run_name == "mappo_simple_spread_v3"


def test_defaults_fill_missing_sections():
    config = build_config(minimal())
    assert config.policies.sharing == "shared"
    assert config.model.hidden == [64, 64]
    assert config.resources.num_env_runners == 2
    assert config.training.lr == pytest.approx(7e-4)
    assert config.seed == 0


def test_run_name_of_a_path_scenario():
    config = build_config(minimal(scenario={"name": "tests.scenarios_for_tests:leaving_agents_env"}))
    assert config.run_name == "mappo_tests_scenarios_for_tests_leaving_agents_env"
    assert build_config(minimal(name="mine")).run_name == "mine"


def test_override_creates_missing_sections_and_parses_yaml_values():
    raw = apply_overrides({}, ["training.lr=0.5", "training.value_clip_param=null", "policies.sharing=per_agent", "model.hidden=[8, 8]"])
    assert raw == {
        "training": {"lr": 0.5, "value_clip_param": None},
        "policies": {"sharing": "per_agent"},
        "model": {"hidden": [8, 8]},
    }


# -- one-line errors that name the key -------------------------------------------------


@pytest.mark.parametrize(
    "override, key",
    [
        ("foo=1", "foo"),
        ("training.lrr=1", "training.lrr"),
        ("training.lr=abc", "training.lr"),
        ("training.lr=-1", "training.lr"),
        ("resources.num_env_runners=-1", "resources.num_env_runners"),
        ("resources.num_envs_per_env_runner=0", "resources.num_envs_per_env_runner"),
        ("algorithm=nope", "algorithm"),
        ("policies.sharing=bogus", "policies.sharing"),
        ("scenario.bogus=1", "scenario.bogus"),
        ("stop.env_steps=0", "stop.env_steps"),
        ("training=5", "training"),
        ("training.num_minibatches=4096", "training.num_minibatches"),
    ],
)
def test_bad_value_is_one_line_error_naming_the_key(override, key):
    message = one_line_config_error(load_config, MAPPO_SPREAD, [override])
    assert message.startswith(key), message


def test_unknown_algorithm_lists_the_known_ones():
    message = one_line_config_error(load_config, MAPPO_SPREAD, ["algorithm=nope"])
    assert "nope" in message
    for name in ALGORITHMS:
        assert name in message


def test_missing_stop(tmp_path):
    raw = minimal()
    del raw["stop"]
    message = one_line_config_error(load_config, write_yaml(tmp_path, raw))
    assert message.startswith("stop")
    assert "missing" in message


def test_missing_scenario_name(tmp_path):
    message = one_line_config_error(load_config, write_yaml(tmp_path, minimal(scenario={"kwargs": {}})))
    assert message.startswith("scenario.name")


@pytest.mark.parametrize("override", ["training.lr", "=3", ""])
def test_malformed_override(override):
    message = one_line_config_error(load_config, MAPPO_SPREAD, [override])
    assert "KEY=VALUE" in message
    assert repr(override) in message


def test_override_through_a_value_is_an_error():
    message = one_line_config_error(load_config, MAPPO_SPREAD, ["seed.x=1"])
    assert "seed" in message


def test_missing_file(tmp_path):
    missing = tmp_path / "nope.yaml"
    message = one_line_config_error(load_config, missing)
    assert str(missing) in message


def test_invalid_yaml(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("algorithm: [mappo\n")
    message = one_line_config_error(load_config, path)
    assert str(path) in message


def test_non_mapping_yaml(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n")
    message = one_line_config_error(load_config, path)
    assert "mapping" in message


def test_non_mapping_yaml_with_overrides(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n")
    one_line_config_error(load_config, path, ["training.lr=1"])


def test_build_config_rejects_non_mapping():
    one_line_config_error(build_config, ["not", "a", "mapping"])


# -- policy groups ------------------------------------------------------------------

AGENTS = ["agent_0", "agent_1", "agent_2"]


def grouped(groups: dict[str, list[str]]) -> ExperimentConfig:
    return build_config(minimal(policies={"sharing": "groups", "groups": groups}))


def test_policy_mapping_shared_and_per_agent():
    shared = build_config(minimal(policies={"sharing": "shared"}))
    assert policy_mapping(shared, AGENTS) == {agent: "shared" for agent in AGENTS}
    per_agent = build_config(minimal(policies={"sharing": "per_agent"}))
    assert policy_mapping(per_agent, AGENTS) == {agent: agent for agent in AGENTS}


def test_policy_mapping_groups():
    config = grouped({"pair": ["agent_0", "agent_2"], "solo": ["agent_1"]})
    mapping = policy_mapping(config, AGENTS)
    assert mapping == {"agent_0": "pair", "agent_2": "pair", "agent_1": "solo"}
    lookup = AgentToPolicy(mapping)
    assert lookup("agent_1") == "solo"
    assert lookup("agent_0", None) == "pair"


def test_group_missing_an_agent():
    message = one_line_config_error(policy_mapping, grouped({"pair": ["agent_0", "agent_1"]}), AGENTS)
    assert message.startswith("policies.groups")
    assert "agent_2" in message


def test_group_names_unknown_agent():
    config = grouped({"pair": ["agent_0", "agent_1"], "solo": ["agent_2"], "ghosts": ["agent_9"]})
    message = one_line_config_error(policy_mapping, config, AGENTS)
    assert message.startswith("policies.groups.ghosts")
    assert "agent_9" in message


def test_agent_in_two_groups():
    config = grouped({"pair": ["agent_0", "agent_1"], "trio": ["agent_0", "agent_1", "agent_2"]})
    message = one_line_config_error(policy_mapping, config, AGENTS)
    assert message.startswith("policies.groups")
    assert "agent_0" in message
    assert "pair" in message and "trio" in message


# -- the scenario probe ---------------------------------------------------------------


def speaker_listener(sharing: str, wrappers=None, **policies) -> ExperimentConfig:
    return build_config(
        minimal(
            scenario={"name": "simple_speaker_listener_v4", "wrappers": list(wrappers or [])},
            policies={"sharing": sharing, **policies},
        )
    )


@pytest.mark.parametrize("global_state", [True, False])
def test_shared_policy_over_different_spaces_is_config_error(global_state):
    message = one_line_config_error(probe_scenario, speaker_listener("shared"), global_state=global_state)
    assert "pad_observations_v0" in message
    assert "speaker_0" in message and "listener_0" in message


def test_per_agent_policies_have_their_own_spaces():
    probe = probe_scenario(speaker_listener("per_agent"), global_state=True)
    assert probe.agents == ["speaker_0", "listener_0"]
    assert probe.mapping == {"speaker_0": "speaker_0", "listener_0": "listener_0"}
    assert set(probe.policies) == {"speaker_0", "listener_0"}
    speaker, listener = probe.policies["speaker_0"], probe.policies["listener_0"]
    assert speaker.agents == ("speaker_0",) and listener.agents == ("listener_0",)
    # one agent per policy: no agent id by default; the state is both observations (3 + 11)
    assert (speaker.layout.obs_dim, speaker.layout.id_dim, speaker.layout.state_dim) == (3, 0, 14)
    assert (listener.layout.obs_dim, listener.layout.id_dim, listener.layout.state_dim) == (11, 0, 14)
    assert speaker.observation_space.shape == (17,)
    assert listener.observation_space.shape == (25,)
    assert speaker.action_space == gym.spaces.Discrete(3)
    assert listener.action_space == gym.spaces.Discrete(5)
    assert probe.env_config["agent_id_in_obs"] is False
    assert probe.env_config["global_state"] is True


def test_padded_speaker_listener_can_share():
    probe = probe_scenario(speaker_listener("shared", ["pad_observations_v0", "pad_action_space_v0"]), global_state=False)
    assert set(probe.policies) == {"shared"}
    info = probe.policies["shared"]
    assert info.agents == ("speaker_0", "listener_0")
    assert info.layout.id_dim == 2  # a shared policy gets the agent id by default
    assert info.observation_space.shape == (11 + 2,)
    assert info.action_space == gym.spaces.Discrete(5)


def test_groups_probe_and_explicit_agent_id():
    config = build_config(
        minimal(policies={"sharing": "groups", "groups": {"pair": ["agent_0", "agent_1"], "solo": ["agent_2"]}, "agent_id_in_obs": False})
    )
    probe = probe_scenario(config, global_state=True)
    assert set(probe.policies) == {"pair", "solo"}
    assert probe.policies["pair"].agents == ("agent_0", "agent_1")
    assert probe.policies["pair"].layout.id_dim == 0
    assert probe.policies["pair"].layout.state_dim == 54


# -- algorithm registry capability flags -------------------------------------------------


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_capability_flags_are_bools(name):
    entry = ALGORITHMS[name]
    assert entry.name == name
    assert entry.summary
    cls = entry.config_class
    for flag in (cls.has_centralized_critic, cls.supports_discrete_actions, cls.supports_continuous_actions):
        assert isinstance(flag(), bool)
    assert cls.supports_discrete_actions() or cls.supports_continuous_actions()
    cls.model_validate({})  # every field has a default


@pytest.mark.parametrize("name, centralized", [("mappo", True), ("ippo", False)])
def test_ppo_family_capabilities(name, centralized):
    cls = ALGORITHMS[name].config_class
    assert cls.has_centralized_critic() is centralized
    assert cls.supports_discrete_actions() is True
    assert cls.supports_continuous_actions() is True


@pytest.mark.parametrize(
    "text,expected",
    [("3e-4", 3e-4), ("2e6", 2_000_000), ("5e-1", 0.5), ("0.5", 0.5), ("10", 10), ("true", True), ("abc", "abc"), ("[64, 64]", [64, 64])],
)
def test_override_values_parse_like_a_user_means_them(text, expected):
    raw = apply_overrides({}, [f"a.b={text}"])
    assert raw["a"]["b"] == expected and type(raw["a"]["b"]) is type(expected)


def test_scenario_rejecting_a_kwarg_value_is_one_line_scenario_error():
    from marl.envs.registry import make_parallel_env
    from marl.errors import ScenarioError

    with pytest.raises(ScenarioError) as info:
        make_parallel_env("coordination_game", {"n_agents": 4})
    assert "\n" not in str(info.value) and "coordination_game" in str(info.value)


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_every_algorithm_keeps_the_settings_contract(algorithm):
    settings_class = ALGORITHMS[algorithm].config_class
    assert issubclass(settings_class, AlgorithmSettings)
    assert not getattr(settings_class, "__abstractmethods__", None), "to_rllib / learner_class left abstract"
    settings = settings_class()
    with pytest.raises(ValueError, match="frozen"):  # what was validated is what the learner reads
        settings.gamma = 0.5


@pytest.mark.parametrize("config_name", ["mappo_simple_spread", "dpo_simple_spread", "maddpg_simple_spread", "bn_mappo_coordination_game"])
def test_learners_get_the_validated_settings_object_not_a_string_keyed_copy(config_name):
    config = load_config(REPO / "configs" / f"{config_name}.yaml", ["resources.num_env_runners=0"])
    settings = learner_settings(config.training.to_rllib(config, num_gpus_per_learner=0))
    assert settings.training is config.training
    assert settings.stop_env_steps == config.stop.env_steps
    assert set(settings.policy_of) == set(settings.agents)


def test_an_rllib_config_built_by_hand_is_refused_with_the_fix():
    from ray.rllib.algorithms.ppo import PPOConfig

    with pytest.raises(RuntimeError, match="to_rllib"):
        learner_settings(PPOConfig())
