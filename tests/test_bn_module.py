"""BN-MAPPO's module, team env and learner without a Ray cluster: real rollouts on RLlib's own
env runner (in process), forward passes and one learner update on hand-made batches."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from ray.rllib.core.columns import Columns
from ray.rllib.env.multi_agent_env_runner import MultiAgentEnvRunner
from ray.rllib.evaluation.postprocessing import Postprocessing


from marl.core.keys import (
    ALPHA,
    BN_ADJACENCY,
    BN_AGENT_LOGP,
    BN_DENSITY,
    BN_SEEN_PARENT_ACTIONS,
    EDGE_DENSITY,
    PG_LOSS,
    SPARSITY_PENALTY,
    SURROGATE_LOSS,
    TAU,
    edge_frequency_key,
)
from marl.experiment import load_config
from marl.envs.team import TEAM
from marl.errors import ConfigError
from marl.evaluation import one_torch_thread
from tests.conftest import REPO, local_learner

N = 5


@pytest.fixture(autouse=True)
def single_torch_thread():
    """Tiny networks: on a shared machine extra threads only wait for each other."""
    with one_torch_thread():
        yield


def _experiment(*overrides: str):
    return load_config(
        REPO / "configs" / "bn_mappo_coordination_game.yaml",
        [f"scenario.kwargs.n_agents={N}", "resources.num_envs_per_env_runner=2", "seed=3", *overrides],
    )


def _module(*overrides: str):
    experiment = _experiment(*overrides)
    rllib_config = experiment.training.to_rllib(experiment, num_gpus_per_learner=0)
    return rllib_config.rl_module_spec.rl_module_specs[TEAM].build()


def _obs(module, rows=16, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(rows, module.observation_space.shape[0], generator=generator)


@pytest.mark.parametrize("dag", ["learned", "full"])
def test_rollout_acts_in_topological_order_and_each_agent_sees_its_parents_actual_actions(dag):
    # flip_prob 0: the next state IS the joint action the env received.
    experiment = _experiment(f"training.dag={dag}", "scenario.kwargs.flip_prob=0.0")
    runner = MultiAgentEnvRunner(config=experiment.training.to_rllib(experiment, num_gpus_per_learner=0), worker_index=1)
    try:
        episodes = runner.sample(num_timesteps=60, explore=True)
    finally:
        runner.stop()
    edges_seen = 0
    for episode in episodes:
        team = episode.agent_episodes[TEAM]
        actions = np.asarray(team.get_actions())  # (T, n)
        adjacency = np.asarray(team.get_extra_model_outputs(BN_ADJACENCY)).reshape(-1, N, N)
        seen = np.asarray(team.get_extra_model_outputs(BN_SEEN_PARENT_ACTIONS)).reshape(-1, N, N)  # [t, child, parent]
        joint_logp = np.asarray(team.get_extra_model_outputs(Columns.ACTION_LOGP))
        agent_logp = np.asarray(team.get_extra_model_outputs(BN_AGENT_LOGP))
        next_states = np.asarray(team.get_observations())[1:, -N:]  # the state closes the team observation
        np.testing.assert_array_equal(next_states, actions)  # the actions recorded are the actions taken
        np.testing.assert_allclose(joint_logp, agent_logp.sum(-1), rtol=1e-5)
        for t in range(len(actions)):
            assert nx.is_directed_acyclic_graph(nx.DiGraph(adjacency[t]))
            if dag == "full":
                np.testing.assert_array_equal(adjacency[t], np.triu(np.ones((N, N)), 1))
            for child in range(N):
                for parent in range(N):
                    expected = actions[t, parent] if adjacency[t, parent, child] else -1
                    assert seen[t, child, parent] == expected
            edges_seen += int(adjacency[t].sum())
    assert edges_seen > 0  # the check above was not vacuous


def test_aloha_rollout_with_a_user_given_graph():
    experiment = load_config(
        REPO / "configs" / "bn_mappo_aloha.yaml",
        ["resources.num_envs_per_env_runner=1", "training.dag=[[agent_3, agent_0], [agent_0, agent_1]]"],
    )
    runner = MultiAgentEnvRunner(config=experiment.training.to_rllib(experiment, num_gpus_per_learner=0), worker_index=1)
    try:
        episodes = runner.sample(num_timesteps=25, explore=True)
    finally:
        runner.stop()
    expected = np.zeros((10, 10))
    expected[3, 0] = expected[0, 1] = 1
    for episode in episodes:
        team = episode.agent_episodes[TEAM]
        actions = np.asarray(team.get_actions())
        seen = np.asarray(team.get_extra_model_outputs(BN_SEEN_PARENT_ACTIONS)).reshape(-1, 10, 10)
        for adjacency in np.asarray(team.get_extra_model_outputs(BN_ADJACENCY)).reshape(-1, 10, 10):
            np.testing.assert_array_equal(adjacency, expected)
        np.testing.assert_array_equal(seen[:, 0, 3], actions[:, 3])
        np.testing.assert_array_equal(seen[:, 1, 0], actions[:, 0])
        assert (seen >= 0).sum() == 2 * len(actions)  # nobody else sees anything
        assert actions.shape[1] == 10 and set(np.unique(actions)) <= {0, 1}


@pytest.mark.parametrize("bootstrap", [False, True])
def test_team_env_lays_out_every_agent_sums_rewards_and_keeps_the_time_limit_convention(bootstrap):
    from marl.envs.scenario import ScenarioSpec, scenario_env_config
    from marl.envs.team import TeamMultiAgentEnv

    spec = ScenarioSpec("coordination_game", {"n_agents": 3, "max_cycles": 2, "flip_prob": 0.0}, bootstrap_at_time_limit=bootstrap)
    env = TeamMultiAgentEnv(scenario_env_config(spec, agent_id_in_obs=True, global_state=True, seed=0))
    obs, _ = env.reset(seed=4)
    assert obs[TEAM].shape == (3 * (3 + 3) + 3,)  # 3 x [obs (3) | id (3)] + state (3)
    np.testing.assert_array_equal(obs[TEAM][3:6], [1, 0, 0])  # agent_0's id
    obs, rewards, terminateds, truncateds, _ = env.step({TEAM: np.array([1, 1, 0])})
    assert rewards[TEAM] == 3 * 1.0  # o = 2 of 3: 1 per agent, summed over the team
    np.testing.assert_array_equal(obs[TEAM][-3:], [1, 1, 0])
    assert not truncateds["__all__"]
    _, rewards, terminateds, truncateds, _ = env.step({TEAM: np.array([0, 0, 0])})
    assert rewards[TEAM] == 9.0 and truncateds["__all__"] and not terminateds["__all__"]
    assert truncateds[TEAM] is (not bootstrap)  # bootstrap: only "__all__", so RLlib records a truncation


def test_team_env_keeps_an_agent_that_left_as_zeros_without_its_action_or_reward():
    """Agents that die (killed knights, fallen walkers) stay in the team vector, as in SMAC."""
    from marl.envs.scenario import ScenarioSpec, scenario_env_config
    from marl.envs.team import TeamMultiAgentEnv

    spec = ScenarioSpec("tests.scenarios_for_tests:leaving_agents_env")  # a1 leaves at step 2, the rest truncate at 5
    env = TeamMultiAgentEnv(scenario_env_config(spec, agent_id_in_obs=False, global_state=True, seed=0))
    env.reset(seed=0)
    for step in range(1, 6):
        if step == 3:
            env.inner.env.step = _refusing_actions_of("a1", env.inner.env.step)
        obs, rewards, terminateds, truncateds, _ = env.step({TEAM: np.array([1, 1, 1])})
        a1 = obs[TEAM][2:4]
        if step < 2:
            np.testing.assert_array_equal(a1, [1, step])
        else:  # from the step it left: zeros, no action passed, no reward counted
            expected_reward = (0 + step + 1) + (2 + step + 1) + ((1 + step + 1) if step == 2 else 0)
            assert rewards[TEAM] == expected_reward
            if step > 2:
                np.testing.assert_array_equal(a1, [0, 0])
        assert terminateds[TEAM] is False and truncateds["__all__"] is (step == 5)


def _refusing_actions_of(agent, step):
    def checked(actions):
        assert agent not in actions, f"{agent} has left; its action must not reach the scenario"
        return step(actions)

    return checked


def test_training_forward_uses_the_stored_parents_actions():
    module = _module("training.dag=full")
    obs = _obs(module, rows=4)
    stored = torch.randint(0, 2, (4, N), generator=torch.Generator().manual_seed(1))
    out = module.forward_train({Columns.OBS: obs, Columns.ACTIONS: stored})
    agent_obs = module.agent_observations(obs)
    with torch.no_grad():
        for i in range(N):
            parents = torch.zeros(4, N, 2)
            parents[:, :i] = F.one_hot(stored[:, :i], 2).float()  # full DAG: every earlier agent
            logits = module.actor(torch.cat([agent_obs[:, i], parents.flatten(-2)], dim=-1))
            expected = torch.log_softmax(logits, -1).gather(-1, stored[:, i : i + 1]).squeeze(-1)
            torch.testing.assert_close(out[BN_AGENT_LOGP][:, i], expected)
    # Changing agent 0's stored action changes what its children see, not its own term.
    flipped = stored.clone()
    flipped[:, 0] = 1 - flipped[:, 0]
    again = module.forward_train({Columns.OBS: obs, Columns.ACTIONS: flipped})
    assert not torch.allclose(again[BN_AGENT_LOGP][:, 1:], out[BN_AGENT_LOGP][:, 1:])
    assert torch.all(out[BN_DENSITY] == 1.0)


def test_learned_graph_gets_gradients_from_the_policy_term_and_the_density():
    module = _module("training.dag=learned")
    obs = _obs(module, rows=32)
    stored = torch.randint(0, 2, (32, N), generator=torch.Generator().manual_seed(2))
    torch.manual_seed(0)
    out = module.forward_train({Columns.OBS: obs, Columns.ACTIONS: stored})
    (out[BN_AGENT_LOGP].sum() + out[BN_DENSITY].sum()).backward()
    for network in (module.edge_encoder, module.edge_decoder, module.order_net, module.actor):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in network.parameters())


def test_empty_dag_is_mappos_policy_input_and_decentralised_execution_ignores_the_graph():
    module = _module("training.dag=empty")
    obs = _obs(module)
    agent_obs = module.agent_observations(obs)
    stored = torch.randint(0, 2, (16, N), generator=torch.Generator().manual_seed(3))
    out = module.forward_train({Columns.OBS: obs, Columns.ACTIONS: stored})
    with torch.no_grad():
        logits = module.actor(torch.cat([agent_obs, torch.zeros(16, N, N * 2)], dim=-1))  # [o_i | id_i] only
    torch.testing.assert_close(out[Columns.ACTION_DIST_INPUTS].reshape(16, N, 2), logits)
    other = module.forward_train({Columns.OBS: obs, Columns.ACTIONS: 1 - stored})
    torch.testing.assert_close(other[Columns.ACTION_DIST_INPUTS], out[Columns.ACTION_DIST_INPUTS])

    # A learned module executed with the empty graph acts on its own observation alone.
    learned = _module("training.dag=learned")
    learned.execution_graph = "empty"
    greedy = learned.forward_inference({Columns.OBS: obs})
    assert torch.all(greedy[BN_ADJACENCY] == 0) and torch.all(greedy[BN_SEEN_PARENT_ACTIONS] == -1)
    with torch.no_grad():
        alone = learned.actor(torch.cat([learned.agent_observations(obs), torch.zeros(16, N, N * 2)], dim=-1))
    torch.testing.assert_close(greedy[Columns.ACTIONS], alone.argmax(-1))


def test_learner_loss_is_the_per_agent_surrogate_plus_the_sparsity_penalty():
    experiment = _experiment("stop.env_steps=1000")
    rllib_config = experiment.training.to_rllib(experiment, num_gpus_per_learner=0)
    learner = local_learner(rllib_config)
    learner.progress = 0.85  # tau = 0, alpha = 0.525 under the default schedule
    module = learner.module[TEAM].unwrapped()
    rows = 8
    obs = _obs(module, rows=rows, seed=5)
    actions = torch.randint(0, 2, (rows, N), generator=torch.Generator().manual_seed(6))
    old_logp = torch.full((rows, N), np.log(0.5)) + 0.1 * torch.randn(rows, N, generator=torch.Generator().manual_seed(7))
    advantages = torch.linspace(-1, 1, rows)
    batch = {
        Columns.OBS: obs,
        Columns.ACTIONS: actions,
        BN_AGENT_LOGP: old_logp,
        Columns.ACTION_LOGP: old_logp.sum(-1),
        Postprocessing.ADVANTAGES: advantages,
        Postprocessing.VALUE_TARGETS: torch.zeros(rows),
        Columns.VF_PREDS: torch.zeros(rows),
    }
    fwd_out = module.forward_train(batch)
    learner.compute_loss_for_module(module_id=TEAM, config=learner.config.get_config_for_module(TEAM), batch=batch, fwd_out=fwd_out)
    logged = {k: float(v) for k, v in learner.metrics.reduce()[TEAM].items() if not isinstance(v, dict)}

    ratio = torch.exp(fwd_out[BN_AGENT_LOGP] - old_logp).detach()
    adv = advantages[:, None]
    surrogate = -torch.min(ratio * adv, ratio.clamp(0.8, 1.2) * adv).mean()
    penalty = 0.525 * (fwd_out[BN_DENSITY].detach() - 0.0).abs().mean()
    assert logged[SURROGATE_LOSS] == pytest.approx(float(surrogate), rel=1e-5)
    assert logged[SPARSITY_PENALTY] == pytest.approx(float(penalty), rel=1e-5)
    assert logged[PG_LOSS] == pytest.approx(float(surrogate + penalty), rel=1e-5)
    assert (logged[TAU], logged[ALPHA]) == (0.0, pytest.approx(0.525))
    assert logged[EDGE_DENSITY] == pytest.approx(float(fwd_out[BN_DENSITY].mean()), rel=1e-5)
    assert {edge_frequency_key(j, i) for j in range(N) for i in range(N) if i != j} <= set(logged)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["training.dag=[[agent_0, agent_1], [agent_1, agent_0]]"], "cycle agent_0 -> agent_1 -> agent_0"),
        (["training.dag=[[agent_0, agent_9]]"], r"unknown agents \['agent_9'\]"),
        (["scenario.backend=vectorized"], "scenario.backend: 'vectorized' is not supported by bn_mappo"),
        (["policies.sharing=per_agent"], "policies.sharing"),
    ],
)
def test_bad_configs_are_one_line_errors_before_ray(overrides, message):
    with pytest.raises(ConfigError, match=message):
        _experiment(*overrides)
