"""The embedded set: its time-segment split never lets a held-out frame into training."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ramos.motion.dataset import MotionDataset
from ramos.motion.io import READERS
from ramos.motion.skeleton import HUMANML3D
from ramos.stages.data.prepare import ensure_builtin_dataset, load_prepare_config
from ramos.stages.data.process import ClipProcessor, segment_bounds


def _small_cfg():
    cfg = load_prepare_config("builtin")
    cfg.augment.copies = 2
    return cfg


def _clips():
    reader = READERS["builtin"]
    return [c for item in reader.list_items(None) for c in reader.read_item(item)]


def test_held_out_frames_never_reach_training() -> None:
    cfg = _small_cfg()
    proc = ClipProcessor(cfg, HUMANML3D)
    for clip in _clips():
        before = proc.process(clip)
        b = segment_bounds(clip.num_frames, clip.fps, cfg.split)
        # Change everything after the training segment (gaps, test, val): a bigger body, moved up.
        held = slice(b["train"][1], None)
        clip.positions[held] = clip.positions[held] * 1.05 + np.float32(0.02)
        after = proc.process(clip)
        train_b = [i for i, m in enumerate(before.windows.meta) if m["split"] == "train"]
        train_a = [i for i, m in enumerate(after.windows.meta) if m["split"] == "train"]
        assert train_b == train_a and len(train_b) == 2 * 3, clip.source_id
        np.testing.assert_array_equal(before.windows.windows[train_b], after.windows.windows[train_a])
        assert not after.rejections
        held_i = [i for i, m in enumerate(after.windows.meta) if m["split"] != "train"]
        assert len(held_i) == 2 and not np.allclose(before.windows.windows[held_i], after.windows.windows[held_i])


def test_segments_are_ordered_and_disjoint() -> None:
    cfg = load_prepare_config("builtin")
    for clip in _clips():
        b = segment_bounds(clip.num_frames, clip.fps, cfg.split)
        assert 0 == b["train"][0] < b["train"][1] < b["test"][0] < b["test"][1] < b["val"][0] < b["val"][1]
        assert b["val"][1] == clip.num_frames


def test_ensure_builtin_dataset_caches(tmp_path: Path) -> None:
    cfg = _small_cfg()
    out = ensure_builtin_dataset(tmp_path / "builtin", cfg, workers=2, progress=False)
    data = MotionDataset(out)
    clips = {m["clip_id"] for m in data.meta}
    assert len(clips) == 20
    for split in ("val", "test"):
        assert {data.meta[i]["clip_id"] for i in data.split_indices(split)} == clips  # every clip held out
    train = data.split_indices("train")
    assert len(train) == 20 * 2 * 3
    # Cyclic clips are looped to fill the window; training windows are sped up/down copies.
    looped = [data.meta[i] for i in train if data.meta[i]["looped"]]
    assert looped and all(data.lengths[i] == 200 for i in train if data.meta[i]["looped"])
    assert {m["speed"] != 1.0 for m in looped} == {True, False}
    stamp = (out / "manifest.json").stat().st_mtime_ns
    assert ensure_builtin_dataset(tmp_path / "builtin", cfg) == out
    assert (out / "manifest.json").stat().st_mtime_ns == stamp  # reused, not rebuilt
    assert json.loads((out / "manifest.json").read_text())["config"]["filters"]["exclude"] == []


@pytest.mark.parametrize("name", ["humanoid3d_backflip"])
def test_backflip_kept_and_resampled(name: str) -> None:
    clip = next(c for c in _clips() if c.source_id == name)
    assert clip.fps == 16.0
    res = ClipProcessor(_small_cfg(), HUMANML3D).process(clip)
    assert not res.rejections
    val = next(m for m in res.windows.meta if m["split"] == "val")
    assert val["fps"] == 20.0


def test_labels_follow_mirroring_and_the_label_map() -> None:
    cfg = _small_cfg()
    proc = ClipProcessor(cfg, HUMANML3D)
    seen: set[tuple[str, bool, str]] = set()
    for clip in _clips():
        for m in proc.process(clip).windows.meta:
            seen.add((clip.source_id, bool(m["mirrored"]), m["labels"][0]))
    turns = {(mirrored, label) for cid, mirrored, label in seen if "turn_left" in cid}
    assert turns == {(False, "turn_left"), (True, "turn_right")}
    assert {label for cid, _, label in seen if "walk_forward" in cid} == {"walk"}


def test_augmented_windows_keep_the_captured_bone_lengths() -> None:
    """Speed copies and loops interpolate positions (the held-out end of each cycle is bridged):
    interpolated frames must keep every bone at the clip's captured length, not shorten it along
    the chord (before the fix, thighs shrank by up to 10 % in bridged frames), and the rigid parts
    rigid (before 2026-12-04, hips and spine moved apart by up to 12 mm std). Resampling the
    clips to 20 fps moves the median bone length by under a millimetre, hence the 3 mm tolerance."""
    proc = ClipProcessor(_small_cfg(), HUMANML3D)
    for clip in _clips():
        captured = np.median(HUMANML3D.bone_lengths(clip.positions), axis=0)
        out = proc.process(clip).windows
        for w, n in zip(out.windows, out.lengths):
            err = np.abs(HUMANML3D.bone_lengths(w[:n]) - captured).max()
            assert err < 3e-3, f"{clip.source_id}: a bone is {err * 1000:.1f} mm off its captured length"
            # Rigid parts stay rigid: hips and spine, neck and collars keep their distances.
            for a, b in ((1, 3), (2, 3), (12, 13), (12, 14), (13, 14)):
                spread = np.ptp(np.linalg.norm(w[:n, a] - w[:n, b], axis=-1))
                assert spread < 1e-4, f"{clip.source_id}: joints {a}-{b} move apart by {spread * 1000:.2f} mm"
