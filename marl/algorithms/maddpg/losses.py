"""MADDPG's maths as pure torch (Lowe et al. 2017; openai/maddpg as the reference code).

Per agent i, with x = (o_1..o_N) and actions a_1..a_N:

    critic:  L(Q_i)  = E[(Q_i(x, a_1..a_N) - y_i)^2]
             y_i     = r_i + gamma * (1 - terminated_i) * Q'_i(x', a'_1..a'_N),  a'_j ~ mu'_j(o'_j)
                       (or a'_j = mu'_j's noise-free action: `target_actions: greedy`)
    actor:   L(mu_i) = -E[Q_i(x, a_1..a^_i..a_N)] + 1e-3 * E[logits_i^2],      a^_i ~ mu_i(o_i)
    targets: theta'  <- (1 - tau) theta' + tau theta
    inferred policies (optional): agent i fits mu^_i^j to agent j's observed actions,
             L(phi_i^j) = -E[log mu^_i^j(a_j | o_j) + lambda H(mu^_i^j(. | o_j))],
             and uses a'_j ~ mu^'_i^j(o'_j) (its target copy) in y_i instead of mu'_j
    clipping: each gradient tensor scaled to L2 norm <= 0.5, one tensor at a time

Actions a ~ mu(o) are Gumbel-softmax samples of the actor's logits (marl/core/gumbel.py).

Tested on hand-made batches without Ray (tests/test_maddpg_math.py).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from marl.core.keys import ACTOR_LOSS, APPROX_ENTROPY, APPROX_LOSS, APPROX_NLL, Q_MEAN
from marl.core.masking import masked_mean_fn


def _require_same_shape(**tensors: torch.Tensor) -> None:
    """Raise unless all tensors have one shape: (B,) against (B, 1) would broadcast to (B, B)."""
    shapes = {name: tuple(tensor.shape) for name, tensor in tensors.items()}
    if len(set(shapes.values())) > 1:
        raise ValueError(f"shapes must match, got {shapes}")


def critic_targets(
    rewards: torch.Tensor, terminated: torch.Tensor, next_q: torch.Tensor, gamma: float | torch.Tensor
) -> torch.Tensor:
    """TD targets y = r + gamma * (1 - terminated) * Q'(x', a'), shape (B,), no gradient.

    rewards, terminated, next_q: (B,). `next_q` is the TARGET critic at the next joint
    observation with every agent's TARGET-actor action. Pass the termination flag only:
    an episode cut by the time limit (truncation) is not terminal and bootstraps.
    n-step returns: `rewards` is R = sum_k gamma^k r_{t+k} over the row's m steps and `gamma`
    a (B,) tensor of gamma^m, so that y = R + gamma^m (1 - terminated) Q'(x_{t+m}, a').
    """
    _require_same_shape(rewards=rewards, terminated=terminated, next_q=next_q)
    if isinstance(gamma, torch.Tensor):
        _require_same_shape(rewards=rewards, gamma=gamma)
    not_terminal = 1.0 - terminated.to(next_q.dtype)
    return (rewards + gamma * not_terminal * next_q).detach()


def critic_loss(q: torch.Tensor, targets: torch.Tensor, *, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared TD error E[(Q(x, a) - y)^2] over the rows where `mask` is set; y is detached.

    q, targets, mask: (B,). The mask drops rows where this critic's agent did not act
    (it had left or not yet entered); the reference has no mask (MPE agents never leave).
    """
    _require_same_shape(q=q, targets=targets)
    return masked_mean_fn(mask)((q - targets.detach()) ** 2)


def actor_loss(
    q_of_own_fresh_action: torch.Tensor,
    logits: torch.Tensor,
    *,
    logits_reg: float = 1e-3,
    mask: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Deterministic policy gradient objective with the reference's logit regulariser.

    actor_loss      = -E[Q_i(x, a_1..a^_i..a_N)] + logits_reg * E[logits^2]
    q_mean          = E[Q_i(...)]                      (diagnostic, detached)
    logits_reg_term = logits_reg * E[logits^2]         (diagnostic, detached)

    q_of_own_fresh_action: (B,), agent i's critic with a^_i a fresh differentiable sample
    of its own actor and the other agents' actions from the replay batch. Compute it
    with the critic's parameters excluded from the graph (see `call_with_frozen_params`):
    the actor loss must not train the critic. logits: (B, A), the actor's raw outputs;
    E[logits^2] averages over rows and action dimensions, as the reference does.
    """
    if logits.shape[:-1] != q_of_own_fresh_action.shape:
        raise ValueError(f"logits {tuple(logits.shape)} must be q's shape {tuple(q_of_own_fresh_action.shape)} plus an action dimension")
    mean = masked_mean_fn(mask)
    q_mean = mean(q_of_own_fresh_action)
    logits_reg_term = logits_reg * mean((logits**2).mean(dim=-1))
    return {
        ACTOR_LOSS: -q_mean + logits_reg_term,
        Q_MEAN: q_mean.detach(),
        "logits_reg_term": logits_reg_term.detach(),
    }


def approximation_loss(
    logits: torch.Tensor, observed_actions: torch.Tensor, *, entropy_coeff: float, mask: torch.Tensor | None = None
) -> dict[str, torch.Tensor]:
    """Maximum likelihood of another agent's observed actions, plus an entropy bonus (Lowe et al., section 4.2).

    approx_loss    = -E[log p(a_j | o_j)] - entropy_coeff * E[H(p(. | o_j))],  p = softmax(logits)
    approx_nll     = -E[log p(a_j | o_j)]          (diagnostic, detached)
    approx_entropy = E[H(p(. | o_j))]              (diagnostic, detached)

    logits: (B, A), the approximation's outputs on o_j; observed_actions: (B, A), agent j's
    replayed action vectors. For a one-hot action the first term is exactly the categorical
    log-likelihood; for a soft (simplex) action it is the cross-entropy with that vector.
    mask: (B,), the rows in which agent j acted.
    """
    if logits.shape != observed_actions.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and observed actions {tuple(observed_actions.shape)} must have one shape")
    mean = masked_mean_fn(mask)
    log_probs = torch.log_softmax(logits, dim=-1)
    nll = mean(-(observed_actions * log_probs).sum(dim=-1))
    entropy = mean(-(log_probs.exp() * log_probs).sum(dim=-1))
    return {APPROX_LOSS: nll - entropy_coeff * entropy, APPROX_NLL: nll.detach(), APPROX_ENTROPY: entropy.detach()}


def call_with_frozen_params(module: nn.Module, *args: Any, **kwargs: Any) -> Any:
    """`module(*args, **kwargs)` with detached parameters: gradients reach the inputs only.

    The actor loss goes through the critic. RLlib's TorchLearner sums every loss and
    calls backward() once, so a plain `critic(x, a)` there would also push the actor
    objective's gradient into the critic. With this call the graph holds the inputs
    (and so the actor producing a^_i) but not the critic's weights.
    """
    frozen = {name: tensor.detach() for name, tensor in module.state_dict(keep_vars=True).items()}
    return torch.func.functional_call(module, frozen, args, kwargs)


def _floating_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """Parameters and floating-point buffers by name (integer buffers such as counters are not averaged)."""
    state = dict(module.named_parameters())
    state.update({name: buffer for name, buffer in module.named_buffers() if buffer.is_floating_point()})
    return state


@torch.no_grad()
def polyak_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """theta' <- (1 - tau) theta' + tau theta, in place, for every parameter (and float buffer).

    tau = 1 copies the source, tau = 0 leaves the target unchanged; the reference uses 0.01
    after every update. Tensors are matched by name, so the two modules must share a layout.
    """
    if not 0.0 <= tau <= 1.0:
        raise ValueError(f"polyak_update: tau must be in [0, 1], got {tau}")
    target_state, source_state = _floating_state(target), _floating_state(source)
    if target_state.keys() != source_state.keys():
        raise ValueError(f"polyak_update: modules differ: {sorted(target_state.keys() ^ source_state.keys())}")
    for name, target_tensor in target_state.items():
        # lerp_(end, w) = start + w (end - start); exact at w = 0 and w = 1.
        target_tensor.lerp_(source_state[name], tau)
