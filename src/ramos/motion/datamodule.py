"""Torch side of the prepared data set: a window Dataset and a LightningDataModule.

Kept apart from :mod:`ramos.motion.dataset` so that preparing data never imports torch;
``ramos.motion.dataset.MotionDataModule`` re-exports :class:`MotionDataModule`.
"""

from __future__ import annotations

import os
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ramos.motion.dataset import MotionDataset


class WindowDataset(Dataset):
    """The windows of one split as dict items {"motion", "mask", "length", "label"} (torch tensors)."""

    def __init__(self, data: MotionDataset, split: str, normalized: bool = False) -> None:
        self.data = data
        self.indices = data.split_indices(split)
        self.normalized = normalized

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = self.data.item(int(self.indices[i]), normalized=self.normalized)
        return {
            "motion": torch.from_numpy(item["motion"]),
            "mask": torch.from_numpy(item["mask"]),
            "length": torch.tensor(item["length"], dtype=torch.long),
            "label": torch.tensor(item["label"], dtype=torch.long),
        }


class MotionDataModule(L.LightningDataModule):
    """Train/val/test DataLoaders over a prepared data set folder.

    Batches are dicts: ``motion`` (B, W, J, 3) float32 (metres, or standardised with the data
    set's training statistics when ``normalized``), ``mask`` (B, W) bool, ``length`` (B,) long,
    ``label`` (B,) long (index into the sorted label vocabulary, -1 when unlabelled).
    """

    def __init__(self, path: str | os.PathLike[str], batch_size: int = 32, normalized: bool = True,
                 num_workers: int = 0, shuffle: bool = True, drop_last: bool = False) -> None:
        super().__init__()
        self.path = os.fspath(path)
        self.batch_size = batch_size
        self.normalized = normalized
        self.num_workers = num_workers
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.data: MotionDataset | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.data is None:
            self.data = MotionDataset(self.path)

    @property
    def dataset(self) -> MotionDataset:
        """The opened :class:`MotionDataset` (opened on first use)."""
        self.setup()
        assert self.data is not None
        return self.data

    def split(self, name: str) -> WindowDataset:
        return WindowDataset(self.dataset, name, self.normalized)

    def _loader(self, name: str, shuffle: bool) -> DataLoader:
        ds = self.split(name)
        return DataLoader(ds, batch_size=self.batch_size, shuffle=shuffle and len(ds) > 0,
                          num_workers=self.num_workers, drop_last=self.drop_last and shuffle,
                          persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.shuffle)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", False)

    def stats(self) -> dict[str, np.ndarray]:
        """Training mean and std (J, 3)."""
        return self.dataset.stats
