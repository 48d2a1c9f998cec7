"""Vectorized scenario backends: a batch of worlds stepped with numpy in one call."""

from marl.envs.vectorized.mpe import (
    VectorSimpleReference,
    VectorSimpleSpeakerListener,
    VectorSimpleSpread,
    VectorWorld,
)

__all__ = ["VectorSimpleReference", "VectorSimpleSpeakerListener", "VectorSimpleSpread", "VectorWorld"]
