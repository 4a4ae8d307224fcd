"""The unit every reader yields and every processing step consumes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Clip:
    """One motion sequence.

    Attributes:
        positions: (T, J, 3) float32 joint positions in metres, y up, on the clip's skeleton.
        fps: frames per second of ``positions``.
        source_id: identifier unique within the data set (file stem, HumanML3D id...).
        source: the reader that produced it ("humanml3d", "amass", "deepmimic", "bvh", "builtin").
        captions: free-text descriptions (may be empty).
        labels: short action labels such as "walk" (may be empty).
        meta: anything else worth keeping (plain JSON-able values only).
    """

    positions: np.ndarray
    fps: float
    source_id: str
    source: str
    captions: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return int(self.positions.shape[0])

    @property
    def seconds(self) -> float:
        return self.num_frames / self.fps


class ClipError(ValueError):
    """A source item cannot be turned into a usable clip; the message names the file and reason."""
