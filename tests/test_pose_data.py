"""Single-pose data: canonical poses, split by clip, batches."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ramos.motion.io import READERS
from ramos.motion.nets.pose import canonical_poses
from ramos.motion.preprocess import facing_direction, mirror, rotate_yaw
from ramos.motion.skeleton import HUMANML3D as SK
from ramos.stages.pose_vae.data import PoseData, PoseDataConfig, PoseDataError, PoseDataModule

ALL_FRAMES = PoseDataConfig(frame_stride=1, max_train_poses=0)


@pytest.fixture(scope="module")
def clips():
    return READERS["builtin"].read_all(None)[:6]


def _windows(clips, splits, window=12, step=3):
    """Windows of the first frames of each clip, plus a mirrored copy of every training window."""
    wins, lengths, meta = [], [], []
    for clip, split in zip(clips, splits):
        frames = clip.positions[: window * step: step]
        for mirrored in (False, True) if split == "train" else (False,):
            w = mirror(frames, SK) if mirrored else frames
            pad = np.zeros((window, SK.num_joints, 3), np.float32)
            pad[: len(w)] = w
            wins.append(pad)
            lengths.append(len(w) - 2)  # the last two frames are padding
            meta.append({"clip_id": clip.source_id, "split": split, "mirrored": mirrored, "copy": 0})
    return np.stack(wins), np.array(lengths, np.int32), meta


def test_canonical_poses_are_root_relative_facing_plus_z_and_yaw_invariant(clips):
    poses = clips[2].positions[::10]
    canon = canonical_poses(poses, SK)
    assert isinstance(canon, np.ndarray) and canon.shape == poses.shape
    np.testing.assert_allclose(canon[:, SK.root], 0.0, atol=1e-6)
    for pose in canon:
        np.testing.assert_allclose(facing_direction(pose, SK), [0.0, 0.0, 1.0], atol=1e-5)
    moved = rotate_yaw(poses, 73.0, SK) + np.array([1.5, 0.0, -2.0], np.float32)
    np.testing.assert_allclose(canonical_poses(moved, SK), canon, atol=1e-5)
    # Torch in, torch out, same numbers.
    as_torch = canonical_poses(torch.from_numpy(poses), SK)
    assert isinstance(as_torch, torch.Tensor)
    np.testing.assert_allclose(as_torch.numpy(), canon, atol=1e-6)
    # Bone lengths are untouched by a rigid move.
    np.testing.assert_allclose(SK.bone_lengths(canon), SK.bone_lengths(poses), atol=1e-5)


def test_dataset_split_by_clip_is_used_when_disjoint(clips):
    windows, lengths, meta = _windows(clips, ["train", "train", "val", "train", "val", "test"])
    data = PoseData.from_windows(windows, lengths, meta, SK, ALL_FRAMES)
    assert data.split_method == "dataset"
    assert data.val_clips == sorted([clips[2].source_id, clips[4].source_id])
    assert not set(data.val_clips) & set(data.train_clips)
    # 10 valid frames per window; training has each clip twice (mirrored; a left/right symmetric pose
    # equals its mirror image and is kept once), test clips are unused.
    assert len(data.val) == 20 and 40 < len(data.train) <= 60
    flat = data.train.reshape(len(data.train), -1)
    assert len(np.unique(np.round(flat, 4), axis=0)) == len(flat)
    assert sorted(set(data.val_clip_of)) == data.val_clips and len(data.val_clip_of) == len(data.val)
    first_val = windows[[i for i, m in enumerate(meta) if m["split"] == "val"][0], 0]
    np.testing.assert_allclose(data.val[0], canonical_poses(first_val, SK), atol=1e-6)
    assert data.val_clip_of[0] == clips[2].source_id
    assert data.train.shape[1:] == (SK.num_joints, 3) and data.train.dtype == np.float32


def test_time_split_falls_back_to_holding_out_whole_clips(clips):
    """A data set split in time shares clips between splits: whole clips are held out instead."""
    windows, lengths, meta = _windows(clips, ["train"] * 6)
    for m in meta[::3]:
        m["split"] = "val"  # the same clips now appear in both splits
    with pytest.raises(PoseDataError, match="in both splits"):
        PoseData.from_windows(windows, lengths, meta, SK, PoseDataConfig(split="dataset"))
    data = PoseData.from_windows(windows, lengths, meta, SK,
                                 PoseDataConfig(val_clip_fraction=0.34, frame_stride=1, max_train_poses=0))
    assert data.split_method == "clip" and len(data.val_clips) == 2
    assert not set(data.val_clips) & set(data.train_clips)
    # No validation frame, nor its mirror image, reaches training.
    val_ids = set(data.val_clips)
    held = np.concatenate([windows[i, : lengths[i]] for i, m in enumerate(meta) if m["clip_id"] in val_ids])
    held_canon = canonical_poses(np.concatenate([held, mirror(held, SK)]), SK)
    dist = np.abs(data.train[:, None] - held_canon[None]).max((-1, -2))
    assert dist.min() > 1e-3
    # Only original (unmirrored) frames are validation poses, once each (repeated frames dropped).
    assert 10 < len(data.val) <= 2 * 10
    assert len(np.unique(np.round(data.val.reshape(len(data.val), -1), 4), axis=0)) == len(data.val)


def test_frame_stride_cap_and_reference_bones(clips):
    windows, lengths, meta = _windows(clips, ["train", "train", "val", "train", "train", "train"])
    cfg = PoseDataConfig(frame_stride=2, max_train_poses=7)
    data = PoseData.from_windows(windows, lengths, meta, SK, cfg)
    assert len(data.train) == 7 and len(data.val) == 5
    ref = data.reference_bone_lengths()
    np.testing.assert_allclose(ref, SK.bone_lengths(clips[0].positions[0]), rtol=0.02)


def test_one_clip_cannot_be_split(clips):
    windows, lengths, meta = _windows(clips[:1], ["train"])
    with pytest.raises(PoseDataError, match="at least 2 clips"):
        PoseData.from_windows(windows, lengths, meta, SK)


def test_datamodule_batches(clips):
    windows, lengths, meta = _windows(clips, ["train", "train", "val", "train", "train", "train"])
    data = PoseData.from_windows(windows, lengths, meta, SK, ALL_FRAMES)
    dm = PoseDataModule(data, batch_size=16, seed=1, val_batch_size=7)
    batches = list(dm.train_dataloader())
    assert len(batches) == math.floor(len(data.train) / 16)
    assert all(b["pose"].shape == (16, SK.num_joints, 3) for b in batches)
    seen = torch.cat([b["pose"] for b in batches])
    assert len(torch.unique(seen.flatten(1), dim=0)) == len(seen)  # an epoch draws without replacement
    val = list(dm.val_dataloader())
    assert [len(b["pose"]) for b in val] == [7, 3]
    np.testing.assert_array_equal(torch.cat([b["pose"] for b in val]).numpy(), data.val)
