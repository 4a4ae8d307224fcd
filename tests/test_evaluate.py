"""Evaluation of generated motions: feature extractor, aggregation, targets, report, command."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

import ramos.stages.evaluation as E
from ramos.motion.dataset import MotionDataset
from ramos.motion.nets.evaluator import MotionEvaluator
from ramos.motion.preprocess import pad_motions
from ramos.motion.skeleton import HUMANML3D
from ramos.utils.atomic import write_json, write_text

FPS = 20.0
WINDOW = 60
LABELS = ["jump", "stand", "walk"]


def _rest_pose() -> np.ndarray:
    """A crude T-pose-ish skeleton (J, 3) standing on the floor (feet at y = 0)."""
    rng = np.random.default_rng(0)
    pose = rng.normal(scale=0.15, size=(HUMANML3D.num_joints, 3))
    pose[:, 1] = np.linspace(0.0, 1.6, HUMANML3D.num_joints)
    pose[list(HUMANML3D.feet), 1] = 0.0
    pose[HUMANML3D.root] = [0.0, 0.9, 0.0]
    return pose


def _toy_motion(label: str, frames: int, rng: np.random.Generator) -> np.ndarray:
    """Three easily told apart actions: walk (root moves forward), jump (root bobs), stand (arms sway)."""
    t = np.arange(frames) / FPS
    # No per-motion pose offsets: a classifier could tell the few training motions apart by them.
    x = np.repeat(_rest_pose()[None], frames, 0)
    phase = rng.uniform(0, 2 * math.pi)
    if label == "walk":
        x[:, :, 2] += (1.0 + 0.2 * rng.normal()) * t[:, None]
    elif label == "jump":
        x[:, :, 1] += (0.3 + 0.05 * rng.normal()) * np.abs(np.sin(3 * t + phase))[:, None]
    else:
        x[:, 16:, 0] += (0.2 + 0.05 * rng.normal()) * np.sin(2 * t + phase)[:, None]
    return x.astype(np.float32)


def write_toy_dataset(path, per_label: dict[str, int] | None = None, seed: int = 0,
                      labelled: bool = True) -> MotionDataset:
    """A prepared data set folder of synthetic motions (train / val / test per label); ``labelled=False``
    leaves the labels out of the windows and the manifest (a BVH folder's data set: no labels, no captions)."""
    per_label = per_label or {"train": 12, "val": 2, "test": 3}
    rng = np.random.default_rng(seed)
    windows, lengths, meta = [], [], []
    for split, n in per_label.items():
        for lab in LABELS:
            for i in range(n):
                frames = int(rng.integers(WINDOW // 2, WINDOW + 1))
                m = _toy_motion(lab, frames, rng)
                w = np.concatenate([m, np.repeat(m[-1:], WINDOW - frames, 0)])
                windows.append(w)
                lengths.append(frames)
                meta.append({"id": f"{lab}{split}{i}:0", "clip_id": f"{lab}{split}{i}", "source": "toy",
                             "labels": [lab] if labelled else [], "captions": [], "split": split, "start": 0, "fps": FPS,
                             "mirrored": False})
    path.mkdir(parents=True, exist_ok=True)
    w = np.stack(windows).astype(np.float32)
    np.save(path / "windows.npy", w)
    np.save(path / "lengths.npy", np.array(lengths, np.int32))
    write_text(path / "meta.jsonl", "".join(json.dumps(m) + "\n" for m in meta))
    np.savez(path / "stats.npz", mean=w.mean((0, 1)), std=w.std((0, 1)) + 1e-3)
    write_text(path / "skeleton.json", json.dumps(HUMANML3D.to_dict()))
    counts = {s: n * len(LABELS) for s, n in per_label.items()}
    write_json(path / "manifest.json", {"labels": LABELS if labelled else [], "config": {"fps": FPS, "window": WINDOW},
                                        "counts": {"windows": counts}})
    return MotionDataset(path)


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> MotionDataset:
    return write_toy_dataset(tmp_path_factory.mktemp("toy"))


@pytest.fixture(scope="module")
def trained(toy, tmp_path_factory):
    torch.manual_seed(0)
    cfg = E.EvaluatorTrainConfig(channels=24, depth=2, feature_dim=8, steps=200, batch_size=24, lr=3e-3,
                                 min_crop_frames=10)
    path = tmp_path_factory.mktemp("ev") / "evaluator.ckpt"
    return E.train_evaluator(toy, cfg, out=path, progress=False), path


def _oracle(data: MotionDataset, seed: int = 1) -> E.Generator:
    """A 'model' that returns other real motions of the label asked (fresh synthetic ones)."""
    rng = np.random.default_rng(seed)
    return lambda labels, lengths, s: [_toy_motion(data.labels[k], n, rng) for k, n in zip(labels, lengths)]


def _frozen(data: MotionDataset) -> E.Generator:
    """A bad 'model': always the rest pose, whatever the label asked."""
    return lambda labels, lengths, s: [np.repeat(_rest_pose()[None], n, 0).astype(np.float32) for n in lengths]


# --- pieces ---------------------------------------------------------------------------------------
def test_pad_motions_repeats_last_pose_and_masks():
    a, b = np.ones((3, 22, 3), np.float32), 2 * np.ones((5, 22, 3), np.float32)
    x, mask = pad_motions([a, b])
    assert x.shape == (2, 5, 22, 3) and mask.tolist() == [[1, 1, 1, 0, 0], [1] * 5]
    assert (x[0, 3:] == 1).all()
    x, mask = pad_motions([b], frames=4)  # longer motions are cut
    assert x.shape == (1, 4, 22, 3) and mask.all()


def test_evaluator_ignores_padding_and_horizontal_position():
    torch.manual_seed(0)
    net = MotionEvaluator(22, 3, channels=16, depth=2, feature_dim=8).eval()
    x = torch.from_numpy(_toy_motion("walk", 40, np.random.default_rng(0)))[None]
    mask = torch.zeros(1, 40, dtype=torch.bool)
    mask[:, :25] = True
    garbage = x.clone()
    garbage[:, 25:] = 100.0
    moved = x.clone()
    moved[..., 0] += 3.0
    moved[..., 2] -= 2.0
    with torch.no_grad():
        f = net.features(x, mask)
        assert f.shape == (1, 8)
        assert torch.allclose(f, net.features(garbage, mask), atol=1e-5)
        assert torch.allclose(f, net.features(moved, mask), atol=1e-4)
        assert torch.allclose(f, net.features(x[:, :25]), atol=1e-5)  # same as the unpadded motion
        assert net(x, mask).shape == (1, 3)


def test_evaluator_training_lowers_loss_and_classifies_toy_set(trained, toy):
    net, path = trained
    info = net.train_info
    assert info["last_loss"] < 0.5 * info["first_loss"]
    assert info["heldout_accuracy"] >= 0.9
    loaded, names, stored = E.load_evaluator(path)
    assert names == LABELS and stored["heldout_accuracy"] == info["heldout_accuracy"]
    motions = [_toy_motion(lab, 50, np.random.default_rng(7)) for lab in LABELS]
    assert E.classify(loaded, motions).tolist() == [0, 1, 2]
    assert np.allclose(E.motion_features(loaded, motions), E.motion_features(net, motions), atol=1e-5)


def test_motion_features_keep_input_order(trained):
    net, _ = trained
    rng = np.random.default_rng(3)
    motions = [_toy_motion("walk", n, rng) for n in (50, 12, 33)]
    together = E.motion_features(net, motions, batch_size=2)
    alone = np.concatenate([E.motion_features(net, [m]) for m in motions])
    assert np.allclose(together, alone, atol=1e-5)


def test_load_evaluator_rejects_other_checkpoints(tmp_path):
    from ramos.utils.checkpoint import CheckpointError

    torch.save({"ramos_specs": {"denoiser": {}}, "state_dict": {}}, tmp_path / "x.ckpt")
    with pytest.raises(CheckpointError, match="x.ckpt"):
        E.load_evaluator(tmp_path / "x.ckpt")


def test_physics_pools_frames_of_all_motions():
    # Motion 1 stands still (no skating); motion 2 slides both feet at 1 m/s on the floor for all frames.
    still = np.repeat(_rest_pose()[None], 10, 0)
    slide = still.copy()
    slide[:, :, 0] += np.arange(10)[:, None] / FPS
    got = E.physics([still, slide], HUMANML3D, FPS)
    # 9 frame pairs each: 0 of 9 and 9 of 9 skate -> 9 / 18.
    assert got["foot_skating"] == pytest.approx(0.5)
    assert got["root_speed_mean"] == pytest.approx(0.5)  # speeds 0 and 1 m/s, equally many
    # float32 positions: rounding noise times fps^3 stays far under a real motion's ~100 m/s^3.
    assert got["jitter"] == pytest.approx(0.0, abs=1e-2) and got["bone_std"] == pytest.approx(0.0, abs=1e-6)
    assert got["floor_penetration"] == 0.0


def test_root_speed_distance_is_the_speed_gap():
    still = np.repeat(_rest_pose()[None], 10, 0)
    moving = still.copy()
    moving[:, :, 2] += 0.05 * np.arange(10)[:, None]  # 0.05 m per frame = 1 m/s
    assert E.root_speed_distance([moving], [still], HUMANML3D, FPS) == pytest.approx(1.0)
    assert E.root_speed_distance([still], [still], HUMANML3D, FPS) == 0.0


def test_score_set_aggregates_hand_made_features():
    rng = np.random.default_rng(0)
    motions = [np.repeat(_rest_pose()[None], 8, 0) for _ in range(4)]
    labels = np.array([0, 0, 1, 1])
    feats = np.array([[0.0, 0.0], [1.0, 0.0], [5.0, 5.0], [5.0, 6.0]])
    ref = feats + 0.0
    predicted = np.array([0, 1, 1, 1])
    got = E.score_set(motions, labels, feats, predicted, motions, labels, ref, ["a", "b"], HUMANML3D, FPS)
    assert got["overall"]["accuracy"] == 0.75
    assert got["overall"]["fid"] == pytest.approx(0.0, abs=1e-6)
    assert got["overall"]["n"] == 4
    assert got["per_label"]["a"]["accuracy"] == 0.5 and got["per_label"]["b"]["accuracy"] == 1.0
    # Within-label pairs are at distance 0 or 1 (per label): multimodality is between 0 and 1.
    assert 0.0 <= got["per_label"]["a"]["multimodality"] <= 1.0
    assert got["overall"]["root_speed_w1"] == 0.0
    del rng


def test_check_targets_against_the_real_row():
    real = {"fid": 2.0, "foot_skating": 0.10, "jitter": 100.0, "accuracy": 1.0}
    good = {"fid": 3.9, "foot_skating": 0.14, "jitter": 149.0, "accuracy": 0.9}
    bad = {"fid": 4.1, "foot_skating": 0.16, "jitter": 151.0, "accuracy": 0.89}
    results = {"models": {E.REAL: {"overall": real}, "good": {"overall": good}, "bad": {"overall": bad}}}
    assert all(E.check_targets(results, "good").values())
    assert not any(E.check_targets(results, "bad").values())
    # With several draws of the reference, FID is checked on the median ratio, not the first draw's.
    # With several draws of the reference, FID is checked on the ratio of the means, not the first draw's
    # (nor on ratios per draw, which a low floor inflates: "bad" has per-draw ratios 2.05, 4, 1.25).
    results["fid_draws"] = E.fid_draws_summary({E.REAL: [2.0, 1.0, 4.0], "good": [3.9, 2.5, 9.0],
                                                "bad": [4.1, 4.0, 5.0]}, [0, 1, 2])
    draws = results["fid_draws"]
    assert draws["ratio"] == pytest.approx({"good": 15.4 / 7.0, "bad": 13.1 / 7.0})
    assert draws["median_per_draw_ratio"] == pytest.approx({"good": 2.25, "bad": 2.05})
    assert draws["mean"][E.REAL] == pytest.approx(7.0 / 3) and draws["ci95"][E.REAL] > 0
    assert not E.check_targets(results, "good")["fid"] and E.check_targets(results, "bad")["fid"]


def test_reference_halves_are_disjoint_and_balanced(toy):
    ids = [0, 1, 2]
    ref = E.draw_reference(toy, "train", ids, n=4, seed=0)
    assert len(set(ref.a) & set(ref.b)) == 0
    for k in ids:
        assert sum(toy.label_id(int(i)) == k for i in ref.a) == 4
        assert sum(toy.label_id(int(i)) == k for i in ref.b) == 4
    small = E.draw_reference(toy, "test", ids, n=16, seed=0)  # 3 test windows per label -> 1 + 1
    assert len(small.a) == 3 and len(small.b) == 3
    # 30-60 frame test windows are under 2 s (40 frames) in median for some label -> train.
    split, why = E.choose_reference(toy, ids, E.EvaluationConfig(min_reference_seconds=5.0))
    assert split == "train" and "too small" in why
    split, _ = E.choose_reference(toy, ids, E.EvaluationConfig(min_reference_seconds=0.5))
    assert split == "test"


# --- the whole evaluation ----------------------------------------------------------------------------
def test_evaluate_scores_a_good_and_a_bad_model(toy, trained, tmp_path):
    _, ev_path = trained
    cfg = E.EvaluationConfig(n_per_label=4, reference="train", fid_draws=5)
    res = E.evaluate({"oracle": _oracle(toy), "frozen": _frozen(toy)}, toy, tmp_path, cfg, evaluator=ev_path,
                     progress=False)
    m = res["models"]
    assert set(m) == {E.REAL, "oracle", "frozen"}
    assert m[E.REAL]["overall"]["n"] == m["oracle"]["overall"]["n"] == 12
    assert m["oracle"]["overall"]["accuracy"] >= 0.9
    assert m["frozen"]["overall"]["accuracy"] <= 0.5
    assert m["oracle"]["overall"]["fid"] < m["frozen"]["overall"]["fid"]
    assert m["frozen"]["overall"]["diversity"] < 0.05 * m["oracle"]["overall"]["diversity"]
    assert set(m["oracle"]["per_label"]) == set(LABELS)
    assert res["reference"]["split"] == "train" and res["heldout"]["windows"] == 15
    # FID on 5 draws of the halves (the first is the table's), the target on the median ratio.
    draws = res["fid_draws"]
    assert draws["seeds"] == [0, 1, 2, 3, 4] and len(draws["fid"]["oracle"]) == 5
    assert draws["fid"]["oracle"][0] == m["oracle"]["overall"]["fid"]
    assert draws["fid"][E.REAL][0] == m[E.REAL]["overall"]["fid"]
    assert len(set(draws["fid"][E.REAL])) > 1  # other halves, other floors
    assert draws["ratio"]["oracle"] < draws["ratio"]["frozen"]
    assert draws["ratio"]["oracle"] == pytest.approx(np.mean(draws["fid"]["oracle"]) / np.mean(draws["fid"][E.REAL]))
    assert E.check_targets(res, "frozen")["fid"] is (draws["ratio"]["frozen"] <= 2.0)
    saved = json.loads((tmp_path / "generation.json").read_text())
    assert saved["models"]["oracle"]["overall"]["fid"] == pytest.approx(m["oracle"]["overall"]["fid"])
    text = (tmp_path / "generation.md").read_text()
    for needle in ("## Sample sizes", "## All metrics", "## Targets", "## FID over draws", "over 5 draws",
                   "## Per label", "| frozen |",
                   "samples_oracle.png", "root_speed.png", "FAIL"):
        assert needle in text, needle
    for f in ("samples_real.png", "samples_oracle.png", "samples_frozen.png", "root_speed.png"):
        assert (tmp_path / f).stat().st_size > 1000


def test_evaluate_command_on_tiny_configuration(toy, tmp_path):
    """`ramos evaluate` with a freshly trained raw baseline as both models writes a well-formed report."""
    from ramos import configs
    from ramos.cli import main
    from ramos.stages.raw_baseline import train_raw_baseline

    cfg = configs.load("raw_baseline", "tiny")
    ckpt = train_raw_baseline(toy.path, tmp_path / "rb", cfg, progress=False)
    out = tmp_path / "report"
    code = main(["evaluate", "--diffusion", str(ckpt), "--baseline", str(ckpt), "--dataset", str(toy.path),
                 "--config", "tiny", "--out", str(out)])
    assert code == 0
    res = json.loads((out / "generation.json").read_text())
    assert set(res["models"]) == {E.REAL, "latent", "raw baseline"}
    assert (out / "evaluator.ckpt").is_file() and (out / "generation.md").is_file()
    for name in ("latent", "raw baseline"):
        o = res["models"][name]["overall"]
        assert o["n"] == res["models"][E.REAL]["overall"]["n"] > 0
        assert math.isfinite(o["fid"]) and 0.0 <= o["accuracy"] <= 1.0


def test_evaluate_command_missing_checkpoint_is_one_line(tmp_path, capsys):
    from ramos.cli import main

    code = main(["evaluate", "--diffusion", str(tmp_path / "nope.ckpt"), "--out", str(tmp_path)])
    assert code == 2
    assert "nope.ckpt: checkpoint not found" in capsys.readouterr().err




def test_evaluate_without_labels_or_captions_reports_physics_only(tmp_path):
    data = write_toy_dataset(tmp_path / "data", labelled=False)
    asked: list[int] = []
    rng = np.random.default_rng(4)

    def walker(labels, lengths, seed):
        asked.extend(labels)
        return [_toy_motion("walk", n, rng) for n in lengths]

    cfg = E.EvaluationConfig(n_unconditional=6, min_reference_seconds=0.5)
    res = E.evaluate({"walker": walker, "frozen": _frozen(data)}, data, tmp_path / "out", cfg, progress=False)
    assert set(asked) == {E.NO_LABEL}  # asked for unconditional motions
    assert "models" not in res and "text" not in res and set(res["skipped"]) == {"labels", "text"}
    ref, m = res["physics"]["reference"], res["physics"]["models"]
    # 9 test windows cannot fill two halves of 6: the reference is the training split.
    assert ref["split"] == "train" and "too small" in ref["why"] and ref["windows_a"] == ref["windows_b"] == 6
    assert set(m) == {E.REAL, "walker", "frozen"} and all(v["n"] == 6 for v in m.values())
    assert m["frozen"]["root_speed_mean"] == 0.0 and m["walker"]["root_speed_mean"] == pytest.approx(1.0, abs=0.3)
    assert m["frozen"]["root_speed_w1"] > m[E.REAL]["root_speed_w1"]
    assert math.isnan(m[E.REAL]["seconds_per_motion"]) and m["walker"]["seconds_per_motion"] >= 0.0
    assert not (tmp_path / "out" / "evaluator.ckpt").exists()
    saved = json.loads((tmp_path / "out" / "generation.json").read_text())
    assert saved["physics"]["models"]["frozen"]["n"] == 6
    text = (tmp_path / "out" / "generation.md").read_text()
    for needle in ("## What is measured", "no feature-based metric exists", "## Physics of unconditional samples",
                   "| frozen |", "foot skating", "Ratios to real", "samples_walker.png", "root_speed.png"):
        assert needle in text, needle
    for absent in ("## All metrics", "## Targets", "## Per label", "## Text-to-motion"):
        assert absent not in text, absent
    for f in saved["figures"].values():
        assert (tmp_path / "out" / f).stat().st_size > 1000, f
    assert E.choose_unlabelled_reference(data, E.EvaluationConfig(n_unconditional=4, min_reference_seconds=0.5)) \
        == ("test", "Held-out test windows")
