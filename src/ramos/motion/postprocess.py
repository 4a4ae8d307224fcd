"""Clean-up of generated motions: planted feet (optional, reported apart from the raw model output).

A decoded motion can slide its stance foot over the floor: the root moves a little faster or
slower than the leg pushes it. :func:`plant_feet` removes that slide the way animation tools do
when they "lock" feet, without touching the pose: on every frame transition where a foot is on
the floor (below ``height_m`` in both frames) and moves slower than a swing (``max_speed_mps``),
the whole body is shifted horizontally by the opposite of that foot's slide, so the foot stays
where it was put down. The shifts add up over time (the root trajectory is corrected, not just one
frame); heights, bone lengths and the pose relative to the root are unchanged.

Evaluation reports skating both for the raw decoder output and after this clean-up
(docs/evaluation.md), so that what the model does and what the clean-up does stay apart.
"""

from __future__ import annotations

import numpy as np

from ramos.motion.metrics import foot_contacts
from ramos.motion.skeleton import Skeleton


def plant_feet(positions: np.ndarray, skeleton: Skeleton, fps: float, height_m: float = 0.05,
               max_speed_mps: float = 1.5, mask: np.ndarray | None = None) -> np.ndarray:
    """A copy of ``positions`` (..., T, J, 3) metres whose stance foot does not slide (see the module doc).

    Args:
        positions: one motion (T, J, 3) or a batch (B, T, J, 3).
        skeleton: gives the foot joints and the up axis.
        fps: frame rate (turns ``max_speed_mps`` into a per-frame distance).
        height_m: a foot lower than this in two consecutive frames is on the floor (the foot
            skating metric's contact height).
        max_speed_mps: a low foot faster than this is swinging, not planted: left alone.
        mask: (..., T) valid frames (default: all). Transitions into padding are never pinned;
            padded frames follow the last valid one's shift.

    Where both feet are planted the lower one is pinned. Raises ValueError for a skeleton without feet.
    """
    shift = planting_shift(positions, skeleton, fps, height_m, max_speed_mps, mask)
    return np.asarray(positions, dtype=np.float32) + shift[..., None, :]


def planting_shift(positions: np.ndarray, skeleton: Skeleton, fps: float, height_m: float = 0.05,
                   max_speed_mps: float = 1.5, mask: np.ndarray | None = None) -> np.ndarray:
    """The per-frame shift (..., T, 3) that :func:`plant_feet` adds to every joint (zero along the up
    axis and in frame 0). Reads only the feet: a caller holding a big batch adds it in place."""
    planted, step, height = foot_contacts(np.asarray(positions, dtype=np.float32), skeleton, height_m)
    shift = np.zeros((*height.shape[:-1], 3), np.float32)
    if height.shape[-2] < 2:
        return shift
    horiz = [a for a in range(3) if a != skeleton.up_axis]
    planted &= np.linalg.norm(step, axis=-1) < max_speed_mps / fps  # slower than a swing
    if mask is not None:
        valid = np.asarray(mask, dtype=bool)
        planted &= (valid[..., 1:] & valid[..., :-1])[..., None]
    # Pin the lowest planted foot of each transition (heights of non-planted feet masked out).
    lowest = np.argmin(np.where(planted, height[..., 1:, :], np.inf), axis=-1)  # (..., T-1)
    slide = np.take_along_axis(step, lowest[..., None, None], axis=-2)[..., 0, :]  # (..., T-1, 2)
    slide = np.where(planted.any(axis=-1)[..., None], slide, 0.0)
    shift[..., 1:, horiz] = -np.cumsum(slide, axis=-2)
    return shift
