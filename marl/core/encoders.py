"""Encoders of image observations: a small convolutional network over channel-last frames.

Observations reach the modules flattened (the adapter lays every agent's observation out as
one vector, uint8 for uint8 frames), so the encoder takes the flat `(..., H*W*C)` frames,
restores them to `(N, C, H, W)`, scales them to floats (`scale`: 1/255 for bytes) and returns
`(..., features)`. Layers follow the DQN Atari encoder (Mnih et
al. 2013: 16 filters 8x8 stride 4, 32 filters 4x4 stride 2) by default; `conv` sets them.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from marl.core.networks import HIDDEN_GAIN, orthogonal_init

# (out_channels, kernel, stride) per layer.
DEFAULT_CONV: tuple[tuple[int, int, int], ...] = ((16, 8, 4), (32, 4, 2))


class ConvEncoder(nn.Module):
    """Flat channel-last frames `(..., H*W*C)` -> features `(..., out_dim)`."""

    def __init__(self, frame_shape: Sequence[int], conv: Sequence[Sequence[int]] = DEFAULT_CONV, scale: float = 1.0):
        super().__init__()
        self.height, self.width, self.channels = (int(size) for size in frame_shape)
        self.scale = float(scale)  # 1/255 for uint8 frames: inputs in [0, 1]
        layers: list[nn.Module] = []
        channels = self.channels
        for out_channels, kernel, stride in conv:
            layer = nn.Conv2d(channels, int(out_channels), int(kernel), int(stride))
            layers += [orthogonal_init(layer, HIDDEN_GAIN), nn.ReLU()]
            channels = int(out_channels)
        self.net = nn.Sequential(*layers, nn.Flatten())
        with torch.no_grad():
            self.out_dim = int(self.net(torch.zeros(1, self.channels, self.height, self.width)).shape[-1])

    @property
    def in_dim(self) -> int:
        return self.height * self.width * self.channels

    def forward(self, flat: torch.Tensor) -> torch.Tensor:
        lead = flat.shape[:-1]
        frames = flat.reshape(-1, self.height, self.width, self.channels).permute(0, 3, 1, 2)
        frames = frames.float() * self.scale if not frames.is_floating_point() else frames * self.scale
        return self.net(frames).reshape(*lead, self.out_dim)


class PerAgentEncoder(nn.Module):
    """`n` agents' flat frames side by side `(..., n*H*W*C)` -> each encoded by one shared
    encoder, features concatenated `(..., n*out_dim)`: a centralised critic sees every agent's
    view without a first layer over all their raw pixels at once."""

    def __init__(self, encoder: ConvEncoder, n_frames: int):
        super().__init__()
        self.encoder, self.n_frames = encoder, int(n_frames)
        self.out_dim = encoder.out_dim * self.n_frames

    def forward(self, flat: torch.Tensor) -> torch.Tensor:
        lead = flat.shape[:-1]
        per_agent = flat.reshape(*lead, self.n_frames, self.encoder.in_dim)
        return self.encoder(per_agent).reshape(*lead, self.out_dim)
