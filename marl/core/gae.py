"""Generalized advantage estimation over concatenated episode chunks, vectorised.

RLlib's learner computes GAE with `compute_value_targets` (ray.rllib.utils.postprocessing.
value_predictions), a Python loop over every row of a module's batch: all the module's
trajectories concatenated, each extended by one bootstrap row. `value_targets` below
returns exactly what that function returns, with the loop running over the positions
within a segment instead of over rows: the recursion

    A_t = delta_t + gamma * lambda * propagate_t * A_{t+1}

restarts wherever `propagate_t` is 0, so the rows split into independent segments that
are stepped side by side (a few dozen array operations for a batch of thousands of rows).
"""

from __future__ import annotations

import numpy as np


def reverse_scan(x: np.ndarray, decay: np.ndarray) -> np.ndarray:
    """y_t = x_t + decay_t * y_{t+1} over a 1-D array, with y_n = 0.

    Rows are cut into segments after every row whose `decay` is 0 (nothing flows into it
    from the row after); each segment is laid out right-aligned in a (segments, width)
    array and all segments are stepped together from their last row to their first.
    """
    n = len(x)
    if n == 0:
        return np.zeros_like(x)
    ends = np.flatnonzero(decay == 0)
    if len(ends) == 0 or ends[-1] != n - 1:
        ends = np.append(ends, n - 1)  # y_n = 0: the last row ends a segment whatever its decay
    starts = np.concatenate([[0], ends[:-1] + 1])
    lengths = ends - starts + 1
    segment = np.repeat(np.arange(len(ends)), lengths)
    back = ends[segment] - np.arange(n)  # a row's distance from its segment's last row
    x_grid = np.zeros((len(ends), int(lengths.max())), dtype=x.dtype)
    decay_grid = np.zeros_like(x_grid)
    x_grid[segment, back] = x
    decay_grid[segment, back] = decay
    y_grid = np.empty_like(x_grid)
    y_grid[:, 0] = x_grid[:, 0]
    for k in range(1, x_grid.shape[1]):
        y_grid[:, k] = x_grid[:, k] + decay_grid[:, k] * y_grid[:, k - 1]
    return y_grid[segment, back]


def value_targets(
    values: np.ndarray,
    rewards: np.ndarray,
    terminateds: np.ndarray,
    truncateds: np.ndarray,
    gamma: float,
    lambda_: float,
) -> np.ndarray:
    """GAE value targets (advantages + values) with RLlib's conventions, all arrays 1-D.

    `terminateds[t]`: no s_{t+1}, so V(s_{t+1}) is not bootstrapped; `truncateds[t]`: the
    chunk ends at t, V(s_{t+1}) (the next row's value) is still the bootstrap, but the
    recursion does not cross. The last row's next value is 0 (RLlib's dummy).
    """
    values = np.asarray(values, dtype=np.float32)
    non_terminal = 1.0 - np.asarray(terminateds, dtype=np.float32)
    propagate = non_terminal * (1.0 - np.asarray(truncateds, dtype=np.float32))
    next_values = np.append(values[1:], np.float32(0.0))
    deltas = np.asarray(rewards, dtype=np.float32) + np.float32(gamma) * non_terminal * next_values - values
    advantages = reverse_scan(deltas, np.float32(gamma * lambda_) * propagate)
    return (advantages + values).astype(np.float32)


def standardize(x: np.ndarray, min_std: float = 1e-4) -> np.ndarray:
    """(x - mean) / max(min_std, std), as RLlib's GAE connector standardises advantages."""
    return (x - x.mean()) / max(min_std, float(x.std()))
