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

from ramos.diffusion.sampling import SamplingConfig
from ramos.motion.dataset import MotionDataset
from ramos.stages.evaluation.config import EvaluationConfig
from ramos.stages.evaluation.evaluator import (
    classify,
    load_evaluator,
    motion_features,
    train_evaluator,
)
from ramos.stages.evaluation.report import write_report
from ramos.stages.evaluation.scoring import PLANTED, REAL, physics, score_set

log = logging.getLogger(__name__)


# A model to evaluate: (label ids in the data set's vocabulary, lengths in frames, seed) -> motions
# (length, J, 3) in metres, one per request.
Generator = Callable[[Sequence[int], Sequence[int], int], list[np.ndarray]]


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

        def raw(labels: Sequence[int], lengths: Sequence[int], seed: int) -> list[np.ndarray]:
            return sample_raw_baseline(module, [lookup[int(k)] for k in labels], lengths, cfg.steps, cfg.sampler,
                                       cfg.guidance, seed)

        raw.sampling = _settings(cfg, module.sampling)  # type: ignore[attr-defined]
        return raw
    return latent_generators(path, class_names, cfg)["latent"]


def _label_lookup(path: Any, class_names: Sequence[str], own: Sequence[str]) -> dict[int, int]:
    from ramos.utils.checkpoint import CheckpointError

    lookup = {}
    for k, name in enumerate(class_names):
        if name in own:
            lookup[k] = list(own).index(name)
    if not lookup:
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
        out: list[np.ndarray] = [np.empty(0)] * len(labels)
        # One call per length (the sampler takes one duration per call); labels may differ within it.
        groups: dict[int, list[int]] = {}
        for i, n in enumerate(lengths):
            groups.setdefault(int(n), []).append(i)
        for g, (n, where) in enumerate(sorted(groups.items())):
            got = gen.sample([class_names[int(labels[i])] for i in where], steps=cfg.steps, sampler=cfg.sampler,
                             guidance=cfg.guidance, seconds=n / gen.fps, seed=seed + 100_003 * g, plant_feet=plant_feet)
            for i, m in zip(where, got.motions):
                out[i] = np.asarray(m, np.float32)
        return out

    planted = functools.partial(latent, plant_feet=True)
    latent.sampling = planted.sampling = _settings(cfg, gen.sampling)  # type: ignore[attr-defined]
    return {"latent": latent, PLANTED: planted}


def _settings(cfg: EvaluationConfig, default: SamplingConfig) -> dict[str, Any]:
    """The sampling settings a model is evaluated with: the config's, else the checkpoint's."""
    return {"steps": default.steps if cfg.steps is None else cfg.steps,
            "sampler": default.sampler if cfg.sampler is None else cfg.sampler,
            "guidance": default.guidance if cfg.guidance is None else cfg.guidance}


# --- the whole evaluation -----------------------------------------------------------------------
def evaluate(models: dict[str, Generator], data: MotionDataset, out: str | os.PathLike[str],
             cfg: EvaluationConfig | None = None, evaluator: str | os.PathLike[str] | None = None,
             labels: Sequence[str] | None = None, progress: bool = True) -> dict[str, Any]:
    """Evaluate each model against real windows of ``data``; writes ``out/generation.md``,
    ``out/generation.json`` and the figures, and returns the results dictionary.

    ``evaluator`` is an evaluator checkpoint; None trains one (cached as ``out/evaluator.ckpt``,
    reused when it exists and matches the data set's labels). ``labels`` restricts the labels
    evaluated (default: every label with training windows).
    """
    import torch

    cfg = cfg or EvaluationConfig()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    net, ev_info = _evaluator_for(data, cfg, evaluator, out, progress)
    train_ids = {data.label_id(int(i)) for i in data.split_indices("train")}
    wanted = list(labels) if labels is not None else [n for k, n in enumerate(data.labels) if k in train_ids]
    unknown = [n for n in wanted if n not in data.labels]
    if unknown:
        raise ValueError(f"{data.path}: unknown label(s) {', '.join(unknown)}")
    label_ids = [data.labels.index(n) for n in wanted]
    split, why = choose_reference(data, label_ids, cfg)
    ref = draw_reference(data, split, label_ids, cfg.n_per_label, cfg.seed, why)
    if len(ref.a) == 0:
        raise ValueError(f"{data.path}: no label has two {split} windows to compare with")
    real_a, real_b = _windows(data, ref.a), _windows(data, ref.b)
    lab_a = np.array([data.label_id(int(i)) for i in ref.a])
    lab_b = np.array([data.label_id(int(i)) for i in ref.b])
    feats_b = motion_features(net, real_b)
    sets: dict[str, list[np.ndarray]] = {REAL: real_a}
    timing: dict[str, float] = {}
    for name, gen in models.items():
        start = time.perf_counter()
        motions = gen(lab_a.tolist(), [len(m) for m in real_a], cfg.seed)
        timing[name] = (time.perf_counter() - start) / max(len(motions), 1)
        if len(motions) != len(real_a):
            raise RuntimeError(f"model {name!r} returned {len(motions)} motions for {len(real_a)} requests")
        sets[name] = motions
        log.info("%s: %d motions, %.3f s per motion", name, len(motions), timing[name])
    skel, fps = data.skeleton, data.fps
    results: dict[str, Any] = {
        "dataset": str(data.path),
        "reference": {"split": ref.split, "why": ref.why, "windows_a": int(len(ref.a)), "windows_b": int(len(ref.b)),
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
    write_report(results, sets, lab_a, real_b, lab_b, data, out, cfg)
    return results


def _heldout_block(data: MotionDataset, net: Any) -> dict[str, Any]:
    """Physics and evaluator accuracy of the held-out (val + test) windows, whatever their size."""
    held = np.concatenate([data.split_indices("val"), data.split_indices("test")])
    held = np.array([i for i in held if data.label_id(int(i)) >= 0], dtype=np.int64)
    if len(held) == 0:
        return {"windows": 0}
    motions = _windows(data, held)
    labels = np.array([data.label_id(int(i)) for i in held])
    return {"windows": int(len(held)), "seconds": float(sum(len(m) for m in motions) / data.fps),
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
