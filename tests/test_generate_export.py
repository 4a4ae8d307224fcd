"""Motion export: HumanML3D .npy and BVH (rotations solved from positions), read back by the BVH reader."""

from __future__ import annotations

import numpy as np
import pytest

from ramos.motion.export import REST_DIRECTIONS, rest_offsets, save_bvh, save_npy, to_bvh
from ramos.motion.io.builtin import load_all
from ramos.motion.io.bvh import BvhItem, parse_bvh, read_item
from ramos.motion.skeleton import HUMANML3D


@pytest.fixture(scope="module")
def clips():
    return {c.source_id: c for c in load_all()}


def _read_back(path) -> np.ndarray:
    (clip,) = read_item(BvhItem(str(path), "x"), joint_map="humanml3d", scale="auto")
    return clip.positions


@pytest.mark.parametrize("clip_id", ["humanoid3d_cartwheel", "humanoid3d_walk", "walker_turn_left0"])
def test_bvh_round_trip_of_a_real_clip_is_within_a_millimetre(tmp_path, clips, clip_id):
    clip = clips[clip_id]
    path = save_bvh(clip.positions, tmp_path / "clip.bvh", HUMANML3D, clip.fps)
    back = _read_back(path)
    assert back.shape == clip.positions.shape
    assert np.abs(back - clip.positions).max() < 1e-3
    # the frame rate survives too
    (read,) = read_item(BvhItem(str(path), "x"), joint_map="humanml3d")
    assert read.fps == pytest.approx(clip.fps, rel=1e-6)


def test_bvh_structure(clips):
    clip = clips["humanoid3d_walk"]
    bvh = parse_bvh(to_bvh(clip.positions, HUMANML3D, clip.fps))
    joints = [n for n in bvh.names if not n.endswith("_end")]
    assert sorted(joints) == sorted(HUMANML3D.names)
    assert bvh.names[0] == "pelvis" and bvh.parents[0] == -1
    for name, parent in zip(bvh.names, bvh.parents):  # the hierarchy is the skeleton's tree
        if not name.endswith("_end") and parent >= 0:
            assert HUMANML3D.parents[HUMANML3D.index(name)] == HUMANML3D.index(bvh.names[parent])
    assert bvh.channels[0] == ["xposition", "yposition", "zposition", "zrotation", "xrotation", "yrotation"]
    assert all(c == ["zrotation", "xrotation", "yrotation"] for n, c in zip(bvh.names[1:], bvh.channels[1:])
               if not n.endswith("_end"))
    assert bvh.num_frames == clip.num_frames
    assert bvh.frame_time == pytest.approx(1.0 / clip.fps)
    # the rest pose is T-pose-like: arms along +-x, legs down, rest height of a person
    rest = bvh.rest_positions()
    idx = {n: i for i, n in enumerate(bvh.names)}
    assert rest[idx["left_wrist"], 0] > rest[idx["left_shoulder"], 0] + 0.4
    assert rest[idx["right_wrist"], 0] < rest[idx["right_shoulder"], 0] - 0.4
    assert rest[idx["left_ankle"], 1] < rest[idx["left_knee"], 1] - 0.3
    assert 1.4 < rest[:, 1].max() - rest[:, 1].min() < 2.1


def test_varying_bone_lengths_are_exported_on_the_mean_skeleton(tmp_path, clips):
    clip = clips["humanoid3d_dance_a"]
    rng = np.random.default_rng(0)
    noisy = clip.positions + rng.normal(0, 0.01, clip.positions.shape).astype(np.float32)
    back = _read_back(save_bvh(noisy, tmp_path / "noisy.bvh", HUMANML3D, clip.fps))
    lengths_in = HUMANML3D.bone_lengths(noisy)
    lengths_out = HUMANML3D.bone_lengths(back)
    np.testing.assert_allclose(lengths_out, np.broadcast_to(lengths_in.mean(0), lengths_out.shape), atol=1e-5)
    # single-child bones keep their observed directions exactly; every joint stays close
    b = HUMANML3D.bones
    d_in = noisy[:, b[:, 1]] - noisy[:, b[:, 0]]
    d_out = back[:, b[:, 1]] - back[:, b[:, 0]]
    cos = (d_in * d_out).sum(-1) / np.linalg.norm(d_in, axis=-1) / np.linalg.norm(d_out, axis=-1)
    single = [k for k, (p, _) in enumerate(b) if (HUMANML3D.parents.count(p) == 1) or p == HUMANML3D.root]
    assert np.median(cos) > 0.999
    assert cos[:, [k for k in single if b[k, 0] != HUMANML3D.root]].min() > 0.99999
    assert np.abs(back - noisy).max() < 0.15


def test_rest_offsets_follow_the_t_pose_directions(clips):
    offsets = rest_offsets(clips["humanoid3d_run"].positions, HUMANML3D)
    for j, name in enumerate(HUMANML3D.names):
        parent = HUMANML3D.parents[j]
        if parent < 0 or HUMANML3D.parents.count(parent) > 1:
            continue  # cluster children keep the data's own layout, turned as a whole
        direction = offsets[j] / np.linalg.norm(offsets[j])
        np.testing.assert_allclose(direction, np.array(REST_DIRECTIONS[name]) / np.linalg.norm(REST_DIRECTIONS[name]),
                                   atol=1e-6)


def test_npy_is_humanml3d_new_joints_format(tmp_path, clips):
    clip = clips["humanoid3d_jump"]
    path = save_npy(clip.positions.astype(np.float64), tmp_path / "m.npy")
    arr = np.load(path, allow_pickle=False)
    assert arr.dtype == np.float32 and arr.shape == (clip.num_frames, 22, 3)
    np.testing.assert_array_equal(arr, clip.positions.astype(np.float32))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npy"]  # no temporary left behind


def test_export_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match=r"\(T, 22, 3\)"):
        to_bvh(np.zeros((5, 21, 3)))
    with pytest.raises(ValueError, match="NaN"):
        save_npy(np.full((5, 22, 3), np.nan), tmp_path / "x.npy")
    with pytest.raises(ValueError, match="fps"):
        to_bvh(np.zeros((5, 22, 3)), fps=0)
    assert not list(tmp_path.iterdir())
