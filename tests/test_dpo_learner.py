"""The DPO learner on hand-made batches (an RLlib Learner, no Ray cluster).

The pure terms are tested in test_dpo_math.py; this checks the wiring in
DPOTorchLearner: the loss is the composition of those terms with the current
coefficients, the coefficients adapt from the iteration's mean KL (per policy, or
shared), and they survive the learner state (what a checkpoint stores).
"""

from __future__ import annotations

import pytest
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.evaluation.postprocessing import Postprocessing

from marl.algorithms.dpo.learner import COEFFICIENTS_STATE_KEY
from marl.algorithms.dpo.losses import dpo_policy_terms
from marl.algorithms.ppo.losses import value_loss
from marl.experiment import load_config
from tests.conftest import REPO, local_learner

POLICIES = ("speaker_0", "listener_0")


def make_learner(*overrides: str):
    config = load_config(
        REPO / "configs" / "dpo_simple_speaker_listener.yaml",
        ["model.hidden=[16, 16]", "training.value_normalization=false", *overrides],
    )
    rllib_config = config.training.to_rllib(config, num_gpus_per_learner=0)
    learner = local_learner(rllib_config)
    return learner, rllib_config


@pytest.fixture(scope="module")
def learner_and_config():
    return make_learner()


def coefficients(learner, module_id: str) -> tuple[float, float]:
    return learner.beta_kl_per_module[module_id].item(), learner.beta_sqrt_kl_per_module[module_id].item()


def set_coefficients(learner, beta_kl: float, beta_sqrt_kl: float) -> None:
    for module_id in POLICIES:
        learner.beta_kl_per_module[module_id].fill_(beta_kl)
        learner.beta_sqrt_kl_per_module[module_id].fill_(beta_sqrt_kl)


def hand_batch(module, *, old_shift: float, rows: int = 6, seed: int = 0) -> dict[str, torch.Tensor]:
    """Rollout logits = the current policy's, plus `old_shift` on action 0 (0: old == new)."""
    generator = torch.Generator().manual_seed(seed)
    obs = torch.randn(rows, module.observation_space.shape[0], generator=generator)
    with torch.no_grad():
        old_logits = module.action_dist_inputs(obs).clone()
    old_logits[:, 0] += old_shift
    old_dist = module.get_train_action_dist_cls().from_logits(old_logits)
    actions = torch.randint(0, module.action_space.n, (rows,), generator=generator)
    return {
        Columns.OBS: obs,
        Columns.ACTIONS: actions,
        Columns.ACTION_LOGP: old_dist.logp(actions),
        Columns.ACTION_DIST_INPUTS: old_logits,
        Postprocessing.ADVANTAGES: torch.randn(rows, generator=generator),
        Postprocessing.VALUE_TARGETS: torch.randn(rows, generator=generator) * 3,
        Columns.VF_PREDS: torch.randn(rows, generator=generator),
    }


def loss_of(learner, config, module_id: str, batch) -> torch.Tensor:
    module = learner.module[module_id].unwrapped()
    with torch.no_grad():
        return learner.compute_loss_for_module(module_id=module_id, config=config, batch=batch, fwd_out=module.forward_train(batch))


def test_loss_is_the_composition_of_the_pure_terms(learner_and_config):
    learner, config = learner_and_config
    set_coefficients(learner, beta_kl=4.0, beta_sqrt_kl=0.25)
    module = learner.module["listener_0"].unwrapped()
    batch = hand_batch(module, old_shift=1.5)
    with torch.no_grad():
        dist = module.get_train_action_dist_cls().from_logits(module.forward_train(batch)[Columns.ACTION_DIST_INPUTS])
        old_dist = module.get_train_action_dist_cls().from_logits(batch[Columns.ACTION_DIST_INPUTS])
        terms = dpo_policy_terms(
            dist.logp(batch[Columns.ACTIONS]),
            batch[Columns.ACTION_LOGP],
            batch[Postprocessing.ADVANTAGES],
            old_dist.kl(dist),
            0.25,
            4.0,
            torch.mean,
        )
        vf = value_loss(
            module.compute_values(batch),
            batch[Columns.VF_PREDS],
            batch[Postprocessing.VALUE_TARGETS],
            torch.mean,
            huber_delta=10.0,
            clip_param=0.2,
        )
        expected = terms["surrogate_loss"] + 0.25 * terms["sqrt_kl"] + 4.0 * terms["kl"] + 1.0 * vf - 0.01 * dist.entropy().mean()
    assert terms["kl"].item() > 0.01  # the batch really is off-policy, so the penalties matter

    loss = loss_of(learner, config, "listener_0", batch)
    learner._divergence_sums.clear()  # this check is not part of an iteration

    assert loss.item() == pytest.approx(expected.item(), rel=1e-5, abs=1e-6)
    logged = {key: learner.metrics.peek(("listener_0", key)) for key in ("beta_kl", "beta_sqrt_kl", "kl", "sqrt_kl", "surrogate_loss", "pg_loss")}
    assert float(logged["beta_kl"]) == 4.0 and float(logged["beta_sqrt_kl"]) == 0.25
    assert float(logged["kl"]) == pytest.approx(terms["kl"].item(), rel=1e-5)
    assert float(logged["pg_loss"]) == pytest.approx(terms["pg_loss"].item(), rel=1e-5)


def run_iteration(learner, config, shifts: dict[str, list[float]]) -> None:
    """One 'iteration' by hand: a loss per minibatch and module, then the after-update hook."""
    for module_id, module_shifts in shifts.items():
        module = learner.module[module_id].unwrapped()
        for seed, shift in enumerate(module_shifts):
            loss_of(learner, config, module_id, hand_batch(module, old_shift=shift, seed=seed))
    learner.after_gradient_based_update(timesteps={})


def test_coefficients_double_far_above_target_and_halve_far_below(learner_and_config):
    learner, config = learner_and_config
    set_coefficients(learner, 1.0, 1.0)
    # speaker: old policy nearly deterministic on action 0 -> KL ~ 1, far above 0.01.
    # listener: old == new -> KL = 0, far below.
    run_iteration(learner, config, {"speaker_0": [20.0], "listener_0": [0.0]})
    assert coefficients(learner, "speaker_0") == (2.0, 2.0)
    assert coefficients(learner, "listener_0") == (0.5, 0.5)
    run_iteration(learner, config, {"speaker_0": [20.0], "listener_0": [0.0]})
    assert coefficients(learner, "speaker_0") == (4.0, 4.0)
    assert coefficients(learner, "listener_0") == (0.25, 0.25)


def test_adaptation_uses_the_mean_over_the_iterations_minibatches(learner_and_config):
    learner, config = learner_and_config
    set_coefficients(learner, 1.0, 1.0)
    module = learner.module["speaker_0"].unwrapped()
    kls = []
    for seed, shift in enumerate([20.0, 0.0, 0.0]):
        batch = hand_batch(module, old_shift=shift, seed=seed)
        loss_of(learner, config, "speaker_0", batch)
        kls.append(float(learner.metrics.peek(("speaker_0", "kl"))))
    learner.after_gradient_based_update(timesteps={})
    # The last minibatch alone (KL 0) would halve; the mean (~KL/3 of the first) doubles.
    assert kls[-1] == 0.0 and sum(kls) / 3 > 0.015
    assert coefficients(learner, "speaker_0")[0] == 2.0
    # The logged KL is the mean the coefficients were adapted from.
    assert float(learner.metrics.peek(("speaker_0", "kl"))) == pytest.approx(sum(kls) / 3, rel=1e-5)
    # The accumulator starts afresh: an iteration with KL 0 now halves.
    run_iteration(learner, config, {"speaker_0": [0.0]})
    assert coefficients(learner, "speaker_0")[0] == 1.0


def test_coefficients_are_clamped(learner_and_config):
    learner, config = learner_and_config
    set_coefficients(learner, 900.0, 1.5e-3)
    run_iteration(learner, config, {"speaker_0": [20.0]})
    assert coefficients(learner, "speaker_0")[0] == pytest.approx(1e3)
    run_iteration(learner, config, {"listener_0": [0.0]})
    assert coefficients(learner, "listener_0")[1] == pytest.approx(1e-3)


def test_shared_coefficients_move_all_policies_together():
    learner, config = make_learner("training.shared_coefficients=true")
    # Only the speaker is far off-policy; the mean over the two policies (~0.5) is still
    # far above target, so both pairs double, although the listener alone would halve.
    run_iteration(learner, config, {"speaker_0": [20.0], "listener_0": [0.0]})
    assert coefficients(learner, "speaker_0") == coefficients(learner, "listener_0") == (2.0, 2.0)
    run_iteration(learner, config, {"speaker_0": [0.0], "listener_0": [0.0]})
    assert coefficients(learner, "speaker_0") == coefficients(learner, "listener_0") == (1.0, 1.0)


def test_coefficients_survive_the_learner_state(learner_and_config, tmp_path):
    learner, config = learner_and_config
    learner.beta_kl_per_module["speaker_0"].fill_(8.0)
    learner.beta_sqrt_kl_per_module["speaker_0"].fill_(0.125)
    learner.beta_kl_per_module["listener_0"].fill_(0.0625)
    learner.beta_sqrt_kl_per_module["listener_0"].fill_(16.0)
    expected = {module_id: coefficients(learner, module_id) for module_id in POLICIES}

    fresh, _ = make_learner()
    assert coefficients(fresh, "speaker_0") == (1.0, 1.0)
    fresh.set_state(learner.get_state())
    assert {module_id: coefficients(fresh, module_id) for module_id in POLICIES} == expected

    # The checkpoint path (RLlib writes the learner's non-module state to its own file).
    learner.save_to_path(str(tmp_path / "learner"))
    restored, _ = make_learner()
    restored.restore_from_path(str(tmp_path / "learner"))
    assert {module_id: coefficients(restored, module_id) for module_id in POLICIES} == expected

    # Weight syncs to env runners ask for the module only: no coefficients there.
    assert COEFFICIENTS_STATE_KEY not in learner.get_state(components="rl_module")


def test_initial_coefficients_and_target_come_from_the_config():
    learner, config = make_learner("training.initial_beta_kl=0.5", "training.initial_beta_sqrt_kl=2.0", "training.kl_target=1.0")
    assert coefficients(learner, "speaker_0") == (0.5, 2.0)
    # KL ~ 1 is inside the band around a target of 1, sqrt-KL ~ 1 inside the band around sqrt(1).
    run_iteration(learner, config, {"speaker_0": [20.0]})
    kl, sqrt_kl = (float(learner.metrics.peek(("speaker_0", key))) for key in ("kl", "sqrt_kl"))
    assert 1 / 1.5 < kl < 1.5 and 1 / 1.5 < sqrt_kl < 1.5
    assert coefficients(learner, "speaker_0") == (0.5, 2.0)


def test_centralized_critic_is_an_opt_in_deviation():
    """critic: centralized gives the critic the global state; the actor still sees only its own observation."""
    local, _ = make_learner()
    central, _ = make_learner("training.critic=centralized")
    for module_id in POLICIES:
        assert local.module[module_id].unwrapped().centralized_critic is False
        module = central.module[module_id].unwrapped()
        assert module.centralized_critic is True and module.state_dim == 3 + 11  # both agents' observations
        assert module.actor[0].in_features == module.obs_dim
