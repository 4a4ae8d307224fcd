"""HumanML3D folder reader: ids, splits, mirrored copies, captions with spans, bad input."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from ramos.motion.clip import ClipError
from ramos.motion.io import READERS, humanml3d


def _motion(t: int = 30, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(t, 22, 3)).astype(np.float32)


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    (tmp_path / "new_joints").mkdir()
    (tmp_path / "texts").mkdir()
    for i, sid in enumerate(["000001", "M000001", "000002", "000003"]):
        np.save(tmp_path / "new_joints" / f"{sid}.npy", _motion(seed=i))
    (tmp_path / "texts" / "000001.txt").write_text(
        "a person walks forward.#a/DET person/NOUN walk/VERB forward/ADV#0.0#0.0\n"
        "someone steps ahead then stops#someone/PRON step/VERB#0.5#1.25\n\n", encoding="utf-8")
    (tmp_path / "texts" / "M000001.txt").write_text("a person walks.#a/DET#nan#nan\n", encoding="utf-8")
    (tmp_path / "train.txt").write_text("000001\n000003\n")
    (tmp_path / "test.txt").write_text("000002\n")
    return tmp_path


def test_items_splits_and_mirrors(root: Path) -> None:
    items = READERS["humanml3d"].list_items(root)
    by_id = {i.source_id: i for i in items}
    assert sorted(by_id) == ["000001", "000002", "000003", "M000001"]
    assert by_id["M000001"].mirrored and by_id["M000001"].split == "train"  # inherits its original's split
    assert by_id["000002"].split == "test" and by_id["000003"].text_path is None
    assert [i.source_id for i in humanml3d.list_items(root, include_mirrored=False, splits=("train",))] == [
        "000001", "000003"]
    assert pickle.loads(pickle.dumps(items)) == items


def test_read_captions_spans_and_positions(root: Path) -> None:
    items = {i.source_id: i for i in humanml3d.list_items(root)}
    (clip,) = READERS["humanml3d"].read_item(items["000001"])
    np.testing.assert_array_equal(clip.positions, _motion(seed=0))
    assert clip.fps == 20.0 and clip.source == "humanml3d" and clip.labels == []
    assert clip.captions == ["a person walks forward.", "someone steps ahead then stops"]
    assert clip.meta["caption_spans"] == [[0.0, 0.0], [0.5, 1.25]]
    assert clip.meta["caption_tokens"][0].startswith("a/DET")
    assert clip.meta["split"] == "train" and clip.meta["mirrored"] is False
    (mirror,) = humanml3d.read_item(items["M000001"])
    assert mirror.meta["caption_spans"] == [[0.0, 0.0]] and mirror.meta["mirrored"] is True
    (bare,) = humanml3d.read_item(items["000003"])
    assert bare.captions == []


@pytest.mark.parametrize("array, reason", [
    (np.zeros((30, 21, 3), np.float32), "expected 22 joints"),
    (np.zeros((30, 66), np.float32), r"shape \(T, J, 3\)"),
    (np.zeros((1, 22, 3), np.float32), "1 frame"),
    (np.zeros((0, 22, 3), np.float32), "0 frame"),
    (np.where(np.arange(30)[:, None, None] == 7, np.nan, np.zeros((30, 22, 3))).astype(np.float32), "NaN/inf"),
    (np.full((3, 22, 3), "x"), "not numeric"),
    (np.array([None, 1], dtype=object), "without unpickling"),
])
def test_bad_arrays(root: Path, array: np.ndarray, reason: str) -> None:
    path = root / "new_joints" / "000002.npy"
    np.save(path, array, allow_pickle=True)
    item = next(i for i in humanml3d.list_items(root) if i.source_id == "000002")
    with pytest.raises(ClipError, match=reason) as err:
        humanml3d.read_item(item)
    assert str(path) in str(err.value)


def test_truncated_npy_and_bad_texts(root: Path) -> None:
    path = root / "new_joints" / "000002.npy"
    path.write_bytes(path.read_bytes()[:300])
    item = next(i for i in humanml3d.list_items(root) if i.source_id == "000002")
    with pytest.raises(ClipError, match="000002.npy"):
        humanml3d.read_item(item)
    text = root / "texts" / "000001.txt"
    item1 = next(i for i in humanml3d.list_items(root) if i.source_id == "000001")
    for content, reason in [(b"caf\xe9 walks#x#0#0\n", "not valid utf-8"), (b"walks#x#a#b\n", "non-numeric span"),
                            (b"walks#x#2.0#1.0\n", "bad span"), (b"#x#0#0\n", "empty caption")]:
        text.write_bytes(content)
        with pytest.raises(ClipError, match=reason):
            humanml3d.read_item(item1)


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="new_joints"):
        humanml3d.list_items(tmp_path)


def test_prepare_records_a_bad_file_by_its_path(root: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    """`ramos data prepare --source humanml3d` skips a file of NaNs and the manifest names it by its path."""
    import json

    from ramos.stages.data.prepare import load_prepare_config, prepare_dataset

    bad = root / "new_joints" / "000003.npy"
    np.save(bad, np.full((60, 22, 3), np.nan, np.float32))
    (root / "val.txt").write_text("")
    out = tmp_path_factory.mktemp("prepared") / "ds"
    cfg = load_prepare_config("humanml3d", overrides={"min_frames": 10, "window": 30, "filters.max_speed_mps": None})
    prepare_dataset("humanml3d", out, cfg, root=root, workers=1, progress=False)
    rejected = {r["item"]: r for r in json.loads((out / "manifest.json").read_text())["rejections"]}
    assert rejected[str(bad)]["code"] == "read_error" and "NaN" in rejected[str(bad)]["reason"]


def _huge_header_npy(path: Path, frames: int = 1_000_000_000, data_bytes: int = 1 << 20) -> None:
    """An .npy whose header claims ``frames`` float32 frames of 22 joints, followed by 1 MiB of data."""
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (frames, 22, 3)})
        f.write(bytes(data_bytes))


def test_header_is_checked_before_reading(root: Path) -> None:
    """A header claiming 1e9 frames in a 1 MiB file is rejected from the header, not by a MemoryError."""
    path = root / "new_joints" / "000002.npy"
    _huge_header_npy(path)
    item = next(i for i in humanml3d.list_items(root) if i.source_id == "000002")
    with pytest.raises(ClipError, match=r"header says shape \(1000000000, 22, 3\) float32 .* but the file holds 1 MiB"):
        humanml3d.read_item(item)
    np.save(path, _motion(t=30))
    with pytest.raises(ClipError, match="30 frames, more than the limit of 10 .*max_frames"):
        humanml3d.read_item(item, max_frames=10)
    assert humanml3d.read_item(item)[0].num_frames == 30


@pytest.mark.parametrize("content, reason", [
    (b"0.1 0.2 0.3\n0.4 0.5 0.6\n", r"not a \.npy file \(no NumPy magic header; looks like text"),
    (b"", r"not a \.npy file \(no NumPy magic header; the file is empty\)"),
    (b"PK\x03\x04rest of a zip", r"not a \.npy file .*zip archive"),
])
def test_not_an_npy_file_says_so(root: Path, content: bytes, reason: str) -> None:
    """A text file named .npy is not reported as pickled data (which sent users to allow_pickle)."""
    path = root / "new_joints" / "000002.npy"
    path.write_bytes(content)
    item = next(i for i in humanml3d.list_items(root) if i.source_id == "000002")
    with pytest.raises(ClipError, match=reason) as err:
        humanml3d.read_item(item)
    assert "pickle" not in str(err.value) and str(err.value).startswith(str(path))


@pytest.mark.parametrize("array, reason", [
    (np.full((30, 22, 3), 1834, np.int64),
     r"integers \(int64, max \|x\| 1834: millimetres\?\); joints must be float metres"),
    (np.full((30, 22, 3), 170, np.int32), r"integers \(int32, max \|x\| 170: centimetres\?\)"),
    (np.ones((30, 22, 3), bool), "booleans; joints must be float metres"),
])
def test_integer_joints_are_not_taken_as_metres(root: Path, array: np.ndarray, reason: str) -> None:
    path = root / "new_joints" / "000002.npy"
    np.save(path, array)
    item = next(i for i in humanml3d.list_items(root) if i.source_id == "000002")
    with pytest.raises(ClipError, match=reason):
        humanml3d.read_item(item)


def _prepare(root: Path, out: Path, **overrides):
    from ramos.stages.data.prepare import load_prepare_config, prepare_dataset

    cfg = load_prepare_config("humanml3d", overrides={"min_frames": 10, "window": 30, "filters.max_speed_mps": None,
                                                      **overrides})
    return prepare_dataset("humanml3d", out, cfg, root=root, workers=1, progress=False)


def test_one_bad_file_never_aborts_the_batch(root: Path, tmp_path_factory: pytest.TempPathFactory,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A hostile header and a MemoryError each reject their own item; the good items are prepared."""
    import json

    (root / "val.txt").write_text("")
    (root / "train.txt").write_text("000001\nM000001\n000003\n")
    huge = root / "new_joints" / "000003.npy"
    _huge_header_npy(huge)
    real_load = humanml3d.load_npy

    def load(path: Path, *args: object, **kwargs: object) -> np.ndarray:
        if path.name == "000002.npy":
            raise MemoryError
        return real_load(path, *args, **kwargs)

    monkeypatch.setattr(humanml3d, "load_npy", load)
    out = tmp_path_factory.mktemp("prepared") / "ds"
    summary = _prepare(root, out)
    assert summary.clips == 2 and summary.rejections == {"read_error": 2}
    rejected = {r["item"]: r["reason"] for r in json.loads((out / "manifest.json").read_text())["rejections"]}
    assert rejected[str(huge)].startswith(f"{huge}: header says shape (1000000000, 22, 3)")
    bad = str(root / "new_joints" / "000002.npy")
    assert rejected[bad].startswith(f"{bad}: MemoryError") and "\n" not in rejected[bad]


def test_prepare_records_missing_captions_ids_and_mirrors(root: Path, tmp_path_factory: pytest.TempPathFactory,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    """Missing/empty caption files and split ids without a motion file are warned about and listed;
    HumanML3D's M* files are mirrored copies in the prepared meta."""
    import json

    from ramos.motion.dataset import MotionDataset

    (root / "texts" / "000002.txt").write_text("\n \n", encoding="utf-8")  # empty; 000003 has none
    (root / "train.txt").write_text("000001\nM000001\n000003\n004242\n")
    (root / "val.txt").write_text("")
    out = tmp_path_factory.mktemp("prepared") / "ds"
    with caplog.at_level("WARNING"):
        summary = _prepare(root, out)
    man = json.loads((out / "manifest.json").read_text())
    by_code = {w["code"]: w for w in man["warnings"]}
    assert man["counts"]["warnings_by_code"] == {"empty_captions": 1, "missing_motion": 1, "no_captions": 1}
    assert by_code["missing_motion"]["item"] == "004242" and "train.txt" in by_code["missing_motion"]["reason"]
    assert by_code["no_captions"]["reason"] == f"{root / 'new_joints' / '000003.npy'}: no caption file texts/000003.txt"
    assert "000002.txt holds no caption" in by_code["empty_captions"]["reason"]
    assert "warnings: empty_captions 1, missing_motion 1, no_captions 1 ->" in summary.line()
    assert {r.message.split(":")[0] for r in caplog.records} >= {"empty_captions", "missing_motion", "no_captions"}
    mirrored = {m["clip_id"]: m["mirrored"] for m in MotionDataset(out).meta}
    assert mirrored == {"000001": False, "M000001": True, "000002": False, "000003": False}


def test_no_training_windows_is_an_error(root: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Every clip in val/test: a one-line DataError, and no data set folder (or temporary one) left behind."""
    from ramos.motion.dataset import DataError

    (root / "train.txt").write_text("")
    (root / "val.txt").write_text("000001\nM000001\n000003\n")
    parent = tmp_path_factory.mktemp("prepared")
    expected = r"^0 training windows from 4 humanml3d item\(s\) \(train 0, val 3, test 1"
    with pytest.raises(DataError, match=expected) as err:
        _prepare(root, parent / "ds")
    assert "\n" not in str(err.value)
    assert list(parent.iterdir()) == []
