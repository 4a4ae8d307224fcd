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

from ramos.motion.skeleton import Skeleton


def plant_feet(positions: np.ndarray, skeleton: Skeleton, fps: float, height_m: float = 0.05,
               max_speed_mps: float = 1.5) -> np.ndarray:
    """A copy of ``positions`` (T, J, 3) metres whose stance foot does not slide (see the module doc).

    Args:
        positions: one motion, its valid frames only.
        skeleton: gives the foot joints and the up axis.
        fps: frame rate (turns ``max_speed_mps`` into a per-frame distance).
        height_m: a foot lower than this in two consecutive frames is on the floor (the foot
            skating metric's contact height).
        max_speed_mps: a low foot faster than this is swinging, not planted: left alone.

    Where both feet are planted the lower one is pinned. Raises ValueError for a skeleton without feet.
    """
    if not skeleton.feet:
        raise ValueError("the skeleton names no foot joints")
    pos = np.array(positions, dtype=np.float32, copy=True)
    if pos.ndim != 3 or pos.shape[0] < 2:
        return pos
    up = skeleton.up_axis
    horiz = [a for a in range(3) if a != up]
    feet = pos[:, list(skeleton.feet)]  # (T, F, 3)
    height = feet[..., up]  # (T, F)
    step = np.diff(feet[..., horiz], axis=0)  # (T-1, F, 2): slide of each foot per transition
    planted = (height[1:] < height_m) & (height[:-1] < height_m)
    planted &= np.linalg.norm(step, axis=-1) < max_speed_mps / fps
    # Pin the lowest planted foot of each transition (heights of non-planted feet masked out).
    lowest = np.argmin(np.where(planted, height[1:], np.inf), axis=1)  # (T-1,)
    any_planted = planted.any(axis=1)
    slide = np.where(any_planted[:, None], step[np.arange(len(step)), lowest], 0.0)  # (T-1, 2)
    shift = np.concatenate([np.zeros((1, 2), np.float32), -np.cumsum(slide, axis=0)], axis=0)  # (T, 2)
    pos[..., horiz] += shift[:, None, :]
    return pos
