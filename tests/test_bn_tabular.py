"""Tests for the exact tabular policy gradient on the coordination game, benchmarks/bn_tabular.py (no Ray)."""

import numpy as np
import pytest
import torch

from marl.algorithms.bn.dag import fixed_adjacency
from marl.evaluation import one_torch_thread
from scenarios.coordination_game import vectorized_env
from tests.conftest import load_benchmark


bn_tabular = load_benchmark("bn_tabular")
CoordinationGameMDP, TabularBNPolicy, joint_bits = bn_tabular.CoordinationGameMDP, bn_tabular.TabularBNPolicy, bn_tabular.joint_bits
exact_return, train_exact_policy_gradient = bn_tabular.exact_return, bn_tabular.train_exact_policy_gradient


@pytest.fixture(autouse=True)
def single_torch_thread():
    """Tiny matrices: on a shared machine extra threads only wait for each other."""
    with one_torch_thread():
        yield


def _policy(n, dag, runs=1, seed=0, init_std=1.0):
    return TabularBNPolicy(n, fixed_adjacency(dag, [f"agent_{i}" for i in range(n)]), runs, torch.Generator().manual_seed(seed), init_std)


def test_uniform_policy_and_optimum_by_hand_for_two_agents():
    mdp = CoordinationGameMDP(2)
    uniform = _policy(2, "empty", init_std=0.0)
    # Uniform actions -> a uniform next state: E[r] = (3 + 0 + 0 + 2) / 4 per step.
    assert exact_return(mdp, uniform.log_joint().exp()).item() == pytest.approx(1.25 / 0.05)
    # Best: both play 0 every step, landing on 00 w.p. 0.81 (3) and 11 w.p. 0.01 (2).
    assert mdp.optimal_value() == pytest.approx((0.81 * 3 + 0.01 * 2) / 0.05)


def test_transition_rows_are_distributions_and_bits_index_agents():
    mdp = CoordinationGameMDP(3)
    torch.testing.assert_close(mdp.transition().sum(-1), torch.ones(8, dtype=torch.float64))
    assert joint_bits(3)[6].tolist() == [0, 1, 1]  # 6 = agent_1 and agent_2 set


@pytest.mark.parametrize("dag", ["empty", "full", "chain"])
def test_joint_policy_is_a_distribution(dag):
    joint = _policy(3, dag, runs=4).log_joint().exp()
    assert joint.shape == (4, 8, 8)
    torch.testing.assert_close(joint.sum(-1), torch.ones(4, 8, dtype=torch.float64))


def test_full_dag_represents_correlation_that_independent_policies_cannot():
    policy = _policy(2, "full", init_std=0.0)
    with torch.no_grad():
        policy.logits[1][..., 0, :] = torch.tensor([20.0, -20.0])  # agent_0 played 0 -> play 0
        policy.logits[1][..., 1, :] = torch.tensor([-20.0, 20.0])  # agent_0 played 1 -> play 1
    joint = policy.log_joint().exp()[0, 0]  # state 00; joint actions 00, 10, 01, 11
    np.testing.assert_allclose(joint.detach().numpy(), [0.5, 0, 0, 0.5], atol=1e-8)
    # A product of marginals with these marginals would put 1/4 on every joint action.


def test_exact_return_matches_monte_carlo_in_the_real_environment():
    n, episodes, horizon, gamma = 2, 4000, 150, 0.95
    mdp = CoordinationGameMDP(n, gamma=gamma)
    policy = _policy(n, "full", seed=3)
    joint = policy.log_joint().exp()[0].detach().numpy()  # (S, A)
    exact = exact_return(mdp, torch.as_tensor(joint)[None]).item()

    env = vectorized_env(episodes, n_agents=n, max_cycles=horizon, flip_prob=0.1)
    env.reset(list(range(episodes)))  # uniform random initial states, as mu
    rng = np.random.default_rng(0)
    bits = joint_bits(n)
    returns = np.zeros(episodes)
    for t in range(horizon):
        state_index = (env.state().astype(int) << np.arange(n)).sum(-1)
        cumulative = joint[state_index].cumsum(-1)
        actions = bits[(rng.random((episodes, 1)) > cumulative).sum(-1)]
        _, rewards, _, _ = env.step({f"agent_{i}": actions[:, i] for i in range(n)})
        returns += gamma**t * rewards["agent_0"]
    standard_error = returns.std() / np.sqrt(episodes)
    assert abs(returns.mean() - exact) < 4 * standard_error + 0.05  # 0.05: the truncated tail


def test_gradient_ascent_improves_and_never_beats_the_optimum():
    mdp = CoordinationGameMDP(3)
    policy = _policy(3, "full", runs=4, seed=1)
    before = exact_return(mdp, policy.log_joint().exp()).detach()
    after = train_exact_policy_gradient(mdp, policy, lr=0.05, iterations=30)
    assert torch.all(after > before)
    assert torch.all(after <= mdp.optimal_value() + 1e-9)


def test_near_deterministic_all_zeros_reaches_the_optimum():
    mdp = CoordinationGameMDP(5)
    policy = _policy(5, "empty", init_std=0.0)
    with torch.no_grad():
        for logits in policy.logits:
            logits[..., :] = torch.tensor([30.0, -30.0], dtype=torch.float64)
    assert exact_return(mdp, policy.log_joint().exp()).item() == pytest.approx(mdp.optimal_value(), rel=1e-9)


def test_edges_must_follow_the_acting_order():
    with pytest.raises(ValueError, match="lower to higher"):
        TabularBNPolicy(2, np.array([[0, 0], [1, 0]]), 1, torch.Generator())
