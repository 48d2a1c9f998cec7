"""Image observations: a convolutional encoder before the PPO family's MLPs (model.encoder).

Pure tests of the encoders, the config's one-line refusals, and short real trainings on
PettingZoo's cooperative_pong (frames shrunk with SuperSuit so the tests stay fast).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from marl.experiment import load_config
from marl.core.encoders import ConvEncoder, PerAgentEncoder
from marl.errors import ConfigError
from tests.conftest import REPO

PONG = "pettingzoo.butterfly.cooperative_pong_v6:parallel_env"
SMALL_FRAMES = "scenario.wrappers=[{resize_v1: {x_size: 32, y_size: 24}}]"  # (24, 32, 3) uint8 frames


def test_conv_encoder_reads_flat_channel_last_frames():
    encoder = ConvEncoder((24, 32, 3), scale=1 / 255)
    frames = torch.randint(0, 256, (5, 24, 32, 3)).float()
    features = encoder(frames.reshape(5, -1))
    assert features.shape == (5, encoder.out_dim)
    # The same as running the conv stack on (N, C, H, W) frames scaled to [0, 1].
    expected = encoder.net(frames.permute(0, 3, 1, 2) / 255)
    torch.testing.assert_close(features, expected)


def test_per_agent_encoder_encodes_each_frame_with_one_shared_encoder():
    encoder = ConvEncoder((24, 32, 3))
    per_agent = PerAgentEncoder(encoder, 2)
    a, b = torch.rand(4, 24 * 32 * 3), torch.rand(4, 24 * 32 * 3)
    features = per_agent(torch.cat([a, b], dim=-1))
    torch.testing.assert_close(features, torch.cat([encoder(a), encoder(b)], dim=-1))
    assert sum(p.numel() for p in per_agent.parameters()) == sum(p.numel() for p in encoder.parameters())


def _pong(algorithm: str, *overrides: str):
    return load_config(
        REPO / "configs" / "mappo_simple_spread.yaml",
        [f"algorithm={algorithm}", f"scenario.name={PONG}", "scenario.kwargs={}", "scenario.backend=pettingzoo",
         "policies.sharing=shared", SMALL_FRAMES, *overrides],
    )


def test_what_cannot_use_a_conv_encoder_is_refused_in_one_line():
    with pytest.raises(ConfigError, match="model.encoder: maddpg has no convolutional encoder"):
        load_config(REPO / "configs" / "maddpg_simple_spread.yaml", ["model.encoder=cnn"])
    spread = load_config(REPO / "configs" / "ippo_simple_spread.yaml", ["model.encoder=cnn", "scenario.backend=pettingzoo"])
    with pytest.raises(ConfigError, match=r"needs image observations .* shape \(18,\)"):
        spread.training.probe(spread)
    env_state = _pong("mappo", "scenario.global_state=env")
    with pytest.raises(ConfigError, match="set scenario.global_state: observations"):
        env_state.training.probe(env_state)


@pytest.mark.parametrize("algorithm", ["ippo", "mappo"])
def test_ppo_family_trains_on_frames_with_conv_encoders(algorithm, tmp_path):
    from marl.training.runner import train

    config = _pong(
        algorithm, "scenario.global_state=observations", "training.train_batch_size=200", "training.num_epochs=1",
        "resources.num_env_runners=0", "resources.num_envs_per_env_runner=2",
    )
    lines: list[str] = []
    seen = {}

    def inspect(algo, row):
        module = algo.get_module("shared")
        seen["actor"] = any(isinstance(layer, nn.Conv2d) for layer in module.actor_encoder.modules())
        seen["critic"] = type(module.critic_encoder).__name__
        seen["first_linear"] = next(layer for layer in module.actor.modules() if isinstance(layer, nn.Linear)).in_features

    train(config, runs_root=tmp_path, echo=lines.append, max_iterations=1, on_iteration=inspect)
    assert [line for line in lines if line.startswith("iter ")], lines
    assert not any("WARNING" in line and "image" in line for line in lines)  # the encoder reads the frames
    assert seen["actor"]
    assert seen["critic"] == ("PerAgentEncoder" if algorithm == "mappo" else "ConvEncoder")
    assert seen["first_linear"] < 24 * 32 * 3  # the MLP reads features, not pixels
