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
