"""MADDPG maths on hand-made batches: TD targets, losses, target nets, clipping (pure torch).

The Gumbel-softmax its actions use is tested in tests/test_core_gumbel.py.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
import pytest
import torch
from ray.rllib.utils.torch_utils import clip_gradients
from torch import nn

from marl.algorithms.maddpg.losses import (
    actor_loss,
    call_with_frozen_params,
    critic_loss,
    critic_targets,
    polyak_update,
)
from marl.core.gumbel import gumbel_softmax

TOL = 1e-6


def t(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# -- critic targets ---------------------------------------------------------------------
#
# gamma = 0.95
#   row  r     terminated  truncated  Q'(x', a')  y = r + 0.95 (1 - terminated) Q'
#   0    1.0   0           0          10.0        1 + 9.5          = 10.5
#   1   -0.5   1           0          10.0       -0.5 (terminal: no bootstrap)
#   2    2.0   0           1          -4.0        2 - 3.8          = -1.8  (time limit: bootstraps)
#   3    0.0   0           0           3.0        2.85

REWARDS = [1.0, -0.5, 2.0, 0.0]
TERMINATED = [0.0, 1.0, 0.0, 0.0]
TRUNCATED = [0.0, 0.0, 1.0, 0.0]  # never passed to critic_targets: truncation is not terminal
NEXT_Q = [10.0, 10.0, -4.0, 3.0]


def test_critic_targets_hand_batch_bootstraps_through_truncation():
    targets = critic_targets(t(REWARDS), t(TERMINATED), t(NEXT_Q), 0.95)
    np.testing.assert_allclose(targets.numpy(), [10.5, -0.5, -1.8, 2.85], atol=TOL)
    assert TRUNCATED[2] == 1.0 and targets[2].item() != REWARDS[2]  # the truncated row used Q'


def test_critic_targets_accept_boolean_flags_and_carry_no_gradient():
    next_q = t(NEXT_Q).requires_grad_(True)
    targets = critic_targets(t(REWARDS), torch.tensor([False, True, False, False]), next_q, 0.95)
    np.testing.assert_allclose(targets.detach().numpy(), [10.5, -0.5, -1.8, 2.85], atol=TOL)
    assert not targets.requires_grad


def test_critic_targets_with_per_row_n_step_discounts():
    # n-step rows: R already summed, the bootstrap discounted by gamma^m of each row's window.
    discounts = t([0.95**3, 0.95**3, 0.95**2, 0.95])
    targets = critic_targets(t(REWARDS), t(TERMINATED), t(NEXT_Q), discounts)
    np.testing.assert_allclose(targets.numpy(), [1 + 0.95**3 * 10, -0.5, 2 - 0.95**2 * 4, 0.95 * 3], atol=TOL)
    with pytest.raises(ValueError, match="shapes must match"):
        critic_targets(t(REWARDS), t(TERMINATED), t(NEXT_Q), discounts.unsqueeze(-1))


def test_critic_targets_reject_shapes_that_would_broadcast():
    # (B,) against (B, 1) would silently broadcast to a (B, B) matrix of targets.
    with pytest.raises(ValueError, match="shapes must match"):
        critic_targets(t(REWARDS), t(TERMINATED), t(NEXT_Q).unsqueeze(-1), 0.95)


# -- critic and actor losses ------------------------------------------------------------


def test_critic_loss_hand_batch_and_mask():
    # errors q - y = [1, 0, -2]: mean square 5/3; rows 0 and 2 only: (1 + 4) / 2
    q = t([1.0, 2.0, 3.0]).requires_grad_(True)
    targets = t([0.0, 2.0, 5.0]).requires_grad_(True)
    loss = critic_loss(q, targets)
    assert loss.item() == pytest.approx(5 / 3, abs=TOL)
    loss.backward()
    np.testing.assert_allclose(q.grad.numpy(), [2 * 1 / 3, 0.0, 2 * -2 / 3], atol=TOL)  # d/dq = 2 (q - y) / B
    assert targets.grad is None  # the targets are constants

    masked = critic_loss(t([1.0, 2.0, 3.0]), t([0.0, 2.0, 5.0]), mask=torch.tensor([1.0, 0.0, 1.0]))
    assert masked.item() == pytest.approx(2.5, abs=TOL)
    with pytest.raises(ValueError, match="shapes must match"):
        critic_loss(q, targets.unsqueeze(-1))


def test_actor_loss_hand_batch():
    # E[Q] = 2, E[logits^2] = (1 + 1 + 0 + 4 + 0 + 0) / 6 = 1: loss = -2 + 1e-3
    q = t([1.0, 3.0]).requires_grad_(True)
    logits = t([[1.0, -1.0, 0.0], [2.0, 0.0, 0.0]]).requires_grad_(True)
    terms = actor_loss(q, logits)
    assert terms["actor_loss"].item() == pytest.approx(-1.999, abs=TOL)
    assert terms["q_mean"].item() == pytest.approx(2.0, abs=TOL)
    assert terms["logits_reg_term"].item() == pytest.approx(1e-3, abs=TOL)
    assert not terms["q_mean"].requires_grad and not terms["logits_reg_term"].requires_grad
    terms["actor_loss"].backward()
    np.testing.assert_allclose(q.grad.numpy(), [-0.5, -0.5], atol=TOL)  # -1 / B
    np.testing.assert_allclose(logits.grad.numpy(), 1e-3 * 2 * logits.detach().numpy() / 6, atol=TOL)


def test_actor_loss_with_mask_and_own_coefficient():
    # row 1 only: E[Q] = 3, E[logits^2] = 4 / 3
    terms = actor_loss(t([1.0, 3.0]), t([[1.0, -1.0, 0.0], [2.0, 0.0, 0.0]]), logits_reg=0.1, mask=torch.tensor([0.0, 1.0]))
    assert terms["actor_loss"].item() == pytest.approx(-3.0 + 0.1 * 4 / 3, abs=TOL)
    with pytest.raises(ValueError, match="action dimension"):
        actor_loss(t([1.0, 3.0]), t([1.0, 2.0]))


# -- the actor loss must not train the critic -------------------------------------------
#
# The learner sums actor and critic losses and calls backward() once (RLlib's TorchLearner
# does). The critic must then get exactly the critic loss's gradient, and the actor the
# gradient of -Q through its fresh action.

OBS_DIM, ACTIONS, BATCH = 3, 4, 8


def _networks():
    torch.manual_seed(0)
    actor = nn.Linear(OBS_DIM, ACTIONS)
    # critic input: both agents' observations and actions (agent 0 is the actor's agent)
    critic = nn.Sequential(nn.Linear(2 * (OBS_DIM + ACTIONS), 16), nn.ReLU(), nn.Linear(16, 1))
    return actor, critic


def _batch():
    g = generator(20)
    obs = torch.randn(BATCH, 2, OBS_DIM, generator=g)
    replay_actions = torch.softmax(torch.randn(BATCH, 2, ACTIONS, generator=g), -1)
    targets = torch.randn(BATCH, generator=g)
    return obs, replay_actions, targets


def _critic_input(obs, own_action, other_action):
    return torch.cat([obs[:, 0], obs[:, 1], own_action, other_action], dim=-1)


def _summed_loss_gradients(actor, critic, *, freeze_critic_in_actor_loss: bool):
    obs, replay_actions, targets = _batch()
    q_replay = critic(_critic_input(obs, replay_actions[:, 0], replay_actions[:, 1])).squeeze(-1)
    logits = actor(obs[:, 0])
    fresh_action = gumbel_softmax(logits, hard=False, generator=generator(21))
    critic_call = call_with_frozen_params if freeze_critic_in_actor_loss else (lambda module, x: module(x))
    q_fresh = critic_call(critic, _critic_input(obs, fresh_action, replay_actions[:, 1])).squeeze(-1)
    total = critic_loss(q_replay, targets) + actor_loss(q_fresh, logits)["actor_loss"]
    actor.zero_grad(), critic.zero_grad()
    total.backward()
    return [p.grad.clone() for p in actor.parameters()], [p.grad.clone() for p in critic.parameters()]


def _critic_loss_gradients(critic):
    obs, replay_actions, targets = _batch()
    critic.zero_grad()
    critic_loss(critic(_critic_input(obs, replay_actions[:, 0], replay_actions[:, 1])).squeeze(-1), targets).backward()
    return [p.grad.clone() for p in critic.parameters()]


def test_frozen_critic_call_keeps_the_actor_loss_out_of_the_critic():
    actor, critic = _networks()
    actor_grads, critic_grads = _summed_loss_gradients(actor, critic, freeze_critic_in_actor_loss=True)
    for got, expected in zip(critic_grads, _critic_loss_gradients(critic)):
        torch.testing.assert_close(got, expected, atol=0, rtol=0)
    assert all(grad.abs().sum() > 0 for grad in actor_grads)  # the actor still learns through Q


def test_plain_critic_call_leaks_the_actor_loss_into_the_critic():
    # The counter-example: what the test above guards against really happens without the freeze.
    actor, critic = _networks()
    _, critic_grads = _summed_loss_gradients(actor, critic, freeze_critic_in_actor_loss=False)
    differences = [(got - expected).abs().max() for got, expected in zip(critic_grads, _critic_loss_gradients(critic))]
    assert max(differences) > 1e-3


def _actor_only_gradients(actor, critic):
    obs, replay_actions, _ = _batch()
    logits = actor(obs[:, 0])
    fresh_action = gumbel_softmax(logits, hard=False, generator=generator(21))
    q_fresh = critic(_critic_input(obs, fresh_action, replay_actions[:, 1])).squeeze(-1)
    actor.zero_grad()
    actor_loss(q_fresh, logits)["actor_loss"].backward()
    return [p.grad.clone() for p in actor.parameters()]


def test_frozen_call_gives_the_same_actor_gradient_as_requires_grad_false():
    actor, critic = _networks()
    frozen_actor_grads, _ = _summed_loss_gradients(actor, critic, freeze_critic_in_actor_loss=True)
    critic.requires_grad_(False)
    reference_actor_grads = _actor_only_gradients(actor, critic)  # the critic frozen the usual way
    for got, expected in zip(frozen_actor_grads, reference_actor_grads):
        torch.testing.assert_close(got, expected)


# -- target networks --------------------------------------------------------------------


def _pair():
    torch.manual_seed(1)
    return nn.Linear(3, 2), nn.Linear(3, 2)


@pytest.mark.parametrize("tau", [0.0, 0.5, 1.0])
def test_polyak_update(tau):
    target, source = _pair()
    before = [p.detach().clone() for p in target.parameters()]
    polyak_update(target, source, tau)
    for old, new, src in zip(before, target.parameters(), source.parameters()):
        expected = {0.0: old, 1.0: src.detach(), 0.5: (old + src.detach()) / 2}[tau]
        if tau == 0.5:
            torch.testing.assert_close(new.detach(), expected)
        else:
            assert torch.equal(new.detach(), expected)  # copies and keeps are exact
    assert all(p.grad is None for p in target.parameters())


def test_polyak_update_averages_float_buffers_and_rejects_other_layouts():
    target, source = nn.BatchNorm1d(2), nn.BatchNorm1d(2)
    source.running_mean.fill_(4.0)
    source.num_batches_tracked.fill_(7)
    polyak_update(target, source, 0.25)
    torch.testing.assert_close(target.running_mean, torch.full((2,), 1.0))  # 0.75 * 0 + 0.25 * 4
    assert target.num_batches_tracked.item() == 0  # a counter is not averaged
    with pytest.raises(ValueError, match="modules differ"):
        polyak_update(nn.Linear(3, 2), nn.Sequential(nn.Linear(3, 2)), 0.5)
    with pytest.raises(ValueError, match="tau"):
        polyak_update(*_pair(), 1.5)


# -- gradient clipping ------------------------------------------------------------------


def _parameters_with_grads(*grads):
    grads = [torch.as_tensor(grad, dtype=torch.float64).clone() for grad in grads]
    parameters = [torch.zeros_like(grad, requires_grad=True) for grad in grads]
    for parameter, grad in zip(parameters, grads):
        parameter.grad = grad
    return parameters


@torch.no_grad()
def clip_grad_norm_per_tensor(parameters: Iterable[torch.Tensor], max_norm: float) -> torch.Tensor:
    """The reference's gradient clip, written out: each gradient g -> g * c / max(||g||_2, c), in place.

    openai/maddpg's minimize_and_clip applies `tf.clip_by_norm` to every gradient tensor
    separately, NOT the norm of all gradients together (torch.nn.utils.clip_grad_norm_).
    MADDPG trains with RLlib's grad_clip_by="norm"; the tests below check that it is this.
    Returns the norms before clipping, one per tensor that has a gradient.
    """
    if max_norm <= 0:
        raise ValueError(f"clip_grad_norm_per_tensor: max_norm must be > 0, got {max_norm}")
    grads = [p.grad for p in parameters if p.grad is not None]
    norms = [grad.norm(2) for grad in grads]
    for grad, norm in zip(grads, norms):
        grad.mul_(max_norm / norm.clamp(min=max_norm))
    return torch.stack(norms) if norms else torch.zeros(0)


def test_clip_grad_norm_per_tensor_hand_values():
    big, small = _parameters_with_grads([3.0, 4.0], [0.3, 0.0])  # norms 5 and 0.3
    no_grad = torch.zeros(2, requires_grad=True)
    norms = clip_grad_norm_per_tensor([big, small, no_grad], 0.5)
    np.testing.assert_allclose(norms.numpy(), [5.0, 0.3], atol=TOL)
    np.testing.assert_allclose(big.grad.numpy(), [0.3, 0.4], atol=TOL)  # scaled to norm 0.5
    np.testing.assert_allclose(small.grad.numpy(), [0.3, 0.0], atol=TOL)  # under the limit: untouched
    # torch's clip_grad_norm_ clips the norm of all gradients together, and so shrinks the small one too
    big, small = _parameters_with_grads([3.0, 4.0], [0.3, 0.0])
    torch.nn.utils.clip_grad_norm_([big, small], 0.5)
    assert small.grad[0].item() < 0.1


def test_clip_grad_norm_per_tensor_matches_rllibs_norm_mode():
    shapes_and_scales = [((4, 3), 1.0), ((3,), 0.01), ((2, 2), 5.0)]  # above, below and far above 0.5
    grads = [torch.randn(shape, generator=generator(30 + i), dtype=torch.float64) * scale for i, (shape, scale) in enumerate(shapes_and_scales)]
    ours = _parameters_with_grads(*grads)
    clip_grad_norm_per_tensor(ours, 0.5)
    rllib = {str(i): grad.clone() for i, grad in enumerate(grads)}
    clip_gradients(rllib, grad_clip=0.5, grad_clip_by="norm")
    for parameter, expected in zip(ours, rllib.values()):
        torch.testing.assert_close(parameter.grad, expected)
