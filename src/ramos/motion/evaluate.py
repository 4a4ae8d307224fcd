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
import json
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ramos.motion import metrics as M
from ramos.motion.dataset import MotionDataset
from ramos.motion.skeleton import Skeleton

log = logging.getLogger(__name__)

CONFIG_DIR = Path(__file__).resolve().parents[3] / "configs" / "evaluator"
REAL = "real"

# A model to evaluate: (label ids in the data set's vocabulary, lengths in frames, seed) -> motions
# (length, J, 3) in metres, one per request.
Generator = Callable[[Sequence[int], Sequence[int], int], list[np.ndarray]]


# --- configuration ------------------------------------------------------------------------------
@dataclass
class EvaluatorTrainConfig:
    """The feature extractor (label classifier) and how it is trained.

    Attributes:
        channels, depth, feature_dim, stride, dropout: :class:`MotionEvaluator` sizes.
        steps, batch_size, lr, weight_decay: AdamW with cosine decay.
        min_crop_frames, max_crop_frames: training crops have a random length in this range
            (None: the window), so any motion length gives in-distribution features.
        yaw_deg: random turn of each crop about the vertical (+-), so features ignore heading.
        seed: seed of weights and crops.
    """

    channels: int = 48
    depth: int = 3
    feature_dim: int = 32
    stride: int = 4
    dropout: float = 0.1
    steps: int = 800
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-4
    min_crop_frames: int = 8
    max_crop_frames: int | None = None
    yaw_deg: float = 180.0
    seed: int = 0


@dataclass
class EvaluationConfig:
    """One ``ramos evaluate`` run (``configs/evaluator/default.yaml``).

    Attributes:
        n_per_label: generated motions per label (also the size of each real half A and B).
        steps, sampler, guidance: sampling settings passed to every model.
        reference: split of the real reference windows; "auto" takes "test" when it has, for
            every label, two windows of at least ``min_reference_seconds`` median length, and
            "train" otherwise (then the report says so).
        min_reference_seconds: see ``reference``.
        sheet_labels: labels shown in the contact sheet (None: all evaluated labels).
        seed: seed of the reference draw and of sampling.
        threads: torch CPU threads (None: torch's default).
        classifier: the feature extractor, trained when no checkpoint is given.
    """

    n_per_label: int = 16
    steps: int = 10
    sampler: Literal["ddpm", "ddim", "dpmsolver++"] = "dpmsolver++"
    guidance: float = 2.0
    reference: Literal["auto", "train", "val", "test"] = "auto"
    min_reference_seconds: float = 2.0
    sheet_labels: list[str] | None = None
    seed: int = 0
    threads: int | None = None
    classifier: EvaluatorTrainConfig = field(default_factory=EvaluatorTrainConfig)


def load_evaluation_config(path: str | os.PathLike[str] | None = None,
                           overrides: dict[str, Any] | None = None) -> EvaluationConfig:
    """``configs/evaluator/default.yaml`` (or ``path``) as an :class:`EvaluationConfig`."""
    from ramos.utils.config import load_config

    if path is None and (CONFIG_DIR / "default.yaml").is_file():
        path = CONFIG_DIR / "default.yaml"
    return load_config(EvaluationConfig, path, overrides)


# --- padding helpers ----------------------------------------------------------------------------
def pad_motions(motions: Sequence[np.ndarray], frames: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Stack motions of different lengths (T_i, J, 3) into (N, T, J, 3) (last pose repeated) and a mask (N, T)."""
    if not motions:
        raise ValueError("no motions")
    t_max = frames or max(len(m) for m in motions)
    out = np.zeros((len(motions), t_max, *motions[0].shape[1:]), np.float32)
    mask = np.zeros((len(motions), t_max), bool)
    for i, m in enumerate(motions):
        n = min(len(m), t_max)
        out[i, :n] = m[:n]
        out[i, n:] = m[n - 1]
        mask[i, :n] = True
    return out, mask


# --- the feature extractor ----------------------------------------------------------------------
def _yaw_rotate(x: Any, radians: Any) -> Any:
    """Turn motions (B, T, J, 3) about the y axis by per-motion angles (B,) (torch)."""
    import torch

    c, s = torch.cos(radians), torch.sin(radians)
    zero, one = torch.zeros_like(c), torch.ones_like(c)
    rot = torch.stack([torch.stack([c, zero, s], -1), torch.stack([zero, one, zero], -1),
                       torch.stack([-s, zero, c], -1)], -2)  # (B, 3, 3)
    return torch.einsum("btjk,bik->btji", x, rot)


class _CropSampler:
    """Label-balanced random crops of real windows: the evaluator's training batches."""

    def __init__(self, data: MotionDataset, indices: np.ndarray, cfg: EvaluatorTrainConfig) -> None:
        labels = np.array([data.label_id(int(i)) for i in indices])
        keep = labels >= 0
        self.data, self.indices, self.labels = data, indices[keep], labels[keep]
        self.by_label = {k: np.flatnonzero(self.labels == k) for k in np.unique(self.labels)}
        self.cfg = cfg
        self.max_crop = min(cfg.max_crop_frames or data.window, data.window)

    def batch(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        classes = list(self.by_label)
        picks = [rng.choice(self.by_label[classes[k]]) for k in rng.integers(0, len(classes), self.cfg.batch_size)]
        crops = []
        for p in picks:
            w = self.data.windows[int(self.indices[p])]
            n = int(self.data.lengths[int(self.indices[p])])
            c = int(rng.integers(min(self.cfg.min_crop_frames, n), min(self.max_crop, n) + 1))
            s = int(rng.integers(0, n - c + 1))
            crops.append(np.asarray(w[s:s + c], np.float32))
        x, mask = pad_motions(crops)
        return x, mask, self.labels[picks]


def train_evaluator(data: MotionDataset, cfg: EvaluatorTrainConfig | None = None,
                    out: str | os.PathLike[str] | None = None, progress: bool = True) -> Any:
    """Train the motion feature extractor on the training windows of ``data``.

    Returns the trained :class:`MotionEvaluator` (eval mode); with ``out``, also writes the
    checkpoint ``<out>`` (rebuildable with :func:`load_evaluator`) including its accuracy on the
    held-out (val + test) windows.
    """
    import torch
    import torch.nn.functional as F
    from tqdm.auto import tqdm

    from ramos.motion.nets.evaluator import MotionEvaluator
    from ramos.motion.nets.motion import feature_stats

    cfg = cfg or EvaluatorTrainConfig()
    train = data.split_indices("train")
    sampler = _CropSampler(data, train, cfg)
    if len(sampler.by_label) < 2:
        raise ValueError(f"{data.path}: the evaluator needs training windows of at least 2 labels")
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    # Standardisation statistics from a subsample of the training windows (cheap, and plenty),
    # turned like the training crops: statistics of unturned data would give near-zero stds to
    # directions the data never moves in, and turned crops would then blow those features up.
    sub = rng.choice(sampler.indices, min(256, len(sampler.indices)), replace=False)
    w = torch.from_numpy(np.asarray(data.windows[np.sort(sub)], np.float32))
    w = _yaw_rotate(w, torch.from_numpy(rng.uniform(-1, 1, len(w)) * math.radians(cfg.yaw_deg)).float())
    lengths = torch.from_numpy(data.lengths[np.sort(sub)].astype(np.int64))
    mean, std = feature_stats(w, torch.arange(w.shape[1])[None] < lengths[:, None],
                              data.skeleton.root, data.skeleton.up_axis, "velocity")
    net = MotionEvaluator(data.skeleton.num_joints, len(data.labels), cfg.channels, cfg.depth, cfg.feature_dim,
                          stride=cfg.stride, dropout=cfg.dropout, root=data.skeleton.root, up_axis=data.skeleton.up_axis,
                          feature_mean=mean, feature_std=std)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.1)
    net.train()
    losses: list[float] = []
    bar = tqdm(range(cfg.steps), desc="train evaluator", disable=not progress or None, dynamic_ncols=True)
    for _ in bar:
        x, mask, y = sampler.batch(rng)
        x_t = _yaw_rotate(torch.from_numpy(x), torch.from_numpy(rng.uniform(-1, 1, len(x)) * math.radians(cfg.yaw_deg)).float())
        loss = F.cross_entropy(net(x_t, torch.from_numpy(mask)), torch.from_numpy(y).long())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
    net.eval()
    held = np.concatenate([data.split_indices("val"), data.split_indices("test")])
    held = np.array([i for i in held if data.label_id(int(i)) >= 0], dtype=np.int64)
    info: dict[str, Any] = {"first_loss": float(np.mean(losses[:20])), "last_loss": float(np.mean(losses[-20:])),
                            "steps": cfg.steps, "config": asdict(cfg), "heldout_windows": int(len(held))}
    if len(held):
        motions = [np.asarray(data.windows[int(i)][: int(data.lengths[int(i)])]) for i in held]
        pred = classify(net, motions)
        info["heldout_accuracy"] = float((pred == np.array([data.label_id(int(i)) for i in held])).mean())
        info["heldout_seconds"] = float(data.lengths[held].sum() / data.fps)
    if out is not None:
        save_evaluator(net, list(data.labels), info, out)
    net.train_info = info  # type: ignore[attr-defined]
    return net


def save_evaluator(net: Any, class_names: list[str], info: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write the evaluator checkpoint (spec + weights + class names + training facts) atomically."""
    import torch

    from ramos.utils.atomic import atomic_path
    from ramos.utils.spec import spec_of

    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save({"ramos_specs": {"net": spec_of(net)}, "state_dict": net.state_dict(),
                    "class_names": list(class_names), "train_info": json.loads(json.dumps(info))}, tmp)
    return path


def load_evaluator(path: str | os.PathLike[str]) -> tuple[Any, list[str], dict[str, Any]]:
    """(network in eval mode, class names, training facts) of an evaluator checkpoint."""
    from ramos.utils.checkpoint import CheckpointError, load_checkpoint
    from ramos.utils.spec import build
    from ramos.utils.training import read_specs

    ckpt = load_checkpoint(path)
    specs = read_specs(ckpt, str(path), "net")
    if "class_names" not in ckpt or not str(specs["net"].get("class_path", "")).endswith(".MotionEvaluator"):
        raise CheckpointError(f"{path}: not a motion evaluator checkpoint")
    net = build(specs["net"])
    net.load_state_dict(ckpt["state_dict"])
    return net.eval().requires_grad_(False), list(ckpt["class_names"]), dict(ckpt.get("train_info", {}))


def _batched(net: Any, motions: Sequence[np.ndarray], fn: str, batch_size: int = 64) -> np.ndarray:
    import torch

    out = []
    with torch.no_grad():
        # Similar lengths share a batch, so little compute goes to padding.
        order = np.argsort([len(m) for m in motions], kind="stable")
        for a in range(0, len(order), batch_size):
            idx = order[a:a + batch_size]
            x, mask = pad_motions([motions[i] for i in idx])
            out.append(getattr(net, fn)(torch.from_numpy(x), torch.from_numpy(mask)).numpy())
    res = np.concatenate(out)
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    return res[inverse]


def motion_features(net: Any, motions: Sequence[np.ndarray], batch_size: int = 64) -> np.ndarray:
    """Evaluator features (N, D) of motions (T_i, J, 3) over their whole length."""
    return _batched(net, motions, "features", batch_size)


def classify(net: Any, motions: Sequence[np.ndarray], batch_size: int = 64) -> np.ndarray:
    """Predicted label ids (N,) of motions (T_i, J, 3)."""
    return _batched(net, motions, "forward", batch_size).argmax(1)


# --- metrics of one set of motions --------------------------------------------------------------
def physics(motions: Sequence[np.ndarray], skeleton: Skeleton, fps: float) -> dict[str, float]:
    """Evaluator-free metrics pooled over the valid frames of ``motions`` (T_i, J, 3)."""
    x, mask = pad_motions(motions)
    speed = M.root_speed(x, skeleton, fps, mask)
    return {
        "foot_skating": M.foot_skating_ratio(x, skeleton, fps, mask),
        "jitter": M.jitter(x, fps, mask),
        "bone_std": M.bone_length_std(x, skeleton, mask),
        "floor_penetration": M.floor_penetration(x, skeleton, mask),
        "root_speed_mean": float(speed.mean()) if speed.size else float("nan"),
        "root_speed_p90": float(np.percentile(speed, 90)) if speed.size else float("nan"),
    }


def root_speeds(motions: Sequence[np.ndarray], skeleton: Skeleton, fps: float) -> np.ndarray:
    """Horizontal root speeds (m/s) of every valid frame pair of ``motions`` (T_i, J, 3)."""
    x, mask = pad_motions(motions)
    return M.root_speed(x, skeleton, fps, mask)


def root_speed_distance(motions: Sequence[np.ndarray], reference: Sequence[np.ndarray], skeleton: Skeleton,
                        fps: float) -> float:
    """Wasserstein-1 distance (m/s) between the root speed distributions of two motion sets."""
    from scipy.stats import wasserstein_distance

    a, b = root_speeds(motions, skeleton, fps), root_speeds(reference, skeleton, fps)
    return float(wasserstein_distance(a, b)) if a.size and b.size else float("nan")


def score_set(motions: Sequence[np.ndarray], labels: np.ndarray, feats: np.ndarray, predicted: np.ndarray,
              reference: Sequence[np.ndarray], reference_labels: np.ndarray, reference_feats: np.ndarray,
              class_names: Sequence[str], skeleton: Skeleton, fps: float) -> dict[str, Any]:
    """All metrics of one set of motions (generated, or real half A) against the real reference.

    ``labels`` are the labels asked (ids), ``feats`` the motions' evaluator features and
    ``predicted`` the evaluator's label ids for them; ``reference`` (real half B) with its labels
    and features is what FID and the root speed distances compare against.
    """
    overall: dict[str, Any] = {
        "n": int(len(motions)),
        "fid": M.frechet_distance(feats, reference_feats),
        "diversity": M.diversity(feats),
        "multimodality": M.multimodality(feats, labels),
        "accuracy": float((predicted == labels).mean()),
        **physics(motions, skeleton, fps),
        "root_speed_w1": root_speed_distance(motions, reference, skeleton, fps),
    }
    per_label: dict[str, Any] = {}
    for k in np.unique(labels):
        sel = np.flatnonzero(labels == k)
        ms = [motions[i] for i in sel]
        ref = [reference[i] for i in np.flatnonzero(reference_labels == k)]
        per_label[class_names[int(k)]] = {
            "n": int(len(sel)),
            "accuracy": float((predicted[sel] == k).mean()),
            "multimodality": M.multimodality(feats[sel], labels[sel]),
            **physics(ms, skeleton, fps),
            "root_speed_w1": root_speed_distance(ms, ref, skeleton, fps) if ref else float("nan"),
        }
    return {"overall": overall, "per_label": per_label}


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
PLANTED = "latent, planted feet"
"""Row name of the latent model's motions after :func:`ramos.motion.postprocess.plant_feet`."""


def checkpoint_generator(path: str | os.PathLike[str], class_names: Sequence[str],
                         cfg: EvaluationConfig) -> Generator:
    """A :data:`Generator` for a diffusion checkpoint: the raw-space baseline or the latent model
    (its decoder's output as it is, no clean-up).

    ``class_names`` is the data set's label vocabulary; requests use its ids.
    """
    from ramos.motion.baseline import is_raw_baseline, load_raw_baseline, sample_raw_baseline

    if is_raw_baseline(path):
        module = load_raw_baseline(path)
        own = list(module.hparams.class_names or [])
        lookup = _label_lookup(path, class_names, own)

        def raw(labels: Sequence[int], lengths: Sequence[int], seed: int) -> list[np.ndarray]:
            return sample_raw_baseline(module, [lookup[int(k)] for k in labels], lengths, cfg.steps, cfg.sampler,
                                       cfg.guidance, seed)

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

    return {"latent": latent, PLANTED: functools.partial(latent, plant_feet=True)}


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


# --- the report ---------------------------------------------------------------------------------
# Targets of the issue: (metric, comparison, factor) against the real row; "acc" is absolute.
TARGETS: tuple[tuple[str, str], ...] = (
    ("accuracy", "recognition accuracy >= 0.90"),
    ("fid", "FID <= 2 x real floor"),
    ("foot_skating", "foot skating <= 1.5 x real"),
    ("jitter", "jitter <= 1.5 x real"),
)


def check_targets(results: dict[str, Any], model: str) -> dict[str, bool]:
    """Whether ``model`` meets each quality target of :data:`TARGETS` (against the real row)."""
    got, real = results["models"][model]["overall"], results["models"][REAL]["overall"]
    return {
        "accuracy": got["accuracy"] >= 0.90,
        "fid": got["fid"] <= 2.0 * real["fid"],
        # A real value of 0 (no skating at all) would make any skating fail: compare with a tiny floor.
        "foot_skating": got["foot_skating"] <= 1.5 * max(real["foot_skating"], 1e-3),
        "jitter": got["jitter"] <= 1.5 * real["jitter"],
    }


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    if isinstance(v, float):
        return f"{v:.{digits}g}" if abs(v) < 1000 else f"{v:.0f}"
    return str(v)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


_OVERALL = (("n", "motions"), ("fid", "FID"), ("diversity", "diversity"), ("multimodality", "multimodality"),
            ("accuracy", "recognition acc."), ("foot_skating", "foot skating"), ("jitter", "jitter (m/s^3)"),
            ("bone_std", "bone-length std (m)"), ("floor_penetration", "floor penetration (m)"),
            ("root_speed_mean", "root speed mean (m/s)"), ("root_speed_w1", "root speed W1 (m/s)"),
            ("seconds_per_motion", "s / motion (batched)"))
_PER_LABEL = (("n", "n"), ("accuracy", "acc."), ("multimodality", "MModality"), ("foot_skating", "skating"),
              ("jitter", "jitter"), ("bone_std", "bone std"), ("root_speed_mean", "root speed"),
              ("root_speed_w1", "speed W1"))


def render_markdown(results: dict[str, Any], figures: dict[str, str]) -> str:
    """The text of ``generation.md`` from the results dictionary and the figure file names."""
    models = results["models"]
    ref, held, ev = results["reference"], results["heldout"], results["evaluator"]
    s = results["settings"]
    parts = [
        "# Generated motions: evaluation",
        "",
        f"Data set: `{results['dataset']}`. Sampling: {s['sampler']}, {s['steps']} steps, guidance {s['guidance']}, "
        f"seed {s['seed']}. Definitions: docs/evaluation.md.",
        "",
        "## Sample sizes (read before the numbers)",
        "",
        f"- Real reference: **{ref['split']}** split. {ref['why'].rstrip('.')}.",
        f"- Real half A: {ref['windows_a']} windows ({ref['seconds_a']:.1f} s); real half B (FID reference): "
        f"{ref['windows_b']} windows ({ref['seconds_b']:.1f} s). Every model generated one motion per window of A "
        "(same label, same length).",
        f"- Held-out (val + test) windows: {held.get('windows', 0)} "
        + (f"({held['seconds']:.1f} s, median {held['median_frames']:.0f} frames each)." if held.get("windows") else "."),
        f"- Labels evaluated: {len(results['labels'])}"
        + (f"; skipped: {', '.join(f'{k} ({v})' for k, v in ref['skipped_labels'].items())}." if ref["skipped_labels"] else "."),
        f"- Feature extractor: trained in this project (no pretrained evaluator exists for this data), "
        f"{ev.get('feature_dim', (ev.get('config') or {}).get('feature_dim', '?'))}-d features; accuracy on held-out "
        f"windows {_fmt(ev.get('heldout_accuracy'))} ({ev.get('heldout_windows', 0)} windows). FID on "
        f"{ref['windows_a']} motions in that feature space is a noisy estimate: compare models with each other "
        "and with the real floor, not with published HumanML3D figures.",
        "",
        "## All metrics",
        "",
        "The `real` row is real half A scored exactly like a model: its FID against half B is the floor."
        + (f" `{PLANTED}` is the `latent` row's motions (same seeds) after the foot clean-up that `ramos generate`"
           " applies by default (the body shifted so the stance foot does not slide; pose untouched,"
           " docs/evaluation.md); `latent` is the decoder's output as it is." if PLANTED in models else ""),
        "",
        _table(["model", *(t for _, t in _OVERALL)],
               [[name, *(m["overall"].get(k) for k, _ in _OVERALL)] for name, m in models.items()]),
        "",
    ]
    gen_models = [n for n in models if n != REAL]
    if gen_models:
        parts += ["## Targets", "", _table(["model", *(t for _, t in TARGETS)],
                                           [[n, *("pass" if v else "FAIL" for v in check_targets(results, n).values())]
                                            for n in gen_models]), ""]
        real = models[REAL]["overall"]
        parts += ["Ratios to real: " + "; ".join(
            f"{n}: FID {_fmt(models[n]['overall']['fid'] / real['fid'] if real['fid'] else float('nan'))}x, "
            f"skating {_fmt(models[n]['overall']['foot_skating'] / max(real['foot_skating'], 1e-3))}x, "
            f"jitter {_fmt(models[n]['overall']['jitter'] / real['jitter'])}x" for n in gen_models), ""]
    if held.get("windows"):
        parts += ["## Held-out real windows (physics floor on unseen data)", "",
                  _table(["windows", "seconds", "evaluator acc.", "foot skating", "jitter (m/s^3)", "bone std (m)",
                          "floor pen. (m)", "root speed (m/s)"],
                         [[held["windows"], held["seconds"], held["accuracy"], held["foot_skating"], held["jitter"],
                           held["bone_std"], held["floor_penetration"], held["root_speed_mean"]]]), ""]
    parts += ["## Per label", ""]
    for name, m in models.items():
        parts += [f"### {name}", "", _table(["label", *(t for _, t in _PER_LABEL)],
                                          [[lab, *(v.get(k) for k, _ in _PER_LABEL)] for lab, v in m["per_label"].items()]), ""]
    parts += ["## Figures", ""]
    for title, fname in figures.items():
        parts += [f"**{title}**", "", f"![{title}]({fname})", ""]
    return "\n".join(parts)


def write_report(results: dict[str, Any], sets: dict[str, list[np.ndarray]], labels_a: np.ndarray,
                 real_b: list[np.ndarray], labels_b: np.ndarray, data: MotionDataset, out: Path,
                 cfg: EvaluationConfig) -> None:
    """Write the figures, ``generation.json`` and ``generation.md`` into ``out``."""
    from ramos.motion.render import render_grid
    from ramos.utils.atomic import write_json, write_text

    figures: dict[str, str] = {}
    sheet = cfg.sheet_labels or results["labels"]
    for name, motions in sets.items():
        rows, titles = [], []
        for lab in sheet:
            where = np.flatnonzero(labels_a == data.labels.index(lab)) if lab in data.labels else []
            if len(where):
                rows.append(motions[int(where[0])])
                titles.append(lab)
        if rows:
            fname = f"samples_{_slug(name)}.png"
            render_grid(rows, data.skeleton, out / fname, titles=titles, n_frames=6, panel_px=110)
            figures[f"Contact sheet: {name} (one motion per label, 6 frames over its length)"] = fname
    real_all = list(sets[REAL]) + list(real_b)
    lab_all = np.concatenate([labels_a, labels_b])
    _speed_figure(sets, labels_a, real_all, lab_all, data, out / "root_speed.png")
    figures["Root speed distribution per label (real = halves A and B)"] = "root_speed.png"
    results["figures"] = figures
    write_json(out / "generation.json", results)
    write_text(out / "generation.md", render_markdown(results, figures))


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name.lower()).strip("_")


def _speed_figure(sets: dict[str, list[np.ndarray]], labels_a: np.ndarray, real_all: list[np.ndarray],
                  labels_real: np.ndarray, data: MotionDataset, path: Path) -> None:
    """Histograms of horizontal root speed per label: real against every model."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from ramos.utils.atomic import atomic_path

    ids = sorted(set(labels_a.tolist()))
    cols = min(6, len(ids))
    rows = math.ceil(len(ids) / cols)
    fig = Figure(figsize=(2.6 * cols, 2.1 * rows + 0.4), dpi=80)
    FigureCanvasAgg(fig)
    colours = ["#555555", "#1f5fd6", "#d62728", "#2ca02c", "#9467bd"]
    for p, k in enumerate(ids):
        ax = fig.add_subplot(rows, cols, p + 1)
        real = root_speeds([m for m, lab in zip(real_all, labels_real) if lab == k], data.skeleton, data.fps)
        series = {REAL: real, **{n: root_speeds([m for m, lab in zip(ms, labels_a) if lab == k], data.skeleton, data.fps)
                                 for n, ms in sets.items() if n != REAL}}
        top = max(0.5, max((np.percentile(v, 99) for v in series.values() if v.size), default=0.5))
        bins = np.linspace(0, top, 25)
        for c, (name, v) in enumerate(series.items()):
            if v.size:
                ax.hist(np.clip(v, 0, top), bins=bins, density=True, histtype="step" if name != REAL else "stepfilled",
                        alpha=0.35 if name == REAL else 1.0, color=colours[c % len(colours)], label=name, lw=1.4)
        ax.set_title(data.labels[k], fontsize=9)
        ax.tick_params(labelsize=7)
        ax.set_yticks([])
    fig.axes[0].legend(fontsize=7, loc="upper right")
    fig.supxlabel("horizontal root speed (m/s)", fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", facecolor="white")
