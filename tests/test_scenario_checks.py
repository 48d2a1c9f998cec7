"""The scenario guard's data checks, the fault it raises, and `marl scenarios check` (no Ray)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from gymnasium import spaces
from pettingzoo.utils.env import ParallelEnv

from marl.cli import main
from marl.envs.adapter import PettingZooMultiAgentEnv
from marl.envs.scenario import ScenarioSpec, scenario_env_config
from marl.envs.guard import (
    GuardedParallelEnv,
    action_problem,
    first_data_problem,
    observation_problem,
    refused_action,
    reward_problem,
    summarize,
)
from marl.envs.validation import check_scenario_data, check_seed, render_problem, run_checks
from marl.errors import ScenarioError, ScenarioFault, find_scenario_fault
from tests.scenarios_for_tests import REFUSED_ACTION, FaultySpread

FAULTY = "tests.scenarios_for_tests:faulty_spread"
BOX = spaces.Box(-1.0, 1.0, (3,), np.float32)


def one_line(error: Exception) -> str:
    message = str(error)
    assert message.strip() and "\n" not in message, f"not one line: {message!r}"
    return message


# -- the checks, value by value -----------------------------------------------


def test_observation_in_its_space_passes():
    assert observation_problem(np.zeros(3, np.float32), BOX) is None
    assert observation_problem(np.zeros(3, np.int8), BOX) is None  # int8 fits float32 exactly


@pytest.mark.parametrize(
    "observation, expected",
    [
        (np.zeros(4, np.float32), "shape (4,)"),
        (np.zeros(3, np.float64), "dtype float64"),
        (np.array([0.0, np.nan, 0.0], np.float32), "NaN"),
        (np.array([0.0, np.inf, 0.0], np.float32), "NaN or inf"),
        (np.array([0.0, 2.0, 0.0], np.float32), "outside the bounds"),
    ],
)
def test_observation_outside_its_space_is_named(observation, expected):
    assert expected in observation_problem(observation, BOX)


def test_non_box_observation_space_asks_contains():
    assert observation_problem(2, spaces.Discrete(3)) is None
    assert "is not in Discrete(3)" in observation_problem(5, spaces.Discrete(3))


@pytest.mark.parametrize("reward, expected", [(1.5, None), (np.float32(-2), None), (float("nan"), "NaN"), (np.inf, "inf"), ("x", "not a number")])
def test_reward_must_be_a_finite_number(reward, expected):
    problem = reward_problem(reward)
    assert problem is None if expected is None else expected in problem


def test_action_outside_its_space_is_named():
    assert action_problem(np.int64(4), spaces.Discrete(5)) is None
    assert "outside the action space Discrete(5)" in action_problem(7, spaces.Discrete(5))
    assert action_problem(np.zeros(2, np.float32), BOX) is not None  # wrong shape


def test_first_data_problem_names_agent_key_and_value():
    observations = {"a": np.zeros(3, np.float32), "b": np.zeros(3, np.float32)}
    assert first_data_problem(observations, {"a": 0.0, "b": 1.0}, {"a": BOX, "b": BOX}) is None
    agent, key, value, problem = first_data_problem(observations, {"a": 0.0, "b": float("nan")}, {"a": BOX, "b": BOX})
    assert (agent, key) == ("b", "reward") and np.isnan(value) and "NaN" in problem


def test_summarize_keeps_one_short_line():
    text = summarize(np.arange(1000, dtype=np.float32))
    assert "\n" not in text and len(text) <= 60 and "..." in text
    assert summarize(np.int64(4)) == "4"


def test_refused_action_prefers_out_of_space_then_named_agent():
    space = {"a": spaces.Discrete(2), "b": spaces.Discrete(2)}
    culprit, _ = refused_action(ValueError("no"), {"a": 1, "b": 5}, space)
    assert "'b'" in culprit and "5" in culprit and "outside" in culprit
    culprit, _ = refused_action(ValueError("b cannot do that"), {"a": 1, "b": 0}, space)
    assert culprit == "agent 'b' sent action 0"
    culprit, _ = refused_action(ValueError("nobody named"), {"a": 1, "b": 0}, space)
    assert culprit == "actions {'a': 1, 'b': 0}"


# -- the guard around a running scenario ---------------------------------------


def run_episode(env: ParallelEnv, seed: int = 0, action: int = 0) -> None:
    env.reset(seed=seed)
    while env.agents:
        env.step({agent: action for agent in env.agents})


@pytest.mark.parametrize(
    "fault, call, expected",
    [
        ("step_raises", "step", "raised RuntimeError: planted step fault (step 3)"),
        ("reset_raises", "reset", "raised RuntimeError: planted reset fault (reset 1)"),
        ("nan_reward", "step", "agent 'agent_2' reward nan is NaN or inf"),
        ("obs_out_of_space", "step", "agent 'agent_0' observation ["),
    ],
)
def test_guard_turns_each_planted_fault_into_one_line(fault, call, expected):
    env = GuardedParallelEnv(FaultySpread(fault), "faulty")
    with pytest.raises(ScenarioFault) as caught:
        run_episode(env)
    message = one_line(caught.value)
    assert message.startswith(f"scenario 'faulty' {call}(): ") and expected in message, message
    assert caught.value.call == call
    if fault.endswith("raises"):
        assert "Traceback (most recent call last)" in caught.value.details and "planted" in caught.value.details
    if fault == "obs_out_of_space":
        assert "has shape (17,)" in message and "(18,)" in message


def test_guard_names_the_agent_whose_action_was_refused():
    env = GuardedParallelEnv(FaultySpread("refuses_action"), "faulty")
    with pytest.raises(ScenarioFault) as caught:
        run_episode(env, action=REFUSED_ACTION)
    assert f"agent 'agent_1' sent action {REFUSED_ACTION}" in one_line(caught.value)
    assert "ValueError: agent_1 may not take action 4" in str(caught.value)


def test_data_checks_cover_the_first_check_steps_of_every_episode():
    late = {"fault": "nan_reward", "step": 7}
    run_episode(GuardedParallelEnv(FaultySpread(**late), "faulty", check_steps=6))  # step 7 is not checked
    with pytest.raises(ScenarioFault):
        run_episode(GuardedParallelEnv(FaultySpread(**late), "faulty", check_steps=7))
    env = GuardedParallelEnv(FaultySpread("nan_reward", episode=2), "faulty", check_steps=5)
    run_episode(env)  # the first episode is clean; the second is checked again from its start
    with pytest.raises(ScenarioFault):
        run_episode(env)


def test_exceptions_are_wrapped_even_without_data_checks():
    run_episode(GuardedParallelEnv(FaultySpread("nan_reward"), "faulty", check_steps=0))
    with pytest.raises(ScenarioFault):
        run_episode(GuardedParallelEnv(FaultySpread("step_raises"), "faulty", check_steps=0))


def test_the_adapter_raises_scenario_faults():
    spec = ScenarioSpec(FAULTY, {"fault": "nan_reward", "episode": 2})
    env = PettingZooMultiAgentEnv(scenario_env_config(spec, agent_id_in_obs=False, global_state=False))
    env.reset(seed=0)  # reset 2 (the constructor's was 1): the fault strikes at step 3
    with pytest.raises(ScenarioFault, match="agent 'agent_2' reward nan"):
        for _ in range(3):
            env.step({agent: 0 for agent in env.agents})


def test_scenario_fault_pickles_and_is_found_through_chains():
    fault = ScenarioFault("s", "step", "raised X: y", "fix it", "details\nmore", None)
    copy = pickle.loads(pickle.dumps(fault))
    assert (copy.scenario, copy.call, copy.details, str(copy)) == ("s", "step", "details\nmore", str(fault))
    assert str(fault.with_report("/r/scenario_error.txt")).endswith("; full report: /r/scenario_error.txt)")
    try:
        try:
            raise fault
        except ScenarioFault as inner:
            raise RuntimeError("env step failed") from inner  # as RLlib's _try_env_step does
    except RuntimeError as outer:
        assert find_scenario_fault(outer) is fault

    class RemoteError(Exception):  # Ray's RayTaskError keeps the remote exception as `.cause`
        def __init__(self, cause):
            super().__init__("remote traceback\n...")
            self.cause = cause

    assert find_scenario_fault(RemoteError(fault)) is fault
    assert find_scenario_fault(RemoteError(ValueError("other"))) is None


# -- checks of a whole scenario ---------------------------------------------------


def test_check_scenario_data_raises_the_fault_a_run_would_stop_with():
    rng = np.random.default_rng(0)
    assert check_scenario_data(ScenarioSpec("simple_spread_v3"), rng, episodes=2) == 50
    with pytest.raises(ScenarioFault, match="reward nan"):
        check_scenario_data(ScenarioSpec(FAULTY, {"fault": "nan_reward", "episode": 2}), rng, episodes=2)


class UnseededEnv(ParallelEnv):
    """Ignores reset's seed: its start draws from fresh entropy, so two copies differ."""

    metadata = {"name": "unseeded_v0", "render_modes": [], "is_parallelizable": True}

    def __init__(self):
        self.possible_agents = ["a"]
        self.agents = []
        self._space = spaces.Box(-np.inf, np.inf, (2,), np.float32)
        self._actions = spaces.Discrete(2)
        self._rng = np.random.default_rng()

    def observation_space(self, agent):
        return self._space

    def action_space(self, agent):
        return self._actions

    def reset(self, seed=None, options=None):
        self.agents = ["a"]
        self._t = 0
        return {"a": self._rng.normal(size=2).astype(np.float32)}, {"a": {}}

    def step(self, actions):
        self._t += 1
        done = self._t >= 3
        self.agents = [] if done else ["a"]
        return {"a": np.zeros(2, np.float32)}, {"a": 0.0}, {"a": False}, {"a": done}, {"a": {}}


def test_check_seed_catches_a_scenario_that_ignores_its_seed(monkeypatch):
    check_seed(ScenarioSpec("simple_spread_v3"))
    spec = ScenarioSpec("unseeded")
    monkeypatch.setattr(ScenarioSpec, "make", lambda self, render_mode=None: UnseededEnv())
    with pytest.raises(ScenarioError, match="differ in their reset observations"):
        check_seed(spec)


def test_render_problem():
    assert render_problem(ScenarioSpec("simple_spread_v3")) is None
    assert "render_mode" in render_problem(ScenarioSpec("tests.scenarios_for_tests:spread_without_render"))
    assert "NotImplementedError" in render_problem(ScenarioSpec("tests.scenarios_for_tests:leaving_agents_env"))


def test_run_checks_reports_each_check():
    results = {r.name: r for r in run_checks(ScenarioSpec("tests.scenarios_for_tests:spread_without_render"), np.random.default_rng(0))}
    assert [results[name].label for name in ("parallel API", "seed", "data", "render")] == ["PASS", "PASS", "PASS", "WARN"]
    results = {r.name: r for r in run_checks(ScenarioSpec(FAULTY, {"fault": "step_raises", "episode": 9}), np.random.default_rng(0), episodes=10)}
    assert results["data"].label == "FAIL" and "planted step fault" in results["data"].message
    assert results["parallel API"].label == "PASS"


# -- the command line ----------------------------------------------------------


def test_cli_scenarios_check_passes_a_good_scenario(capsys):
    assert main(["scenarios", "check", "simple_spread_v3", "N=2"]) == 0
    out = capsys.readouterr().out
    assert "agent_1: observation Box(-inf, inf, (12,), float32), action Discrete(5)" in out
    for name in ("parallel API", "seed", "data", "render"):
        assert f"PASS  {name}" in out
    assert "4 of 4 checks passed" in out


def test_cli_scenarios_check_fails_a_faulty_scenario(capsys):
    assert main(["scenarios", "check", FAULTY, "fault=obs_out_of_space", "episode=3"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  data" in out and "agent 'agent_0' observation" in out
    assert out.strip().splitlines()[-1].startswith("2 of 4 checks passed; failed: ")


def test_cli_scenarios_check_rejects_a_malformed_argument(capsys):
    assert main(["scenarios", "check", "simple_spread_v3", "N"]) == 2
    assert "expected KEY=VALUE" in capsys.readouterr().err


# -- wiring into RLlib ------------------------------------------------------------


def test_pettingzoo_backend_gets_the_fault_reporting_runner_callbacks_and_agent_order():
    from marl.experiment import load_config
    from marl.rllib.faults import FaultReportingEnvRunner, stop_on_fault_after_iteration, stop_on_fault_after_restore
    from marl.rllib.ordering import AgentOrderedEnvToModule
    from tests.conftest import REPO

    config = load_config(REPO / "configs" / "mappo_simple_spread.yaml", ["scenario.backend=pettingzoo", "scenario.check_steps=2"])
    rllib = config.training.to_rllib(config, num_gpus_per_learner=0)
    assert rllib.env_runner_cls is FaultReportingEnvRunner
    assert isinstance(rllib._env_to_module_connector, AgentOrderedEnvToModule)
    assert rllib.callbacks_on_train_result is stop_on_fault_after_iteration
    assert rllib.callbacks_on_env_runners_recreated is stop_on_fault_after_restore
    assert rllib.restart_failed_sub_environments is False
    assert rllib.env_config["scenario"]["check_steps"] == 2
    opted_in = load_config(REPO / "configs" / "mappo_simple_spread.yaml", ["scenario.backend=pettingzoo", "resources.restart_failed_sub_environments=true"])
    assert opted_in.training.to_rllib(opted_in, num_gpus_per_learner=0).restart_failed_sub_environments is True


def test_checks_before_ray_warn_instead_when_the_user_declared_the_scenario_flaky():
    from marl.experiment import load_config
    from marl.training.runner import checks_before_ray
    from tests.conftest import REPO

    overrides = ["scenario.backend=pettingzoo", f"scenario.name={FAULTY}", "scenario.kwargs={fault: step_raises, episode: 2}"]
    config = load_config(REPO / "configs" / "mappo_simple_spread.yaml", overrides)
    spec = ScenarioSpec(**config.scenario.model_dump())
    with pytest.raises(ScenarioFault, match="planted step fault"):
        checks_before_ray(config, spec)
    flaky = load_config(REPO / "configs" / "mappo_simple_spread.yaml", [*overrides, "resources.restart_failed_sub_environments=true"])
    assert "planted step fault" in str(checks_before_ray(flaky, spec))
    plain = load_config(REPO / "configs" / "mappo_simple_spread.yaml", ["scenario.backend=pettingzoo"])
    assert checks_before_ray(plain, ScenarioSpec(**plain.scenario.model_dump())) is None
