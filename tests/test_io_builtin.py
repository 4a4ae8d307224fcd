"""The embedded DeepMimic data set: loadable without pickle, labelled, physically plausible."""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path

import numpy as np
import pytest

from ramos.motion.clip import ClipError
from ramos.motion.io import READERS, builtin
from ramos.motion.preprocess import facing_direction, mirror_text
from ramos.motion.skeleton import HUMANML3D as S
from ramos.stages.data.prepare import ensure_builtin_dataset, load_prepare_config

EXPECTED_LABELS = {"walk", "run", "jump", "backflip", "cartwheel", "crawl", "dance_a", "dance_b",
                   "getup_facedown", "getup_faceup", "kick", "punch", "roll", "spin", "spinkick",
                   "walk_forward", "turn_left", "turn_right"}


@pytest.fixture(scope="module")
def clips():
    return READERS["builtin"].read_all(None)


def test_asset_is_small_and_pickle_free() -> None:
    path = builtin.asset_path()
    assert path.stat().st_size < 1_000_000
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["meta"]))
        assert len(meta["clips"]) == 20
    assert "zlib" in (path.parent / "LICENSE-DeepMimic.txt").read_text(encoding="utf-8")


def test_twenty_labelled_clips(clips) -> None:
    assert len(clips) == 20
    assert {c.labels[0] for c in clips} == EXPECTED_LABELS
    assert len({c.source_id for c in clips}) == 20
    for c in clips:
        assert c.source == "builtin" and c.positions.dtype == np.float32 and c.positions.shape[1:] == (22, 3)
        assert c.fps in (16.0, 24.0, 30.0, 60.0) and c.meta["loop"] in ("wrap", "none")
    assert sum(c.seconds for c in clips) == pytest.approx(40, abs=3)


def test_items_are_picklable() -> None:
    items = READERS["builtin"].list_items(None)
    restored = pickle.loads(pickle.dumps(items))
    assert restored == items
    (clip,) = READERS["builtin"].read_item(restored[3])
    assert clip.source_id == items[3].source_id


def test_bone_lengths_constant(clips) -> None:
    for c in clips:
        bones = S.bone_lengths(c.positions)
        spread = (bones.max(0) - bones.min(0)) / bones.mean(0)
        assert spread.max() < 0.01, c.source_id


def test_facing_and_left_right(clips) -> None:
    for c in clips:
        p = c.positions[0]
        # Canonical first frame: pelvis at x = z = 0, left hip and shoulder at +x.
        np.testing.assert_allclose(p[0, [0, 2]], 0.0, atol=1e-5)
        assert p[S.index("left_hip"), 0] > 0 > p[S.index("right_hip"), 0], c.source_id
        assert p[S.index("left_shoulder"), 0] > 0 > p[S.index("right_shoulder"), 0], c.source_id
    walk = next(c for c in clips if c.labels == ["walk"])
    p = walk.positions
    # Walks towards +z, and in a walk arms swing against the legs (contralateral).
    assert p[-1, 0, 2] - p[0, 0, 2] > 0.8
    legs = p[:, S.index("left_foot"), 2] - p[:, S.index("right_foot"), 2]
    arms = p[:, S.index("right_wrist"), 2] - p[:, S.index("left_wrist"), 2]
    assert np.corrcoef(legs, arms)[0, 1] > 0.5
    turn_left = next(c for c in clips if c.labels == ["turn_left"])
    assert turn_left.positions[-1, 0, 0] > 0.3  # a left turn from facing +z heads towards +x


def test_feet_on_floor(clips) -> None:
    for c in clips:
        lowest = c.positions[:, list(S.feet), 1].min(axis=1)  # per frame, lower foot
        assert lowest.min() > -0.06, c.source_id
        if c.labels[0] in ("walk", "run", "walk_forward", "turn_left", "turn_right", "punch", "kick"):
            assert np.median(lowest) < 0.03, c.source_id
    standing = next(c for c in clips if c.labels[0] == "walk")
    assert 1.3 < standing.positions[0, S.index("head"), 1] < 1.8


def test_corrupt_asset_raises(tmp_path: Path) -> None:
    bad = tmp_path / "deepmimic22.npz"
    np.savez(bad, clip_000=np.zeros((3, 22, 3), np.float32))
    with pytest.raises(ClipError, match="missing 'meta'"):
        builtin.list_items(bad)
    bad.write_bytes(builtin.asset_path().read_bytes()[:5000])
    with pytest.raises(ClipError, match=str(bad)):
        builtin.list_items(tmp_path)


# --- captions -------------------------------------------------------------------------------------
PARAPHRASES = Path(__file__).parent / "data" / "paraphrases.json"
SIDED = ("turn_left", "turn_right", "kick", "punch")


def _side_of(clip) -> str:
    """The side a sided clip uses, measured on its motion (not read from its label)."""
    p, idx = clip.positions, S.index
    label = clip.labels[0]
    if label in ("turn_left", "turn_right"):  # facing +z, left is +x: a left turn heads towards +x
        f0, f1 = (facing_direction(p[i], S) for i in (0, -1))
        return "left" if np.arctan2(f1[0], f1[2]) - np.arctan2(f0[0], f0[2]) > 0 else "right"
    joint = "foot" if label == "kick" else "wrist"  # the kicking foot / punching fist rises highest
    return "left" if p[:, idx(f"left_{joint}"), 1].max() > p[:, idx(f"right_{joint}"), 1].max() else "right"


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


def _norm(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def test_every_clip_has_captions(clips) -> None:
    for c in clips:
        assert len(c.captions) >= 3, c.source_id
        assert len(set(c.captions)) == len(c.captions), c.source_id
        for cap in c.captions:
            assert cap == cap.lower() and cap.strip() == cap and len(cap.split()) >= 3, (c.source_id, cap)
            # mirror_text swaps only the words left/right: no wording it would miss
            assert not re.search(r"clockwise|leftward|rightward|lefthand|righthand", cap), (c.source_id, cap)


def test_sided_captions_name_the_measured_side(clips) -> None:
    sided = [c for c in clips if c.labels[0] in SIDED]
    assert len(sided) == 6  # two turns each way, the kick and the punch
    for c in sided:
        side = _side_of(c)
        other = "right" if side == "left" else "left"
        if c.labels[0].startswith("turn_"):
            assert c.labels[0] == f"turn_{side}", c.source_id
        for cap in c.captions:
            assert side in _words(cap) and other not in _words(cap), (c.source_id, cap)


def test_captions_file_missing_or_malformed(tmp_path: Path) -> None:
    asset = tmp_path / builtin.ASSET_NAME
    asset.write_bytes(builtin.asset_path().read_bytes())
    item = builtin.list_items(tmp_path)[0]
    (clip,) = builtin.read_item(item)  # no captions file beside this asset: no captions, no error
    assert clip.captions == [] and clip.labels
    cpath = tmp_path / builtin.CAPTIONS_NAME
    for text in ("{not json", json.dumps({"format_version": 1, "clips": {item.source_id: "one string"}}),
                 json.dumps({"format_version": 2, "clips": {}}), json.dumps(["a list"])):
        cpath.write_text(text, encoding="utf-8")
        with pytest.raises(ClipError, match="malformed captions file") as err:
            builtin.read_item(item)
        assert str(err.value).startswith(str(cpath)) and "\n" not in str(err.value)
    cpath.write_text(json.dumps({"format_version": 1, "clips": {item.source_id: ["a person  moves"]}}), encoding="utf-8")
    assert builtin.read_item(item)[0].captions == ["a person moves"]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    """The builtin set prepared without augmentation copies (originals and mirrors only: ~1 s)."""
    cfg = load_prepare_config("builtin")
    cfg.augment.copies = 0
    return ensure_builtin_dataset(tmp_path_factory.mktemp("builtin") / "data", cfg, workers=1, progress=False)


def test_mirrored_windows_carry_swapped_captions(prepared: Path, clips) -> None:
    captions = {c.source_id: c.captions for c in clips}
    meta = [json.loads(line) for line in (prepared / "meta.jsonl").read_text(encoding="utf-8").splitlines()]
    assert {m["mirrored"] for m in meta} == {False, True}
    for m in meta:
        expected = captions[m["clip_id"]]
        assert m["captions"] == ([mirror_text(c) for c in expected] if m["mirrored"] else expected), m["id"]
    kick = next(m for m in meta if m["clip_id"] == "humanoid3d_kick" and m["mirrored"])
    assert all("left" in _words(c) and "right" not in _words(c) for c in kick["captions"])
    assert kick["labels"] == ["kick"]


def test_paraphrases_are_held_out_and_labelled(prepared: Path, clips) -> None:
    doc = json.loads(PARAPHRASES.read_text(encoding="utf-8"))
    prompts = doc["prompts"]
    assert len(prompts) >= 40
    vocab = set(json.loads((prepared / "manifest.json").read_text(encoding="utf-8"))["labels"])
    training = {_norm(c) for clip in clips for cap in clip.captions for c in (cap, mirror_text(cap))}
    training |= {_norm(x) for x in vocab}
    texts = [_norm(p["text"]) for p in prompts]
    assert len(set(texts)) == len(texts)
    for p, text in zip(prompts, texts):
        assert text not in training, p["text"]
        assert p["label"] in vocab, p
    counts = {label: sum(p["label"] == label for p in prompts) for label in vocab}
    assert min(counts.values()) >= 1, counts  # every label covered
    assert sum(n >= 2 for n in counts.values()) > len(vocab) / 2, counts  # most labels twice
