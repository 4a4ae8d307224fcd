"""scripts/make_humanml3d_sample.py: a real HumanML3D-layout folder from the embedded clips, read by the humanml3d reader."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from repo_scripts import load_script

from ramos.motion.io import READERS, builtin
from ramos.motion.preprocess import mirror, mirror_text
from ramos.motion.skeleton import HUMANML3D as S

LINE = re.compile(r"^[^#]+#[^\s#/]+/[A-Z]+( [^\s#/]+/[A-Z]+)*#0\.0#0\.0$")  # caption#tok/POS tok/POS#0.0#0.0


def _script():
    return load_script("scripts/make_humanml3d_sample.py")


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    return _script().build(tmp_path_factory.mktemp("h3d") / "HumanML3D", seed=0)


def test_layout(sample: Path) -> None:
    ids = sorted(p.stem for p in (sample / "new_joints").glob("*.npy"))
    originals = [i for i in ids if not i.startswith("M")]
    assert 50 <= len(ids) <= 70 and len(ids) == 2 * len(originals)
    assert sorted(p.stem for p in (sample / "texts").glob("*.txt")) == ids
    assert not list(sample.parent.glob(f".{sample.name}*"))  # the temporary folder was renamed away
    for sid in originals:
        pos = np.load(sample / "new_joints" / f"{sid}.npy", allow_pickle=False)
        assert pos.dtype == np.float32 and pos.shape[1:] == (22, 3), sid
        assert 40 <= pos.shape[0] <= 200, sid  # 2-10 s at 20 fps
        assert abs(pos[..., 1].min()) < 1e-5, sid  # floor at y = 0
        np.testing.assert_allclose(pos[0, 0, [0, 2]], 0.0, atol=1e-5)
        bones = S.bone_lengths(pos)
        assert (bones.max(0) - bones.min(0)).max() < 1e-3, sid
        m = np.load(sample / "new_joints" / f"M{sid}.npy", allow_pickle=False)
        np.testing.assert_allclose(m, mirror(pos, S), atol=1e-6)
        lines = (sample / "texts" / f"{sid}.txt").read_text(encoding="utf-8").splitlines()
        mlines = (sample / "texts" / f"M{sid}.txt").read_text(encoding="utf-8").splitlines()
        assert len(lines) >= 3 and all(LINE.match(x) for x in lines + mlines), sid
        assert mlines == [mirror_text(x) for x in lines], sid


def test_splits_by_clip(sample: Path) -> None:
    splits = {s: (sample / f"{s}.txt").read_text(encoding="utf-8").split() for s in ("train", "val", "test")}
    listed = [i for ids in splits.values() for i in ids]
    assert len(listed) == len(set(listed)) == len(list((sample / "new_joints").glob("*.npy")))
    split_of = {i: s for s, ids in splits.items() for i in ids}
    index = json.loads((sample / "SAMPLE.json").read_text(encoding="utf-8"))["motions"]
    clip_split: dict[str, set[str]] = {}
    for m in index:
        assert split_of[m["id"]] == split_of["M" + m["id"]] == m["split"]
        clip_split.setdefault(m["clip"], set()).add(m["split"])
    assert all(len(s) == 1 for s in clip_split.values())  # every piece of a clip in one split
    n = {s: sum(x == {s} for x in clip_split.values()) for s in splits}
    assert n["val"] >= 1 and n["test"] >= 1 and n["train"] >= 0.7 * len(clip_split)
    assert all(splits["train"].index("M" + i) == splits["train"].index(i) + 1 for i in splits["train"]
               if not i.startswith("M"))  # an M id follows its original


def test_reader_reads_it_with_captions(sample: Path) -> None:
    reader = READERS["humanml3d"]
    items = reader.list_items(sample)
    assert len(items) == len(list((sample / "new_joints").glob("*.npy")))
    captions = {c.source_id: c.captions for c in builtin.load_all()}
    index = {m["id"]: m for m in json.loads((sample / "SAMPLE.json").read_text(encoding="utf-8"))["motions"]}
    for item in items:
        (clip,) = reader.read_item(item)
        original = index[clip.source_id.removeprefix("M")]
        expected = captions[original["clip"]]
        assert clip.fps == 20.0 and clip.meta["split"] == original["split"]
        assert clip.meta["mirrored"] == clip.source_id.startswith("M")
        assert clip.captions == ([mirror_text(c) for c in expected] if clip.meta["mirrored"] else expected)
        assert clip.meta["caption_spans"] == [[0.0, 0.0]] * len(expected)


def test_existing_folder_is_not_replaced(sample: Path, tmp_path: Path) -> None:
    script = _script()
    with pytest.raises(FileExistsError, match="already exists"):
        script.build(sample)
    real = tmp_path / "HumanML3D"
    (real / "new_joints").mkdir(parents=True)
    with pytest.raises(FileExistsError, match="not a sample"):
        script.build(real, overwrite=True)
    assert (real / "new_joints").is_dir()


def test_prepared_windows_keep_the_caption_tokens(sample: Path, tmp_path: Path) -> None:
    """Each window carries its captions' word/POS tokens (what Guo et al.'s evaluator reads), aligned with
    the captions; M files keep theirs (left and right swapped in both)."""
    from ramos.motion.dataset import MotionDataset
    from ramos.stages.data.prepare import load_prepare_config, prepare_dataset
    from ramos.stages.evaluation.text_protocol import caption_tokens

    cfg = load_prepare_config("humanml3d")
    cfg.augment.min_train_windows = 0
    prepare_dataset("humanml3d", tmp_path / "ds", cfg, root=sample, workers=1, progress=False)
    data = MotionDataset(tmp_path / "ds")
    for m in data.meta:
        assert len(m["caption_tokens"]) == len(m["captions"])
        for cap, tok in zip(m["captions"], m["caption_tokens"]):
            assert [t.split("/")[0] for t in tok.split()] == re.findall(r"[a-z0-9]+(?:[-'][a-z0-9]+)*", cap.lower())
    texts = sorted({c for m in data.meta for c in m["captions"]})
    tokens, guessed = caption_tokens(data, texts)
    assert guessed == 0 and all("/" in t for t in tokens)
    assert any(m["mirrored"] for m in data.meta)  # the words check above held for the M files' swapped sides
