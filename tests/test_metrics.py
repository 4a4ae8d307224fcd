"""Motion metrics against hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from ramos.motion import metrics as M
from ramos.motion.skeleton import HUMANML3D, Skeleton

FPS = 20.0


def _static_pose(t: int = 10) -> np.ndarray:
    rng = np.random.default_rng(0)
    pose = rng.normal(size=(22, 3))
    pose[:, 1] = np.abs(pose[:, 1]) + 0.1
    return np.repeat(pose[None], t, 0)


def test_mpjpe_constant_offset_and_mask():
    gt = _static_pose()
    pred = gt + np.array([0.03, 0.0, 0.04])  # 5 cm everywhere
    assert M.mpjpe(pred, gt) == pytest.approx(0.05)
    pred[5:] += 10.0  # padded frames are ignored
    mask = np.arange(10) < 5
    assert M.mpjpe(pred, gt, mask) == pytest.approx(0.05)


def test_pa_mpjpe_removes_similarity_transforms_but_not_shape_errors():
    gt = _static_pose(3)
    r = Rotation.from_euler("xyz", [0.3, -1.0, 2.0]).as_matrix()
    pred = 1.7 * gt @ r.T + np.array([1.0, 2.0, -3.0])
    assert M.pa_mpjpe(pred, gt) == pytest.approx(0.0, abs=1e-9)
    assert M.mpjpe(pred, gt) > 0.5
    mirrored = gt * np.array([-1.0, 1.0, 1.0])  # a reflection is not a rotation
    assert M.pa_mpjpe(mirrored, gt) > 0.1


def test_acceleration_error_and_jitter_of_known_trajectories():
    t = np.arange(20) / FPS
    gt = np.zeros((20, 22, 3))
    pred = np.zeros((20, 22, 3))
    pred[..., 0] = (0.5 * 2.0 * t ** 2)[:, None]  # constant acceleration 2 m/s^2 along x
    assert M.acceleration_error(pred, gt, FPS) == pytest.approx(2.0)
    assert M.jitter(pred, FPS) == pytest.approx(0.0, abs=1e-6)
    cubic = np.zeros((20, 22, 3))
    cubic[..., 1] = (t ** 3)[:, None]  # jerk 6 m/s^3
    assert M.jitter(cubic, FPS) == pytest.approx(6.0)


def test_bone_length_std_is_zero_for_rigid_motion_and_exact_for_a_stretch():
    pose = _static_pose(1)[0]
    rigid = np.stack([Rotation.from_euler("y", a).apply(pose) + [a, 0, 0] for a in np.linspace(0, 3, 12)])
    assert M.bone_length_std(rigid) == pytest.approx(0.0, abs=1e-9)
    sk = Skeleton.from_chains(["root", "tip"], [[0, 1]])
    stretch = np.zeros((2, 2, 3))
    stretch[0, 1, 0], stretch[1, 1, 0] = 1.0, 1.2  # lengths 1.0 and 1.2: std 0.1
    assert M.bone_length_std(stretch, sk) == pytest.approx(0.1)


def test_foot_skating_ratio_hand_case():
    pos = np.zeros((21, 22, 3))
    pos[..., 1] = 1.0  # everything in the air...
    feet = list(HUMANML3D.feet)
    pos[:, feet, 1] = 0.01  # ...except both feet, on the floor
    assert M.foot_skating_ratio(pos, HUMANML3D, FPS) == 0.0  # standing still: no skating
    slide = pos.copy()
    slide[:, feet[0], 0] = np.arange(21) * 1.0 / FPS  # left foot slides at 1 m/s
    assert M.foot_skating_ratio(slide, HUMANML3D, FPS) == pytest.approx(1.0)
    lifted = slide.copy()
    lifted[:, feet[0], 1] = 0.2  # the same sliding, but in the air: not skating
    assert M.foot_skating_ratio(lifted, HUMANML3D, FPS) == 0.0
    mask = np.arange(21) < 11  # only the first 10 frame pairs count
    half = slide.copy()
    half[11:, feet[0], 0] = half[10, feet[0], 0]  # slides in the valid half only... then stops
    assert M.foot_skating_ratio(half, HUMANML3D, FPS, mask) == pytest.approx(1.0)


def test_floor_penetration_and_root_speed():
    pos = np.ones((4, 22, 3))
    pos[2, 3, 1] = -0.1
    assert M.floor_penetration(pos) == pytest.approx(0.1 / 4)
    pos[:, 0, 2] = np.arange(4) * 0.1  # root moves 0.1 m per frame along z: 2 m/s
    assert np.allclose(M.root_speed(pos, fps=FPS), 2.0)


def test_frechet_distance_matches_torchmetrics_and_known_value():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 8))
    b = rng.normal(loc=0.5, scale=1.3, size=(400, 8))
    from torchmetrics.image.fid import _compute_fid

    expected = _compute_fid(torch.tensor(a.mean(0)), torch.tensor(np.cov(a, rowvar=False)),
                            torch.tensor(b.mean(0)), torch.tensor(np.cov(b, rowvar=False))).item()
    assert M.frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)
    assert M.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)


def test_diversity_and_multimodality():
    feats = np.array([[0.0, 0.0], [3.0, 4.0]])
    # Every random pair is either identical (0) or 5 apart; with many pairs the mean is ~2.5.
    assert M.diversity(feats, n_pairs=4000) == pytest.approx(2.5, abs=0.15)
    labels = np.array([0, 0, 1, 1])
    f = np.array([[0.0], [1.0], [10.0], [10.0]])
    assert M.multimodality(f, labels, n_pairs=4000) == pytest.approx(0.25, abs=0.05)
