"""Every name the package writes into a train batch or a metrics row, in one place.

Learners log their loss terms under these keys (`<policy>/<key>` in metrics.csv and
TensorBoard); the coordination library, the notebooks and the tests read them back through
the same constants, so a renamed term cannot silently leave a plot or a check empty.
"""

from __future__ import annotations

# -- batch columns our modules add to RLlib's own (`ray.rllib.core.columns.Columns`) ----------
SUBPOLICY = "subpolicy"
"""MADDPG policy ensembles: the sub-policy each agent acted with this episode (also a replay field)."""
BOOTSTRAP_DISCOUNT = "bootstrap_discount"
"""MADDPG n-step returns: gamma^m, the discount of the target critic's value m env steps ahead (a replay field)."""
BN_AGENT_LOGP = "bn_agent_logp"
"""BN-MAPPO: log pi_i(a_i | o_i, a_Pa(i)) of each agent, (B, n)."""
BN_ADJACENCY = "bn_adjacency"
"""BN-MAPPO: the sampled graph of each step, (B, n, n); A[j, i] = 1: j is a parent of i."""
BN_SEEN_PARENT_ACTIONS = "bn_seen_parent_actions"
"""BN-MAPPO: the parents' actions each agent conditioned on, as it saw them."""
BN_DENSITY = "bn_density"
"""BN-MAPPO: the edge density of each step's graph, differentiable (the sparsity penalty's input)."""

PEER_OBS = "peer_obs"
"""A centralised critic over image observations: the other agents' own observations at the
row's step, flat and side by side in the scenario's agent order, (B, peers * obs_dim), in the
observations' dtype (uint8 frames). Built by the PPO learner connector from the episodes, so
that sampling stores each frame once instead of once per agent in every agent's state part."""

# -- loss terms: the PPO family (IPPO, MAPPO, and DPO and BN-MAPPO on top) ---------------------
PG_LOSS = "pg_loss"
"""The policy loss the learner minimises (for DPO and BN-MAPPO with their penalties added)."""
APPROX_KL = "approx_kl"
CLIP_FRAC = "clip_frac"
RATIO_MEAN = "ratio_mean"
VF_LOSS = "vf_loss"
ENTROPY = "entropy"
EXPLAINED_VAR = "explained_var"
TOTAL_LOSS = "total_loss"
PPO_TERMS = (PG_LOSS, VF_LOSS, ENTROPY, APPROX_KL, EXPLAINED_VAR, TOTAL_LOSS)
"""Logged by every learner of the family."""

# -- DPO ------------------------------------------------------------------------------------
SURROGATE_LOSS = "surrogate_loss"
"""-E[ratio * A], the surrogate before penalties (DPO, BN-MAPPO)."""
KL = "kl"
SQRT_KL = "sqrt_kl"
BETA_KL = "beta_kl"
BETA_SQRT_KL = "beta_sqrt_kl"

# -- BN-MAPPO's graphs --------------------------------------------------------------------------
SPARSITY_PENALTY = "sparsity_penalty"
TAU = "tau"
"""The annealing schedule's target density at this point of training."""
ALPHA = "alpha"
"""The annealing schedule's penalty weight at this point of training."""
PROGRESS = "progress"
"""Env steps so far / stop.env_steps."""
EDGE_DENSITY = "edge_density"
DAG_DEPTH = "dag_depth"
GRAPH_TERMS = (EDGE_DENSITY, DAG_DEPTH, TAU, ALPHA, SPARSITY_PENALTY)


def edge_frequency_key(parent: int, child: int) -> str:
    """How often agent `parent` was a parent of agent `child` in the training pass's graphs."""
    return f"edge_freq_{parent}_{child}"


# -- MADDPG -------------------------------------------------------------------------------------
CRITIC_LOSS = "critic_loss"
ACTOR_LOSS = "actor_loss"
Q_MEAN = "q_mean"
TARGET_Q_MEAN = "target_q_mean"
LOGITS_REG = "logits_reg"
"""The actor's logit regulariser E[logits^2] (unweighted)."""
MADDPG_TERMS = (CRITIC_LOSS, ACTOR_LOSS, Q_MEAN, TARGET_Q_MEAN, LOGITS_REG)
APPROX_LOSS = "approx_loss"
APPROX_NLL = "approx_nll"
APPROX_ENTROPY = "approx_entropy"
INFERENCE_TERMS = (APPROX_LOSS, APPROX_NLL, APPROX_ENTROPY)
"""Logged too with inferred policies (`training.infer_policies`)."""

# -- sampling overlapped with learning (`training.overlap_sampling`, marl/rllib/overlap.py) ------
SAMPLED_WEIGHTS_LAG = "sampled_weights_lag"
"""Updates between the weights a train batch was sampled with and the learner's at its update
(the most over the batch's rollouts): 0 when sampling waits for learning, at most 1 overlapped."""
