"""Single poses from a prepared motion data set, for the pose VAE.

Every valid frame of the data set's windows becomes a pose: root joint at the origin and the body
turned about the vertical so that it faces +z (HumanML3D's facing: up x (hips + shoulders
across)). Training and validation poses come from disjoint *clips*: no frame of a validation
clip (nor its mirrored or augmented copies) is ever trained on.

The split comes from the data set's own ``split`` field when that is already by clip; a data set
split in time (``split.method: segment``) shares clips between splits, and then whole clips are
held out here instead, chosen by a stable hash of their id (see :class:`PoseDataConfig`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import lightning as L
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from ramos.motion.nets.pose import canonical_poses
from ramos.motion.preprocess import stable_fraction
from ramos.motion.skeleton import Skeleton


class PoseDataError(ValueError):
    """The data set cannot give a pose training/validation split (message names the folder)."""


@dataclass
class PoseDataConfig:
    """How poses are drawn from a prepared data set.

    Attributes:
        split: ``"dataset"`` uses the data set's train/val windows and fails unless they come from
            disjoint clips; ``"clip"`` holds out whole clips here; ``"auto"`` uses the data set's
            split when it is by clip and holds out clips otherwise.
        val_clip_fraction: share of clips held out for validation by the ``"clip"`` method (at
            least one clip).
        frame_stride: keep every n-th frame of each window (consecutive frames are near copies).
        max_train_poses: cap on training poses (random subset, fixed seed); 0 keeps them all. The
            embedded set's augmented copies give ~190k poses at stride 2, near copies of each other.
        seed: seed of that subset.
    """

    split: Literal["auto", "dataset", "clip"] = "auto"
    val_clip_fraction: float = 0.2
    frame_stride: int = 2
    max_train_poses: int = 50_000
    seed: int = 0


@dataclass
class PoseData:
    """Canonical training and validation poses (float32, metres) and where they came from.

    Attributes:
        train: (N_train, J, 3) training poses (duplicates removed).
        val: (N_val, J, 3) validation poses, from clips absent from training.
        skeleton: their skeleton.
        train_clips: ids of the clips the training poses come from.
        val_clips: ids of the held-out clips.
        split_method: ``"dataset"`` or ``"clip"`` (what ``auto`` resolved to).
        val_clip_of: (N_val,) clip id of each validation pose (for per-clip errors).
    """

    train: np.ndarray
    val: np.ndarray
    skeleton: Skeleton
    train_clips: list[str]
    val_clips: list[str]
    split_method: str
    val_clip_of: np.ndarray

    @classmethod
    def from_windows(cls, windows: np.ndarray, lengths: np.ndarray, meta: Sequence[dict[str, Any]],
                     skeleton: Skeleton, cfg: PoseDataConfig | None = None, source: str = "<windows>") -> PoseData:
        """Poses of prepared windows (N, W, J, 3) with their lengths and ``meta.jsonl`` records."""
        cfg = cfg or PoseDataConfig()
        clip_ids = [str(m["clip_id"]) for m in meta]
        splits = [str(m.get("split", "train")) for m in meta]
        original = np.array([not m.get("mirrored", False) and int(m.get("copy", 0)) == 0 for m in meta])
        train_w, val_w, method = _split_windows(clip_ids, splits, cfg, source)
        # Validation poses are plain captured poses: no mirrored or augmented copies.
        val_w = val_w[original[val_w]]
        train, _ = _poses(windows, lengths, train_w, skeleton, cfg.frame_stride)
        val, val_of = _poses(windows, lengths, val_w, skeleton, cfg.frame_stride)
        if len(train) == 0 or len(val) == 0:
            raise PoseDataError(f"{source}: no {'training' if len(train) == 0 else 'validation'} poses "
                                f"({len(train_w)} training and {len(val_w)} validation windows)")
        if cfg.max_train_poses and len(train) > cfg.max_train_poses:
            keep = np.random.default_rng(cfg.seed).choice(len(train), cfg.max_train_poses, replace=False)
            train = train[np.sort(keep)]
        return cls(train, val, skeleton, sorted({clip_ids[i] for i in train_w}),
                   sorted({clip_ids[i] for i in val_w}), method, np.array(clip_ids)[val_w][val_of])

    @classmethod
    def from_dataset(cls, path: str | os.PathLike[str], cfg: PoseDataConfig | None = None) -> PoseData:
        """Poses of a prepared data set folder (see ``docs/ARCHITECTURE.md``)."""
        from ramos.motion.dataset import MotionDataset

        data = MotionDataset(path)
        return cls.from_windows(data.windows, data.lengths, data.meta, data.skeleton, cfg, source=str(path))

    def reference_bone_lengths(self) -> np.ndarray:
        """(J-1,) median bone lengths (m) of the training poses: the skeleton's own proportions."""
        return np.median(self.skeleton.bone_lengths(self.train), axis=0)

    def summary(self) -> str:
        """One line: pose counts, clips, split method."""
        return (f"{len(self.train)} training poses from {len(self.train_clips)} clips, {len(self.val)} validation "
                f"poses from {len(self.val_clips)} held-out clips ({', '.join(self.val_clips)}); split: "
                f"{self.split_method}")


def _split_windows(clip_ids: list[str], splits: list[str], cfg: PoseDataConfig,
                   source: str) -> tuple[np.ndarray, np.ndarray, str]:
    ids = np.array(clip_ids)
    spl = np.array(splits)
    method = cfg.split
    if method in ("auto", "dataset"):
        train_w, val_w = np.flatnonzero(spl == "train"), np.flatnonzero(spl == "val")
        shared = set(ids[train_w]) & set(ids[val_w])
        if not shared and len(val_w) and len(train_w):
            return train_w, val_w, "dataset"
        if method == "dataset":
            why = (f"clips {', '.join(sorted(shared)[:3])} are in both splits" if shared
                   else "it has no training or no validation windows")
            raise PoseDataError(f"{source}: the data set's split is not usable for poses ({why}); "
                                "use split: clip")
    unique = sorted(set(clip_ids))
    if len(unique) < 2:
        raise PoseDataError(f"{source}: needs at least 2 clips to hold one out, found {len(unique)}")
    k = min(len(unique) - 1, max(1, round(cfg.val_clip_fraction * len(unique))))
    held = set(sorted(unique, key=lambda c: stable_fraction(f"pose-val:{c}"))[:k])
    is_val = np.array([c in held for c in clip_ids])
    return np.flatnonzero(~is_val), np.flatnonzero(is_val), "clip"


def _poses(windows: np.ndarray, lengths: np.ndarray, index: np.ndarray, skeleton: Skeleton,
           stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Unique canonical poses of the valid frames of ``windows[index]``, and the position in
    ``index`` of the window each comes from."""
    parts, owner = [], []
    for k, i in enumerate(index):
        frames = np.asarray(windows[i, : int(lengths[i]) : max(1, stride)], dtype=np.float32)
        parts.append(frames)
        owner.append(np.full(len(frames), k))
    if not parts:
        return np.zeros((0, skeleton.num_joints, 3), np.float32), np.zeros(0, np.int64)
    poses = canonical_poses(np.concatenate(parts), skeleton).astype(np.float32)
    # Overlapping windows repeat frames: keep each pose once (to 0.1 mm).
    _, first = np.unique(np.round(poses.reshape(len(poses), -1) * 1e4).astype(np.int64), axis=0, return_index=True)
    keep = np.sort(first)
    return poses[keep], np.concatenate(owner)[keep]


# --- torch side -----------------------------------------------------------------------------------
class _PoseBatches(Dataset):
    """Indexable by a list of indices: one whole batch per item (no per-pose collation)."""

    def __init__(self, poses: np.ndarray) -> None:
        self.poses = torch.from_numpy(np.ascontiguousarray(poses, dtype=np.float32))

    def __len__(self) -> int:
        return len(self.poses)

    def __getitem__(self, idx: list[int]) -> dict[str, Tensor]:
        return {"pose": self.poses[idx]}


class _RandomBatches(torch.utils.data.Sampler[list[int]]):
    """Random batches of a fixed size, drawn anew each epoch (reproducible from ``seed``)."""

    def __init__(self, n: int, batch_size: int, seed: int) -> None:
        self.n, self.batch_size, self.seed, self.epoch = n, batch_size, seed, 0

    def __len__(self) -> int:
        return max(1, self.n // self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        self.epoch += 1
        # With fewer poses than a batch, sample with replacement so batch statistics stay stable.
        if self.n < self.batch_size:
            for _ in range(len(self)):
                yield torch.randint(0, self.n, (self.batch_size,), generator=g).tolist()
            return
        perm = torch.randperm(self.n, generator=g)
        for b in range(len(self)):
            yield perm[b * self.batch_size:(b + 1) * self.batch_size].tolist()


class PoseDataModule(L.LightningDataModule):
    """DataLoaders of pose batches ``{"pose": (B, J, 3) float32}`` over a :class:`PoseData`.

    Poses live in memory (a pose is 264 bytes) and batches are sliced whole, which keeps the
    loader far cheaper than the network on CPU.
    """

    def __init__(self, data: PoseData, batch_size: int = 256, seed: int = 0, val_batch_size: int = 4096) -> None:
        super().__init__()
        self.data, self.batch_size, self.seed, self.val_batch_size = data, batch_size, seed, val_batch_size

    def train_dataloader(self) -> DataLoader:
        ds = _PoseBatches(self.data.train)
        return DataLoader(ds, sampler=_RandomBatches(len(ds), self.batch_size, self.seed), batch_size=None)

    def val_dataloader(self) -> DataLoader:
        ds = _PoseBatches(self.data.val)
        n = len(ds)
        batches = [list(range(a, min(n, a + self.val_batch_size))) for a in range(0, n, self.val_batch_size)]
        return DataLoader(ds, sampler=batches, batch_size=None)
