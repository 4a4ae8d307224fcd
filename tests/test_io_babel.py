"""BABEL labels for AMASS: the JSON reader, path matching, window labels, and ``ramos data prepare --babel``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.spatial.transform import Rotation
from test_io_amass import _sequence, _write_model

from ramos.cli import main
from ramos.motion.dataset import MotionDataset
from ramos.motion.io import babel
from ramos.stages.data.process import segment_labels


def _label(act_cat: list[str] | None, raw: str, start: float | None = None, end: float | None = None) -> dict:
    lab: dict[str, Any] = {"raw_label": raw, "proc_label": raw.lower(), "act_cat": act_cat, "seg_id": f"seg-{raw}"}
    if start is not None:
        lab.update(start_t=start, end_t=end)
    return lab


def _entry(sid: int, feat_p: str, dur: float, seq: list[dict] | None, frames: list[dict] | None = None) -> dict:
    return {"babel_sid": sid, "url": f"https://example.org/{sid:06d}.mp4", "feat_p": feat_p, "dur": dur,
            "seq_ann": None if seq is None else {"babel_lid": "x", "anntr_id": "a", "mul_act": True, "labels": seq},
            "frame_ann": None if frames is None else {"babel_lid": "y", "anntr_id": "a", "mul_act": True,
                                                      "labels": frames}}


def _write_babel(folder: Path, files: dict[str, dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (folder / f"{name}.json").write_text(json.dumps(content))
    return folder


# --- the reader ---------------------------------------------------------------------------------------------
def test_reader_dense_extra_and_withheld(tmp_path: Path) -> None:
    train = {"1": _entry(1, "CMU/CMU/86/86_05_poses.npz", 12.0, [_label(["walk", "run"], "walk then run")],
                         [_label(["walk"], "walking", 0, 5), _label(None, "unclear", 5, 5),
                          _label(["backflip"], "back flip", 5, 7.5)])}
    extra = {"1": {**_entry(1, "CMU/CMU/86/86_05_poses.npz", 12.0, None),
                   "seq_anns": [{"labels": [_label(["x"], "x")]}], "frame_anns": None},
             "2": {"babel_sid": 2, "feat_p": "KIT/KIT/4/RightTurn01_poses.npz", "dur": 3.0,
                   "seq_anns": [{"labels": [_label(["turn"], "turn right")]}, {"labels": [_label(["walk"], "walk")]}],
                   "frame_anns": [{"labels": [{"act_cat": ["turn"], "raw_label": "turning", "start_t": 0.5,
                                               "end_t": 2}]}]}}
    test = {"3": {"babel_sid": 3, "feat_p": "CMU/CMU/99/99_01_poses.npz", "dur": 4.0}}  # labels withheld
    folder = _write_babel(tmp_path / "babel", {"train": train, "extra_train": extra, "test": test})
    index = babel.load_babel(str(folder))
    assert len(index) == 2  # the test entry carries no label; the extra copy of sequence 1 loses to train
    seq = index.lookup("CMU/86/86_05_poses")
    assert seq is not None and seq.file == "train" and seq.sid == "1"
    assert seq.labels == ("walk", "run") and seq.raw_labels == ("walk then run",)
    # The empty segment (end = start) is dropped; act_cat null becomes no category.
    assert [(s.start_t, s.end_t, s.act_cat, s.raw_label) for s in seq.segments] == [
        (0.0, 5.0, ("walk",), "walking"), (5.0, 7.5, ("backflip",), "back flip")]
    # Extra files: every annotator's labels; proc_label and seg_id may be missing.
    turn = index.lookup("/data/amass/KIT/4/RightTurn01_poses.npz")
    assert turn is not None and turn.labels == ("turn", "walk") and turn.segments[0].proc_label == ""
    assert index.lookup("CMU/99/99_01_poses") is None


def test_matching_by_path_tail(tmp_path: Path) -> None:
    seqs = [babel.BabelSequence(str(i), p, "train", dur, ("a",), (), ()) for i, (p, dur) in enumerate([
        ("CMU/CMU/86/86_05_poses.npz", 10.0),
        ("BioMotionLab_NTroje/rub001/0001_treadmill_norm_poses.npz", 20.0),
        ("KIT/KIT/4/Walk01_poses.npz", 3.0), ("KIT/KIT/5/Walk01_poses.npz", 4.0),
        ("MPI_HDM05/bk/HDM_bk_01_poses.npz", 5.0), ("Other/bk/HDM_bk_01_poses.npz", 5.02)])]
    index = babel.BabelIndex(seqs)
    assert index.lookup("CMU/86/86_05_poses").sid == "0"            # doubled first folder
    assert index.lookup("/home/u/AMASS/cmu/86/86_05_stageii.npz").sid == "0"  # case, stage-ii name, absolute
    assert index.lookup("BMLrub/rub001/0001_treadmill_norm_poses").sid == "1"  # renamed subset folder
    assert index.lookup("KIT/5/Walk01_poses").sid == "3"            # the subject folder tells them apart
    assert index.lookup("Walk01_poses") is None                     # a bare file name shared by two: ambiguous
    assert index.lookup("Walk01_poses", seconds=3.0).sid == "2"     # ... unless the duration tells
    assert index.lookup("X/bk/HDM_bk_01_poses", seconds=5.0) is None  # durations too close to tell
    assert index.lookup("CMU/86/86_06_poses") is None


@pytest.mark.parametrize("content, reason", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "expected a JSON object of sequences"),
    ('{"1": {"dur": 3}}', "sequence '1' has no feat_p"),
    ('{"1": {"feat_p": "a/b.npz", "seq_ann": {"labels": [{"act_cat": 3}]}}}', "act_cat must be a list of strings"),
    ('{"1": {"feat_p": "a/b.npz", "frame_ann": {"labels": [{"act_cat": ["x"], "start_t": "0"}]}}}', "start_t"),
])
def test_malformed_files_name_the_file(tmp_path: Path, content: str, reason: str) -> None:
    path = tmp_path / "train.json"
    path.write_text(content)
    with pytest.raises(babel.BabelError, match=reason) as err:
        babel.read_babel_file(path)
    assert str(err.value).startswith(f"{path}: ") and "\n" not in str(err.value)


def test_missing_folder_and_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such BABEL folder"):
        babel.load_babel(str(tmp_path / "nowhere"))
    with pytest.raises(babel.BabelError, match="no BABEL file found"):
        babel.load_babel(str(tmp_path))


def test_window_label_is_the_one_covering_most_frames() -> None:
    segments = [{"start_s": 0.0, "end_s": 4.0, "labels": ["stand"], "raw_label": "standing"},
                {"start_s": 4.0, "end_s": 15.0, "labels": ["jump", "exercise"], "raw_label": "jumping jacks"},
                # a second annotator over the same frames: no double counting
                {"start_s": 0.0, "end_s": 4.0, "labels": ["stand"], "raw_label": "standing"},
                {"start_s": 3.0, "end_s": 4.0, "labels": ["wave"], "raw_label": "waves"}]
    labels, raw = segment_labels(segments, np.arange(200) / 20.0)  # 0-10 s: stand 80 frames, jump 120
    assert labels == ["jump", "exercise", "stand", "wave"] and raw == ["jumping jacks", "standing", "waves"]
    assert segment_labels(segments, np.arange(40) / 20.0 + 20.0) == ([], [])


# --- end to end -----------------------------------------------------------------------------------------------
def _smooth_sequence(path: Path, seconds: float, fps: float, seed: int) -> None:
    """A slow, upright, walking-speed motion (no velocity-filter cuts) of ``seconds`` at ``fps``."""
    t = round(seconds * fps)
    rng = np.random.default_rng(seed)
    time = np.arange(t)[:, None] / fps
    poses = rng.normal(scale=0.15, size=156) + 0.1 * np.sin(np.pi * time + rng.uniform(0, 6, size=156))
    poses[:, :3] = Rotation.from_euler("x", 90, degrees=True).as_rotvec()
    trans = np.concatenate([np.zeros((t, 1)), 0.5 * time, np.full((t, 1), 0.9)], axis=1)
    _sequence(path, t=t, poses=poses, trans=trans, mocap_framerate=np.array(fps))


@pytest.fixture()
def amass_with_babel(tmp_path: Path) -> tuple[Path, Path, Path]:
    _write_model(tmp_path / "smplh" / "female" / "model.npz", seed=0)
    root = tmp_path / "amass"
    _smooth_sequence(root / "CMU" / "86" / "86_05_poses.npz", 12.0, 60.0, seed=1)
    _smooth_sequence(root / "BMLrub" / "rub001" / "0001_jacks_poses.npz", 15.0, 30.0, seed=2)
    _smooth_sequence(root / "CMU" / "99" / "99_01_poses.npz", 4.0, 30.0, seed=3)  # not in BABEL
    _smooth_sequence(root / "KIT" / "3" / "tapping_01_poses.npz", 4.0, 30.0, seed=4)
    train = {
        "10": _entry(10, "CMU/CMU/86/86_05_poses.npz", 12.0, [_label(["walk", "run"], "walk, flip and run")],
                     [_label(["walk"], "walking", 0, 5), _label(["flip"], "does a backflip", 5, 7),
                      _label(["run"], "running", 7, 12)]),
        "11": _entry(11, "BioMotionLab_NTroje/rub001/0001_jacks_poses.npz", 15.0, [_label(["exercise"], "workout")],
                     [_label(["stand"], "standing still", 0, 4), _label(["jump"], "jumping jacks", 4, 15)]),
    }
    val = {"12": _entry(12, "KIT/KIT/3/tapping_01_poses.npz", 4.0, [_label(["dance"], "Tap-dance routine")])}
    test = {"13": {"babel_sid": 13, "feat_p": "CMU/CMU/99/99_01_poses.npz", "dur": 4.0, "seq_ann": None,
                   "frame_ann": None}}
    folder = _write_babel(tmp_path / "babel_v1.0_release", {"train": train, "val": val, "test": test})
    return root, tmp_path / "smplh", folder


def test_prepare_amass_with_babel(tmp_path: Path, amass_with_babel: tuple[Path, Path, Path],
                                  capsys: pytest.CaptureFixture[str]) -> None:
    root, model, folder = amass_with_babel
    out = tmp_path / "ds"
    assert main(["data", "prepare", "--source", "amass", "--root", str(root), "--body-model", str(model),
                 "--babel", str(folder), "--out", str(out), "--workers", "2"]) == 0
    assert "from 3 clips of 4 items" in capsys.readouterr().out
    data = MotionDataset(out)
    real = [m for m in data.meta if not m["mirrored"] and not m["copy"]]
    by_clip: dict[str, list[dict]] = {}
    for m in real:
        by_clip.setdefault(m["clip_id"], []).append(m)

    # The backflip segment (5-7 s) is cut out; the walk before it and the run after it are kept,
    # each window labelled by its own frames first, then the sequence labels.
    cmu = sorted(by_clip["CMU/86/86_05_poses"], key=lambda m: m["source_start_s"])
    assert [m["labels"] for m in cmu] == [["walk", "run"], ["run", "walk"]]
    assert cmu[0]["source_start_s"] == 0.0 and 7.0 < cmu[1]["source_start_s"] < 7.1 and all(m["trimmed"] for m in cmu)
    assert cmu[0]["raw_labels"] == ["walking", "walk, flip and run"]
    assert not any("flip" in lab for m in data.meta for lab in m["labels"])
    man = data.manifest
    cut = [r for r in man["rejections"] if r["item"].startswith("CMU/86/86_05_poses@")]
    assert len(cut) == 1 and cut[0]["code"] == "excluded_motion" and "does a backflip" in cut[0]["reason"]

    # A window over several segments takes the label covering most of its frames: 0-10 s is
    # 4 s standing and 6 s jumping; the window from 5 s on is all jumping.
    bml = sorted(by_clip["BMLrub/rub001/0001_jacks_poses"], key=lambda m: m["start"])
    assert [m["labels"] for m in bml] == [["jump", "stand", "exercise"], ["jump", "exercise"]]
    assert bml[0]["raw_labels"][0] == "jumping jacks"
    index = data.meta.index(bml[0])
    assert data.labels[data.label_id(index)] == "jump"

    # A sequence-level raw label on the exclusion list drops the sequence; an unmatched one keeps no labels.
    assert "KIT/3/tapping_01_poses" not in by_clip
    assert any(r["item"] == "KIT/3/tapping_01_poses" and "Tap-dance routine" in r["reason"] for r in man["rejections"])
    assert [m["labels"] for m in by_clip["CMU/99/99_01_poses"]] == [[]]
    assert man["annotations"] == {"babel": {"matched": 3, "unmatched": 1,
                                            "unmatched_examples": ["CMU/99/99_01_poses"]}}
    assert data.labels == ["exercise", "jump", "run", "stand", "walk"]


def test_babel_through_the_config_and_errors(tmp_path: Path, amass_with_babel: tuple[Path, Path, Path],
                                             capsys: pytest.CaptureFixture[str]) -> None:
    root, model, folder = amass_with_babel
    config = tmp_path / "amass_babel.yaml"
    config.write_text(f"reader:\n  babel: {folder}\nfilters:\n  exclude: []\n")
    out = tmp_path / "ds"
    assert main(["data", "prepare", "--source", "amass", "--root", str(root / "KIT"), "--body-model", str(model),
                 "--config", str(config), "--out", str(out), "--workers", "1"]) == 0
    capsys.readouterr()
    (m,) = [m for m in MotionDataset(out).meta if not m["mirrored"] and not m["copy"]]
    assert m["labels"] == ["dance"] and m["raw_labels"] == ["Tap-dance routine"]  # nothing excluded this time

    bad = tmp_path / "bad"
    _write_babel(bad, {"val": {}})
    (bad / "train.json").write_text('{"1": {"feat_p": "CMU/CMU/86/86_05_poses.npz", "seq_ann": {"labels": [')
    assert main(["data", "prepare", "--source", "amass", "--root", str(root), "--body-model", str(model),
                 "--babel", str(bad), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"ramos: error: {bad / 'train.json'}: not valid JSON") and "\n" not in err
    assert not (tmp_path / "x").exists()
    assert main(["data", "prepare", "--source", "bvh", "--root", str(root), "--babel", str(folder),
                 "--out", str(tmp_path / "x")]) == 2
    assert "--babel" in capsys.readouterr().err
