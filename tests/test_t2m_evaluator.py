"""Guo et al.'s evaluator: loaded from files of the published layout (made here, random weights), only
plain data accepted, clear errors naming the file, and the text protocol in its feature space."""

from __future__ import annotations

import json
import math
import os
import pickle

import numpy as np
import pytest
import torch
from test_retrieval import FakeEncoder, garbage, oracle, write_captioned_dataset

import ramos.stages.evaluation as E
from ramos.motion import hml263
from ramos.stages.evaluation.t2m import (
    POS_CLASSES,
    MotionEncoderBiGRUCo,
    MovementConvEncoder,
    T2MEvaluator,
    T2MEvaluatorError,
    TextEncoderBiGRUCo,
)

WORDS = ["unk", "sos", "eos", "a", "person", "walks", "forward", "left", "jumps", "high", "arm", "slowly"]


def write_evaluator(root, seed: int = 0, words=WORDS):
    """The files of T2M's evaluator set-up (MDM / MLD layout) with random weights."""
    torch.manual_seed(seed)
    model = root / "t2m" / "text_mot_match" / "model"
    meta = root / "t2m" / "Comp_v6_KLD01" / "meta"
    glove = root / "glove"
    for d in (model, meta, glove):
        d.mkdir(parents=True, exist_ok=True)
    nets = {"movement_encoder": MovementConvEncoder(), "motion_encoder": MotionEncoderBiGRUCo(),
            "text_encoder": TextEncoderBiGRUCo()}
    for net in nets.values():
        with torch.no_grad():
            for p in net.parameters():
                p.normal_(0, 0.05)
    # T2M's file also holds optimiser states and counters: plain tensors and numbers.
    torch.save({**{k: n.state_dict() for k, n in nets.items()}, "epoch": 7, "iter": 1234,
                "opt_motion_encoder": torch.optim.Adam(nets["motion_encoder"].parameters()).state_dict()},
               model / "finest.tar")
    rng = np.random.default_rng(seed)
    np.save(meta / "mean.npy", rng.normal(0, 0.1, hml263.DIM).astype(np.float32))
    np.save(meta / "std.npy", rng.uniform(0.5, 1.5, hml263.DIM).astype(np.float32))
    np.save(glove / "our_vab_data.npy", rng.normal(0, 1, (len(words), 300)).astype(np.float32))
    (glove / "our_vab_words.pkl").write_bytes(pickle.dumps(list(words)))
    (glove / "our_vab_idx.pkl").write_bytes(pickle.dumps({w: i for i, w in enumerate(words)}))
    return root


@pytest.fixture(scope="module")
def evaluator_dir(tmp_path_factory):
    return write_evaluator(tmp_path_factory.mktemp("t2m"))


def _walks(n: int, frames: int = 60) -> list[np.ndarray]:
    from test_retrieval import kind_motion

    rng = np.random.default_rng(0)
    return [kind_motion("walk_slow", frames + 7 * i, rng) for i in range(n)]


def test_loads_the_published_layout_and_embeds(evaluator_dir):
    ev = T2MEvaluator.load(evaluator_dir)
    motions = _walks(3)
    emb = ev.embed_motions(motions)
    assert emb.shape == (3, 512) and np.isfinite(emb).all()
    assert np.allclose(ev.embed_motions(motions[::-1])[::-1], emb, atol=1e-5)  # order does not matter
    vecs, lengths = ev.motion_vectors([np.repeat(motions[0], 5, 0)])  # 300 frames: cut to 196
    assert lengths.tolist() == [196] and vecs.shape == (1, 196, 259)
    vecs, lengths = ev.motion_vectors([motions[0][:47]])  # 46 vectors -> 44, a multiple of 4
    assert lengths.tolist() == [44] and not vecs[0, 44:].any()
    text = ev.embed_captions(["a/DET person/NOUN walks/VERB forward/ADV", "a/DET person/NOUN jumps/VERB high/ADJ"])
    assert text.shape == (2, 512) and not np.allclose(text[0], text[1])


def test_tokens_follow_t2m(evaluator_dir):
    ev = T2MEvaluator.load(evaluator_dir)
    words, pos, n = ev.token_inputs("a/DET person/NOUN walks/VERB left/ADJ slowly/ADV zebra/NOUN")
    assert n == 8 and words.shape == (22, 300) and pos.shape == (22, 15)
    tag = lambda k: POS_CLASSES[int(pos[k].argmax())]
    assert [tag(k) for k in range(8)] == ["OTHER", "DET", "NOUN", "VERB", "Loc_VIP", "Desc_VIP", "OTHER", "OTHER"]
    assert np.allclose(words[6], ev.words["unk"]) and np.allclose(words[7], ev.words["eos"])  # unknown word, eos
    assert np.allclose(words[8:], ev.words["unk"])  # padding
    _, _, n = ev.token_inputs(" ".join(["a/DET"] * 30))
    assert n == 22  # 20 tokens kept, between sos and eos


class _Payload:
    """Unpickling this would run a shell command (what a loader must never do)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_refuses_anything_but_plain_data(tmp_path):
    root = write_evaluator(tmp_path / "ev")
    marker = tmp_path / "pwned"
    words = root / "glove" / "our_vab_words.pkl"
    words.write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(T2MEvaluatorError, match=r"our_vab_words\.pkl: not a plain pickle.*refusing"):
        T2MEvaluator.load(root)
    assert not marker.exists()
    words.write_bytes(pickle.dumps(WORDS))

    weights = root / "t2m" / "text_mot_match" / "model" / "finest.tar"
    good = weights.read_bytes()
    torch.save({"movement_encoder": _Payload(marker)}, weights)
    with pytest.raises(T2MEvaluatorError, match=r"finest\.tar: not a plain checkpoint"):
        T2MEvaluator.load(root)
    assert not marker.exists()
    weights.write_bytes(good)

    mean = root / "t2m" / "Comp_v6_KLD01" / "meta" / "mean.npy"
    np.save(mean, np.array([{"x": 1}] * 263, dtype=object), allow_pickle=True)
    with pytest.raises(T2MEvaluatorError, match=r"mean\.npy: not a plain array"):
        T2MEvaluator.load(root)


def test_missing_or_wrong_files_name_the_file(tmp_path):
    with pytest.raises(T2MEvaluatorError, match="no such folder"):
        T2MEvaluator.load(tmp_path / "nothing")
    root = write_evaluator(tmp_path / "ev")
    (root / "glove" / "our_vab_idx.pkl").unlink()
    with pytest.raises(T2MEvaluatorError, match=r"no GloVe word index \(our_vab_idx\.pkl\)"):
        T2MEvaluator.load(root)
    root = write_evaluator(tmp_path / "ev2")
    (root / "t2m" / "Comp_v6_KLD01" / "meta" / "std.npy").unlink()
    with pytest.raises(T2MEvaluatorError, match=r"std\.npy: missing"):
        T2MEvaluator.load(root)
    root = write_evaluator(tmp_path / "ev3")
    weights = root / "t2m" / "text_mot_match" / "model" / "finest.tar"
    torch.save({"movement_encoder": MovementConvEncoder(input_size=100).state_dict()}, weights)
    with pytest.raises(T2MEvaluatorError, match="movement_encoder does not fit"):
        T2MEvaluator.load(root)
    root = write_evaluator(tmp_path / "ev4", words=[w for w in WORDS if w != "unk"])
    with pytest.raises(T2MEvaluatorError, match="no 'unk'"):
        T2MEvaluator.load(root)


def test_text_protocol_in_the_evaluators_space(evaluator_dir, tmp_path):
    """The protocol runs in the evaluator's feature space (no retrieval model trained); captions without
    HumanML3D tokens are counted and the report says the numbers do not compare with the papers'."""
    data = write_captioned_dataset(tmp_path / "data")
    cfg = E.EvaluationConfig(classifier=E.EvaluatorTrainConfig(channels=16, depth=2, feature_dim=8, steps=40),
                             text=E.TextProtocolConfig(n=24, repeats=2, mm_prompts=2, mm_per_prompt=2))
    res = E.evaluate({}, data, tmp_path / "out", cfg, progress=False, text_models={"oracle": oracle(),
                     "garbage": garbage()}, encoder=FakeEncoder(), t2m=T2MEvaluator.load(evaluator_dir))
    text = res["text"]
    ret = text["retrieval"]
    assert ret["kind"] == "t2m" and ret["guessed_tokens"] == ret["captions"] == 15  # 12 captions, 3 labels
    assert not (tmp_path / "out" / "retrieval.ckpt").exists()
    for name, m in text["models"].items():
        for key in ("top1", "top3", "mm_dist", "fid", "diversity", "multimodality"):
            assert math.isfinite(m[key]["mean"]), (name, key)
    # even random weights tell a random walk of the whole body from real motions
    assert text["models"]["garbage"]["fid"]["mean"] > 2 * text["models"]["oracle"]["fid"]["mean"]
    report = (tmp_path / "out" / "generation.md").read_text()
    assert "Guo et al. (2022)'s pretrained text-motion evaluator" in report and "not comparable" in report
    assert json.loads((tmp_path / "out" / "generation.json").read_text())["text"]["retrieval"]["kind"] == "t2m"


def test_evaluate_command_error_is_one_line(tmp_path, capsys):
    from ramos.cli import main

    root = write_evaluator(tmp_path / "ev")
    (root / "glove" / "our_vab_data.npy").unlink()
    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"not used")
    rc = main(["evaluate", "--diffusion", str(ckpt), "--t2m-evaluator", str(root), "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "our_vab_data.npy" in err
