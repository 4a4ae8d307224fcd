"""The embedded DeepMimic data set: loadable without pickle, labelled, physically plausible."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from ramos.motion.clip import ClipError
from ramos.motion.io import READERS, builtin
from ramos.motion.skeleton import HUMANML3D as S

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
    standing = [c for c in clips if c.labels[0] == "walk"][0]
    assert 1.3 < standing.positions[0, S.index("head"), 1] < 1.8


def test_corrupt_asset_raises(tmp_path: Path) -> None:
    bad = tmp_path / "deepmimic22.npz"
    np.savez(bad, clip_000=np.zeros((3, 22, 3), np.float32))
    with pytest.raises(ClipError, match="missing 'meta'"):
        builtin.list_items(bad)
    bad.write_bytes(builtin.asset_path().read_bytes()[:5000])
    with pytest.raises(ClipError, match=str(bad)):
        builtin.list_items(tmp_path)
