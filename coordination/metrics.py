"""Coordination metrics as pure functions of logged data (numpy, pandas).

Everything here works on arrays that an evaluation run has already recorded
(actions, states, action probabilities, positions, messages, returns), so it is
tested on hand-made inputs and never needs Ray. (The DAG statistics are
marl/core/graphs.py's, the functions BN-MAPPO's learner logs with, so they run on
torch.)

Conventions:
- Information quantities are in nats (natural logarithm); divide by ln 2 for bits.
- Discrete sequences are 1-D arrays of labels (ints or any sortable values), or
  2-D arrays whose rows are labels (a message vector, a one-hot target).
- Probabilities are along the last axis and must be non-negative and sum to 1
  (to within PROBABILITY_ATOL); anything else raises ValueError.
- Randomness comes from an np.random.Generator argument, never global state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations
from typing import Mapping

import numpy as np
import pandas as pd

from marl.core.graphs import batched_depths, edge_density

PROBABILITY_ATOL = 1e-6
"""How far a probability vector's sum may be from 1 (float32 softmax outputs are off by ~1e-7)."""


# -- validation and label helpers -------------------------------------------------------


def _as_labels(values, name: str) -> np.ndarray:
    """Codes 0..k-1 for a discrete sequence: 1-D labels, or 2-D with one label per row."""
    array = np.asarray(values)
    if array.ndim not in (1, 2):
        raise ValueError(f"{name} must be 1-D (one label per sample) or 2-D (one row per sample), got {array.shape}")
    if len(array) == 0:
        raise ValueError(f"{name} is empty: need at least one sample")
    # np.unique's inverse turns any label set (ints, strings, rows) into compact codes.
    axis = 0 if array.ndim == 2 else None
    return np.unique(array, axis=axis, return_inverse=True)[1].reshape(-1)


def _check_same_length(**sequences: np.ndarray) -> None:
    lengths = {name: len(sequence) for name, sequence in sequences.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"sequences must have the same length, got {lengths}")


def _joint_labels(*codes: np.ndarray) -> np.ndarray:
    """One code per sample for the tuple of codes (the joint variable)."""
    return np.unique(np.stack(codes, axis=1), axis=0, return_inverse=True)[1].reshape(-1)


def _validate_probabilities(probabilities, name: str) -> np.ndarray:
    """`probabilities` as a float array whose last axis is a distribution, or ValueError."""
    array = np.asarray(probabilities, dtype=np.float64)
    if array.ndim == 0 or array.shape[-1] == 0:
        raise ValueError(f"{name} must have a last axis over outcomes, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinite values")
    if np.any(array < 0):
        raise ValueError(f"{name} has negative probabilities (min {array.min():.3g})")
    sums = array.sum(axis=-1)
    if not np.allclose(sums, 1.0, rtol=0.0, atol=PROBABILITY_ATOL):
        worst = sums.flat[np.argmax(np.abs(sums - 1.0))]
        raise ValueError(f"{name} does not sum to 1 over the last axis (one sum is {worst:.6g})")
    return array


def _scalar_if_0d(values: np.ndarray) -> np.ndarray | float:
    """A float for an unbatched call, the array otherwise."""
    return float(values) if values.ndim == 0 else values


# -- entropy and mutual information -----------------------------------------------------


def _entropy_of_codes(codes: np.ndarray, miller_madow: bool) -> float:
    """Plug-in entropy in nats, optionally with the Miller-Madow term (m - 1) / (2N)."""
    counts = np.bincount(codes)
    counts = counts[counts > 0]
    n = counts.sum()
    # H = -sum (c/N) ln(c/N) = ln N - sum c ln c / N
    nats = math.log(n) - float(np.sum(counts * np.log(counts))) / n
    if miller_madow:
        nats += (len(counts) - 1) / (2 * n)
    return nats


def _information(added: list[np.ndarray], subtracted: list[np.ndarray], miller_madow: bool) -> float:
    """sum H(added) - sum H(subtracted): MI and CMI as signed sums of (joint) entropies of codes."""
    information = sum(_entropy_of_codes(codes, miller_madow) for codes in added) - sum(
        _entropy_of_codes(codes, miller_madow) for codes in subtracted
    )
    # The plug-in value is a KL divergence, so >= 0 and a negative one is float rounding;
    # the Miller-Madow value may be truly negative and is left alone (clipping biases it).
    return information if miller_madow else max(information, 0.0)


def entropy(x, *, miller_madow: bool = False) -> float:
    """Entropy H(X) = -sum_x p(x) ln p(x) of a discrete sequence, in nats (plug-in estimate).

    p is the empirical frequency. With `miller_madow`, adds (m - 1) / (2N), with m
    the number of distinct observed values and N the sample count, which removes
    the plug-in estimator's first-order downward bias. A constant sequence has
    entropy 0; k equally frequent values have ln k.
    """
    return _entropy_of_codes(_as_labels(x, "x"), miller_madow)


def mutual_information(x, y, *, miller_madow: bool = False) -> float:
    """Mutual information I(X;Y) = H(X) + H(Y) - H(X,Y) of two discrete sequences, in nats.

    Plug-in estimate from the empirical joint distribution of the pairs (x_t, y_t).
    Range [0, min(H(X), H(Y))]: 0 for independent variables, ln k for two copies of
    a uniform variable over k values. The plug-in estimate is biased upward by about
    (k_x - 1)(k_y - 1) / (2N) for independent variables; `miller_madow` applies the
    Miller-Madow correction to each entropy, which removes most of that bias but can
    return small negative values (left as they are: clipping would bias it again).
    A single sample gives 0. Mismatched lengths or empty input raise ValueError.
    """
    x_codes, y_codes = _as_labels(x, "x"), _as_labels(y, "y")
    _check_same_length(x=x_codes, y=y_codes)
    return _information([x_codes, y_codes], [_joint_labels(x_codes, y_codes)], miller_madow)


def conditional_mutual_information(x, y, z, *, miller_madow: bool = False) -> float:
    """Conditional mutual information I(X;Y|Z) = sum_z p(z) I(X;Y|Z=z), in nats.

    Z is discrete (a state label, or a binned state from `bin_states`). Computed as
    H(X,Z) + H(Y,Z) - H(X,Y,Z) - H(Z), which equals the p(z)-weighted average of the
    per-z plug-in MI exactly (and, with `miller_madow`, of the per-z corrected MI).
    0 when X and Y are both functions of Z, even if they are dependent unconditionally;
    equals I(X;Y) when Z is constant. Every z value with few samples adds upward bias,
    so bin coarsely enough that each z has many samples.
    """
    x_codes, y_codes, z_codes = _as_labels(x, "x"), _as_labels(y, "y"), _as_labels(z, "z")
    _check_same_length(x=x_codes, y=y_codes, z=z_codes)
    return _information(
        [_joint_labels(x_codes, z_codes), _joint_labels(y_codes, z_codes)],
        [_joint_labels(x_codes, y_codes, z_codes), z_codes],
        miller_madow,
    )


def _actions_by_agent(actions: pd.DataFrame | Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    if isinstance(actions, pd.DataFrame):
        actions = {agent: actions[agent].to_numpy() for agent in actions.columns}
    if len(actions) == 0:
        raise ValueError("actions has no agents")
    return {agent: np.asarray(sequence) for agent, sequence in actions.items()}


def pairwise_action_mi(
    actions: pd.DataFrame | Mapping[str, np.ndarray], state=None, *, miller_madow: bool = False
) -> pd.DataFrame:
    """Agent x agent matrix of action mutual information, in nats.

    Entry (i, j) = I(A_i; A_j), or I(A_i; A_j | S) when `state` (discrete labels, one
    per time step; see `bin_states`) is given. The diagonal is I(A_i; A_i) = H(A_i),
    the action entropy (H(A_i | S) with a state), which bounds its row. The matrix is
    symmetric. Unconditional MI also counts agents reacting to the same state as
    coordination; conditioning on the state removes that shared cause.

    `actions` is a DataFrame with one column per agent or a dict agent -> sequence,
    one row per time step (same length for all agents).
    """
    sequences = _actions_by_agent(actions)
    agents = list(sequences)
    _check_same_length(**{str(agent): sequence for agent, sequence in sequences.items()})
    if state is not None:
        _check_same_length(actions=next(iter(sequences.values())), state=np.asarray(state))

    def information(x, y) -> float:
        if state is None:
            return mutual_information(x, y, miller_madow=miller_madow)
        return conditional_mutual_information(x, y, state, miller_madow=miller_madow)

    matrix = pd.DataFrame(0.0, index=agents, columns=agents)
    for agent in agents:
        matrix.loc[agent, agent] = information(sequences[agent], sequences[agent])
    for first, second in combinations(agents, 2):
        matrix.loc[first, second] = matrix.loc[second, first] = information(sequences[first], sequences[second])
    return matrix


def bin_states(values: np.ndarray, bins: int) -> np.ndarray:
    """One discrete label per row of continuous states, for conditioning on the state.

    Each dimension is cut into `bins` equal-width bins between its minimum and maximum
    over the rows (the maximum falls in the last bin; a constant dimension is one bin).
    A row's label identifies its cell, the tuple of per-dimension bin indices; labels
    are compact codes 0..(occupied cells - 1), so they are comparable within one call
    only. `values` is (T, d) or (T,) for d = 1. There are up to bins**d cells: with
    many dimensions most cells hold one sample and conditional MI goes to 0, so bin a
    few summary features rather than a whole observation.
    """
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2 or len(array) == 0:
        raise ValueError(f"values must be a non-empty (T, d) array, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError("values contains NaN or infinite values")
    if not isinstance(bins, (int, np.integer)) or bins < 1:
        raise ValueError(f"bins must be a positive integer, got {bins!r}")
    low, high = array.min(axis=0), array.max(axis=0)
    # A constant dimension has width 0; any positive width puts all its values in bin 0.
    width = np.where(high > low, (high - low) / bins, 1.0)
    cell = np.clip(np.floor((array - low) / width), 0, bins - 1).astype(np.int64)
    return _as_labels(cell, "values")


# -- distances between policies ---------------------------------------------------------


def _kl_divergence(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """KL(p || q) = sum p ln(p / q) over the last axis, with 0 ln 0 = 0; inf where q = 0 < p."""
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * (np.log(p) - np.log(q)), 0.0)
    return terms.sum(axis=-1)


def jensen_shannon_distance(p, q) -> np.ndarray | float:
    """Jensen-Shannon distance sqrt(JS(p, q)) between probability vectors (last axis).

    JS(p, q) = KL(p || m) / 2 + KL(q || m) / 2 with m = (p + q) / 2 and natural logs,
    so the distance is in sqrt(nats) and lies in [0, sqrt(ln 2)]: 0 for equal
    distributions, sqrt(ln 2) for distributions with disjoint support. It is symmetric
    and a metric. Leading dimensions broadcast (a batch of states gives one distance
    per state); a float for a single pair.
    """
    p, q = _validate_probabilities(p, "p"), _validate_probabilities(q, "q")
    if p.shape[-1] != q.shape[-1]:
        raise ValueError(f"p and q have different numbers of outcomes: {p.shape[-1]} and {q.shape[-1]}")
    mixture = (p + q) / 2
    divergence = (_kl_divergence(p, mixture) + _kl_divergence(q, mixture)) / 2
    # Rounding can push JS a hair outside [0, ln 2]; clip before the square root.
    distance = np.sqrt(np.clip(divergence, 0.0, math.log(2)))
    return _scalar_if_0d(distance)


def policy_diversity(probs: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """Agent x agent matrix of mean Jensen-Shannon distance between action distributions.

    `probs[agent]` is (n_states, n_actions): the agent's action probabilities on the
    same n_states states (row s of every agent is the same state). Entry (i, j) is
    mean_s JSD(pi_i(.|s), pi_j(.|s)) in sqrt(nats), within [0, sqrt(ln 2)]; the
    diagonal is 0 and the matrix symmetric. Large values mean agents behave
    differently in the same situation (role specialisation); near 0, identical policies.
    """
    if len(probs) == 0:
        raise ValueError("probs has no agents")
    arrays = {agent: _validate_probabilities(p, f"probs[{agent!r}]") for agent, p in probs.items()}
    shapes = {agent: array.shape for agent, array in arrays.items()}
    if len(set(shapes.values())) > 1 or any(len(shape) != 2 for shape in shapes.values()):
        raise ValueError(f"every agent needs a (n_states, n_actions) array of the same shape, got {shapes}")
    agents = list(arrays)
    matrix = pd.DataFrame(0.0, index=agents, columns=agents)
    for first, second in combinations(agents, 2):
        distance = float(np.mean(jensen_shannon_distance(arrays[first], arrays[second])))
        matrix.loc[first, second] = matrix.loc[second, first] = distance
    return matrix


# -- simple_spread: who goes where ------------------------------------------------------


def _validate_assignments(assignments) -> np.ndarray:
    array = np.asarray(assignments)
    if array.ndim != 2 or array.size == 0:
        raise ValueError(f"assignments must be a non-empty (episodes, agents) array, got shape {array.shape}")
    return array


def assignment_entropy(assignments) -> float:
    """Entropy, in nats, of the joint agent -> landmark assignment across episodes.

    `assignments[e, i]` is the landmark agent i covers in episode e (for example
    `nearest_landmark_assignment` at the last step). Each row is one label (with as
    many landmarks as agents and no two agents on one landmark, a permutation), and
    the result is the plug-in entropy of the rows' empirical distribution. 0 when the
    same assignment is used every episode (fixed roles); ln(n!) when all n! permutations
    occur equally often (agents settle who goes where anew each episode).
    """
    return _entropy_of_codes(_as_labels(_validate_assignments(assignments), "assignments"), miller_madow=False)


def per_agent_landmark_entropy(assignments) -> np.ndarray:
    """Each agent's marginal landmark-choice entropy across episodes, in nats, shape (agents,).

    Entry i is H(L_i) with L_i the landmark of agent i; 0 when agent i always takes the
    same landmark, ln(n_landmarks) when it takes each equally often. Low per-agent
    entropy with a low `assignment_entropy` means fixed roles.
    """
    array = _validate_assignments(assignments)
    return np.array([_entropy_of_codes(_as_labels(column, "assignments"), miller_madow=False) for column in array.T])


def _agent_landmark_distances(agent_pos, landmark_pos) -> np.ndarray:
    """Euclidean distances (..., n_agents, n_landmarks) between positions (..., n, 2)."""
    agents, landmarks = np.asarray(agent_pos, dtype=np.float64), np.asarray(landmark_pos, dtype=np.float64)
    if agents.ndim < 2 or landmarks.ndim < 2 or agents.shape[-1] != landmarks.shape[-1]:
        raise ValueError(
            f"positions must be (..., n, dim) with the same dim, got agents {agents.shape}, landmarks {landmarks.shape}"
        )
    if agents.shape[-2] == 0 or landmarks.shape[-2] == 0:
        raise ValueError("need at least one agent and one landmark")
    return np.linalg.norm(agents[..., :, None, :] - landmarks[..., None, :, :], axis=-1)


def landmark_coverage(agent_pos, landmark_pos, radius: float) -> np.ndarray | float:
    """Fraction of landmarks with at least one agent within `radius` (distance <= radius).

    Positions are (..., n_agents, 2) and (..., n_landmarks, 2) with broadcastable
    leading dimensions (episodes, time steps); the result has the leading shape, a
    float for a single world. 1 means every landmark is covered.
    """
    if radius < 0:
        raise ValueError(f"radius must be non-negative, got {radius}")
    covered = (_agent_landmark_distances(agent_pos, landmark_pos) <= radius).any(axis=-2)
    return _scalar_if_0d(covered.mean(axis=-1))


def nearest_landmark_assignment(agent_pos, landmark_pos) -> np.ndarray:
    """Index of each agent's nearest landmark, shape (..., n_agents); ties go to the lower index."""
    return np.argmin(_agent_landmark_distances(agent_pos, landmark_pos), axis=-1)


# -- learned coordination graphs --------------------------------------------------------


@dataclass(frozen=True)
class DagStatistics:
    """Summary of sampled coordination DAGs over n agents (see `dag_statistics`)."""

    edge_density: float
    """Mean over samples of edges / (n(n-1)/2), in [0, 1] (a DAG has at most n(n-1)/2 edges)."""
    mean_depth: float
    """Mean over samples of the longest directed path, in edges: 0 empty, n-1 for a chain."""
    edge_frequency: np.ndarray
    """(n, n): [i, j] is the fraction of samples with the edge i -> j."""
    density_per_sample: np.ndarray
    depth_per_sample: np.ndarray


def dag_statistics(adjacency) -> DagStatistics:
    """Edge density, depth and edge frequencies of sampled DAGs, adjacency (samples, n, n).

    adjacency[s, i, j] = 1 means the edge i -> j in sample s (a single (n, n) graph is
    one sample). density = edges / (n(n-1)/2); depth = length in edges of the longest
    directed path (0 without edges, n - 1 for a chain or a complete DAG). With n = 1
    there are no possible edges and the density is 0. Raises ValueError for entries
    other than 0/1 and for a graph with a cycle (a self-loop included).
    """
    graphs = np.asarray(adjacency)
    if graphs.ndim == 2:
        graphs = graphs[None]
    if graphs.ndim != 3 or graphs.shape[1] != graphs.shape[2] or graphs.shape[0] == 0:
        raise ValueError(f"adjacency must be (samples, n, n) or (n, n), got shape {np.shape(adjacency)}")
    if not np.isin(graphs, (0, 1)).all():
        raise ValueError("adjacency must contain only 0 and 1")
    graphs = graphs.astype(bool)
    density = edge_density(graphs)
    depth = batched_depths(graphs).numpy().astype(np.float64)  # raises on a cycle
    return DagStatistics(
        edge_density=float(density.mean()),
        mean_depth=float(depth.mean()),
        edge_frequency=graphs.mean(axis=0),
        density_per_sample=density,
        depth_per_sample=depth,
    )


# -- influence and communication --------------------------------------------------------


def social_influence(p_actual, p_counterfactual, p_influencer) -> np.ndarray | float:
    """Causal influence of agent k on agent j (Jaques et al. 2019), in nats.

        c = KL( p(a_j | a_k, s) || sum_{a'} p(a_j | a', s) pi_k(a' | s) )

    the divergence between j's action distribution given k's actual action a_k
    (`p_actual`, (..., n_actions_j)) and j's marginal over k's counterfactual
    actions a' (`p_counterfactual`, (..., n_actions_k, n_actions_j): row a' is
    p(a_j | a', s)), weighted by k's policy (`p_influencer`, (..., n_actions_k)).
    0 when j's policy ignores k's action (every row equals p_actual); positive when
    k's actual action moves j away from what j would do on average. inf if j's
    actual distribution puts mass where the marginal has none (possible only when
    k's actual action has probability 0 under pi_k). Leading dimensions (time steps)
    broadcast; a float for a single step.
    """
    actual = _validate_probabilities(p_actual, "p_actual")
    counterfactual = _validate_probabilities(p_counterfactual, "p_counterfactual")
    influencer = _validate_probabilities(p_influencer, "p_influencer")
    if counterfactual.ndim < 2 or counterfactual.shape[-2:] != (influencer.shape[-1], actual.shape[-1]):
        raise ValueError(
            "p_counterfactual must be (..., n_actions_k, n_actions_j) matching p_influencer and p_actual, got "
            f"{counterfactual.shape} with p_influencer {influencer.shape} and p_actual {actual.shape}"
        )
    marginal = np.einsum("...k,...kj->...j", influencer, counterfactual)
    return _scalar_if_0d(_kl_divergence(actual, marginal))


def positive_signalling(messages, targets, *, miller_madow: bool = False) -> float:
    """I(message; target) in nats: how much the speaker's message depends on what it sees.

    `messages` are the speaker's discrete messages and `targets` what it observes
    (the goal landmark), one per time step (or rows of a 2-D array, e.g. one-hot).
    0 when the message carries nothing about the target; ln(n_targets) when the
    message names the target exactly and targets are uniform. See `mutual_information`
    for the estimator's bias.
    """
    return mutual_information(messages, targets, miller_madow=miller_madow)


@dataclass(frozen=True)
class BootstrapEstimate:
    """A point estimate with a percentile-bootstrap confidence interval."""

    estimate: float
    low: float
    high: float
    confidence: float


def _bootstrap_mean_differences(
    first: np.ndarray, second: np.ndarray, rng: np.random.Generator, n_resamples: int, paired: bool
) -> np.ndarray:
    """mean(first*) - mean(second*) for n_resamples resamples with replacement."""
    differences = first - second if paired else None
    # Resample in chunks so memory stays ~1e6 indices whatever the sample size.
    chunk = max(1, 1_000_000 // max(len(first), len(second)))
    out = []
    for start in range(0, n_resamples, chunk):
        size = min(chunk, n_resamples - start)
        if paired:
            out.append(differences[rng.integers(0, len(differences), (size, len(differences)))].mean(axis=1))
        else:
            first_means = first[rng.integers(0, len(first), (size, len(first)))].mean(axis=1)
            second_means = second[rng.integers(0, len(second), (size, len(second)))].mean(axis=1)
            out.append(first_means - second_means)
    return np.concatenate(out)


def positive_listening(
    returns_actual,
    returns_intervened,
    rng: np.random.Generator,
    *,
    paired: bool = False,
    n_resamples: int = 10_000,
    confidence: float = 0.95,
) -> BootstrapEstimate:
    """How much the listener's return depends on the message it actually receives.

    estimate = mean(returns_actual) - mean(returns_intervened), in return units, where
    the intervened episodes replace the speaker's message (by a random or fixed one).
    Positive: the listener uses the message. The interval is the percentile bootstrap
    at `confidence` (default 95%) from `n_resamples` resamples drawn with `rng`.
    `paired=True` resamples episode pairs (same seeds with and without the
    intervention; needs equal lengths); otherwise each group is resampled on its own.
    """
    actual = np.asarray(returns_actual, dtype=np.float64)
    intervened = np.asarray(returns_intervened, dtype=np.float64)
    for name, returns in (("returns_actual", actual), ("returns_intervened", intervened)):
        if returns.ndim != 1 or len(returns) == 0:
            raise ValueError(f"{name} must be a non-empty 1-D array, got shape {returns.shape}")
        if not np.all(np.isfinite(returns)):
            raise ValueError(f"{name} contains NaN or infinite values")
    if paired:
        _check_same_length(returns_actual=actual, returns_intervened=intervened)
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be positive, got {n_resamples}")
    resampled = _bootstrap_mean_differences(actual, intervened, rng, n_resamples, paired)
    tail = (1 - confidence) / 2
    low, high = np.quantile(resampled, [tail, 1 - tail])
    return BootstrapEstimate(
        estimate=float(actual.mean() - intervened.mean()), low=float(low), high=float(high), confidence=confidence
    )
