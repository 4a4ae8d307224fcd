"""Evaluation of generated motions against real ones (``ramos evaluate``; definitions: docs/evaluation.md).

* A feature extractor trained here (:class:`ramos.motion.nets.evaluator.MotionEvaluator`, a label
  classifier on random crops of real training windows) gives FID, diversity, multimodality per
  label, and the recognition accuracy of generated motions for the label asked.
* Evaluator-free physics (:mod:`ramos.motion.metrics`): foot skating ratio, jitter, bone-length
  std, floor penetration, and the root speed distribution per label against the real one.
* Every metric is reported for real data too (the floor) and for each model evaluated (the latent
  model, the raw-space baseline).

Protocol. Per label, ``2 n`` real reference windows are drawn and split into halves A and B. Each
model generates one motion per window of A, with A's label and A's length, so generated and real
sets match in size, labels and lengths. FID(model) = FID(generated, B); the real floor is
FID(A, B). Real-data rows (physics, accuracy, diversity) are computed on A.

Without labels (HumanML3D: captions only; a BVH folder: neither) there is no label protocol: no
label to ask a model for, no classifier to train. The text protocol
(:mod:`ramos.stages.evaluation.text_protocol`) still runs on captions, with the physics of each
model's motions; the models it does not score (all of them without captions) get the physics of
unconditional samples against real windows, with the same A / B split of one pool of windows.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ramos.motion import metrics as M
from ramos.motion.dataset import MotionDataset
from ramos.motion.text import TextEncoder
from ramos.stages.evaluation.config import EvaluationConfig
from ramos.stages.evaluation.evaluator import (
    classify,
    load_evaluator,
    motion_features,
    train_evaluator,
)
from ramos.stages.evaluation.report import LabelSets, PhysicsSets, write_report
from ramos.stages.evaluation.retrieval import has_captions
from ramos.stages.evaluation.scoring import PLANTED, REAL, physics, root_speed_distance, score_set
from ramos.stages.evaluation.t2m import T2MEvaluator
from ramos.stages.evaluation.text_protocol import TextGenerator, TextSets, run_text_protocol

log = logging.getLogger(__name__)


# A model to evaluate: (label ids in the data set's vocabulary, NO_LABEL for an unconditional motion;
# lengths in frames; seed) -> motions (length, J, 3) in metres, one per request.
Generator = Callable[[Sequence[int], Sequence[int], int], list[np.ndarray]]

NO_LABEL = -1
"""The label id a :data:`Generator` is asked with for an unconditional motion (data without labels)."""


# --- the real reference -------------------------------------------------------------------------
@dataclass
class Reference:
    """Real reference windows: half A (matched by the generated set) and half B (the FID reference)."""

    split: str
    why: str
    a: np.ndarray
    b: np.ndarray
    skipped: dict[str, str]


def choose_reference(data: MotionDataset, label_ids: Sequence[int], cfg: EvaluationConfig) -> tuple[str, str]:
    """The split the real reference windows come from, and why (see :class:`EvaluationConfig`)."""
    if cfg.reference != "auto":
        return cfg.reference, f"Set by the configuration (reference: {cfg.reference})"
    test = data.split_indices("test")
    need = cfg.min_reference_seconds * data.fps
    for k in label_ids:
        idx = [i for i in test if data.label_id(int(i)) == k]
        if len(idx) < 2 or np.median(data.lengths[idx]) < need:
            return "train", (f"The test split is too small to be the reference (label {data.labels[k]!r}: "
                             f"{len(idx)} window(s), {data.lengths[idx].sum() / data.fps:.2f} s); the reference "
                             "is the training windows, so FID measures the fit to the training distribution")
    return "test", "Held-out test windows (every label has at least two of sufficient length)"


def draw_reference(data: MotionDataset, split: str, label_ids: Sequence[int], n: int, seed: int,
                   why: str = "") -> Reference:
    """Per label, up to ``n`` windows for half A and as many for half B, drawn without replacement."""
    rng = np.random.default_rng(seed)
    idx = data.split_indices(split)
    ids = np.array([data.label_id(int(i)) for i in idx])
    a: list[int] = []
    b: list[int] = []
    skipped: dict[str, str] = {}
    for k in label_ids:
        pool = rng.permutation(idx[ids == k])
        if len(pool) < 2:
            skipped[data.labels[k]] = f"{len(pool)} {split} window(s): at least 2 are needed"
            continue
        half = min(n, len(pool) // 2)
        a += pool[:half].tolist()
        b += pool[half:2 * half].tolist()
    return Reference(split, why, np.array(a, np.int64), np.array(b, np.int64), skipped)


def choose_unlabelled_reference(data: MotionDataset, cfg: EvaluationConfig) -> tuple[str, str]:
    """The split of the reference for data without labels, and why: the test split when it fills both
    halves (``2 n_unconditional`` windows) with a median length of at least ``min_reference_seconds``,
    else the training split (more windows, no held-out ones)."""
    if cfg.reference != "auto":
        return cfg.reference, f"Set by the configuration (reference: {cfg.reference})"
    test = data.split_indices("test")
    need_windows, need_frames = 2 * cfg.n_unconditional, cfg.min_reference_seconds * data.fps
    if len(test) < need_windows or np.median(data.lengths[test]) < need_frames:
        return "train", (f"The test split is too small to be the reference ({len(test)} window(s), "
                         f"{data.lengths[test].sum() / data.fps:.2f} s; needs {need_windows} of median length "
                         f">= {cfg.min_reference_seconds:g} s); the reference is the training windows, so the "
                         "physics are compared with the training distribution")
    return "test", "Held-out test windows"


def draw_unlabelled_reference(data: MotionDataset, split: str, n: int, seed: int, why: str = "") -> Reference:
    """Up to ``n`` windows of ``split`` for half A and as many for half B, drawn without replacement."""
    pool = np.random.default_rng([seed, 23]).permutation(data.split_indices(split)).astype(np.int64)
    half = min(n, len(pool) // 2)
    return Reference(split, why, pool[:half], pool[half:2 * half], {})


def _windows(data: MotionDataset, indices: np.ndarray) -> list[np.ndarray]:
    return [np.asarray(data.windows[int(i)][: int(data.lengths[int(i)])], np.float32) for i in indices]


# --- models -------------------------------------------------------------------------------------
def checkpoint_generator(path: str | os.PathLike[str], class_names: Sequence[str],
                         cfg: EvaluationConfig) -> Generator:
    """A :data:`Generator` for a diffusion checkpoint: the raw-space baseline or the latent model
    (its decoder's output as it is, no clean-up).

    ``class_names`` is the data set's label vocabulary; requests use its ids.
    """
    from ramos.stages.raw_baseline import is_raw_baseline, load_raw_baseline, sample_raw_baseline

    if is_raw_baseline(path):
        module = load_raw_baseline(path)
        own = list(module.hparams.class_names or [])
        lookup = _label_lookup(path, class_names, own)

        lookup[NO_LABEL] = len(own)  # the module's "none" label (the one classifier-free guidance drops to)

        def raw(labels: Sequence[int], lengths: Sequence[int], seed: int) -> list[np.ndarray]:
            return sample_raw_baseline(module, [lookup[int(k)] for k in labels], lengths, cfg.steps, cfg.sampler,
                                       cfg.guidance, seed)

        raw.sampling = cfg.sampling_for(module.sampling)  # type: ignore[attr-defined]
        return raw
    return latent_generators(path, class_names, cfg)["latent"]


def _label_lookup(path: Any, class_names: Sequence[str], own: Sequence[str]) -> dict[int, int]:
    """Data set label id -> the model's label index; a data set without labels asks for none (no error)."""
    from ramos.utils.checkpoint import CheckpointError

    lookup = {}
    for k, name in enumerate(class_names):
        if name in own:
            lookup[k] = list(own).index(name)
    if class_names and not lookup:
        raise CheckpointError(f"{path}: the model knows none of the data set's labels "
                              f"({', '.join(list(class_names)[:5])}, ...)")
    return lookup


def latent_generators(path: str | os.PathLike[str], class_names: Sequence[str],
                      cfg: EvaluationConfig) -> dict[str, Generator]:
    """The latent model twice, ``"latent"`` (decoder output) and :data:`PLANTED` (feet planted, what
    ``ramos generate`` writes by default): same seeds, so the rows differ only by the clean-up."""
    from ramos.motion.generate import MotionGenerator

    gen = MotionGenerator.load(path)
    _label_lookup(path, class_names, gen.labels)

    def latent(labels: Sequence[int], lengths: Sequence[int], seed: int, plant_feet: bool = False) -> list[np.ndarray]:
        # One call: the sampler takes a length per motion; NO_LABEL asks for an unconditional motion.
        names = [None if int(k) == NO_LABEL else class_names[int(k)] for k in labels]
        got = gen.sample(names, steps=cfg.steps, sampler=cfg.sampler, guidance=cfg.guidance,
                         frames=[int(n) for n in lengths], seed=seed, plant_feet=plant_feet)
        return [np.asarray(m, np.float32) for m in got.motions]

    planted = functools.partial(latent, plant_feet=True)
    latent.sampling = planted.sampling = cfg.sampling_for(gen.sampling)  # type: ignore[attr-defined]
    return {"latent": latent, PLANTED: planted}


# --- the whole evaluation -----------------------------------------------------------------------
def evaluate(models: dict[str, Generator], data: MotionDataset, out: str | os.PathLike[str],
             cfg: EvaluationConfig | None = None, evaluator: str | os.PathLike[str] | None = None,
             labels: Sequence[str] | None = None, progress: bool = True,
             text_models: dict[str, TextGenerator] | None = None, retrieval: str | os.PathLike[str] | None = None,
             encoder: TextEncoder | None = None, t2m: T2MEvaluator | None = None) -> dict[str, Any]:
    """Evaluate each model against real windows of ``data``; writes ``out/generation.md``,
    ``out/generation.json`` and the figures, and returns the results dictionary.

    ``evaluator`` is an evaluator checkpoint; None trains one (cached as ``out/evaluator.ckpt``,
    reused when it exists and matches the data set's labels). ``labels`` restricts the labels
    evaluated (default: every label with training windows).

    When ``data`` has captions, the text-to-motion metrics
    (:func:`ramos.stages.evaluation.text_protocol.evaluate_text`) of real motions and of each of
    ``text_models`` go into ``results["text"]`` and the report; ``retrieval`` is the retrieval model's
    checkpoint (None: ``out/retrieval.ckpt``, trained when absent; with ``t2m``, Guo et al.'s evaluator
    (:class:`ramos.stages.evaluation.t2m.T2MEvaluator`), none is used), ``encoder`` the sentence encoder
    (None: the project's).

    When no label has training windows, the label protocol is skipped (``results["skipped"]`` says why,
    and there is no ``results["models"]``); each model of ``models`` that the text protocol does not
    score (every one, without captions) is asked for unconditional motions (:data:`NO_LABEL`) whose
    physics go into ``results["physics"]``.
    """
    import torch

    cfg = cfg or EvaluationConfig()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    text_models = text_models or {}
    train_ids = {data.label_id(int(i)) for i in data.split_indices("train")}
    wanted = list(labels) if labels is not None else [n for k, n in enumerate(data.labels) if k in train_ids]
    unknown = [n for n in wanted if n not in data.labels]
    if unknown:
        raise ValueError(f"{data.path}: unknown label(s) {', '.join(unknown)}")
    captioned = has_captions(data)
    label_sets: LabelSets | None = None
    if wanted:
        results, label_sets = _label_protocol(models, data, out, cfg, evaluator, wanted, progress)
    else:
        log.info("%s: no labels on training windows; no label metrics", data.path)
        results = {"dataset": str(data.path), "settings": asdict(cfg), "skipped": {"labels": (
            "the data set has no labels on its training windows, so there is no label to ask a model for and no "
            "label classifier to train (FID, diversity, multimodality, recognition accuracy, per-label physics)")}}
    text_sets: TextSets | None = None
    if captioned:
        results["text"], text_sets = run_text_protocol(text_models, data, out, cfg, retrieval, encoder, progress,
                                                       t2m=t2m)
    elif text_models:
        log.warning("%s: no captions; the text models get no text metrics", data.path)
    physics_sets: PhysicsSets | None = None
    if not wanted:
        if not captioned:
            results["skipped"]["text"] = ("the data set has no captions, so there is no text-motion retrieval model "
                                          "to train (R-precision, MM-Dist, text FID, diversity, multimodality)")
        # A model neither protocol scores would get no number at all: the physics of its unconditional motions.
        rest = {name: gen for name, gen in models.items() if not (captioned and name in text_models)}
        if rest or not captioned:
            results["physics"], physics_sets = _physics_protocol(rest, data, cfg)
    write_report(results, data, out, cfg, label_sets, text_sets, physics_sets)
    return results


def _label_protocol(models: dict[str, Generator], data: MotionDataset, out: Path, cfg: EvaluationConfig,
                    evaluator: str | os.PathLike[str] | None, wanted: Sequence[str],
                    progress: bool) -> tuple[dict[str, Any], LabelSets]:
    """The label protocol (module docstring): the results dictionary and the motions it scored."""
    net, ev_info = _evaluator_for(data, cfg, evaluator, out, progress)
    label_ids = [data.labels.index(n) for n in wanted]
    split, why = choose_reference(data, label_ids, cfg)
    ref = draw_reference(data, split, label_ids, cfg.n_per_label, cfg.seed, why)
    if len(ref.a) == 0:
        raise ValueError(f"{data.path}: no label has two {split} windows to compare with")
    real_a, real_b = _windows(data, ref.a), _windows(data, ref.b)
    lab_a = np.array([data.label_id(int(i)) for i in ref.a])
    lab_b = np.array([data.label_id(int(i)) for i in ref.b])
    feats_b = motion_features(net, real_b)
    sets, timing = _generate_all(models, lab_a.tolist(), [len(m) for m in real_a], cfg.seed)
    sets = {REAL: real_a, **sets}
    skel, fps = data.skeleton, data.fps
    results: dict[str, Any] = {
        "dataset": str(data.path),
        "reference": {"split": ref.split, "why": ref.why, "windows_a": len(ref.a), "windows_b": len(ref.b),
                      "seconds_a": float(sum(len(m) for m in real_a) / fps),
                      "seconds_b": float(sum(len(m) for m in real_b) / fps), "skipped_labels": ref.skipped},
        "heldout": _heldout_block(data, net),
        "evaluator": ev_info,
        "settings": asdict(cfg),
        "labels": [data.labels[k] for k in sorted(set(lab_a.tolist()))],
        "models": {},
    }
    for name, motions in sets.items():
        feats = motion_features(net, motions)
        scored = score_set(motions, lab_a, feats, classify(net, motions), real_b, lab_b, feats_b, data.labels, skel, fps)
        scored["overall"]["seconds_per_motion"] = timing.get(name, float("nan"))
        scored["sampling"] = getattr(models.get(name), "sampling", None)
        results["models"][name] = scored
    fids = {name: [m["overall"]["fid"]] for name, m in results["models"].items()}
    for d in range(1, cfg.fid_draws):
        for name, fid in _fid_draw(models, data, net, split, label_ids, cfg.n_per_label, cfg.seed + d).items():
            fids[name].append(fid)
        log.info("FID draw %d of %d: %s", d + 1, cfg.fid_draws,
                 ", ".join(f"{name} {v[-1]:.3f}" for name, v in fids.items()))
    results["fid_draws"] = fid_draws_summary(fids, [cfg.seed + d for d in range(max(cfg.fid_draws, 1))])
    return results, LabelSets(sets, lab_a, real_b, lab_b)


def _fid_draw(models: dict[str, Generator], data: MotionDataset, net: Any, split: str, label_ids: Sequence[int],
              n: int, seed: int) -> dict[str, float]:
    """FID of real half A (the floor) and of each model's motions, generated anew, against half B of
    the draw ``seed``."""
    ref = draw_reference(data, split, label_ids, n, seed)
    real_a, real_b = _windows(data, ref.a), _windows(data, ref.b)
    lab_a = [data.label_id(int(i)) for i in ref.a]
    sets, _ = _generate_all(models, lab_a, [len(m) for m in real_a], seed, level=logging.DEBUG)
    feats_b = motion_features(net, real_b)
    return {name: M.frechet_distance(motion_features(net, motions), feats_b)
            for name, motions in {REAL: real_a, **sets}.items()}


def fid_draws_summary(fids: dict[str, list[float]], seeds: Sequence[int]) -> dict[str, Any]:
    """FID over draws of the reference: per row (``fids[name]``, one value per draw, the real floor under
    :data:`REAL`) the values, their mean and 95% interval (as the field reports repeated draws), and per
    model the **ratio of the mean FID to the mean floor** (what the FID target is checked on) with the
    per-draw ratios and their median. A ratio per draw divides by one draw's noisy floor and is biased
    upwards (a low floor gives a large ratio); the ratio of the means is not."""
    from ramos.stages.evaluation.retrieval import repeated

    summary: dict[str, Any] = {"seeds": list(seeds), "fid": {name: list(v) for name, v in fids.items()},
                               "mean": {}, "ci95": {}, "ratio": {}, "per_draw_ratio": {}, "median_per_draw_ratio": {}}
    for name, v in fids.items():
        summary["mean"][name], summary["ci95"][name] = repeated(lambda r, v=v: v[r], len(v))
    floor = np.asarray(fids[REAL], np.float64)
    for name, v in fids.items():
        if name == REAL:
            continue
        per_draw = np.asarray(v, np.float64) / np.maximum(floor, 1e-12)
        summary["ratio"][name] = summary["mean"][name] / max(summary["mean"][REAL], 1e-12)
        summary["per_draw_ratio"][name] = per_draw.tolist()
        summary["median_per_draw_ratio"][name] = float(np.median(per_draw))
    return summary


def _physics_protocol(models: dict[str, Generator], data: MotionDataset,
                      cfg: EvaluationConfig) -> tuple[dict[str, Any], PhysicsSets]:
    """Physics of unconditional motions (one per window of real half A, with its length) against real
    half A, and their root speed distance to half B: what can be measured without labels or captions."""
    split, why = choose_unlabelled_reference(data, cfg)
    ref = draw_unlabelled_reference(data, split, cfg.n_unconditional, cfg.seed, why)
    if len(ref.a) == 0:
        raise ValueError(f"{data.path}: the {split} split has fewer than two windows to compare with")
    real_a, real_b = _windows(data, ref.a), _windows(data, ref.b)
    sets, timing = _generate_all(models, [NO_LABEL] * len(real_a), [len(m) for m in real_a], cfg.seed)
    sets = {REAL: real_a, **sets}
    skel, fps = data.skeleton, data.fps
    scored = {name: {"n": len(motions), **physics(motions, skel, fps),
                     "root_speed_w1": root_speed_distance(motions, real_b, skel, fps),
                     "seconds_per_motion": timing.get(name, float("nan"))} for name, motions in sets.items()}
    results = {"reference": {"split": ref.split, "why": ref.why, "windows_a": len(ref.a), "windows_b": len(ref.b),
                             "seconds_a": float(sum(len(m) for m in real_a) / fps),
                             "seconds_b": float(sum(len(m) for m in real_b) / fps)},
               "models": scored,
               "sampling": {name: getattr(gen, "sampling", None) for name, gen in models.items()}}
    return results, PhysicsSets(sets, real_b)


def _generate_all(models: dict[str, Generator], label_ids: list[int], lengths: list[int], seed: int,
                  level: int = logging.INFO) -> tuple[dict[str, list[np.ndarray]], dict[str, float]]:
    """Each model's motions for the requests (label id, length), and its sampling seconds per motion
    (logged at ``level``)."""
    sets: dict[str, list[np.ndarray]] = {}
    timing: dict[str, float] = {}
    for name, gen in models.items():
        start = time.perf_counter()
        motions = gen(label_ids, lengths, seed)
        timing[name] = (time.perf_counter() - start) / max(len(motions), 1)
        if len(motions) != len(lengths):
            raise RuntimeError(f"model {name!r} returned {len(motions)} motions for {len(lengths)} requests")
        sets[name] = motions
        log.log(level, "%s: %d motions, %.3f s per motion", name, len(motions), timing[name])
    return sets, timing


def _heldout_block(data: MotionDataset, net: Any) -> dict[str, Any]:
    """Physics and evaluator accuracy of the held-out (val + test) windows, whatever their size."""
    held = np.concatenate([data.split_indices("val"), data.split_indices("test")])
    held = np.array([i for i in held if data.label_id(int(i)) >= 0], dtype=np.int64)
    if len(held) == 0:
        return {"windows": 0}
    motions = _windows(data, held)
    labels = np.array([data.label_id(int(i)) for i in held])
    return {"windows": len(held), "seconds": float(sum(len(m) for m in motions) / data.fps),
            "median_frames": float(np.median([len(m) for m in motions])),
            "accuracy": float((classify(net, motions) == labels).mean()),
            **physics(motions, data.skeleton, data.fps)}


def _evaluator_for(data: MotionDataset, cfg: EvaluationConfig, evaluator: str | os.PathLike[str] | None,
                   out: Path, progress: bool) -> tuple[Any, dict[str, Any]]:
    from ramos.utils.checkpoint import CheckpointError

    path = Path(evaluator) if evaluator is not None else out / "evaluator.ckpt"
    if evaluator is not None or path.is_file():
        net, names, info = load_evaluator(path)
        if names != list(data.labels):
            if evaluator is not None:
                raise CheckpointError(f"{path}: evaluator labels differ from the data set's ({data.path})")
            log.info("%s: cached evaluator has other labels; training a new one", path)
        else:
            return net, {"path": str(path), "trained_now": False, **info}
    net = train_evaluator(data, cfg.classifier, out=path, progress=progress)
    return net, {"path": str(path), "trained_now": True, **net.train_info}
