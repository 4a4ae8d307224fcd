"""The prepared motion data set folder, opened read-only (written by :mod:`ramos.stages.data.prepare`).

Layout (see docs/ARCHITECTURE.md)::

    windows.npy   float32 (N, W, J, 3), memory-mappable
    lengths.npy   int32 (N,), valid frames per window
    meta.jsonl    one JSON object per window
    stats.npz     mean, std (J, 3) over valid frames of the training split
    skeleton.json Skeleton.to_dict()
    manifest.json config, counts, rejections, versions, created

The torch side (``WindowDataset``, ``MotionDataModule``) is :mod:`ramos.motion.datamodule`.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ramos.motion.skeleton import Skeleton

Split = Literal["train", "val", "test"]
SPLITS: tuple[Split, ...] = ("train", "val", "test")


class DataError(ValueError):
    """A data set cannot be prepared or opened; the message is one line naming the problem."""


# --- the reader -------------------------------------------------------------------------------------------
class MotionDataset:
    """A prepared data set folder, opened read-only (windows memory-mapped).

    Attributes:
        path: the folder.
        windows: (N, W, J, 3) float32 memmap of joint positions in metres.
        lengths: (N,) int32 valid frames per window.
        meta: per-window metadata dicts (meta.jsonl).
        skeleton: the :class:`Skeleton` of the windows.
        stats: {"mean", "std"} arrays (J, 3) of the training split.
        manifest: the manifest dictionary.
        labels: sorted label vocabulary (index = class id).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        need = ("windows.npy", "lengths.npy", "meta.jsonl", "stats.npz", "skeleton.json", "manifest.json")
        if not self.path.is_dir():
            raise DataError(f"{self.path}: not a prepared data set folder (run `ramos data prepare`)")
        missing = [n for n in need if not (self.path / n).is_file()]
        if missing:
            raise DataError(f"{self.path}: not a prepared data set, missing {', '.join(missing)}")
        try:
            self.windows: np.ndarray = np.load(self.path / "windows.npy", mmap_mode="r", allow_pickle=False)
            self.lengths: np.ndarray = np.load(self.path / "lengths.npy", allow_pickle=False)
            with np.load(self.path / "stats.npz", allow_pickle=False) as st:
                self.stats: dict[str, np.ndarray] = {k: st[k] for k in ("mean", "std")}
            self.skeleton = Skeleton.from_dict(json.loads((self.path / "skeleton.json").read_text("utf-8")))
            self.manifest: dict[str, Any] = json.loads((self.path / "manifest.json").read_text("utf-8"))
            with open(self.path / "meta.jsonl", encoding="utf-8") as f:
                self.meta: list[dict[str, Any]] = [json.loads(line) for line in f]
        except (ValueError, OSError, KeyError) as exc:
            raise DataError(f"{self.path}: unreadable data set ({type(exc).__name__}: {exc})") from exc
        n = self.windows.shape[0]
        if self.lengths.shape != (n,) or len(self.meta) != n:
            raise DataError(f"{self.path}: windows ({n}), lengths ({len(self.lengths)}) and meta "
                            f"({len(self.meta)}) disagree")
        self.labels: list[str] = list(self.manifest.get("labels", []))
        self._label_index = {lab: i for i, lab in enumerate(self.labels)}
        self._splits = np.array([m["split"] for m in self.meta])

    def __len__(self) -> int:
        return int(self.windows.shape[0])

    @property
    def window(self) -> int:
        """Frames per window (W)."""
        return int(self.windows.shape[1])

    @property
    def fps(self) -> float:
        return float(self.manifest["config"]["fps"])

    def split_indices(self, split: str) -> np.ndarray:
        """Window indices of ``split`` ("train", "val" or "test")."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
        return np.flatnonzero(self._splits == split)

    def label_id(self, index: int) -> int:
        """Class id of window ``index``: its first label in :attr:`labels`, -1 when unlabelled."""
        labels = self.meta[index].get("labels") or []
        return self._label_index.get(labels[0], -1) if labels else -1

    def length_histograms(self, split: str = "train") -> dict[str, list[list[int]]]:
        """Per label (and ``"*"`` for all windows) the ``[[frames, count], ...]`` of the split's valid
        lengths (all windows when the split is empty): what generation draws lengths from."""
        idx = self.split_indices(split)
        if len(idx) == 0:
            idx = np.arange(len(self))
        hists: dict[str, Counter[int]] = {"*": Counter()}
        for i in idx:
            n = int(self.lengths[i])
            hists["*"][n] += 1
            label = self.label_id(int(i))
            if label >= 0:
                hists.setdefault(self.labels[label], Counter())[n] += 1
        return {k: sorted([int(f), int(c)] for f, c in h.items()) for k, h in hists.items()}

    def item(self, index: int, normalized: bool = False) -> dict[str, Any]:
        """One window as numpy arrays: motion (W, J, 3), mask (W,), length, label."""
        motion = np.array(self.windows[index], dtype=np.float32)
        if normalized:
            motion = self.normalize(motion)
        length = int(self.lengths[index])
        mask = np.arange(self.window) < length
        return {"motion": motion, "mask": mask, "length": length, "label": self.label_id(index)}

    def normalize(self, motion: np.ndarray) -> np.ndarray:
        """(x - mean) / std with the training statistics."""
        return ((motion - self.stats["mean"]) / self.stats["std"]).astype(np.float32)
