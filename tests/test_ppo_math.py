"""PPO-family maths on hand-made batches: losses, value normalisation, the actor-critic module (pure torch)."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.rl_module import RLModuleSpec

from marl.algorithms.ppo.losses import clipped_surrogate, explained_variance, value_loss
from marl.algorithms.ppo.module import ActorCriticModule
from marl.core.masking import masked_mean_fn
from marl.core.value_norm import ValueNormalizer

TOL = 1e-6


def t(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


# -- clipped surrogate ------------------------------------------------------------------
#
# eps = 0.2; log ratios and advantages chosen so that two rows are clipped:
#   row  log r   r        A     r*A        clip(r)*A     min          |r-1| > eps
#   0    +0.5   1.64872  +1.0   1.64872    1.2*1.0=1.2   1.2 (clip)   yes
#   1    -0.5   0.60653  +2.0   1.21306    0.8*2.0=1.6   1.21306      yes (but min keeps r*A)
#   2    +0.1   1.10517  -1.5  -1.65776   -1.65776       -1.65776     no
#   3    -0.3   0.74082  -0.5  -0.37041    0.8*-0.5=-0.4 -0.4 (clip)  yes

LOG_RATIO = [0.5, -0.5, 0.1, -0.3]
ADVANTAGES = [1.0, 2.0, -1.5, -0.5]
OLD_LOGP = [-1.0, -2.0, -0.5, -1.2]
EPS = 0.2


def _surrogate_batch():
    old_logp = t(OLD_LOGP)
    logp = (old_logp + t(LOG_RATIO)).requires_grad_(True)
    return logp, old_logp, t(ADVANTAGES)


def test_clipped_surrogate_hand_batch():
    logp, old_logp, advantages = _surrogate_batch()
    out = clipped_surrogate(logp, old_logp, advantages, EPS, masked_mean_fn(None))

    # per-row objective: the branch min() picks, written out by hand (see the table)
    objective = [1.2 * 1.0, math.exp(-0.5) * 2.0, math.exp(0.1) * -1.5, 0.8 * -0.5]
    expected_pg_loss = -sum(objective) / 4
    expected_clip_frac = 3 / 4
    expected_kl = sum((math.exp(x) - 1.0) - x for x in LOG_RATIO) / 4
    expected_ratio_mean = sum(math.exp(x) for x in LOG_RATIO) / 4

    assert out["pg_loss"].item() == pytest.approx(expected_pg_loss, abs=TOL)
    assert out["clip_frac"].item() == pytest.approx(expected_clip_frac, abs=TOL)
    assert out["approx_kl"].item() == pytest.approx(expected_kl, abs=TOL)
    assert out["ratio_mean"].item() == pytest.approx(expected_ratio_mean, abs=TOL)
    # the numbers themselves, rounded by hand
    # -(1.2 + 1.213061 - 1.657755 - 0.4) / 4 and (0.148721 + 0.106531 + 0.005171 + 0.040818) / 4
    assert out["pg_loss"].item() == pytest.approx(-0.0888265, abs=1e-6)
    assert out["approx_kl"].item() == pytest.approx(0.0753103, abs=1e-6)
    assert out["approx_kl"].item() >= 0.0
    # diagnostics carry no gradient
    assert not out["approx_kl"].requires_grad and not out["clip_frac"].requires_grad


def test_clipped_surrogate_gradient_is_zero_on_clipped_rows():
    logp, old_logp, advantages = _surrogate_batch()
    clipped_surrogate(logp, old_logp, advantages, EPS, masked_mean_fn(None))["pg_loss"].backward()
    # d(-mean(r*A))/d logp = -r*A/4 on unclipped rows, 0 where the clipped branch won
    expected = [0.0, -math.exp(-0.5) * 2.0 / 4, -math.exp(0.1) * -1.5 / 4, 0.0]
    np.testing.assert_allclose(logp.grad.numpy(), expected, atol=TOL)


def test_clipped_surrogate_with_mask():
    logp, old_logp, advantages = _surrogate_batch()
    mask = torch.tensor([False, True, True, True])  # row 0 is padding
    out = clipped_surrogate(logp, old_logp, advantages, EPS, masked_mean_fn(mask))
    objective = [math.exp(-0.5) * 2.0, math.exp(0.1) * -1.5, 0.8 * -0.5]
    assert out["pg_loss"].item() == pytest.approx(-sum(objective) / 3, abs=TOL)
    assert out["clip_frac"].item() == pytest.approx(2 / 3, abs=TOL)
    assert out["approx_kl"].item() == pytest.approx(sum((math.exp(x) - 1.0) - x for x in LOG_RATIO[1:]) / 3, abs=TOL)


def test_clipped_surrogate_on_policy_is_minus_mean_advantage():
    logp = t([-1.0, -0.3, -2.0])
    out = clipped_surrogate(logp, logp.clone(), t([1.0, -2.0, 4.0]), EPS, masked_mean_fn(None))
    assert out["pg_loss"].item() == pytest.approx(-1.0, abs=TOL)
    assert out["approx_kl"].item() == pytest.approx(0.0, abs=TOL)
    assert out["clip_frac"].item() == 0.0
    assert out["ratio_mean"].item() == pytest.approx(1.0, abs=TOL)


# -- value loss -------------------------------------------------------------------------
#
#   row  v     v_old  target  v - target  v_clip = v_old + clip(v - v_old, +-0.2)  v_clip - target
#   0    1.0   0.5    2.0     -1.0        0.5 + 0.2 = 0.7                          -1.3
#   1    0.0   0.5    0.1     -0.1        0.5 - 0.2 = 0.3                           0.2
#   2    3.0   0.0   -10.0    13.0        0.0 + 0.2 = 0.2                          10.2
#   3   -2.0  -2.1   -2.0      0.0       -2.1 + 0.1 = -2.0                          0.0

VALUES = [1.0, 0.0, 3.0, -2.0]
OLD_VALUES = [0.5, 0.5, 0.0, -2.1]
TARGETS = [2.0, 0.1, -10.0, -2.0]


@pytest.mark.parametrize(
    "huber_delta, clip_param, per_row",
    [
        # squared error 0.5 e^2
        (None, None, [0.5, 0.005, 84.5, 0.0]),
        # huber, delta 1: 0.5 e^2 if |e| <= 1 else 1 * (|e| - 0.5)
        (1.0, None, [0.5, 0.005, 12.5, 0.0]),
        # huber, delta 10: row 2 is 10 * (13 - 5) = 80
        (10.0, None, [0.5, 0.005, 80.0, 0.0]),
        # squared, clipped: max(0.5 e^2, 0.5 e_clip^2) = max([.5,.005,84.5,0], [.845,.02,52.02,0])
        (None, 0.2, [0.845, 0.02, 84.5, 0.0]),
        # huber 1, clipped: max([.5,.005,12.5,0], [.8,.02,9.7,0])
        (1.0, 0.2, [0.8, 0.02, 12.5, 0.0]),
    ],
)
def test_value_loss_hand_batch(huber_delta, clip_param, per_row):
    loss = value_loss(
        t(VALUES), t(OLD_VALUES), t(TARGETS), masked_mean_fn(None), huber_delta=huber_delta, clip_param=clip_param
    )
    assert loss.item() == pytest.approx(sum(per_row) / 4, abs=TOL)


def test_value_loss_hand_totals():
    mean = masked_mean_fn(None)
    args = (t(VALUES), t(OLD_VALUES), t(TARGETS), mean)
    assert value_loss(*args, huber_delta=None, clip_param=None).item() == pytest.approx(21.25125, abs=TOL)
    assert value_loss(*args, huber_delta=1.0, clip_param=None).item() == pytest.approx(3.25125, abs=TOL)
    assert value_loss(*args, huber_delta=None, clip_param=0.2).item() == pytest.approx(21.34125, abs=TOL)
    assert value_loss(*args, huber_delta=1.0, clip_param=0.2).item() == pytest.approx(3.33, abs=TOL)


def test_value_loss_masked():
    mask = torch.tensor([1.0, 1.0, 0.0, 1.0])  # the outlier row 2 is padding
    loss = value_loss(t(VALUES), t(OLD_VALUES), t(TARGETS), masked_mean_fn(mask), huber_delta=None, clip_param=None)
    assert loss.item() == pytest.approx((0.5 + 0.005 + 0.0) / 3, abs=TOL)


def test_explained_variance():
    targets = t([1.0, 2.0, 3.0, 4.0])
    assert explained_variance(targets, targets).item() == pytest.approx(1.0)
    assert explained_variance(targets, torch.full_like(targets, 2.5)).item() == pytest.approx(0.0)
    assert explained_variance(t([2.0, 2.0]), t([0.0, 1.0])).item() == 0.0


# -- value normaliser ---------------------------------------------------------------------


def test_value_normalizer_state_is_buffers():
    normalizer = ValueNormalizer()
    assert list(normalizer.parameters()) == []
    assert set(normalizer.state_dict()) == {"running_mean", "running_mean_sq", "debiasing_term"}


def test_value_normalizer_round_trip_on_constantish_stream():
    generator = torch.Generator().manual_seed(0)
    normalizer = ValueNormalizer(beta=0.99)
    for _ in range(200):
        normalizer.update(3.0 + 1e-3 * torch.randn(64, generator=generator))
    mean, var = normalizer.mean_var()
    assert mean.item() == pytest.approx(3.0, abs=1e-3)
    assert var.item() == pytest.approx(normalizer.var_floor)  # tiny spread: the floor holds
    values = torch.linspace(-10.0, 10.0, 21)
    np.testing.assert_allclose(normalizer.denormalize(normalizer.normalize(values)).numpy(), values.numpy(), atol=1e-5)
    np.testing.assert_allclose(normalizer.normalize(normalizer.denormalize(values)).numpy(), values.numpy(), atol=1e-5)
    assert normalizer.normalize(torch.tensor(3.0)).item() == pytest.approx(0.0, abs=1e-2)


def test_value_normalizer_tracks_mean_and_variance():
    generator = torch.Generator().manual_seed(0)
    normalizer = ValueNormalizer(beta=0.99)
    for _ in range(1500):
        normalizer.update(5.0 + 2.0 * torch.randn(1000, generator=generator))
    mean, var = normalizer.mean_var()
    assert mean.item() == pytest.approx(5.0, abs=0.05)
    assert var.item() == pytest.approx(4.0, abs=0.1)
    normalized = normalizer.normalize(5.0 + 2.0 * torch.randn(100_000, generator=generator))
    assert normalized.mean().item() == pytest.approx(0.0, abs=0.05)
    assert normalized.std().item() == pytest.approx(1.0, abs=0.05)


def test_value_normalizer_debiasing_after_one_update():
    normalizer = ValueNormalizer(beta=0.99)
    normalizer.update(t([1.0, 3.0]).float())
    mean, var = normalizer.mean_var()
    assert mean.item() == pytest.approx(2.0, abs=1e-5)  # not 0.02: the EMA is debiased
    assert var.item() == pytest.approx(1.0, abs=1e-4)  # E[x^2] - E[x]^2 = 5 - 4


# -- actor-critic module ------------------------------------------------------------------

OBS_DIM, ID_DIM, STATE_DIM = 6, 3, 10


def build_module(*, centralized: bool, action_space: gym.Space | None = None, state_dim: int = STATE_DIM, normalization: bool = True):
    total = OBS_DIM + ID_DIM + state_dim
    return RLModuleSpec(
        module_class=ActorCriticModule,
        observation_space=gym.spaces.Box(-np.inf, np.inf, (total,), np.float32),
        action_space=action_space or gym.spaces.Discrete(5),
        model_config={
            "obs_dim": OBS_DIM,
            "id_dim": ID_DIM,
            "state_dim": state_dim,
            "hidden": [16, 16],
            "activation": "tanh",
            "centralized_critic": centralized,
            "value_normalization": normalization,
            "initial_log_std": -0.5,
        },
    ).build()


def _obs(batch: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, OBS_DIM + ID_DIM + STATE_DIM, generator=torch.Generator().manual_seed(seed))


def _with_state(obs: torch.Tensor, seed: int) -> torch.Tensor:
    changed = obs.clone()
    changed[:, OBS_DIM + ID_DIM :] = torch.randn(obs.shape[0], STATE_DIM, generator=torch.Generator().manual_seed(seed))
    return changed


def _with_own_obs(obs: torch.Tensor, seed: int) -> torch.Tensor:
    changed = obs.clone()
    changed[:, :OBS_DIM] = torch.randn(obs.shape[0], OBS_DIM, generator=torch.Generator().manual_seed(seed))
    return changed


def _logits(module, obs):
    with torch.no_grad():
        return module.forward_inference({Columns.OBS: obs})[Columns.ACTION_DIST_INPUTS]


def _values(module, obs):
    with torch.no_grad():
        return module.compute_values({Columns.OBS: obs})


@pytest.mark.parametrize("centralized", [True, False])
def test_actor_is_decentralised(centralized):
    module = build_module(centralized=centralized)
    obs = _obs()
    logits = _logits(module, obs)
    assert logits.shape == (8, 5)
    assert torch.equal(logits, _logits(module, _with_state(obs, seed=1)))
    assert not torch.equal(logits, _logits(module, _with_own_obs(obs, seed=1)))
    # forward_train and forward_exploration read the same actor
    with torch.no_grad():
        assert torch.equal(logits, module.forward_train({Columns.OBS: obs})[Columns.ACTION_DIST_INPUTS])
        assert torch.equal(logits, module.forward_exploration({Columns.OBS: obs})[Columns.ACTION_DIST_INPUTS])


def test_mappo_critic_reads_state_not_own_obs():
    module = build_module(centralized=True)
    obs = _obs()
    values = _values(module, obs)
    assert values.shape == (8,)
    assert torch.equal(values, _values(module, _with_own_obs(obs, seed=2)))
    assert not torch.allclose(values, _values(module, _with_state(obs, seed=2)))
    # the critic's input is [id | state]
    assert module.critic[0].in_features == ID_DIM + STATE_DIM


def test_ippo_critic_ignores_state():
    module = build_module(centralized=False)
    obs = _obs()
    values = _values(module, obs)
    assert torch.equal(values, _values(module, _with_state(obs, seed=3)))
    assert not torch.allclose(values, _values(module, _with_own_obs(obs, seed=3)))
    assert module.critic[0].in_features == OBS_DIM + ID_DIM


def test_ippo_without_state():
    module = build_module(centralized=False, state_dim=0)
    obs = torch.randn(4, OBS_DIM + ID_DIM)
    assert _logits(module, obs).shape == (4, 5)
    assert _values(module, obs).shape == (4,)


def test_centralised_critic_needs_state():
    with pytest.raises(ValueError, match="state_dim"):
        build_module(centralized=True, state_dim=0)


def test_box_actions_give_mean_and_log_std():
    module = build_module(centralized=True, action_space=gym.spaces.Box(-1.0, 1.0, (3,), np.float32))
    obs = _obs()
    logits = _logits(module, obs)
    assert logits.shape == (8, 2 * 3)
    np.testing.assert_allclose(logits[:, 3:].numpy(), -0.5)  # initial_log_std, the same for every row
    distribution = module.action_dist_cls.from_logits(logits)
    assert distribution.sample().shape == (8, 3)
    assert module.log_std.requires_grad


def test_compute_values_denormalizes():
    module = build_module(centralized=True)
    module.value_normalizer.update(torch.tensor([10.0, 20.0, 30.0]))  # mean 20, var 200/3
    obs = _obs()
    with torch.no_grad():
        normalized = module.normalized_values({Columns.OBS: obs})
        values = module.compute_values({Columns.OBS: obs})
        np.testing.assert_allclose(values.numpy(), module.value_normalizer.denormalize(normalized).numpy(), atol=1e-6)
        mean, var = module.value_normalizer.mean_var()
        np.testing.assert_allclose(values.numpy(), (normalized * math.sqrt(200 / 3) + 20.0).numpy(), rtol=1e-5, atol=1e-4)
    assert not torch.allclose(values, normalized)
    # the normaliser's statistics are part of the module state
    state = module.state_dict()
    assert "value_normalizer.running_mean" in state


def test_compute_values_without_normalization_is_raw_critic():
    module = build_module(centralized=True, normalization=False)
    assert module.value_normalizer is None
    obs = _obs()
    with torch.no_grad():
        assert torch.equal(module.compute_values({Columns.OBS: obs}), module.normalized_values({Columns.OBS: obs}))
