"""The fast path (scenario.backend: vectorized) gives the learner the same data as RLlib's runner.

Runners are built in process (no Ray cluster), as RLlib builds a remote one:
- episode chunks built from arrays equal the step-by-step ones after the learner connector
  (GAE, value targets, loss mask: everything the losses read);
- with deterministic actions and the same seeds and weights, the vectorized runner and
  RLlib's `MultiAgentEnvRunner` over the PettingZoo adapter produce the same episodes (PPO's
  modules, which RLlib samples from, and MADDPG's, which return their actions)
  (observations and rewards within the backend's 1e-5, identical discrete actions), over several
  episodes per world, so unseeded resets continue the same streams;
- with exploration, the learner's log-probabilities of the stored actions equal the stored
  ones (a PPO ratio of exactly 1 before the update): observations, actions and logp line up;
- counters and episode metrics are logged under the stock keys.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.env.multi_agent_env_runner import MultiAgentEnvRunner
from ray.rllib.env.multi_agent_episode import MultiAgentEpisode
from ray.rllib.evaluation.postprocessing import Postprocessing

from marl.experiment import load_config
from marl.rllib.episodes import AgentChunk, build_episode_chunk
from marl.rllib.vectorized_env_runner import VectorizedMultiAgentEnvRunner
from tests.conftest import REPO, local_learner

CASES = {
    # RLlib's defaults where the shipped config differs: a shared policy, the time limit terminal.
    "mappo_spread": ("mappo_simple_spread.yaml", ["policies.sharing=shared", "scenario.bootstrap_at_time_limit=false"]),
    "ippo_spread_continuous": ("mappo_simple_spread_continuous.yaml", ["algorithm=ippo"]),
    "ippo_speaker_listener": ("ippo_simple_speaker_listener.yaml", []),
    "mappo_reference_no_id": ("mappo_simple_reference.yaml", ["policies.agent_id_in_obs=false"]),
    # A project scenario's own twin (scenarios/coordination_game.py); the critic's state is
    # the scenario's state(), not the concatenated observations.
    "mappo_coordination_game": ("mappo_coordination_game.yaml", []),
    # A module that returns its actions itself (MADDPG's Gumbel-softmax sample; greedy here):
    # taken as they are, as RLlib's GetActions does, with no log-probability added.
    "maddpg_spread": ("maddpg_simple_spread.yaml", []),
    # No twin: stacked PettingZoo copies (marl/envs/vectorized/stacked.py). Six heterogeneous
    # agents with a policy each, and a SuperSuit-wrapped scenario (a twin runs no wrappers).
    "mappo_world_comm_stacked": (
        "mappo_simple_spread.yaml",
        ["scenario.name=simple_world_comm_v3", "scenario.kwargs={max_cycles: 25}", "scenario.bootstrap_at_time_limit=false"],
    ),
    "ippo_spread_wrapped_stacked": ("ippo_simple_spread.yaml", ["scenario.wrappers=[pad_observations_v0]"]),
}
NUM_ENVS = 3


def rllib_config(case: str, backend: str, extra: tuple[str, ...] = ()):
    file, overrides = CASES[case]
    config = load_config(
        REPO / "configs" / file,
        [*overrides, f"scenario.backend={backend}", "resources.num_env_runners=1",
         f"resources.num_envs_per_env_runner={NUM_ENVS}", "seed=7", *extra],
    )
    return config.training.to_rllib(config, num_gpus_per_learner=0)


def runner_pair(case: str, extra: tuple[str, ...] = ()):
    """A stock and a vectorized runner as env runner 1 of the same experiment, same weights."""
    stock = MultiAgentEnvRunner(config=rllib_config(case, "pettingzoo", extra), worker_index=1)
    fast = VectorizedMultiAgentEnvRunner(config=rllib_config(case, "vectorized", extra), worker_index=1)
    fast.module.set_state(stock.module.get_state())
    return stock, fast


def done_episodes(episodes: list[MultiAgentEpisode]) -> list[MultiAgentEpisode]:
    # Episodes of 25 steps: chunks that start at t=0 and end the episode are whole episodes.
    return [e for e in episodes if e.is_done and e.env_t_started == 0]


def observations_key(episode: MultiAgentEpisode) -> bytes:
    """All observations of the episode (rounded): identifies it across the two runners."""
    return b"".join(np.round(episode.agent_episodes[a].get_observations(), 4).tobytes() for a in sorted(episode.agent_episodes))


@pytest.mark.parametrize("case", sorted(CASES))
def test_same_episodes_as_rllib_runner_with_deterministic_actions(case):
    stock, fast = runner_pair(case)
    try:
        # 60 vector steps: two whole episodes per world and part of a third. The stock runner
        # spends a step per reset, so it sees 2 whole episodes per world too.
        stock_eps = done_episodes(stock.sample(num_timesteps=60 * NUM_ENVS, explore=False))
        fast_eps = done_episodes(fast.sample(num_timesteps=60 * NUM_ENVS, explore=False))
    finally:
        stock.stop()
        fast.stop()
    assert len(stock_eps) == len(fast_eps) == 2 * NUM_ENVS
    by_observations = {observations_key(e): e for e in fast_eps}
    assert len(by_observations) == len(fast_eps), "every world must run its own episodes"
    for expected in stock_eps:
        got = by_observations.get(observations_key(expected))
        assert got is not None, "an episode of RLlib's runner has no twin on the fast path"
        assert len(got) == len(expected) == 25
        # RLlib marks an episode whose agents are all truncated as terminated too; so must we.
        assert (got.is_truncated, got.is_terminated) == (expected.is_truncated, expected.is_terminated) == (True, True)
        assert got.agent_episodes.keys() == expected.agent_episodes.keys()
        for agent, sa in expected.agent_episodes.items():
            mine = got.agent_episodes[agent]
            assert mine.module_id == sa.module_id
            assert (mine.is_terminated, mine.is_truncated) == (sa.is_terminated, sa.is_truncated)
            np.testing.assert_allclose(mine.get_observations(), sa.get_observations(), atol=1e-5)
            if np.issubdtype(sa.get_actions().dtype, np.integer):
                np.testing.assert_array_equal(mine.get_actions(), sa.get_actions())
            else:  # a batched forward pass over other rows may differ in the last float bits
                np.testing.assert_allclose(mine.get_actions(), sa.get_actions(), atol=1e-6)
            np.testing.assert_allclose(mine.get_rewards(), sa.get_rewards(), atol=1e-5)
            assert set(mine.extra_model_outputs) == set(sa.extra_model_outputs)
            for key in {Columns.ACTION_DIST_INPUTS, Columns.ACTION_LOGP} & set(sa.extra_model_outputs):
                np.testing.assert_allclose(mine.get_extra_model_outputs(key), sa.get_extra_model_outputs(key), atol=1e-4)


def test_time_limit_can_be_recorded_as_a_truncation_on_both_paths():
    """scenario.bootstrap_at_time_limit: episodes that hit mpe2's max_cycles end truncated, not
    terminated, for every agent, so GAE bootstraps from the final observation."""
    stock, fast = runner_pair("mappo_spread", ("scenario.bootstrap_at_time_limit=true",))
    try:
        episodes = {
            "stock": done_episodes(stock.sample(num_timesteps=30 * NUM_ENVS, explore=True)),
            "fast": done_episodes(fast.sample(num_timesteps=30 * NUM_ENVS, explore=True)),
        }
    finally:
        stock.stop()
        fast.stop()
    for path, done in episodes.items():
        assert len(done) == NUM_ENVS, path
        for episode in done:
            assert (episode.is_truncated, episode.is_terminated) == (True, False), path
            assert all((sa.is_truncated, sa.is_terminated) == (True, False) for sa in episode.agent_episodes.values()), path


def test_new_weights_change_the_actions():
    _, fast = runner_pair("mappo_spread")
    try:
        before = fast.sample(num_timesteps=10 * NUM_ENVS, explore=False, force_reset=True)
        state = fast.module.get_state()
        rng = np.random.default_rng(0)
        for module_state in state.values():
            actor = [name for name in module_state if name.startswith("actor.")]
            assert actor, f"no actor parameters in {sorted(module_state)}"
            for name in actor:
                module_state[name] = module_state[name] + rng.normal(size=module_state[name].shape).astype(np.float32)
        fast.module.set_state(state)
        fast._needs_initial_reset = True  # same seeds again
        after = fast.sample(num_timesteps=10 * NUM_ENVS, explore=False, force_reset=True)
    finally:
        fast.stop()
    actions = lambda eps: np.concatenate([sa.get_actions() for e in eps for _, sa in sorted(e.agent_episodes.items())])
    first = lambda eps: np.concatenate([sa.get_observations(0) for e in eps for _, sa in sorted(e.agent_episodes.items())])
    np.testing.assert_array_equal(first(before), first(after))
    assert not np.array_equal(actions(before), actions(after))


@pytest.mark.parametrize("case", ["mappo_spread", "ippo_speaker_listener", "ippo_spread_continuous"])
def test_learner_recomputes_the_stored_logp_with_exploration(case):
    rl = rllib_config(case, "vectorized")
    fast = VectorizedMultiAgentEnvRunner(config=rl, worker_index=1)
    learner = local_learner(rl)
    try:
        fast.module.set_state(learner.module.get_state(inference_only=True))
        episodes = fast.sample(num_timesteps=40 * NUM_ENVS, explore=True)
        batch = learner._learner_connector(rl_module=learner.module, batch={}, episodes=episodes, shared_data={}, metrics=None)
    finally:
        fast.stop()
    for module_id, columns in batch.items():
        module = learner.module[module_id]
        mask = columns[Columns.LOSS_MASK].bool()
        with torch.no_grad():
            out = module.forward_train(columns)
            dist = module.get_train_action_dist_cls().from_logits(out[Columns.ACTION_DIST_INPUTS])
            logp = dist.logp(columns[Columns.ACTIONS])
        ratio = torch.exp(logp - columns[Columns.ACTION_LOGP])[mask]
        assert ratio.numel() == 40 * NUM_ENVS * sum(1 for a in fast._agents if fast._module_of[a] == module_id)
        torch.testing.assert_close(ratio, torch.ones_like(ratio), atol=1e-5, rtol=0)


def test_chunks_built_from_arrays_equal_step_by_step_chunks_after_the_learner_connector():
    """The same data through `build_episode_chunk` and through RLlib's add_env_reset/add_env_step."""
    rl = rllib_config("mappo_spread", "vectorized")
    learner = local_learner(rl)
    rng = np.random.default_rng(0)
    agents = ["agent_0", "agent_1", "agent_2"]
    obs_space = rl.rl_module_spec.rl_module_specs["shared"].observation_space
    act_space = rl.rl_module_spec.rl_module_specs["shared"].action_space
    spaces = ({a: obs_space for a in agents}, {a: act_space for a in agents})
    modules = {a: "shared" for a in agents}

    def random_chunk(length):
        return {
            a: AgentChunk(
                observations=rng.normal(size=(length + 1, obs_space.shape[0])).astype(np.float32),
                actions=rng.integers(0, 5, size=length),
                rewards=rng.normal(size=length).astype(np.float32),
                extra_model_outputs={
                    Columns.ACTION_LOGP: rng.normal(size=length).astype(np.float32),
                    Columns.ACTION_DIST_INPUTS: rng.normal(size=(length, 5)).astype(np.float32),
                },
            )
            for a in agents
        }

    # A whole episode of 7 steps that every agent ends by truncation (RLlib then marks the
    # episode terminated as well), and the first 4 steps of an episode still running.
    chunks = [(random_chunk(7), True), (random_chunk(4), False)]
    from_arrays = [
        build_episode_chunk(episode_id=f"ep{i}", env_t_started=0, agents=data, module_ids=modules,
                            observation_spaces=spaces[0], action_spaces=spaces[1], terminated=done, truncated=done)
        for i, (data, done) in enumerate(chunks)
    ]
    stepwise = []
    for i, (data, done) in enumerate(chunks):
        episode = MultiAgentEpisode(id_=f"ep{i}", observation_space=spaces[0], action_space=spaces[1],
                                    agent_to_module_mapping_fn=rl.policy_mapping_fn)
        episode.add_env_reset(observations={a: data[a].observations[0] for a in agents}, infos={a: {} for a in agents})
        length = len(data[agents[0]].rewards)
        for t in range(length):
            last = t == length - 1
            episode.add_env_step(
                observations={a: data[a].observations[t + 1] for a in agents},
                actions={a: data[a].actions[t] for a in agents},
                rewards={a: float(data[a].rewards[t]) for a in agents},
                infos={a: {} for a in agents},
                terminateds={a: False for a in agents} | {"__all__": False},
                truncateds={a: done and last for a in agents} | {"__all__": done and last},
                extra_model_outputs={a: {k: v[t] for k, v in data[a].extra_model_outputs.items()} for a in agents},
            )
        stepwise.append(episode.to_numpy())

    def connector_batch(episodes):
        batch = learner._learner_connector(rl_module=learner.module, batch={}, episodes=episodes, shared_data={}, metrics=None)
        columns = batch["shared"]
        # Row order follows a set of agent ids in RLlib: sort rows by their content.
        order = np.lexsort(columns[Columns.OBS].numpy().T)
        return {k: v.numpy()[order] for k, v in columns.items() if isinstance(v, torch.Tensor)}

    expected, got = connector_batch(stepwise), connector_batch(from_arrays)
    assert expected.keys() == got.keys()
    assert {Postprocessing.ADVANTAGES, Postprocessing.VALUE_TARGETS, Columns.VF_PREDS, Columns.LOSS_MASK} <= got.keys()
    for key in expected:
        np.testing.assert_allclose(got[key], expected[key], rtol=1e-6, atol=1e-6, err_msg=key)


def test_metrics_use_the_stock_keys_and_count_every_step():
    _, fast = runner_pair("mappo_spread")
    try:
        fast.sample(num_timesteps=60 * NUM_ENVS, explore=True)
        metrics = fast.get_metrics()
    finally:
        fast.stop()
    assert metrics["num_env_steps_sampled"].peek() == 60 * NUM_ENVS
    assert metrics["num_episodes"].peek() == 2 * NUM_ENVS
    assert metrics["episode_len_mean"].peek() == 25
    agent_returns = {a: s.peek() for a, s in metrics["agent_episode_returns_mean"].items()}
    assert sorted(agent_returns) == ["agent_0", "agent_1", "agent_2"]
    assert metrics["episode_return_mean"].peek() == pytest.approx(sum(agent_returns.values()), rel=1e-4)
    assert metrics["num_module_steps_sampled"]["shared"].peek() == 3 * 60 * NUM_ENVS


@pytest.mark.parametrize(
    "overrides, twin",
    [
        ([], True),
        (["scenario.name=simple_tag_v3", "scenario.kwargs={}"], False),  # no twin
        (["scenario.wrappers=[pad_observations_v0]"], False),  # a twin runs no wrappers
        (["scenario.kwargs={N: 3, dynamic_rescaling: true}"], False),  # nor kwargs it lacks
    ],
)
def test_setups_a_twin_cannot_run_run_as_stacked_copies(overrides, twin):
    from marl.envs.vectorized import make_vectorized
    from marl.envs.vectorized.stacked import StackedScenario

    config = load_config(REPO / "configs" / "mappo_simple_spread.yaml", ["scenario.backend=vectorized", *overrides])
    backend = make_vectorized(config.scenario.name, config.scenario.kwargs, 2, config.scenario.wrappers)
    assert isinstance(backend, StackedScenario) is not twin


def test_stacked_copies_refuse_agents_that_leave_early_in_one_line():
    from marl.envs.vectorized import make_vectorized
    from marl.errors import ScenarioFault

    backend = make_vectorized("tests.scenarios_for_tests:leaving_agents_env", {}, 2)  # a1 leaves at step 2
    backend.reset([0, 1])
    backend.step({agent: np.zeros(2, np.int64) for agent in backend.possible_agents})
    with pytest.raises(ScenarioFault, match=r"agents \['a1'\] left world 0's episode.*use scenario.backend: pettingzoo"):
        backend.step({agent: np.zeros(2, np.int64) for agent in backend.possible_agents})


def test_marl_scenarios_marks_the_scenarios_with_a_fast_path(capsys):
    from marl.cli import main

    assert main(["scenarios"]) == 0
    headers = [line for line in capsys.readouterr().out.splitlines() if line and not line.startswith(" ")]
    marked = sorted(line.split()[0] for line in headers if "[vectorized twin]" in line)
    assert marked == ["coordination_game", "simple_reference_v3", "simple_speaker_listener_v4", "simple_spread_v3"]


def test_a_scenario_named_by_path_offers_its_module_twin():
    from marl.envs.vectorized import vectorized_factory
    from scenarios.coordination_game import vectorized_env

    name = "scenarios.coordination_game:parallel_env"
    assert vectorized_factory(name) is vectorized_env
    config = load_config(REPO / "configs" / "mappo_coordination_game.yaml", [f"scenario.name={name}", "scenario.backend=vectorized"])
    assert config.scenario.backend == "vectorized"
