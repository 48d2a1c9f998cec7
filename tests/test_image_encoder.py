"""Image observations: a convolutional encoder before the PPO family's MLPs (model.encoder).

Pure tests of the encoders and of the frame pooling rule (`model.image_size`), the config's
one-line refusals, the train batch of a centralised critic over frames (each frame stored
once, as bytes; the other agents' frames from the learner connector), and short real
trainings on PettingZoo's cooperative_pong (frames shrunk with SuperSuit so the tests stay
fast, and once raw, as `model.image_size: auto` shrinks them).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from marl.core.encoders import ConvEncoder, PerAgentEncoder
from marl.core.keys import PEER_OBS
from marl.envs.scenario import IMAGES_KEY, ScenarioSpec, pool_factor, pool_frames, pooled_shape
from marl.errors import ConfigError
from marl.experiment import load_config
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


@pytest.mark.parametrize("algorithm, backend", [("ippo", "pettingzoo"), ("mappo", "pettingzoo"), ("mappo", "vectorized")])
def test_ppo_family_trains_on_frames_with_conv_encoders(algorithm, backend, tmp_path):
    from marl.training.runner import train

    config = _pong(
        algorithm, "scenario.global_state=observations", "training.train_batch_size=200", "training.num_epochs=1",
        "resources.num_env_runners=0", "resources.num_envs_per_env_runner=2", f"scenario.backend={backend}",
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


def test_image_size_rule_pools_large_frames_by_the_smallest_integer_factor():
    assert pool_factor((280, 480, 3), 96) == 5 and pooled_shape((280, 480, 3), 5) == (56, 96, 3)
    assert pool_factor((97, 20, 1), 96) == 2 and pooled_shape((97, 20, 1), 2) == (48, 10, 1)
    assert pool_factor((64, 64, 3), 96) == 1  # a resize wrapper's frames are untouched
    assert pool_factor((280, 480, 3), None) == 1 and pool_factor((18,), 96) == 1  # `full`; vectors
    frames = np.arange(2 * 5 * 7 * 2, dtype=np.uint8).reshape(2, 5, 7, 2)
    pooled = pool_frames(frames, 2)
    assert pooled.shape == (2, 2, 3, 2) and pooled.dtype == np.uint8
    block = frames[1, 2:4, 4:6, 1].astype(float)
    assert pooled[1, 1, 2, 1] == round(block.mean())


@pytest.mark.parametrize("algorithm", ["ippo", "mappo"])
def test_raw_frames_are_pooled_kept_as_bytes_and_out_of_the_state(algorithm):
    from marl.envs.adapter import PettingZooMultiAgentEnv

    config = _pong(algorithm, "scenario.global_state=observations", "scenario.wrappers=[]")
    probe = config.training.probe(config)
    info = probe.policies["shared"]
    assert info.layout.obs_shape == (56, 96, 3)  # 280x480 by model.image_size: auto
    assert info.observation_space.dtype == np.uint8
    assert info.layout.state_dim == 0  # no agent's row carries the others' frames
    assert info.layout.peers == (1 if algorithm == "mappo" else 0)
    assert info.layout.total_dim == 56 * 96 * 3 + 2
    env = PettingZooMultiAgentEnv(probe.env_config)
    raw = ScenarioSpec(**config.scenario.model_dump()).make()
    try:
        laid_out, _ = env.reset(seed=3)
        frames, _ = raw.reset(seed=3)
        for agent, frame in frames.items():
            np.testing.assert_array_equal(laid_out[agent][: 56 * 96 * 3], pool_frames(np.asarray(frame), 5).ravel())
    finally:
        env.close()
        raw.close()
    full = _pong(algorithm, "scenario.global_state=observations", "scenario.wrappers=[]", "model.image_size=full")
    assert full.training.probe(full).policies["shared"].layout.obs_shape == (280, 480, 3)
    assert full.training.probe(full).env_config[IMAGES_KEY]["max_side"] is None


def test_centralised_critic_batch_stores_each_frame_once_and_sees_every_agent():
    """The learner connector's rows: the own frame in OBS, the other agent's in PEER_OBS
    (bytes, one frame each, not every agent's frames in every row's state), and values that
    depend on both agents' encoded frames."""
    from marl.algorithms.ppo.connector import PPOTrainBatch

    config = _pong(
        "mappo", "scenario.global_state=observations", "training.train_batch_size=40",
        "resources.num_env_runners=0", "resources.num_envs_per_env_runner=2",
    )
    algo = config.training.to_rllib(config, num_gpus_per_learner=0).build_algo()
    try:
        episodes = algo.env_runner.sample(num_timesteps=40, explore=True)
        module = algo.get_module("shared")
        batch = PPOTrainBatch(gamma=0.99, lambda_=0.95)(rl_module=algo.learner_group._learner.module, batch={}, episodes=episodes)
    finally:
        algo.stop()
    columns = batch["shared"]
    frame = 24 * 32 * 3
    obs, peers = columns["obs"], columns[PEER_OBS]
    assert obs.dtype == torch.uint8 and peers.dtype == torch.uint8
    assert obs.shape[1] == frame + 2 and peers.shape[1] == frame  # n frames per row for n = 2 agents
    # Rows are ordered by episode, then agent: each paddle's peer frames are the other's own.
    first = episodes[0]
    rows = len(first.agent_episodes["paddle_0"]) + 1
    torch.testing.assert_close(peers[:rows], obs[rows : 2 * rows, :frame])
    torch.testing.assert_close(peers[rows : 2 * rows], obs[:rows, :frame])

    values = module.compute_values({"obs": obs, PEER_OBS: peers})
    changed_peer = module.compute_values({"obs": obs, PEER_OBS: 255 - peers})
    changed_own = obs.clone()
    changed_own[:, :frame] = 255 - changed_own[:, :frame]
    assert not torch.allclose(values, changed_peer) and not torch.allclose(values, module.compute_values({"obs": changed_own, PEER_OBS: peers}))
    assert isinstance(module.critic_encoder, PerAgentEncoder) and module.critic_encoder.n_frames == 2


def test_mappo_trains_on_raw_frames_with_one_env_runner(tmp_path):
    from marl.training.runner import train

    config = _pong(
        "mappo", "scenario.global_state=observations", "scenario.wrappers=[]", "training.train_batch_size=100",
        "training.num_epochs=1", "resources.num_env_runners=1", "resources.num_envs_per_env_runner=2",
    )
    lines: list[str] = []
    seen = {}

    def inspect(algo, row):
        seen["encoder"] = algo.get_module("shared").actor_encoder

    train(config, runs_root=tmp_path, echo=lines.append, max_iterations=2, on_iteration=inspect)
    assert len([line for line in lines if line.startswith("iter ")]) == 2, lines
    assert (seen["encoder"].height, seen["encoder"].width) == (56, 96)
