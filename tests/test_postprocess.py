"""The foot clean-up of generated motions (ramos.motion.postprocess.plant_feet) on hand-made cases."""

from __future__ import annotations

import numpy as np
import pytest

from ramos.motion.metrics import foot_skating_ratio
from ramos.motion.postprocess import plant_feet
from ramos.motion.skeleton import HUMANML3D, Skeleton

LEFT, RIGHT = HUMANML3D.feet
FPS = 20.0


def _standing(frames: int = 12) -> np.ndarray:
    """A rigid pose (T, 22, 3): joints spread upwards, both feet on the floor (y = 0.02 m)."""
    pose = np.zeros((22, 3), np.float32)
    pose[:, 1] = np.linspace(0.1, 1.7, 22)
    pose[:, 0] = np.linspace(-0.2, 0.2, 22)
    pose[LEFT] = [-0.1, 0.02, 0.0]
    pose[RIGHT] = [0.1, 0.02, 0.0]
    return np.repeat(pose[None], frames, axis=0)


def test_a_sliding_stance_foot_is_pinned_by_shifting_the_whole_body():
    """Whole body gliding along x at 0.6 m/s with both feet down: the clean-up cancels the glide
    exactly (every joint shifted by the same amount per frame), heights and pose unchanged."""
    x = _standing()
    glide = 0.6 / FPS * np.arange(len(x), dtype=np.float32)
    x[..., 0] += glide[:, None]
    assert foot_skating_ratio(x, HUMANML3D, FPS) == 1.0
    out = plant_feet(x, HUMANML3D, FPS)
    np.testing.assert_allclose(out[:, LEFT], np.repeat(x[:1, LEFT], len(x), 0), atol=1e-6)
    np.testing.assert_allclose(out[..., 1], x[..., 1])  # heights untouched
    np.testing.assert_allclose(out - out[:, :1], x - x[:, :1], atol=1e-6)  # pose relative to the root untouched
    assert foot_skating_ratio(out, HUMANML3D, FPS) == 0.0
    assert not np.shares_memory(out, x)


def test_a_swinging_or_lifted_foot_is_left_alone():
    """A low foot faster than max_speed_mps (a swing) and a foot above the contact height are not
    pinned: the motion comes back unchanged."""
    fast = _standing()
    fast[..., 0] += (3.0 / FPS * np.arange(len(fast), dtype=np.float32))[:, None]  # 3 m/s > 1.5 m/s
    np.testing.assert_array_equal(plant_feet(fast, HUMANML3D, FPS), fast)
    lifted = _standing()
    lifted[..., 1] += 0.2
    lifted[..., 0] += (0.6 / FPS * np.arange(len(lifted), dtype=np.float32))[:, None]
    np.testing.assert_array_equal(plant_feet(lifted, HUMANML3D, FPS), lifted)


def test_the_lower_of_two_planted_feet_is_pinned():
    """Both feet low but sliding differently: the lower one (left, 1 cm) is pinned, the right keeps
    its slide relative to the left."""
    x = _standing()
    x[:, LEFT, 1] = 0.01
    x[:, LEFT, 0] += 0.02 * np.arange(len(x))
    x[:, RIGHT, 0] += 0.03 * np.arange(len(x))
    out = plant_feet(x, HUMANML3D, FPS)
    np.testing.assert_allclose(np.diff(out[:, LEFT, 0]), 0.0, atol=1e-6)
    np.testing.assert_allclose(np.diff(out[:, RIGHT, 0]), 0.01, atol=1e-6)


def test_short_input_and_missing_feet():
    one = _standing(1)
    np.testing.assert_array_equal(plant_feet(one, HUMANML3D, FPS), one)
    no_feet = Skeleton(HUMANML3D.names, HUMANML3D.parents, HUMANML3D.chains)
    with pytest.raises(ValueError, match="no foot joints"):
        plant_feet(_standing(), no_feet, FPS)
