"""The prepared data set folder: streaming atomic writer, bad items, splits, reader, data module."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_preprocess import walking_positions

from ramos.motion.clip import Clip, ClipError
from ramos.motion.dataset import DataError, MotionDataset
from ramos.motion.preprocess import facing_direction
from ramos.motion.skeleton import HUMANML3D
from ramos.stages.data.config import AugmentConfig, PrepareConfig
from ramos.stages.data.prepare import NpyAppender, load_prepare_config, prepare_dataset
from ramos.stages.data.process import copies_for


@dataclass
class FakeReader:
    """A picklable reader over synthetic walks; some items are broken on purpose."""

    spec: dict[str, dict[str, Any]]

    def list_items(self, root: Any) -> list[str]:
        return list(self.spec)

    def read_item(self, item: str) -> list[Clip]:
        s = self.spec[item]
        if s.get("error"):
            raise ClipError(f"{item}.npy: {s['error']}")
        if s.get("crash"):  # an interruption (Ctrl-C) stops the run; an error of one item would not
            raise KeyboardInterrupt("simulated interruption in the middle of writing")
        pos = walking_positions(s.get("seconds", 6.0), s.get("fps", 30.0), yaw_deg=s.get("yaw", 0.0), seed=len(item))
        if s.get("flat"):
            pos[:] = pos[:, :1]  # every joint on the root: no facing direction
        return [Clip(pos, s.get("fps", 30.0), item, "fake", s.get("captions", []), s.get("labels", ["walk"]))]


def _cfg(**split: Any) -> PrepareConfig:
    cfg = PrepareConfig()
    cfg.augment.copies = 0  # these tests check the writer: originals and mirrors only
    cfg.split.val_ratio, cfg.split.test_ratio = 0.2, 0.2
    for k, v in split.items():
        setattr(cfg.split, k, v)
    return cfg


GOOD = {f"walk{i:02d}": {"seconds": 4.0 + i, "yaw": 30.0 * i} for i in range(8)}


def test_npy_appender_roundtrip(tmp_path: Path) -> None:
    app = NpyAppender(tmp_path / "x.npy", (3, 2), np.float32)
    blocks = [np.random.default_rng(i).normal(size=(i + 1, 3, 2)) for i in range(4)]
    for b in blocks:
        app.append(b)
    app.close()
    got = np.load(tmp_path / "x.npy", mmap_mode="r")
    np.testing.assert_allclose(got, np.concatenate(blocks).astype(np.float32))


def test_prepare_streams_skips_bad_items_and_opens(tmp_path: Path) -> None:
    spec = {**GOOD, "broken": {"error": "truncated file"}, "tiny": {"seconds": 1.0},
            "flip": {"captions": ["a man does a backflip"]}, "flat": {"flat": True}}
    out = tmp_path / "ds"
    summary = prepare_dataset("fake", out, _cfg(), workers=2, reader=FakeReader(spec), progress=False)
    assert summary.rejections == {"read_error": 1, "too_short": 1, "excluded_motion": 1, "invalid_motion": 1}
    assert "skipped: excluded_motion 1, invalid_motion 1, read_error 1, too_short 1" in summary.line()
    man = json.loads((out / "manifest.json").read_text())
    reasons = {r["item"]: r["reason"] for r in man["rejections"]}
    assert reasons["broken"] == "broken.npy: truncated file"
    assert "min_frames 40" in reasons["tiny"] and "backflip" in reasons["flip"] and "zero-length bones" in reasons["flat"]
    assert man["counts"]["clips"] == 8 and man["versions"]["numpy"] == np.__version__
    assert man["config"]["window"] == 200 and man["labels"] == ["walk"]

    data = MotionDataset(out)
    assert isinstance(data.windows, np.memmap) and data.windows.dtype == np.float32
    assert data.windows.shape[1:] == (200, 22, 3) and len(data) == len(data.meta) == sum(summary.windows.values())
    assert data.skeleton == HUMANML3D and data.labels == ["walk"]
    # Every clip's windows come in order, the splits are whole clips, mirrored copies only in train.
    by_clip: dict[str, set[str]] = {}
    for m in data.meta:
        by_clip.setdefault(m["clip_id"], set()).add(m["split"])
        assert not m["mirrored"] or m["split"] == "train"
    assert all(len(s) == 1 for s in by_clip.values()) and set(by_clip) == set(GOOD)
    for i in range(len(data)):
        n = data.lengths[i]
        np.testing.assert_allclose(facing_direction(data.windows[i, 0], HUMANML3D), [0, 0, 1], atol=1e-4)
        np.testing.assert_array_equal(data.windows[i, n:], np.broadcast_to(data.windows[i, n - 1], data.windows[i, n:].shape))
    # Stats over valid training frames only.
    train = data.split_indices("train")
    frames = np.concatenate([data.windows[i, : data.lengths[i]] for i in train])
    np.testing.assert_allclose(data.stats["mean"], frames.mean(0), atol=1e-4)
    np.testing.assert_allclose(data.stats["std"], np.maximum(frames.std(0), 1e-4), rtol=1e-3, atol=1e-4)


def test_same_result_with_one_or_two_workers(tmp_path: Path) -> None:
    reader = FakeReader(GOOD)
    prepare_dataset("fake", tmp_path / "a", _cfg(), workers=1, reader=reader, progress=False)
    prepare_dataset("fake", tmp_path / "b", _cfg(), workers=2, reader=reader, progress=False)
    np.testing.assert_array_equal(np.load(tmp_path / "a/windows.npy"), np.load(tmp_path / "b/windows.npy"))
    assert (tmp_path / "a/meta.jsonl").read_text() == (tmp_path / "b/meta.jsonl").read_text()


def test_nothing_usable_is_one_line_error(tmp_path: Path) -> None:
    spec = {"bad1": {"error": "not a motion file"}, "short": {"seconds": 0.5}}
    with pytest.raises(DataError) as err:
        prepare_dataset("fake", tmp_path / "ds", _cfg(), workers=1, reader=FakeReader(spec), progress=False)
    msg = str(err.value)
    assert "\n" not in msg and "nothing usable" in msg and "read_error 1" in msg and "too_short 1" in msg
    assert list(tmp_path.iterdir()) == []  # no folder, no temporary left behind


def test_interrupted_write_leaves_no_dataset(tmp_path: Path) -> None:
    spec = {**GOOD, "zz_crash": {"crash": True}}
    out = tmp_path / "ds"
    with pytest.raises(KeyboardInterrupt, match="simulated interruption"):
        prepare_dataset("fake", out, _cfg(), workers=1, reader=FakeReader(spec), progress=False)
    assert list(tmp_path.iterdir()) == []
    # A previous data set at the same path survives a failed rewrite untouched.
    prepare_dataset("fake", out, _cfg(), workers=1, reader=FakeReader(GOOD), progress=False)
    before = (out / "meta.jsonl").read_text()
    with pytest.raises(KeyboardInterrupt):
        prepare_dataset("fake", out, _cfg(), workers=2, reader=FakeReader(spec), progress=False)
    assert (out / "meta.jsonl").read_text() == before and sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_rare_labels_dropped_with_reason(tmp_path: Path) -> None:
    spec = {**{f"w{i}": {"labels": ["walk"]} for i in range(3)}, "odd": {"labels": ["moonwalk"]}}
    cfg = _cfg(val_ratio=0.0, test_ratio=0.0)
    cfg.filters.min_label_count = 2
    prepare_dataset("fake", tmp_path / "ds", cfg, workers=1, reader=FakeReader(spec), progress=False)
    data = MotionDataset(tmp_path / "ds")
    assert {m["clip_id"] for m in data.meta} == {"w0", "w1", "w2"} and len(data) == 6
    assert data.labels == ["walk"]
    rej = data.manifest["rejections"]
    assert rej == [{"item": "odd", "code": "rare_label", "reason": "odd: label(s) moonwalk seen in fewer than 2 clips"}]


def test_split_files(tmp_path: Path) -> None:
    root = tmp_path / "src"
    root.mkdir()
    (root / "train.txt").write_text("walk00\nwalk01\nwalk02\n")
    (root / "val.txt").write_text("walk03\n")
    (root / "test.txt").write_text("walk04\n")
    spec = {k: GOOD[k] for k in ("walk00", "walk01", "walk02", "walk03", "walk04", "walk05")}
    s = prepare_dataset("fake", tmp_path / "ds", _cfg(method="files"), root=root, workers=1,
                        reader=FakeReader(spec), progress=False)
    data = MotionDataset(tmp_path / "ds")
    split_of = {m["clip_id"]: m["split"] for m in data.meta}
    assert split_of == {"walk00": "train", "walk01": "train", "walk02": "train", "walk03": "val", "walk04": "test"}
    assert s.rejections == {"no_split": 1}
    (root / "test.txt").unlink()
    with pytest.raises(DataError, match="test.txt not found"):
        prepare_dataset("fake", tmp_path / "ds2", _cfg(method="files"), root=root, reader=FakeReader(spec))


def test_copies_for_small_sets_only() -> None:
    auto = AugmentConfig()  # copies None: as many as min_train_windows asks for
    assert copies_for(42, auto) == 71  # 42 x 72 = 3,024 windows: about min_train_windows (3,000)
    assert copies_for(2999, auto) == 1 and copies_for(3000, auto) == 0
    assert copies_for(23_000, auto) == 0  # a HumanML3D-sized split is left alone
    assert copies_for(42, AugmentConfig(min_train_windows=0)) == 0
    assert copies_for(42, AugmentConfig(copies=2)) == 2 and copies_for(23_000, AugmentConfig(copies=2)) == 2


def test_small_sets_get_speed_and_yaw_copies(tmp_path: Path) -> None:
    """With augment.copies None, a training split under min_train_windows gets copies up to about that
    many (yawed, sped up or down); val/test and larger sets are untouched; the manifest says why."""
    plain = _cfg()
    prepare_dataset("fake", tmp_path / "plain", plain, workers=1, reader=FakeReader(GOOD), progress=False)
    base = MotionDataset(tmp_path / "plain")
    n_train = len(base.split_indices("train"))

    auto = _cfg()
    auto.augment.copies, auto.augment.min_train_windows = None, 5 * n_train
    prepare_dataset("fake", tmp_path / "auto", auto, workers=2, reader=FakeReader(GOOD), progress=False)
    data = MotionDataset(tmp_path / "auto")
    aug = data.manifest["augmentation"]
    assert aug["copies"] == 4 and aug["train_windows_without_copies"] == n_train
    assert "min_train_windows" in aug["reason"]
    assert 5 * n_train * 0.8 <= len(data.split_indices("train")) <= 5 * n_train * 1.2
    for split in ("val", "test"):
        assert len(data.split_indices(split)) == len(base.split_indices(split))
    copies = [m for m in data.meta if m["copy"]]
    assert copies and all(m["split"] == "train" for m in copies)
    assert max(abs(m["yaw_deg"]) for m in copies) > 1.0 and len({m["speed"] for m in copies}) > 1
    assert all(m["yaw_deg"] == 0.0 and m["speed"] == 1.0 for m in data.meta if not m["copy"])

    big = _cfg()
    big.augment.copies, big.augment.min_train_windows = None, n_train
    prepare_dataset("fake", tmp_path / "big", big, workers=1, reader=FakeReader(GOOD), progress=False)
    assert (tmp_path / "big/meta.jsonl").read_text() == (tmp_path / "plain/meta.jsonl").read_text()
    assert MotionDataset(tmp_path / "big").manifest["augmentation"]["copies"] == 0


def test_data_module_batches(tmp_path: Path) -> None:
    from ramos.motion.datamodule import MotionDataModule

    prepare_dataset("fake", tmp_path / "ds", _cfg(), workers=1, reader=FakeReader(GOOD), progress=False)
    dm = MotionDataModule(tmp_path / "ds", batch_size=4, normalized=False)
    batch = next(iter(dm.train_dataloader()))
    assert batch["motion"].shape[1:] == (200, 22, 3) and batch["motion"].dtype.is_floating_point
    assert batch["mask"].dtype == __import__("torch").bool
    assert (batch["mask"].sum(1) == batch["length"]).all() and (batch["label"] == 0).all()
    normed = MotionDataModule(tmp_path / "ds", batch_size=64, normalized=True, shuffle=False)
    b = next(iter(normed.train_dataloader()))
    valid = b["motion"][b["mask"]]
    moving = normed.stats()["std"] > 1e-3  # coordinates that never move stay at 0 after centring
    np.testing.assert_allclose(valid.mean(0).numpy(), 0.0, atol=1e-3)
    np.testing.assert_allclose(valid.std(0).numpy()[moving], 1.0, atol=1e-2)
    assert len(normed.split("val")) + len(normed.split("test")) + len(normed.split("train")) == len(normed.dataset)


def test_open_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not a prepared data set"):
        MotionDataset(tmp_path)
    with pytest.raises(DataError, match="unknown source"):
        prepare_dataset("nope", tmp_path / "x", PrepareConfig())


@pytest.mark.parametrize("source", ["builtin", "deepmimic", "humanml3d", "amass", "bvh"])
def test_every_data_config_loads(source: str) -> None:
    cfg = load_prepare_config(source)
    assert cfg.fps == 20.0 and cfg.window == 200
    assert (cfg.split.method == "segment") == (source in ("builtin", "deepmimic"))
