"""What kind of observation a space's shape describes (no torch here: config checks use it)."""

from __future__ import annotations

from typing import Sequence


def is_image(shape: Sequence[int] | None) -> bool:
    """A rank-3 observation (height, width, channels) is a frame; everything else is a vector."""
    return shape is not None and len(shape) == 3
