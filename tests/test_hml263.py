"""HumanML3D's 263-d vectors: exact round trip on real clips, rotations consistent with the joints,
contacts and root terms where they must be, clear errors."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
import torch

from ramos.motion import hml263
from ramos.motion.io import builtin
from ramos.motion.preprocess import loop_clip, normalize, resample
from ramos.motion.rigid import make_rigid
from ramos.motion.skeleton import HUMANML3D


def _clips() -> list[tuple[str, np.ndarray]]:
    return [(c.source_id, resample(c.positions, c.fps, hml263.FPS)) for c in builtin.load_all()]


def _matrix_from_6d(x: torch.Tensor) -> torch.Tensor:
    a = x[..., :3] / x[..., :3].norm(dim=-1, keepdim=True)
    c = torch.linalg.cross(a, x[..., 3:])
    c = c / c.norm(dim=-1, keepdim=True)
    return torch.stack([a, torch.linalg.cross(c, a), c], -1)


def test_layout_adds_up_to_263():
    parts = [hml263.ROOT_ROT_VEL, hml263.ROOT_LIN_VEL, hml263.ROOT_Y, hml263.RIC, hml263.ROT6D, hml263.LOCAL_VEL,
             hml263.FOOT_CONTACT]
    assert [p.stop - p.start for p in parts] == [1, 2, 1, 63, 126, 66, 4]
    assert parts[-1].stop == hml263.DIM


@pytest.mark.parametrize("name,positions", _clips(), ids=[n for n, _ in _clips()])
def test_round_trip_on_real_clips(name, positions):
    """joints(features(x)) is x on the floor, at the origin, facing +z, without its last frame."""
    f = hml263.features(positions)
    assert f.shape == (len(positions) - 1, hml263.DIM) and f.dtype == np.float32
    back = hml263.joints(f)
    assert np.abs(back - normalize(positions, HUMANML3D)[:-1]).max() < 1e-5


def test_round_trip_of_a_long_turning_motion_and_batches():
    """Exact until the facing turns past 180 degrees: there HumanML3D's root rotation (a shortest arc
    to +z, w >= 0) changes sign, and its angular velocity for that one frame has the same size and
    the opposite sign. HumanML3D's own vectors carry this, and its new_joints are their inverse; the
    vectors here reproduce it rather than differ from the published data."""
    walk = next(p for n, p in _clips() if n == "walker_turn_left0")
    x = loop_clip(walk, hml263.FPS, 10.0, HUMANML3D)  # 200 frames, turning a full circle and more
    f = hml263.features(x)
    canon = normalize(x, HUMANML3D)
    err = np.abs(hml263.joints(f) - canon[:-1]).max(axis=(1, 2))
    first = int(np.argmax(err > 1e-4))
    assert 20 < first < len(f) and err[:first].max() < 1e-5
    turn = f[:, 0]
    assert np.sign(turn[first - 1]) != np.sign(turn[first - 2])  # the flipped frame (into frame `first`)
    assert abs(abs(turn[first - 1]) - abs(turn[first - 2])) < 1e-3
    batch = hml263.joints(np.stack([f, f[::-1].copy()]))
    assert batch.shape == (2, len(f), 22, 3)
    assert np.allclose(batch[0], hml263.joints(f))


def test_rotations_reproduce_the_joints_by_forward_kinematics():
    """The 6D rotations are the joints' own: chained from the root's rotation over the rest directions and
    the bone lengths, they give the same positions (HumanML3D's recover_from_rot)."""
    x = next(p for n, p in _clips() if n == "humanoid3d_getup_faceup")  # lying, sitting, standing
    x = make_rigid(x, HUMANML3D)
    f = torch.as_tensor(hml263.features(x))
    pos = torch.as_tensor(hml263.joints(f.numpy()))
    parents = [max(p, 0) for p in HUMANML3D.parents]
    lengths = np.linalg.norm(x[0] - x[0, parents], axis=-1).astype(np.float32)
    offsets = torch.as_tensor(hml263.T2M_RAW_OFFSETS * lengths[:, None])
    root = hml263._matrix(hml263.root_rotations(f))
    local = _matrix_from_6d(f[:, hml263.ROT6D].reshape(len(f), 21, 6))
    fk = torch.zeros_like(pos)
    fk[:, 0] = pos[:, 0]
    for chain in hml263.T2M_CHAINS:
        rot = root
        for a, b in pairwise(chain):
            rot = rot @ local[:, b - 1]
            fk[:, b] = rot @ offsets[b] + fk[:, a]
    assert (fk - pos).norm(dim=-1).max() < 1e-4


def test_root_height_contacts_and_velocities():
    x = next(p for n, p in _clips() if n == "humanoid3d_walk")
    x = loop_clip(x, hml263.FPS, 4.0, HUMANML3D)
    f = hml263.features(x)
    canon = normalize(x, HUMANML3D)
    assert np.allclose(f[:, hml263.ROOT_Y][:, 0], canon[:-1, 0, 1], atol=1e-5)
    # contacts are exactly the feet whose squared step is under the threshold
    step = ((canon[1:] - canon[:-1]) ** 2).sum(-1)
    want = np.stack([step[:, 7], step[:, 10], step[:, 8], step[:, 11]], -1) < hml263.FEET_THRESHOLD
    assert np.array_equal(f[:, hml263.FOOT_CONTACT] > 0.5, want)
    assert 0.2 < want.mean() < 0.9  # a walk: each foot planted part of the time
    # a walk forward: the root's step in the facing frame points forward (+z) at about walking pace
    forward = f[:, hml263.ROOT_LIN_VEL][:, 1] * hml263.FPS
    assert 0.5 < np.median(forward) < 2.5


def test_uniform_skeleton_takes_the_target_bones():
    x = next(p for n, p in _clips() if n == "humanoid3d_run")
    target = hml263.T2M_RAW_OFFSETS * np.linspace(0.05, 0.3, 22, dtype=np.float32)[:, None]
    out = hml263.uniform_skeleton(x, target)
    parents = [max(p, 0) for p in HUMANML3D.parents]
    got = np.linalg.norm(out - out[:, parents], axis=-1)[:, 1:]
    assert np.allclose(got, np.linalg.norm(target, axis=-1)[1:], atol=1e-5)


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match=r"\(T, 22, 3\)"):
        hml263.features(np.zeros((10, 21, 3)))
    with pytest.raises(ValueError, match="at least 2 frames"):
        hml263.features(np.zeros((1, 22, 3)))
    bad = resample(builtin.load_all()[0].positions, 16.0, 20.0)
    bad[3, 4] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        hml263.features(bad)
    with pytest.raises(ValueError, match="263"):
        hml263.joints(np.zeros((5, 262)))
