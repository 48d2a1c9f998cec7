"""The PPO-family learner's loss on a hand-made batch (an RLlib Learner, no Ray cluster).

The pure loss terms are tested in test_ppo_math.py; this checks the wiring around them
in PPOFamilyTorchLearner: value normalisation updated from the batch's targets before
use, old predictions re-expressed in normalised units, Huber delta and value clip
taken from the config, and the logged terms.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.evaluation.postprocessing import Postprocessing

from marl.algorithms.ppo.losses import clipped_surrogate, value_loss
from marl.experiment import load_config
from tests.conftest import REPO, local_learner


@pytest.fixture(scope="module")
def learner_and_config():
    config = load_config(
        REPO / "configs" / "mappo_simple_spread.yaml", ["policies.sharing=shared", "training.huber_delta=1.0", "training.value_clip_param=0.5"]
    )
    rllib_config = config.training.to_rllib(config, num_gpus_per_learner=0)
    learner = local_learner(rllib_config)
    return learner, rllib_config


def _hand_batch(module, rows: int = 6, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    obs_dim = module.observation_space.shape[0]
    return {
        Columns.OBS: torch.randn(rows, obs_dim, generator=generator),
        Columns.ACTIONS: torch.tensor([0, 1, 2, 3, 4, 0]),
        Columns.ACTION_LOGP: torch.log(torch.full((rows,), 0.2)) + torch.tensor([0.0, 0.3, -0.3, 0.05, -0.5, 0.2]),
        Postprocessing.ADVANTAGES: torch.tensor([1.0, -1.0, 0.5, -0.5, 2.0, -2.0]),
        Postprocessing.VALUE_TARGETS: torch.tensor([3.0, -1.0, 4.0, 0.0, 2.0, 10.0]),
        Columns.VF_PREDS: torch.tensor([2.0, 0.0, 3.0, 1.0, 2.5, 8.0]),
    }


def test_loss_matches_hand_computation_with_value_normalisation(learner_and_config):
    learner, rllib_config = learner_and_config
    module = learner.module["shared"].unwrapped()
    for buffer in module.value_normalizer.buffers():
        buffer.zero_()  # fresh statistics, whatever ran before
    batch = _hand_batch(module)
    targets = batch[Postprocessing.VALUE_TARGETS].numpy()

    # Expected value normalisation after one update from zero statistics: the debiased
    # EMA equals the batch's own mean and mean square.
    mean = targets.mean()
    std = np.sqrt(max((targets**2).mean() - mean**2, 1e-2))
    with torch.no_grad():
        fwd_out = module.forward_train(batch)
        raw_values = module.normalized_values(batch)
        dist = module.get_train_action_dist_cls().from_logits(fwd_out[Columns.ACTION_DIST_INPUTS])
        logp = dist.logp(batch[Columns.ACTIONS])
        entropy = dist.entropy().mean()
        expected_policy = clipped_surrogate(logp, batch[Columns.ACTION_LOGP], batch[Postprocessing.ADVANTAGES], 0.2, torch.mean)
        expected_vf = value_loss(
            raw_values,
            torch.as_tensor((batch[Columns.VF_PREDS].numpy() - mean) / std, dtype=torch.float32),
            torch.as_tensor((targets - mean) / std, dtype=torch.float32),
            torch.mean,
            huber_delta=1.0,
            clip_param=0.5,
        )
        expected_total = expected_policy["pg_loss"] + rllib_config.vf_loss_coeff * expected_vf - rllib_config.entropy_coeff * entropy

        loss = learner.compute_loss_for_module(module_id="shared", config=rllib_config, batch=batch, fwd_out=fwd_out)

    assert loss.item() == pytest.approx(expected_total.item(), rel=1e-5, abs=1e-6)
    normalizer_mean, normalizer_var = module.value_normalizer.mean_var()
    assert normalizer_mean.item() == pytest.approx(mean, rel=1e-4)
    assert normalizer_var.item() == pytest.approx(std**2, rel=1e-4)
    # compute_values (what GAE reads) is in return units again.
    np.testing.assert_allclose(
        module.compute_values(batch).detach().numpy(), raw_values.numpy() * std + mean, rtol=1e-4, atol=1e-4
    )


def test_loss_mask_excludes_padded_rows(learner_and_config):
    """Rows RLlib masks out (the artificial bootstrap step) must not change the loss."""
    learner, rllib_config = learner_and_config
    module = learner.module["shared"].unwrapped()
    batch = _hand_batch(module, seed=1)
    masked = {key: value.clone() for key, value in batch.items()}
    masked[Columns.LOSS_MASK] = torch.tensor([True, True, True, True, True, False])
    masked[Postprocessing.ADVANTAGES][-1] = 1e6  # garbage in the masked row
    masked[Postprocessing.VALUE_TARGETS][-1] = float("nan")
    trimmed = {key: value[:5] for key, value in batch.items()}

    def loss_of(b):
        for buffer in module.value_normalizer.buffers():
            buffer.zero_()
        with torch.no_grad():
            return learner.compute_loss_for_module(
                module_id="shared", config=rllib_config, batch=b, fwd_out=module.forward_train(b)
            ).item()

    assert loss_of(masked) == pytest.approx(loss_of(trimmed), rel=1e-5)
