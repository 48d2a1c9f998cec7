"""Coordination metrics on cases with known answers: information in nats, JS distance,
landmark assignment, DAG statistics, social influence, signalling (numpy/pandas only, no Ray)."""

from __future__ import annotations

import math
from itertools import permutations

import numpy as np
import pandas as pd
import pytest

from coordination.metrics import (
    assignment_entropy,
    bin_states,
    conditional_mutual_information,
    dag_statistics,
    entropy,
    jensen_shannon_distance,
    landmark_coverage,
    mutual_information,
    nearest_landmark_assignment,
    pairwise_action_mi,
    per_agent_landmark_entropy,
    policy_diversity,
    positive_listening,
    positive_signalling,
    social_influence,
)

TOL = 1e-9
LN2, LN3, LN4 = math.log(2), math.log(3), math.log(4)


def plogp_entropy(*probabilities: float) -> float:
    """-sum p ln p, written out for the hand computations below."""
    return -sum(p * math.log(p) for p in probabilities if p > 0)


# -- entropy and mutual information -----------------------------------------------------


def test_entropy_of_uniform_and_constant_sequences():
    assert entropy(np.arange(5)) == pytest.approx(math.log(5), abs=TOL)
    assert entropy([7, 7, 7]) == pytest.approx(0.0, abs=TOL)


def test_mutual_information_of_identical_uniform_variables_is_ln_k():
    for k in (2, 3, 6):
        x = np.tile(np.arange(k), 10)
        assert mutual_information(x, x) == pytest.approx(math.log(k), abs=TOL)


def test_mutual_information_hand_computed():
    # p(x) = (1/2, 1/2), p(y) = (1/4, 3/4), p(x, y): (0,0) 1/4, (0,1) 1/4, (1,1) 1/2
    x, y = [0, 0, 1, 1], [0, 1, 1, 1]
    expected = plogp_entropy(0.5, 0.5) + plogp_entropy(0.25, 0.75) - plogp_entropy(0.25, 0.25, 0.5)
    assert mutual_information(x, y) == pytest.approx(expected, abs=TOL)
    assert mutual_information(x, y) == pytest.approx(0.2157615543, abs=1e-9)
    # symmetric, and labels only matter up to renaming
    assert mutual_information(y, x) == pytest.approx(expected, abs=TOL)
    assert mutual_information(["a", "a", "b", "b"], [5, 9, 9, 9]) == pytest.approx(expected, abs=TOL)


def test_mutual_information_of_exactly_independent_design_is_zero():
    # every (x, y) pair occurs equally often: the empirical joint factorises exactly
    x, y = np.repeat(np.arange(4), 3), np.tile(np.arange(3), 4)
    assert mutual_information(x, y) == pytest.approx(0.0, abs=TOL)


def test_mutual_information_of_sampled_independent_variables_is_near_zero():
    # For independent X, Y with k_x = k_y = 4, 2N * I_plugin is asymptotically chi-squared
    # with (k_x - 1)(k_y - 1) = 9 degrees of freedom (the G-test), so I has mean 9 / (2N)
    # and exceeds chi2_9 quantile 0.9999 (= 33.72) / (2N) with probability 1e-4.
    n = 20_000
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 4, n), rng.integers(0, 4, n)
    assert 0.0 <= mutual_information(x, y) < 33.72 / (2 * n)


def test_miller_madow_adds_the_observed_bin_counts_term():
    x, y = [0, 0, 1, 1], [0, 1, 1, 1]
    # m_x = 2, m_y = 2, m_xy = 3 observed cells, N = 4
    correction = ((2 - 1) + (2 - 1) - (3 - 1)) / (2 * 4)
    assert mutual_information(x, y, miller_madow=True) == pytest.approx(mutual_information(x, y) + correction, abs=TOL)
    x, y = [0, 1, 2, 0, 1, 2], [0, 0, 0, 1, 1, 1]  # m_x = 3, m_y = 2, m_xy = 6, N = 6
    assert mutual_information(x, y, miller_madow=True) == pytest.approx(
        mutual_information(x, y) + (2 + 1 - 5) / 12, abs=TOL
    )


def test_miller_madow_removes_most_of_the_bias_on_independent_variables():
    # plug-in bias ~ 9 / (2N) = 0.0225 at N = 200; Miller-Madow's residual bias is O(1/N^2)
    rng = np.random.default_rng(1)
    samples = [(rng.integers(0, 4, 200), rng.integers(0, 4, 200)) for _ in range(300)]
    plugin = np.mean([mutual_information(x, y) for x, y in samples])
    corrected = np.mean([mutual_information(x, y, miller_madow=True) for x, y in samples])
    assert plugin == pytest.approx(9 / 400, rel=0.2)
    assert abs(corrected) < plugin / 5


def test_conditional_mi_is_zero_when_both_are_functions_of_the_condition():
    z = np.tile(np.arange(4), 5)
    x, y = z.copy(), z % 2
    assert mutual_information(x, y) == pytest.approx(LN2, abs=TOL)  # dependent unconditionally
    assert conditional_mutual_information(x, y, z) == pytest.approx(0.0, abs=TOL)
    assert conditional_mutual_information(z, z, z) == pytest.approx(0.0, abs=TOL)


def test_conditional_mi_can_exceed_unconditional_mi():
    # y = x XOR z with x, z independent fair bits: I(X;Y) = 0 but I(X;Y|Z) = ln 2
    x, z = np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1])
    y = x ^ z
    assert mutual_information(x, y) == pytest.approx(0.0, abs=TOL)
    assert conditional_mutual_information(x, y, z) == pytest.approx(LN2, abs=TOL)


def test_conditional_mi_with_constant_condition_is_mi():
    x, y = [0, 0, 1, 1, 2], [0, 1, 1, 1, 0]
    for miller_madow in (False, True):
        assert conditional_mutual_information(x, y, [3] * 5, miller_madow=miller_madow) == pytest.approx(
            mutual_information(x, y, miller_madow=miller_madow), abs=TOL
        )


@pytest.mark.parametrize("miller_madow", [False, True])
def test_conditional_mi_equals_the_weighted_average_of_per_z_mi(miller_madow):
    rng = np.random.default_rng(2)
    z = rng.integers(0, 3, 300)
    x = (z + rng.integers(0, 2, 300)) % 3
    y = (x + (rng.random(300) < 0.3)) % 3
    weighted = sum(
        np.mean(z == value) * mutual_information(x[z == value], y[z == value], miller_madow=miller_madow)
        for value in np.unique(z)
    )
    assert conditional_mutual_information(x, y, z, miller_madow=miller_madow) == pytest.approx(weighted, abs=1e-12)


# -- pairwise action MI and state binning -----------------------------------------------


def _three_agent_actions() -> dict[str, np.ndarray]:
    # "a" uniform over 4, "b" a copy of "a", "c" uniform over 3 and exactly independent of "a"
    a = np.repeat(np.arange(4), 3)
    return {"a": a, "b": a.copy(), "c": np.tile(np.arange(3), 4)}


def test_pairwise_action_mi_matrix():
    matrix = pairwise_action_mi(_three_agent_actions())
    expected = pd.DataFrame(
        [[LN4, LN4, 0.0], [LN4, LN4, 0.0], [0.0, 0.0, LN3]], index=["a", "b", "c"], columns=["a", "b", "c"]
    )
    pd.testing.assert_frame_equal(matrix, expected, atol=TOL, check_exact=False)
    # a DataFrame with one column per agent gives the same matrix
    pd.testing.assert_frame_equal(pairwise_action_mi(pd.DataFrame(_three_agent_actions())), matrix)


def test_pairwise_action_mi_conditioned_on_state():
    actions = _three_agent_actions()
    # the state determines "a" (hence "b"): their MI and entropies vanish given it, "c" keeps H = ln 3
    matrix = pairwise_action_mi(actions, state=actions["a"])
    np.testing.assert_allclose(matrix.to_numpy(), np.diag([0.0, 0.0, LN3]), atol=TOL)


def test_pairwise_action_mi_is_symmetric_on_random_actions():
    rng = np.random.default_rng(3)
    base = rng.integers(0, 3, 500)
    actions = {agent: (base + rng.integers(0, shift + 1, 500)) % 3 for shift, agent in enumerate("wxyz")}
    matrix = pairwise_action_mi(actions).to_numpy()
    np.testing.assert_allclose(matrix, matrix.T, atol=TOL)
    # no off-diagonal entry exceeds either agent's entropy
    assert np.all(matrix <= np.minimum.outer(np.diag(matrix), np.diag(matrix)) + TOL)


def test_bin_states_equal_width_cells():
    values = np.array([[0.0, 0.0], [0.49, 10.0], [0.5, 10.0], [1.0, 0.0], [0.1, 1.0]])
    # dim 0: width 0.5 -> bins 0, 0, 1, 1 (max in last), 0; dim 1: width 5 -> 0, 1, 1, 0, 0
    labels = bin_states(values, bins=2)
    cells = [(0, 0), (0, 1), (1, 1), (1, 0), (0, 0)]
    for i in range(len(cells)):
        for j in range(len(cells)):
            assert (labels[i] == labels[j]) == (cells[i] == cells[j])
    assert sorted(set(labels.tolist())) == [0, 1, 2, 3]


def test_bin_states_one_dimension_and_constant_dimension():
    np.testing.assert_array_equal(bin_states(np.array([0.0, 0.3, 0.7, 1.0]), bins=2), [0, 0, 1, 1])
    # a constant second dimension does not split cells
    values = np.array([[0.0, 5.0], [0.3, 5.0], [0.7, 5.0], [1.0, 5.0]])
    np.testing.assert_array_equal(bin_states(values, bins=2), [0, 0, 1, 1])


# -- policy distances -------------------------------------------------------------------


def test_jensen_shannon_distance_bounds_and_hand_value():
    assert jensen_shannon_distance([0.2, 0.3, 0.5], [0.2, 0.3, 0.5]) == pytest.approx(0.0, abs=TOL)
    assert jensen_shannon_distance([1.0, 0.0, 0.0], [0.0, 0.5, 0.5]) == pytest.approx(math.sqrt(LN2), abs=TOL)
    # m = (3/4, 1/4): KL(p||m) = ln(4/3), KL(q||m) = ln(4/3) / 2, JS = 3/4 ln(4/3)
    assert jensen_shannon_distance([1.0, 0.0], [0.5, 0.5]) == pytest.approx(
        math.sqrt(0.75 * math.log(4 / 3)), abs=TOL
    )


def test_jensen_shannon_distance_is_batched_and_symmetric():
    rng = np.random.default_rng(4)
    p, q = rng.dirichlet(np.ones(5), size=(3, 4)), rng.dirichlet(np.ones(5), size=(3, 4))
    distance = jensen_shannon_distance(p, q)
    assert distance.shape == (3, 4)
    np.testing.assert_allclose(distance, jensen_shannon_distance(q, p), atol=TOL)
    assert np.all((distance > 0) & (distance <= math.sqrt(LN2)))
    assert distance[1, 2] == pytest.approx(jensen_shannon_distance(p[1, 2], q[1, 2]), abs=TOL)


def test_policy_diversity_matrix():
    same = np.array([[1.0, 0.0], [0.5, 0.5]])
    # "c" is disjoint from "a" on state 0 (distance sqrt(ln 2)) and equal on state 1 (0)
    other = np.array([[0.0, 1.0], [0.5, 0.5]])
    matrix = policy_diversity({"a": same, "b": same.copy(), "c": other})
    expected = np.array([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0]]) * math.sqrt(LN2) / 2
    np.testing.assert_allclose(matrix.to_numpy(), expected, atol=TOL)
    assert list(matrix.index) == list(matrix.columns) == ["a", "b", "c"]


# -- simple_spread assignment and coverage ----------------------------------------------


def test_assignment_entropy_fixed_roles_is_zero():
    assignments = np.tile([2, 0, 1], (10, 1))
    assert assignment_entropy(assignments) == pytest.approx(0.0, abs=TOL)
    np.testing.assert_allclose(per_agent_landmark_entropy(assignments), [0.0, 0.0, 0.0], atol=TOL)


def test_assignment_entropy_all_permutations_is_ln_n_factorial():
    assignments = np.array(list(permutations(range(3))) * 2)  # each of the 3! permutations twice
    assert assignment_entropy(assignments) == pytest.approx(math.log(6), abs=TOL)
    np.testing.assert_allclose(per_agent_landmark_entropy(assignments), [LN3] * 3, atol=TOL)


def test_assignment_entropy_hand_computed():
    assignments = [[0, 1], [0, 1], [1, 0], [0, 1]]  # joint (0,1) 3/4, (1,0) 1/4
    assert assignment_entropy(assignments) == pytest.approx(plogp_entropy(0.75, 0.25), abs=TOL)
    np.testing.assert_allclose(per_agent_landmark_entropy(assignments), [plogp_entropy(0.75, 0.25)] * 2, atol=TOL)


LANDMARKS = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
AGENTS = np.array([[0.05, 0.0], [1.0, 0.2], [5.0, 5.0]])  # 0.05 from landmark 0, 0.2 from landmark 1, far away


def test_landmark_coverage_hand_placed():
    assert landmark_coverage(AGENTS, LANDMARKS, radius=0.1) == pytest.approx(1 / 3)
    assert landmark_coverage(AGENTS, LANDMARKS, radius=0.2) == pytest.approx(2 / 3)  # radius is inclusive
    assert landmark_coverage(LANDMARKS, LANDMARKS, radius=0.0) == pytest.approx(1.0)
    # a batch of two worlds; two agents on one landmark cover it once
    stacked = np.stack([AGENTS, np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 0.0]])])
    np.testing.assert_allclose(landmark_coverage(stacked, LANDMARKS, radius=0.1), [1 / 3, 2 / 3])


def test_nearest_landmark_assignment_hand_placed():
    # agent 2 at (5, 5) is sqrt(41) from landmarks 1 and 2: the tie goes to the lower index
    np.testing.assert_array_equal(nearest_landmark_assignment(AGENTS, LANDMARKS), [0, 1, 1])
    batch = np.stack([AGENTS, LANDMARKS[::-1]])
    np.testing.assert_array_equal(nearest_landmark_assignment(batch, LANDMARKS), [[0, 1, 1], [2, 1, 0]])


# -- DAG statistics ---------------------------------------------------------------------

N_NODES = 4
EMPTY = np.zeros((N_NODES, N_NODES), dtype=int)
CHAIN = np.eye(N_NODES, k=1, dtype=int)  # 0 -> 1 -> 2 -> 3
COMPLETE = np.triu(np.ones((N_NODES, N_NODES), dtype=int), k=1)  # i -> j for all i < j


@pytest.mark.parametrize(
    ("graph", "density", "depth"),
    [
        (EMPTY, 0.0, 0),
        (CHAIN, (N_NODES - 1) / (N_NODES * (N_NODES - 1) / 2), N_NODES - 1),
        (COMPLETE, 1.0, N_NODES - 1),
    ],
    ids=["empty", "chain", "complete"],
)
def test_dag_statistics_of_reference_graphs(graph, density, depth):
    stats = dag_statistics(graph[None])
    assert stats.edge_density == pytest.approx(density)
    assert stats.mean_depth == depth
    np.testing.assert_array_equal(stats.edge_frequency, graph)


def test_dag_statistics_averages_over_samples():
    stats = dag_statistics(np.stack([EMPTY, CHAIN, COMPLETE]))
    assert stats.edge_density == pytest.approx((0.0 + 0.5 + 1.0) / 3)
    assert stats.mean_depth == pytest.approx((0 + 3 + 3) / 3)
    np.testing.assert_allclose(stats.density_per_sample, [0.0, 0.5, 1.0])
    np.testing.assert_allclose(stats.depth_per_sample, [0, 3, 3])
    # the chain's edges appear in 2 of 3 samples, the complete DAG's others in 1 of 3
    np.testing.assert_allclose(stats.edge_frequency, (CHAIN + COMPLETE) / 3)


def test_dag_statistics_depth_is_longest_not_shortest_path():
    graph = CHAIN.copy()
    graph[0, 3] = 1  # shortcut 0 -> 3 leaves the longest path at 3 edges
    assert dag_statistics(graph).mean_depth == 3


@pytest.mark.parametrize(
    ("graph", "message"),
    [
        (CHAIN + CHAIN.T, "cycle"),
        (CHAIN + np.eye(N_NODES, k=-3, dtype=int), "cycle"),  # 3 -> 0 closes the chain
        (np.eye(N_NODES, dtype=int), "cycle"),  # self-loops
        (CHAIN * 2, "only 0 and 1"),
        (np.zeros((3, 4)), "shape"),
    ],
    ids=["two-cycle", "four-cycle", "self-loop", "not-binary", "not-square"],
)
def test_dag_statistics_rejects_bad_graphs(graph, message):
    with pytest.raises(ValueError, match=message):
        dag_statistics(graph)


# -- social influence -------------------------------------------------------------------

PI_K = np.array([0.5, 0.5])
RESPONDS_TO_K = np.array([[0.9, 0.1], [0.1, 0.9]])  # row a_k: p(a_j | a_k)
IGNORES_K = np.array([[0.3, 0.7], [0.3, 0.7]])


def test_social_influence_is_zero_when_j_ignores_k():
    assert social_influence(IGNORES_K[0], IGNORES_K, PI_K) == pytest.approx(0.0, abs=TOL)


def test_social_influence_hand_computed_kl():
    # k took action 0; marginal = 0.5 * (0.9, 0.1) + 0.5 * (0.1, 0.9) = (0.5, 0.5)
    expected = 0.9 * math.log(0.9 / 0.5) + 0.1 * math.log(0.1 / 0.5)
    assert social_influence(RESPONDS_TO_K[0], RESPONDS_TO_K, PI_K) == pytest.approx(expected, abs=TOL)
    assert expected == pytest.approx(0.3680642071, abs=1e-9)
    # a skewed pi_k: marginal = 0.8 * (0.9, 0.1) + 0.2 * (0.1, 0.9) = (0.74, 0.26); k took action 1
    skewed = 0.1 * math.log(0.1 / 0.74) + 0.9 * math.log(0.9 / 0.26)
    assert social_influence(RESPONDS_TO_K[1], RESPONDS_TO_K, [0.8, 0.2]) == pytest.approx(skewed, abs=TOL)


def test_social_influence_is_batched_over_steps():
    influence = social_influence(
        np.stack([IGNORES_K[1], RESPONDS_TO_K[0]]), np.stack([IGNORES_K, RESPONDS_TO_K]), np.stack([PI_K, PI_K])
    )
    assert influence.shape == (2,)
    assert influence[0] == pytest.approx(0.0, abs=TOL)
    assert influence[1] > 0.3


def test_social_influence_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="p_counterfactual must be"):
        social_influence(RESPONDS_TO_K[0], RESPONDS_TO_K, [0.2, 0.3, 0.5])


# -- speaker-listener signalling --------------------------------------------------------


def test_positive_signalling():
    targets = np.tile(np.arange(3), 10)
    assert positive_signalling(targets, targets) == pytest.approx(LN3, abs=TOL)  # the message names the target
    assert positive_signalling(np.eye(3)[targets], targets) == pytest.approx(LN3, abs=TOL)  # one-hot rows
    assert positive_signalling(np.zeros(30, dtype=int), targets) == pytest.approx(0.0, abs=TOL)  # constant message


def test_positive_listening_paired_constant_difference_has_a_point_interval():
    result = positive_listening([1.0, 2.0, 5.0, 4.0], [0.0, 1.0, 4.0, 3.0], np.random.default_rng(0), paired=True)
    assert (result.estimate, result.low, result.high) == pytest.approx((1.0, 1.0, 1.0), abs=TOL)


def test_positive_listening_interval_matches_the_normal_approximation():
    # two groups of 400 with unit variance: SE of the difference = sqrt(2 / 400), 95% CI half-width 1.96 SE
    data_rng = np.random.default_rng(5)
    actual, intervened = data_rng.normal(1.0, 1.0, 400), data_rng.normal(0.0, 1.0, 400)
    result = positive_listening(actual, intervened, np.random.default_rng(6), n_resamples=4000)
    assert result.estimate == pytest.approx(actual.mean() - intervened.mean(), abs=TOL)
    assert result.low < result.estimate < result.high
    standard_error = math.sqrt(actual.var(ddof=1) / 400 + intervened.var(ddof=1) / 400)
    assert result.high - result.low == pytest.approx(2 * 1.96 * standard_error, rel=0.1)
    assert result.low > 0.5  # a true difference of 1 is detected
    # the same generator seed reproduces the interval
    again = positive_listening(actual, intervened, np.random.default_rng(6), n_resamples=4000)
    assert (again.low, again.high) == (result.low, result.high)


def test_positive_listening_paired_needs_equal_lengths():
    with pytest.raises(ValueError, match="same length"):
        positive_listening([1.0, 2.0], [1.0], np.random.default_rng(0), paired=True)


# -- bad input: ValueError with a one-line message naming the problem --------------------

GOOD_P = [0.5, 0.5]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: mutual_information([0, 1, 1], [0, 1]), "same length"),
        (lambda: conditional_mutual_information([0, 1], [0, 1], [0, 1, 1]), "same length"),
        (lambda: mutual_information([], []), "empty"),
        (lambda: pairwise_action_mi({"a": [0, 1], "b": [0, 1, 1]}), "same length"),
        (lambda: pairwise_action_mi({"a": [0, 1], "b": [1, 0]}, state=[0]), "same length"),
        (lambda: bin_states(np.zeros((4, 2)), bins=0), "bins must be a positive integer"),
        (lambda: bin_states(np.array([0.0, np.nan]), bins=2), "NaN"),
        (lambda: jensen_shannon_distance([1.2, -0.2], GOOD_P), "negative probabilities"),
        (lambda: jensen_shannon_distance([0.5, 0.6], GOOD_P), "does not sum to 1"),
        (lambda: jensen_shannon_distance([0.2, 0.3, 0.5], GOOD_P), "different numbers of outcomes"),
        (lambda: policy_diversity({"a": np.full((2, 2), 0.5), "b": np.full((3, 2), 0.5)}), "same shape"),
        (lambda: social_influence([0.5, 0.6], RESPONDS_TO_K, PI_K), "p_actual does not sum to 1"),
        (lambda: social_influence(GOOD_P, -RESPONDS_TO_K, PI_K), "p_counterfactual has negative"),
        (lambda: assignment_entropy([0, 1, 2]), "episodes, agents"),
        (lambda: landmark_coverage(AGENTS, LANDMARKS, radius=-1.0), "radius"),
        (lambda: nearest_landmark_assignment(AGENTS, np.zeros((3, 3))), "same dim"),
        (lambda: positive_listening([1.0, np.inf], [0.0], np.random.default_rng(0)), "returns_actual"),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_bad_input_raises_a_one_line_value_error(call, message):
    with pytest.raises(ValueError, match=message) as error:
        call()
    assert "\n" not in str(error.value)


def test_spoken_words_of_discrete_and_box_speakers():
    """A Box message's word is its largest channel (as the world's `message` column records it),
    so a speaker naming the goal with soft vectors gets ln 3 nats, not the log of the row count."""
    import pandas as pd

    from coordination.analyze import spoken_words

    goals = np.array([0, 1, 2] * 10)
    soft = np.eye(3)[goals] * 0.8 + np.random.default_rng(0).uniform(0, 0.1, (30, 3))  # every row a distinct vector
    box = pd.DataFrame({"action_0": soft[:, 0], "action_1": soft[:, 1], "action_2": soft[:, 2], "action_3": np.nan})
    np.testing.assert_array_equal(spoken_words(box), goals)
    assert positive_signalling(spoken_words(box), goals) == pytest.approx(LN3, abs=TOL)
    discrete = pd.DataFrame({"action": goals, "action_0": np.nan})
    np.testing.assert_array_equal(spoken_words(discrete), goals)
