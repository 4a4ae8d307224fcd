"""The text-to-motion protocol of ``ramos evaluate``: the field's metrics for real and generated motions.

Run when the data set has captions, beside the label protocol (definitions: docs/evaluation.md).

1. **Reference.** Captioned windows of the test split, or of the training split when the test split
   is too small (the same rule as the label protocol's), shuffled and split into halves A and B.
2. **Generation.** Each model generates one motion per window of A from one of that window's
   captions (drawn at random) and with its length; for multimodality, ``mm_per_prompt`` motions
   for each of ``mm_prompts`` distinct captions of A.
3. **Scoring** in the embedding space of the retrieval model trained on the data set
   (:mod:`ramos.stages.evaluation.retrieval`): R-precision top-1/2/3 and MM-Dist against the
   caption each motion was made from (the window's other captions are no distractors: they
   describe it too), FID against B, diversity, multimodality, each as the mean
   and 95% interval over ``repeats`` draws. Real half A is scored the same way against its own
   captions (the floor); its multimodality is over real windows that share a caption.
4. **Physics** (evaluator-free, :func:`ramos.stages.evaluation.scoring.physics`) of real half A and of
   each model's motions generated for it (same lengths), with the root speed distance to half B: the
   only per-model physics when the data set has no labels (no label protocol).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ramos.motion.dataset import MotionDataset
from ramos.motion.text import TextEncoder, pos_tokens, prompt_table
from ramos.stages.evaluation.config import EvaluationConfig
from ramos.stages.evaluation.retrieval import (
    caption_options,
    captions_fingerprint,
    diversity,
    embed_motions,
    embed_texts,
    fid,
    load_retrieval,
    mm_dist,
    multimodality,
    r_precision,
    repeated,
    train_retrieval,
)
from ramos.stages.evaluation.scoring import PLANTED, REAL, physics, root_speed_distance
from ramos.stages.evaluation.t2m import T2MEvaluator

log = logging.getLogger(__name__)

TextGenerator = Callable[[Sequence[str], Sequence[int], int], list[np.ndarray]]
"""A model asked with text: (prompts, lengths in frames, seed) -> one motion (length, J, 3) metres per prompt."""

TEXT_METRICS: tuple[tuple[str, str], ...] = (
    ("top1", "R-precision top-1"), ("top2", "top-2"), ("top3", "top-3"), ("mm_dist", "MM-Dist"),
    ("fid", "FID"), ("diversity", "diversity"), ("multimodality", "multimodality"))
"""The text metrics (key, column title), in the order of the report's table."""


@dataclass
class TextSets:
    """The motions the text protocol scored, for the report's figures.

    Attributes:
        motions: real half A (under :data:`REAL`) and each model's motions of the first round, in A's order.
        prompts: the caption each motion of ``motions`` was asked with (for real: the one drawn for it).
        real_b: real half B (the FID and root speed reference).
    """

    motions: dict[str, list[np.ndarray]]
    prompts: dict[str, list[str]]
    real_b: list[np.ndarray]


@dataclass
class TextReference:
    """Captioned real windows: half A (matched by the generated set) and half B (the FID reference)."""

    split: str
    why: str
    a: np.ndarray
    b: np.ndarray


def choose_text_reference(data: MotionDataset, options: list[list[int]], cfg: EvaluationConfig) -> tuple[str, str]:
    """The split of the text reference, and why: as the label protocol, the test split when it is
    large enough (two pools' worth of captioned windows, median length at least
    ``min_reference_seconds``), else the training split."""
    if cfg.reference != "auto":
        return cfg.reference, f"Set by the configuration (reference: {cfg.reference})"
    test = np.array([i for i in data.split_indices("test") if options[int(i)]], dtype=np.int64)
    need_windows, need_frames = 2 * cfg.text.pool, cfg.min_reference_seconds * data.fps
    if len(test) < need_windows or np.median(data.lengths[test]) < need_frames:
        return "train", (f"The test split is too small to be the text reference ({len(test)} captioned window(s), "
                         f"{data.lengths[test].sum() / data.fps:.2f} s; needs {need_windows} of median length "
                         f">= {cfg.min_reference_seconds:g} s); the reference is the training windows, so the "
                         "metrics measure the fit to the training distribution")
    return "test", "Held-out captioned test windows"


def draw_text_reference(data: MotionDataset, options: list[list[int]], split: str, n: int, seed: int,
                        why: str = "") -> TextReference:
    """Up to ``n`` captioned windows of ``split`` for half A and as many for half B, without replacement."""
    pool = np.random.default_rng([seed, 17]).permutation(
        np.array([i for i in data.split_indices(split) if options[int(i)]], dtype=np.int64))
    half = min(n, len(pool) // 2)
    return TextReference(split, why, pool[:half], pool[half:2 * half])


def latent_text_generators(path: str | os.PathLike[str], cfg: EvaluationConfig) -> dict[str, TextGenerator]:
    """:data:`TextGenerator` rows of a text-conditioned latent diffusion checkpoint: ``"latent"`` (the
    decoder's output) and :data:`PLANTED` (the same motions with planted feet, what ``ramos generate``
    writes); empty for a model trained without text. The planted row reuses the latent row's last
    motions when asked the same (the protocol asks both alike), so each motion is sampled once."""
    from ramos.motion.generate import MotionGenerator
    from ramos.motion.postprocess import plant_feet

    gen = MotionGenerator.load(path)
    if not getattr(gen, "text", False):
        return {}
    last: dict[tuple[Any, ...], list[np.ndarray]] = {}

    def latent(prompts: Sequence[str], frames: Sequence[int], seed: int) -> list[np.ndarray]:
        key = (tuple(prompts), tuple(int(f) for f in frames), int(seed))
        if key not in last:
            last.clear()
            got = gen.sample(texts=list(prompts), frames=[int(f) for f in frames], seed=seed, steps=cfg.steps,
                             sampler=cfg.sampler, guidance=cfg.guidance, plant_feet=False)
            last[key] = [np.asarray(m, np.float32) for m in got.motions]
        return last[key]

    def planted(prompts: Sequence[str], frames: Sequence[int], seed: int) -> list[np.ndarray]:
        motions = latent(prompts, frames, seed)
        return [plant_feet(m, gen.skeleton, gen.fps) for m in motions] if gen.skeleton.feet else motions

    latent.sampling = planted.sampling = cfg.sampling_for(gen.sampling)  # type: ignore[attr-defined]
    return {"latent": latent, PLANTED: planted}


def _retrieval_for(data: MotionDataset, cfg: EvaluationConfig, retrieval: str | os.PathLike[str] | None, out: Path,
                   encoder: TextEncoder | None, progress: bool) -> tuple[Any, dict[str, Any]]:
    """The retrieval model: the one given, else ``out/retrieval.ckpt`` when trained on these captions, else trained now."""
    path = Path(retrieval) if retrieval is not None else out / "retrieval.ckpt"
    if retrieval is not None or path.is_file():
        net, info = load_retrieval(path)
        if info.get("captions") == captions_fingerprint(data) or retrieval is not None:
            if info.get("captions") != captions_fingerprint(data):
                log.warning("%s: trained on other captions than %s's", path, data.path)
            return net, {"path": str(path), "trained_now": False, **info}
        log.info("%s: cached retrieval model was trained on other captions; training a new one", path)
    net = train_retrieval(data, cfg.retrieval, out=path, encoder=encoder, progress=progress)
    return net, {"path": str(path), "trained_now": True, **net.train_info}


def _generate(name: str, gen: TextGenerator, prompts: Sequence[str], frames: Sequence[int], seed: int) -> list[np.ndarray]:
    motions = gen(list(prompts), [int(f) for f in frames], seed)
    if len(motions) != len(prompts):
        raise RuntimeError(f"model {name!r} returned {len(motions)} motions for {len(prompts)} prompts")
    return [np.asarray(m, np.float32) for m in motions]


def evaluate_text(models: dict[str, TextGenerator], data: MotionDataset, out: str | os.PathLike[str],
                  cfg: EvaluationConfig | None = None, retrieval: str | os.PathLike[str] | None = None,
                  encoder: TextEncoder | None = None, progress: bool = True) -> dict[str, Any]:
    """The text-to-motion metrics of real motions and of each model (see the module docstring).

    ``retrieval`` is a retrieval checkpoint; None trains one (cached as ``out/retrieval.ckpt`` and
    reused while the data set's captions are the same). ``encoder`` embeds the captions (default: the
    project's sentence encoder). Returns ``{"reference", "retrieval", "settings", "models": {name:
    {metric: {"mean", "ci95"}}}, "physics": {name: {metric: value}}, "sampling": {model: settings}}``;
    writes only the retrieval checkpoint (the report is the caller's).
    """
    return run_text_protocol(models, data, out, cfg, retrieval, encoder, progress)[0]


def caption_tokens(data: MotionDataset, texts: Sequence[str]) -> tuple[list[str], int]:
    """HumanML3D ``word/POS`` tokens of each of ``texts`` (the data set's prompts): the tokens that came
    with the caption (``caption_tokens`` in the windows' meta), else a guess (:func:`pos_tokens`); and
    how many were guessed."""
    known: dict[str, str] = {}
    for m in data.meta:
        for cap, tok in zip(m.get("captions") or [], m.get("caption_tokens") or []):
            if isinstance(cap, str) and isinstance(tok, str) and tok.strip():
                known.setdefault(" ".join(cap.split()), tok)
    out = [known.get(t) or pos_tokens(t) for t in texts]
    return out, sum(t not in known for t in texts)


def run_text_protocol(models: dict[str, TextGenerator], data: MotionDataset, out: str | os.PathLike[str],
                      cfg: EvaluationConfig | None = None, retrieval: str | os.PathLike[str] | None = None,
                      encoder: TextEncoder | None = None, progress: bool = True,
                      t2m: T2MEvaluator | None = None) -> tuple[dict[str, Any], TextSets]:
    """:func:`evaluate_text`, and the motions it scored (for the figures). With ``t2m`` (Guo et al.'s
    evaluator) the feature space is that evaluator's instead of a retrieval model trained here."""
    cfg = cfg or EvaluationConfig()
    tc = cfg.text
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    table = prompt_table(data, encoder)
    embed: Callable[[Sequence[np.ndarray]], np.ndarray]
    if t2m is not None:
        tokens, guessed = caption_tokens(data, table.texts)
        text_feats = t2m.embed_captions(tokens)
        embed = t2m.embed_motions
        info: dict[str, Any] = {"kind": "t2m", "files": t2m.files, "captions": len(tokens), "guessed_tokens": guessed}
        if guessed:
            log.warning("%d of %d captions have no HumanML3D tokens: tagged by a guess, so the numbers are not "
                        "comparable with published ones", guessed, len(tokens))
    else:
        net, info = _retrieval_for(data, cfg, retrieval, out, encoder, progress)
        text_feats = embed_texts(net, table.embeddings)
        embed = lambda motions: embed_motions(net, motions)
    options = caption_options(data, table)
    split, why = choose_text_reference(data, options, cfg)
    ref = draw_text_reference(data, options, split, tc.n, cfg.seed, why)
    # The pool is smaller than asked only when A has few distinct captions (a draw may have fewer still).
    distinct_a = len({t for i in ref.a for t in options[int(i)]})
    if distinct_a < 2:
        raise ValueError(f"{data.path}: the {split} split has too few captioned windows for the text metrics")
    window = lambda i: np.asarray(data.windows[int(i)][: int(data.lengths[int(i)])], np.float32)
    real_a, real_b = [window(i) for i in ref.a], [window(i) for i in ref.b]
    frames_a = [len(m) for m in real_a]
    feats_a, feats_b = embed(real_a), embed(real_b)

    # The captions asked: per generation round, one of each A window's captions.
    def captions(stream: int, r: int) -> np.ndarray:
        rng = np.random.default_rng([cfg.seed, stream, r])
        return np.array([options[int(i)][int(rng.integers(len(options[int(i)])))] for i in ref.a], np.int64)

    round_ids = [captions(1, g) for g in range(tc.rounds)]
    # A's other captions describe each motion too (the generated one was asked with one of them): no distractors.
    own = [options[int(i)] for i in ref.a]
    # Multimodality prompts: distinct captions of A, each with the length of a window it describes.
    mm_ids, mm_frames, seen = [], [], set()
    for i, t in zip(ref.a, round_ids[0]):
        if int(t) not in seen and len(mm_ids) < tc.mm_prompts:
            seen.add(int(t))
            mm_ids.append(int(t))
            mm_frames.append(int(data.lengths[int(i)]))

    def score(feats: list[np.ndarray], ids: Callable[[int], np.ndarray], groups: list[np.ndarray]) -> dict[str, Any]:
        def draw(r: int) -> np.ndarray:
            f, t = feats[r % len(feats)], ids(r)
            return np.array([*r_precision(f, text_feats[t], tc.pool, text_ids=t, exclude=own, seed=r),
                             mm_dist(f, text_feats[t]),
                             fid(f, feats_b), diversity(f, tc.diversity_pairs, seed=r),
                             multimodality(groups, tc.mm_pairs, seed=r)])

        mean, ci = repeated(draw, tc.repeats)
        return {"n": len(feats[0]), **{k: {"mean": float(mv), "ci95": float(c)}
                                            for (k, _), mv, c in zip(TEXT_METRICS, mean, ci)}}

    # Real: A against its own captions, drawn anew in every repeat; multimodality over real windows
    # that share a caption (up to mm_per_prompt of them per prompt).
    rng = np.random.default_rng([cfg.seed, 3])
    split_idx = [int(i) for i in data.split_indices(split)]
    real_groups = []
    for t in mm_ids:
        having = [i for i in split_idx if t in options[i]]
        pick = rng.permutation(having)[: tc.mm_per_prompt]
        real_groups.append(embed([window(i) for i in pick]))
    results: dict[str, Any] = {
        "reference": {"split": ref.split, "why": ref.why, "windows_a": len(ref.a), "windows_b": len(ref.b),
                      "seconds_a": float(sum(frames_a) / data.fps),
                      "distinct_captions_a": distinct_a, "pool": min(tc.pool, distinct_a + 1 - max(len(o) for o in own)),
                      "mm_prompts": len(mm_ids)},
        "retrieval": info,
        "settings": asdict(tc),
        "models": {REAL: score([feats_a], lambda r: captions(2, r), real_groups)},
        "physics": {REAL: _physics(real_a, real_b, data)},
        "sampling": {name: getattr(gen, "sampling", None) for name, gen in models.items()},
    }
    real_prompts = [table.texts[int(t)] for t in captions(2, 0)]
    sets = TextSets({REAL: real_a}, {REAL: real_prompts}, real_b)
    for name, gen in models.items():
        feats, pooled = [], []
        for g, ids in enumerate(round_ids):
            prompts = [table.texts[int(t)] for t in ids]
            motions = _generate(name, gen, prompts, frames_a, cfg.seed + g)
            feats.append(embed(motions))
            pooled += motions
            if g == 0:
                sets.motions[name], sets.prompts[name] = motions, prompts
        # Pooled over the rounds: every round has A's lengths, so the physics stay comparable with real A's.
        results["physics"][name] = _physics(pooled, real_b, data)
        groups: list[np.ndarray] = []
        if mm_ids and tc.mm_per_prompt > 1:
            mm = _generate(name, gen, [table.texts[t] for t in mm_ids for _ in range(tc.mm_per_prompt)],
                           [f for f in mm_frames for _ in range(tc.mm_per_prompt)], cfg.seed + 7919)
            groups = list(embed(mm).reshape(len(mm_ids), tc.mm_per_prompt, -1))
        results["models"][name] = score(feats, lambda r: round_ids[r % tc.rounds], groups)
        log.info("%s: text metrics of %d motions x %d round(s)", name, len(frames_a), tc.rounds)
    return results, sets


def _physics(motions: Sequence[np.ndarray], reference: Sequence[np.ndarray], data: MotionDataset) -> dict[str, Any]:
    """Evaluator-free physics of ``motions`` and the root speed distance to ``reference`` (real half B)."""
    return {"n": len(motions), **physics(motions, data.skeleton, data.fps),
            "root_speed_w1": root_speed_distance(motions, reference, data.skeleton, data.fps)}
