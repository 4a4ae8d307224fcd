"""Text-motion evaluation: the retrieval model, the field's metrics on hand-made features, the text protocol."""

from __future__ import annotations

import json
import math
import zlib

import numpy as np
import pytest
import torch

import ramos.stages.evaluation as E
from ramos.motion.dataset import MotionDataset
from ramos.motion.nets.retrieval import TextMotionRetrieval
from ramos.motion.skeleton import HUMANML3D
from ramos.stages.evaluation.retrieval import contrastive_loss
from ramos.utils.atomic import write_json, write_text

FPS = 20.0
WINDOW = 60
# Six easily told apart motions, each described by two captions of its own.
KINDS: dict[str, tuple[str, dict[str, float], tuple[str, str]]] = {
    "walk_slow": ("walk", {"speed": 0.6}, ("a person walks slowly forward", "someone strolls ahead")),
    "walk_fast": ("walk", {"speed": 1.8}, ("a person walks briskly", "someone hurries forward")),
    "jump_low": ("jump", {"height": 0.12}, ("a person hops in place", "small jumps on the spot")),
    "jump_high": ("jump", {"height": 0.45}, ("a person jumps high", "big vertical leaps")),
    "sway_small": ("stand", {"sway": 0.08}, ("a person stands still", "someone waits, barely moving")),
    "sway_big": ("stand", {"sway": 0.35}, ("a person waves the arms", "someone swings both arms widely")),
}
CAPTION_KIND = {c: k for k, (_, _, caps) in KINDS.items() for c in caps}
LABELS = sorted({lab for lab, _, _ in KINDS.values()})


class FakeEncoder:
    """A stand-in sentence encoder: a fixed random unit vector per text (no model to load: fast tests)."""

    def encode(self, texts):
        out = [np.random.default_rng(zlib.crc32(t.encode())).normal(size=384) for t in texts]
        out = np.array(out, np.float32).reshape(-1, 384)
        return out / np.linalg.norm(out, axis=1, keepdims=True).clip(1e-9)


def _rest_pose() -> np.ndarray:
    rng = np.random.default_rng(0)
    pose = rng.normal(scale=0.15, size=(HUMANML3D.num_joints, 3))
    pose[:, 1] = np.linspace(0.0, 1.6, HUMANML3D.num_joints)
    pose[list(HUMANML3D.feet), 1] = 0.0
    pose[HUMANML3D.root] = [0.0, 0.9, 0.0]
    return pose


def kind_motion(kind: str, frames: int, rng: np.random.Generator) -> np.ndarray:
    """One motion (frames, J, 3) of ``kind`` with a little randomness."""
    _, p, _ = KINDS[kind]
    t = np.arange(frames) / FPS
    x = np.repeat(_rest_pose()[None], frames, 0)
    phase = rng.uniform(0, 2 * math.pi)
    if "speed" in p:
        x[:, :, 2] += p["speed"] * (1 + 0.1 * rng.normal()) * t[:, None]
    elif "height" in p:
        x[:, :, 1] += p["height"] * (1 + 0.1 * rng.normal()) * np.abs(np.sin(3 * t + phase))[:, None]
    else:
        x[:, 16:, 0] += p["sway"] * (1 + 0.1 * rng.normal()) * np.sin(2 * t + phase)[:, None]
    return x.astype(np.float32)


def write_captioned_dataset(path, per_kind: dict[str, int] | None = None, seed: int = 0) -> MotionDataset:
    """A prepared data set folder of the six kinds, with labels and captions (train / val / test)."""
    per_kind = per_kind or {"train": 10, "val": 2, "test": 2}
    rng = np.random.default_rng(seed)
    windows, lengths, meta = [], [], []
    for split, n in per_kind.items():
        for kind, (label, _, caps) in KINDS.items():
            for i in range(n):
                frames = int(rng.integers(WINDOW // 2, WINDOW + 1))
                m = kind_motion(kind, frames, rng)
                windows.append(np.concatenate([m, np.repeat(m[-1:], WINDOW - frames, 0)]))
                lengths.append(frames)
                meta.append({"id": f"{kind}{split}{i}:0", "clip_id": f"{kind}{split}{i}", "source": "toy",
                             "labels": [label], "captions": list(caps), "split": split, "start": 0, "fps": FPS,
                             "mirrored": False})
    path.mkdir(parents=True, exist_ok=True)
    w = np.stack(windows).astype(np.float32)
    np.save(path / "windows.npy", w)
    np.save(path / "lengths.npy", np.array(lengths, np.int32))
    write_text(path / "meta.jsonl", "".join(json.dumps(m) + "\n" for m in meta))
    np.savez(path / "stats.npz", mean=w.mean((0, 1)), std=w.std((0, 1)) + 1e-3)
    write_text(path / "skeleton.json", json.dumps(HUMANML3D.to_dict()))
    write_json(path / "manifest.json", {"labels": LABELS, "config": {"fps": FPS, "window": WINDOW},
                                        "counts": {"windows": {s: n * len(KINDS) for s, n in per_kind.items()}}})
    return MotionDataset(path)


TRAIN = E.RetrievalTrainConfig(embed_dim=16, channels=24, depth=2, text_hidden=64, steps=150, batch_size=32, lr=3e-3,
                               min_crop_frames=10)


@pytest.fixture(scope="module")
def captioned(tmp_path_factory) -> MotionDataset:
    return write_captioned_dataset(tmp_path_factory.mktemp("captioned"))


@pytest.fixture(scope="module")
def trained(captioned, tmp_path_factory):
    torch.set_num_threads(1)  # tiny networks: one thread avoids OpenMP stalls on a busy CPU
    path = tmp_path_factory.mktemp("ret") / "retrieval.ckpt"
    return E.train_retrieval(captioned, TRAIN, out=path, encoder=FakeEncoder(), progress=False), path


def oracle(seed: int = 1) -> E.TextGenerator:
    """A 'model' that returns fresh real motions of the kind the caption describes."""
    rng = np.random.default_rng(seed)
    return lambda prompts, frames, s: [kind_motion(CAPTION_KIND[p], n, rng) for p, n in zip(prompts, frames)]


def garbage(seed: int = 2) -> E.TextGenerator:
    """A 'model' that ignores the prompt: every joint on one random walk of the body."""
    rng = np.random.default_rng(seed)

    def walk(prompts, frames, s):
        out = []
        for n in frames:
            x = np.repeat(_rest_pose()[None], n, 0)
            x += np.cumsum(rng.normal(scale=0.05, size=(n, 1, 3)), 0)
            out.append(x.astype(np.float32))
        return out

    return walk


# --- metrics on hand-made features -------------------------------------------------------------------------
def test_r_precision_and_mm_dist_of_perfect_alignment():
    rng = np.random.default_rng(0)
    f = rng.normal(size=(100, 8))
    f /= np.linalg.norm(f, axis=1, keepdims=True)
    assert E.r_precision(f, f).tolist() == [1.0, 1.0, 1.0]
    assert E.mm_dist(f, f) == 0.0


def test_r_precision_by_hand():
    # Motion 1's own caption (at 5) is farther than both others (0.1 and 2.2): rank 3; motions 0 and 2: rank 1.
    m = np.array([[0.0], [1.0], [2.0]])
    t = np.array([[0.1], [5.0], [2.2]])
    assert E.r_precision(m, t, pool=32).tolist() == pytest.approx([2 / 3, 2 / 3, 1.0])
    # A distractor with the same text is no distractor: motion 1 now ranks 2 (only 0.1 is another text).
    assert E.r_precision(m, t, text_ids=[0, 1, 1]).tolist() == pytest.approx([2 / 3, 1.0, 1.0])
    # Motion 1 also has caption 0 (it describes it too): not a distractor for it; now it ranks 2 (2.2 is closer).
    assert E.r_precision(m, t, exclude=[[], [0], []]).tolist() == pytest.approx([2 / 3, 1.0, 1.0])
    with pytest.raises(ValueError, match="another text"):
        E.r_precision(m, t, exclude=[[1, 2], [], []])
    assert E.mm_dist(np.array([[0.0, 0.0], [3.0, 4.0]]), np.zeros((2, 2))) == 2.5


def test_r_precision_of_unrelated_features_is_chance():
    rng = np.random.default_rng(0)
    # 3 x 2000 motions: the standard error of the top-3 rate is about 0.004.
    got = np.mean([E.r_precision(rng.normal(size=(2000, 16)), rng.normal(size=(2000, 16)), pool=32, seed=s)
                   for s in range(3)], axis=0)
    assert got == pytest.approx([1 / 32, 2 / 32, 3 / 32], abs=0.012)
    # Few distinct texts: the pool is all of them (here 4: chance 1/4, 2/4, 3/4).
    m = rng.normal(size=(4000, 16))
    ids = np.arange(4000) % 4
    t4 = rng.normal(size=(4, 16))[ids]
    assert E.r_precision(m, t4, pool=32, text_ids=ids, seed=1) == pytest.approx([0.25, 0.5, 0.75], abs=0.03)
    with pytest.raises(ValueError, match="2 distinct"):
        E.r_precision(m[:3], t4[:3], text_ids=[0, 0, 0])


def test_fid_diversity_multimodality_by_hand():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(500, 4))
    assert E.fid(a, a) == pytest.approx(0.0, abs=1e-6)
    assert E.fid(a + 3.0, a) == pytest.approx(4 * 9.0, rel=1e-6)  # the means 3 apart in each of 4 dimensions
    assert E.diversity(np.zeros((10, 4))) == 0.0
    # Pairs of distinct motions: a group of two at distance 5 gives 5 exactly, one of two equal motions 0;
    # a group of one motion is left out.
    groups = [np.array([[0.0, 0.0], [3.0, 4.0]]), np.ones((2, 2)), np.zeros((1, 2))]
    assert E.multimodality(groups, pairs=10) == pytest.approx(2.5)
    assert math.isnan(E.multimodality([np.zeros((1, 2))]))


def test_repeated_mean_and_ci95():
    mean, ci = E.repeated(lambda r: float(r), times=20)
    assert mean == 9.5 and ci == pytest.approx(1.96 * np.arange(20).std() / math.sqrt(20))
    mean, ci = E.repeated(lambda r: np.array([1.0, r % 2]), times=4)
    assert mean.tolist() == [1.0, 0.5] and ci.tolist() == pytest.approx([0.0, 1.96 * 0.5 / 2])


def test_contrastive_loss_masks_false_negatives():
    # Rows 0 and 1 carry the same caption: unmasked, each is the other's hard negative.
    z = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]), dim=-1)
    same = torch.tensor([[True, True, False], [True, True, False], [False, False, True]])
    masked = contrastive_loss(z, z, torch.tensor(10.0), same)
    # Unmasked, rows 0 and 1 cannot tell their caption from the other's: log 2 each, in both directions.
    assert contrastive_loss(z, z, torch.tensor(10.0)).item() == pytest.approx(2 * math.log(2) / 3, abs=1e-3)
    assert masked.item() == pytest.approx(0.0, abs=1e-3)


# --- the network ----------------------------------------------------------------------------------------
def test_retrieval_net_embeddings_are_unit_and_ignore_padding_and_position():
    torch.manual_seed(0)
    net = TextMotionRetrieval(22, embed_dim=8, channels=16, depth=2, text_hidden=16).eval()
    x = torch.from_numpy(kind_motion("walk_fast", 40, np.random.default_rng(0)))[None]
    mask = torch.zeros(1, 40, dtype=torch.bool)
    mask[:, :25] = True
    padded = x.clone()
    padded[:, 25:] = 100.0
    moved = x.clone()
    moved[..., 0] += 3.0
    with torch.no_grad():
        z = net.encode_motion(x, mask)
        assert z.shape == (1, 8) and torch.linalg.norm(z).item() == pytest.approx(1.0, abs=1e-5)
        assert torch.allclose(z, net.encode_motion(padded, mask), atol=1e-5)
        assert torch.allclose(z, net.encode_motion(x[:, :25]), atol=1e-5)
        assert torch.allclose(net.encode_motion(moved), net.encode_motion(x), atol=1e-4)
        assert torch.linalg.norm(net.encode_text(torch.randn(3, 384)), dim=-1).tolist() == pytest.approx([1.0] * 3)
    assert net.spec["init_args"]["embed_dim"] == 8


# --- training, checkpoint --------------------------------------------------------------------------------
def test_training_beats_chance_on_heldout_windows(trained):
    net, _ = trained
    info = net.train_info
    assert info["last_loss"] < 0.6 * info["first_loss"]
    held = info["heldout"]
    # 24 held-out windows, 12 distinct captions, the other caption of a window's kind no distractor:
    # pool 11, chance 1/11, 2/11, 3/11.
    assert held["windows"] == 24 and held["pool"] == 11
    assert held["top1"] > 4 / 11 and held["top3"] > 0.8
    assert info["train_captions"] == 12 and info["encoder"] == "all-MiniLM-L6-v2"


def test_save_load_round_trip(trained, tmp_path):
    from ramos.utils.checkpoint import CheckpointError

    net, path = trained
    loaded, info = E.load_retrieval(path)
    assert info["heldout"] == net.train_info["heldout"]
    motions = [kind_motion(k, 45, np.random.default_rng(3)) for k in KINDS]
    assert np.allclose(E.embed_motions(loaded, motions), E.embed_motions(net, motions), atol=1e-6)
    text = FakeEncoder().encode(["a person jumps high"])
    assert np.allclose(E.embed_texts(loaded, text), E.embed_texts(net, text), atol=1e-6)
    torch.save({"ramos_specs": {"net": {"class_path": "ramos.motion.nets.evaluator.MotionEvaluator"}},
                "state_dict": {}}, tmp_path / "other.ckpt")
    with pytest.raises(CheckpointError, match="not a text-motion retrieval"):
        E.load_retrieval(tmp_path / "other.ckpt")


# --- the protocol ----------------------------------------------------------------------------------------
def test_text_protocol_separates_real_from_garbage(captioned, trained, tmp_path):
    _, path = trained
    cfg = E.EvaluationConfig(text=E.TextProtocolConfig(n=24, repeats=10, mm_prompts=4, mm_per_prompt=4))
    res = E.evaluate_text({"oracle": oracle(), "garbage": garbage()}, captioned, tmp_path, cfg, retrieval=path,
                          progress=False)
    ref, m = res["reference"], res["models"]
    assert ref["split"] == "train" and "too small" in ref["why"]  # 12 test windows < two pools
    assert ref["windows_a"] == ref["windows_b"] == 24 and ref["pool"] == 11
    assert set(m) == {E.REAL, "oracle", "garbage"}
    for name in m:
        assert m[name]["n"] == 24
        for key in ("top1", "top2", "top3", "mm_dist", "fid", "diversity", "multimodality"):
            assert math.isfinite(m[name][key]["mean"]) and m[name][key]["ci95"] >= 0.0, (name, key)
    real, good, bad = m[E.REAL], m["oracle"], m["garbage"]
    assert real["top1"]["mean"] > 0.9 and good["top1"]["mean"] > 0.9
    assert bad["top1"]["mean"] < 0.4 and bad["top3"]["mean"] < 0.6
    assert bad["mm_dist"]["mean"] > good["mm_dist"]["mean"]
    assert bad["fid"]["mean"] > 5 * max(good["fid"]["mean"], real["fid"]["mean"])
    assert real["fid"]["ci95"] == 0.0  # one generation round: FID does not vary over the draws


def test_evaluate_reports_text_metrics_beside_the_label_ones(captioned, trained, tmp_path):
    _, path = trained
    rng = np.random.default_rng(5)
    kinds = {lab: [k for k, (lb, _, _) in KINDS.items() if lb == lab] for lab in LABELS}

    def label_oracle(labels, frames, seed):
        return [kind_motion(kinds[captioned.labels[k]][int(rng.integers(2))], n, rng) for k, n in zip(labels, frames)]

    cfg = E.EvaluationConfig(n_per_label=4, reference="train",
                             classifier=E.EvaluatorTrainConfig(channels=16, depth=2, feature_dim=8, steps=40),
                             text=E.TextProtocolConfig(n=16, repeats=4, mm_prompts=2, mm_per_prompt=3))
    res = E.evaluate({"oracle": label_oracle}, captioned, tmp_path, cfg, progress=False,
                     text_models={"oracle": oracle(), "garbage": garbage()}, retrieval=path, encoder=FakeEncoder())
    assert set(res["models"]) == {E.REAL, "oracle"} and set(res["text"]["models"]) == {E.REAL, "oracle", "garbage"}
    saved = json.loads((tmp_path / "generation.json").read_text())
    assert saved["text"]["models"]["garbage"]["top1"]["mean"] == res["text"]["models"]["garbage"]["top1"]["mean"]
    text = (tmp_path / "generation.md").read_text()
    for needle in ("## Text-to-motion metrics", "R-precision top-1", "| garbage |", " ± ", "not Guo et al.",
                   "text_r_precision.png", "## All metrics"):
        assert needle in text, needle
    assert (tmp_path / "text_r_precision.png").stat().st_size > 1000


def test_retrieval_model_is_trained_and_cached_when_not_given(tmp_path):
    data = write_captioned_dataset(tmp_path / "data", {"train": 4, "val": 1, "test": 1})
    cfg = E.EvaluationConfig(retrieval=E.RetrievalTrainConfig(embed_dim=8, channels=8, depth=1, text_hidden=8,
                                                              steps=3, batch_size=8),
                             text=E.TextProtocolConfig(n=8, repeats=2, mm_prompts=1, mm_per_prompt=2))
    first = E.evaluate_text({}, data, tmp_path / "out", cfg, encoder=FakeEncoder(), progress=False)
    assert first["retrieval"]["trained_now"] and (tmp_path / "out" / "retrieval.ckpt").is_file()
    again = E.evaluate_text({}, data, tmp_path / "out", cfg, encoder=FakeEncoder(), progress=False)
    assert not again["retrieval"]["trained_now"]
    assert again["models"][E.REAL] == first["models"][E.REAL]
    assert not E.has_captions(MotionDataset(_without_captions(tmp_path / "data")))


def _without_captions(path):
    lines = [json.loads(line) for line in (path / "meta.jsonl").read_text().splitlines()]
    write_text(path / "meta.jsonl", "".join(json.dumps({**m, "captions": []}) + "\n" for m in lines))
    return path


def _without_labels(path):
    lines = [json.loads(line) for line in (path / "meta.jsonl").read_text().splitlines()]
    write_text(path / "meta.jsonl", "".join(json.dumps({**m, "labels": []}) + "\n" for m in lines))
    manifest = json.loads((path / "manifest.json").read_text())
    write_json(path / "manifest.json", {**manifest, "labels": []})
    return path


def test_evaluate_with_captions_and_no_labels(trained, tmp_path):
    """HumanML3D-like data: no label protocol; the text metrics with physics; a model the text protocol does not
    score gets the physics of its unconditional motions."""
    _, path = trained
    data = MotionDataset(_without_labels(write_captioned_dataset(tmp_path / "data").path))
    rng = np.random.default_rng(6)

    def uncond(labels, frames, seed):
        assert set(labels) == {E.NO_LABEL}
        return [kind_motion("walk_fast", n, rng) for n in frames]

    cfg = E.EvaluationConfig(n_unconditional=8, text=E.TextProtocolConfig(n=16, repeats=4, mm_prompts=2, mm_per_prompt=3))
    res = E.evaluate({"oracle": uncond, "uncond": uncond}, data, tmp_path / "out", cfg, progress=False,
                     text_models={"oracle": oracle(), "garbage": garbage()}, retrieval=path, encoder=FakeEncoder())
    assert "models" not in res and set(res["skipped"]) == {"labels"}
    physics = res["text"]["physics"]
    assert set(physics) == {E.REAL, "oracle", "garbage"} and all(v["n"] == 16 for v in physics.values())
    assert physics["garbage"]["jitter"] > 10 * physics["oracle"]["jitter"]
    # "oracle" is scored by the text protocol; "uncond" by nothing else: physics of unconditional motions.
    assert set(res["physics"]["models"]) == {E.REAL, "uncond"}
    md = (tmp_path / "out" / "generation.md").read_text()
    for needle in ("Label metrics: **not computed**", "## Text-to-motion metrics", "### Physics of the text-to-motion",
                   "## Physics of unconditional samples", "For the models the text metrics do not score",
                   "text_samples_garbage.png", "samples_uncond.png"):
        assert needle in md, needle
    for absent in ("## All metrics", "## Per label"):
        assert absent not in md, absent
    for f in json.loads((tmp_path / "out" / "generation.json").read_text())["figures"].values():
        assert (tmp_path / "out" / f).stat().st_size > 1000, f
