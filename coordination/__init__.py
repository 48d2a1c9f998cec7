"""Coordination analysis: measure how trained agents coordinate, from logged evaluation data.

Return curves say whether a team succeeds; these metrics say how. They take arrays an
evaluation run records (actions, states, action probabilities, positions, messages,
returns, sampled coordination graphs) and answer questions such as: do agents' actions
depend on each other beyond the shared state (pairwise action MI), do they play
different roles (policy diversity, landmark assignment entropy), how dense and deep is
a learned coordination DAG, does one agent's action change another's (social
influence), and does a speaker's message carry and a listener use information
(positive signalling and listening). All are pure numpy/pandas functions in nats,
testable without Ray or torch; see `coordination.metrics` for definitions.
"""

from coordination.metrics import (
    BootstrapEstimate,
    DagStatistics,
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

__all__ = [
    "BootstrapEstimate",
    "DagStatistics",
    "assignment_entropy",
    "bin_states",
    "conditional_mutual_information",
    "dag_statistics",
    "entropy",
    "jensen_shannon_distance",
    "landmark_coverage",
    "mutual_information",
    "nearest_landmark_assignment",
    "pairwise_action_mi",
    "per_agent_landmark_entropy",
    "policy_diversity",
    "positive_listening",
    "positive_signalling",
    "social_influence",
]
