"""The text-motion retrieval model of ``ramos evaluate`` and the text-to-motion metrics of the field.

Training: contrastive (InfoNCE / CLIP, as TMR and Guo et al.) on random crops of captioned
training windows, one of each window's captions drawn per step, with a learned temperature.
Captions of one window are not negatives for another window that has the same caption (the
augmented copies of one clip share its captions): those logits are masked out.

Metrics (definitions: docs/evaluation.md), on features of :class:`TextMotionRetrieval`; every
distance is Euclidean between L2-normalised embeddings:

- :func:`r_precision`: each motion ranks its own caption among ``pool`` (itself + ``pool - 1``
  other motions' captions of other text, none of them a caption of this motion), top-k hit rates;
- :func:`mm_dist`: mean distance between a motion and its own caption;
- :func:`fid`, :func:`diversity`: on the motion embeddings (the project's FID and diversity code);
- :func:`multimodality`: mean distance between motions generated for one prompt;
- :func:`repeated`: mean and 95% confidence interval over repeated draws (the field: 20 repeats,
  mean +- 1.96 std / sqrt(20)).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ramos.motion import metrics as M
from ramos.motion.dataset import MotionDataset
from ramos.motion.preprocess import pad_motions
from ramos.motion.text import ENCODER, PromptTable, TextEncoder, prompt_table
from ramos.stages.evaluation.evaluator import _batched, _yaw_rotate


@dataclass
class RetrievalTrainConfig:
    """The text-motion retrieval model and how it is trained.

    Attributes:
        embed_dim: size of the shared space. 64, not TMR's 256: FID is computed in this space on a
            few hundred motions, and a covariance of 256 dimensions would be singular at that size.
        channels, depth, stride: the motion backbone (as the label evaluator's, a little wider).
        text_hidden: hidden width of the text MLP.
        dropout: dropout in both encoders.
        temperature: initial softmax temperature (learned; TMR and CLIP start near 0.07-0.1).
        steps, batch_size, lr, weight_decay: AdamW with one-cycle learning rate. Training is counted
            in steps, not epochs, so the cost does not grow with the data set (600 x 64 takes about
            30 s on 2 CPU cores).
        min_crop_frames, min_crop_fraction: each training crop is at least this many frames and this
            share of its window (a caption describes the whole motion: a crop much shorter than the
            window may no longer show what it says).
        yaw_deg: random turn of each crop about the vertical (+-), so embeddings ignore heading.
        seed: seed of weights, crops and captions.
    """

    embed_dim: int = 64
    channels: int = 64
    depth: int = 3
    stride: int = 4
    text_hidden: int = 256
    dropout: float = 0.1
    temperature: float = 0.1
    steps: int = 600
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    min_crop_frames: int = 8
    min_crop_fraction: float = 0.5
    yaw_deg: float = 180.0
    seed: int = 0


# --- captions of a data set --------------------------------------------------------------------------
def window_captions(meta: dict[str, Any]) -> list[str]:
    """The captions of one window (meta.jsonl entry), whitespace-normalised, without duplicates."""
    return list(dict.fromkeys(" ".join(c.split()) for c in meta.get("captions") or []
                              if isinstance(c, str) and c.strip()))


def has_captions(data: MotionDataset) -> bool:
    """Whether any window of ``data`` has a caption (the text metrics need captions)."""
    return any(window_captions(m) for m in data.meta)


def caption_options(data: MotionDataset, table: PromptTable) -> list[list[int]]:
    """Per window, the indices into ``table.texts`` of its captions (labels read as text left out:
    the metrics rank captions)."""
    index = {t: i for i, t in enumerate(table.texts)}
    return [[index[c] for c in window_captions(m)] for m in data.meta]


def captions_fingerprint(data: MotionDataset) -> str:
    """A short hash of the data set's distinct captions: a cached retrieval model is reused only for the same ones."""
    texts = sorted({c for m in data.meta for c in window_captions(m)})
    return hashlib.sha1("\n".join(texts).encode("utf-8")).hexdigest()[:16]


# --- training ---------------------------------------------------------------------------------------------
class _CaptionSampler:
    """Random crops of captioned windows, one caption each, and which captions describe which crop."""

    def __init__(self, data: MotionDataset, indices: np.ndarray, options: list[list[int]],
                 cfg: RetrievalTrainConfig) -> None:
        self.data, self.cfg = data, cfg
        self.indices = np.array([i for i in indices if options[int(i)]], dtype=np.int64)
        self.options = [options[int(i)] for i in self.indices]
        self.sets = [set(o) for o in self.options]

    def batch(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(crops (B, T, J, 3), mask (B, T), caption ids (B,), described (B, B): caption j describes crop i)."""
        b = self.cfg.batch_size
        picks = rng.choice(len(self.indices), b, replace=len(self.indices) < b)
        crops, texts = [], []
        for p in picks:
            i = int(self.indices[p])
            n = int(self.data.lengths[i])
            lo = min(n, max(self.cfg.min_crop_frames, math.ceil(self.cfg.min_crop_fraction * n)))
            c = int(rng.integers(lo, n + 1))
            s = int(rng.integers(0, n - c + 1))
            crops.append(np.asarray(self.data.windows[i][s:s + c], np.float32))
            texts.append(self.options[p][int(rng.integers(len(self.options[p])))])
        x, mask = pad_motions(crops)
        described = np.array([[t in self.sets[p] for t in texts] for p in picks])
        return x, mask, np.array(texts, np.int64), described


def contrastive_loss(motion: Any, text: Any, scale: Any, described: Any | None = None) -> Any:
    """Symmetric InfoNCE over a batch of matched (motion, text) unit embeddings (B, D) (torch).

    ``described`` (B, B) bool marks text j as a true description of motion i; those pairs off the
    diagonal are false negatives and are left out of both softmaxes.
    """
    import torch
    import torch.nn.functional as F

    logits = scale * motion @ text.T
    target = torch.arange(len(logits), device=logits.device)
    if described is not None:
        off = described & ~torch.eye(len(logits), dtype=torch.bool, device=logits.device)
        m2t, t2m = logits.masked_fill(off, float("-inf")), logits.T.masked_fill(off.T, float("-inf"))
    else:
        m2t, t2m = logits, logits.T
    return 0.5 * (F.cross_entropy(m2t, target) + F.cross_entropy(t2m, target))


def train_retrieval(data: MotionDataset, cfg: RetrievalTrainConfig | None = None,
                    out: str | os.PathLike[str] | None = None, encoder: TextEncoder | None = None,
                    progress: bool = True) -> Any:
    """Train the text-motion retrieval model on the captioned training windows of ``data``.

    ``encoder`` embeds the captions (default: the project's sentence encoder, via the data set's
    cached prompt table). Returns the :class:`TextMotionRetrieval` in eval mode, with its training
    facts in ``train_info`` (including real-motion R-precision on the held-out captioned windows);
    with ``out``, also writes the checkpoint (:func:`load_retrieval`).
    """
    import torch
    from tqdm.auto import tqdm

    from ramos.motion.nets.motion import feature_stats
    from ramos.motion.nets.retrieval import TextMotionRetrieval

    cfg = cfg or RetrievalTrainConfig()
    start_time = time.perf_counter()
    table = prompt_table(data, encoder)
    options = caption_options(data, table)
    sampler = _CaptionSampler(data, data.split_indices("train"), options, cfg)
    distinct = {t for o in sampler.options for t in o}
    if len(distinct) < 2:
        raise ValueError(f"{data.path}: the retrieval model needs training windows with at least 2 distinct captions")
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    # Standardisation statistics of turned training windows (why turned: see train_evaluator).
    sub = np.sort(rng.choice(sampler.indices, min(256, len(sampler.indices)), replace=False))
    w = torch.from_numpy(np.asarray(data.windows[sub], np.float32))
    w = _yaw_rotate(w, torch.from_numpy(rng.uniform(-1, 1, len(w)) * math.radians(cfg.yaw_deg)).float())
    lengths = torch.from_numpy(data.lengths[sub].astype(np.int64))
    mean, std = feature_stats(w, torch.arange(w.shape[1])[None] < lengths[:, None],
                              data.skeleton.root, data.skeleton.up_axis)
    net = TextMotionRetrieval(data.skeleton.num_joints, int(table.embeddings.shape[1]), cfg.embed_dim, cfg.channels,
                              cfg.depth, stride=cfg.stride, text_hidden=cfg.text_hidden, dropout=cfg.dropout,
                              temperature=cfg.temperature, root=data.skeleton.root, up_axis=data.skeleton.up_axis,
                              feature_mean=mean, feature_std=std)
    text_emb = torch.from_numpy(table.embeddings)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.1)
    net.train()
    losses: list[float] = []
    bar = tqdm(range(cfg.steps), desc="train retrieval", disable=not progress or None, dynamic_ncols=True)
    for _ in bar:
        x, mask, texts, described = sampler.batch(rng)
        yaw = torch.from_numpy(rng.uniform(-1, 1, len(x)) * math.radians(cfg.yaw_deg)).float()
        zm, zt = net(_yaw_rotate(torch.from_numpy(x), yaw), torch.from_numpy(mask), text_emb[torch.from_numpy(texts)])
        loss = contrastive_loss(zm, zt, net.scale, torch.from_numpy(described))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
    net.eval().requires_grad_(False)
    info: dict[str, Any] = {
        "encoder": ENCODER, "captions": captions_fingerprint(data), "config": asdict(cfg), "steps": cfg.steps,
        "first_loss": float(np.mean(losses[:20])), "last_loss": float(np.mean(losses[-20:])),
        "temperature": float(1.0 / net.scale), "train_windows": len(sampler.indices),
        "train_captions": len(distinct), "train_seconds": time.perf_counter() - start_time,
    }
    held = np.concatenate([data.split_indices("val"), data.split_indices("test")])
    info["heldout"] = real_retrieval_scores(net, data, held, table, options, seed=cfg.seed)
    if out is not None:
        save_retrieval(net, info, out)
    net.train_info = info  # type: ignore[attr-defined]
    return net


def real_retrieval_scores(net: Any, data: MotionDataset, indices: np.ndarray, table: PromptTable,
                          options: list[list[int]], pool: int = 32, times: int = 20, seed: int = 0) -> dict[str, Any]:
    """R-precision top-1/2/3 and MM-Dist (mean and 95% CI over ``times`` caption draws) of real windows
    ``indices`` against their own captions; ``{"windows": n}`` alone when fewer than two distinct captions."""
    idx = np.array([i for i in indices if options[int(i)]], dtype=np.int64)
    distinct = len({t for i in idx for t in options[int(i)]})
    if distinct < 2 or distinct <= max(len(options[int(i)]) for i in idx):
        return {"windows": len(idx)}  # no caption of another motion to rank against
    motions = [np.asarray(data.windows[int(i)][: int(data.lengths[int(i)])], np.float32) for i in idx]
    feats = embed_motions(net, motions)
    text_feats = embed_texts(net, table.embeddings)
    own = [options[int(i)] for i in idx]

    def draw(r: int) -> np.ndarray:
        rng = np.random.default_rng([seed, r])
        ids = np.array([options[int(i)][int(rng.integers(len(options[int(i)])))] for i in idx])
        return np.concatenate([r_precision(feats, text_feats[ids], pool, text_ids=ids, exclude=own, seed=r),
                               [mm_dist(feats, text_feats[ids])]])

    mean, ci = repeated(draw, times)
    return {"windows": len(idx), "seconds": float(data.lengths[idx].sum() / data.fps),
            "pool": min(pool, distinct + 1 - max(len(o) for o in own)),
            **{f"top{k}": float(mean[k - 1]) for k in (1, 2, 3)}, **{f"top{k}_ci95": float(ci[k - 1]) for k in (1, 2, 3)},
            "mm_dist": float(mean[3]), "mm_dist_ci95": float(ci[3])}


# --- checkpoint ---------------------------------------------------------------------------------------
def save_retrieval(net: Any, info: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write the retrieval checkpoint (spec + weights + sentence encoder name + training facts) atomically."""
    import torch

    from ramos.utils.atomic import atomic_path
    from ramos.utils.spec import spec_of

    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save({"ramos_specs": {"net": spec_of(net)}, "state_dict": net.state_dict(), "encoder": ENCODER,
                    "train_info": json.loads(json.dumps(info))}, tmp)
    return path


def load_retrieval(path: str | os.PathLike[str]) -> tuple[Any, dict[str, Any]]:
    """(network in eval mode, training facts) of a retrieval checkpoint (loaded with ``weights_only``)."""
    from ramos.utils.checkpoint import CheckpointError, load_checkpoint
    from ramos.utils.spec import build
    from ramos.utils.training import read_specs

    ckpt = load_checkpoint(path)
    specs = read_specs(ckpt, str(path), "net")
    if not str(specs["net"].get("class_path", "")).endswith(".TextMotionRetrieval"):
        raise CheckpointError(f"{path}: not a text-motion retrieval checkpoint")
    if ckpt.get("encoder") != ENCODER:
        raise CheckpointError(f"{path}: trained on {ckpt.get('encoder')!r} sentence embeddings, not {ENCODER!r}")
    net = build(specs["net"])
    net.load_state_dict(ckpt["state_dict"])
    return net.eval().requires_grad_(False), dict(ckpt.get("train_info", {}))


# --- features -----------------------------------------------------------------------------------------
def embed_motions(net: Any, motions: Sequence[np.ndarray], batch_size: int = 64) -> np.ndarray:
    """Unit motion embeddings (N, D) of motions (T_i, J, 3) metres over their whole length."""
    return _batched(net, motions, "encode_motion", batch_size)


def embed_texts(net: Any, sentence_embeddings: np.ndarray) -> np.ndarray:
    """Unit text embeddings (N, D) of sentence embeddings (N, 384)."""
    import torch

    with torch.no_grad():
        return net.encode_text(torch.from_numpy(np.asarray(sentence_embeddings, np.float32))).numpy()


# --- metrics --------------------------------------------------------------------------------------------
def pairwise_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances (N, M) between rows of ``a`` (N, D) and ``b`` (M, D)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None] - 2.0 * a @ b.T
    return np.sqrt(np.maximum(sq, 0.0))


def r_precision(motion_feats: np.ndarray, text_feats: np.ndarray, pool: int = 32, top: Sequence[int] = (1, 2, 3),
                text_ids: Sequence[int] | None = None, exclude: Sequence[Sequence[int]] | None = None,
                seed: int = 0) -> np.ndarray:
    """Top-k retrieval rates (len(top),): each motion i ranks its own caption ``text_feats[i]`` among ``pool``.

    The pool is the own caption plus ``pool - 1`` captions of other motions of the set, drawn at
    random without replacement among those of another text (``text_ids``: equal ids are the same
    caption; default: every row its own), each text once, a text as likely as the motions carrying
    it. ``exclude[i]`` lists further text ids that are no distractors for motion i: its other
    captions, which describe it as well (the augmented windows of one clip share its captions, so
    without this a motion would often compete with its own descriptions). A distractor counts against
    the motion only when strictly closer than the own caption. With fewer candidate texts than
    ``pool - 1``, the pool is all of them.
    """
    m, t = np.asarray(motion_feats, np.float64), np.asarray(text_feats, np.float64)
    if m.shape != t.shape or m.ndim != 2:
        raise ValueError(f"motion and text features must be matching (N, D) arrays, got {m.shape} and {t.shape}")
    if pool < 2:
        raise ValueError(f"pool must be >= 2, got {pool}")
    ids = np.arange(len(m)) if text_ids is None else np.asarray(text_ids)
    uniq, first, inverse, counts = np.unique(ids, return_index=True, return_inverse=True, return_counts=True)
    if len(uniq) < 2:
        raise ValueError("R-precision needs captions of at least 2 distinct texts")
    # Per motion, the distinct texts that may not be drawn: its own and those it excludes.
    where = {u: n for n, u in enumerate(uniq.tolist())}
    if exclude is not None and len(exclude) != len(m):
        raise ValueError(f"exclude has {len(exclude)} entries for {len(m)} motions")
    banned = [np.array(sorted({int(inverse[i])} | ({where[e] for e in exclude[i] if e in where} if exclude is not None else set())))
              for i in range(len(m))]
    k = min(pool - 1, len(uniq) - max(len(b) for b in banned))
    if k < 1:
        raise ValueError("R-precision needs, for every motion, at least one caption of another text")
    rng = np.random.default_rng(seed)
    own = np.linalg.norm(m - t, axis=1)
    hits = np.zeros(len(top))
    tops = np.asarray(top)
    for a in range(0, len(m), 256):  # rows in chunks: (chunk, distinct texts) matrices stay small
        rows = np.arange(a, min(a + 256, len(m)))
        # Distractor texts drawn with probability proportional to how many motions carry them, without
        # replacement (Efraimidis-Spirakis keys): the pool is other motions' captions, each text once.
        keys = rng.random((len(rows), len(uniq))) ** (1.0 / counts[None])
        for r, i in enumerate(rows):
            keys[r, banned[i]] = -1.0
        chosen = np.argpartition(-keys, k - 1, axis=1)[:, :k]
        d = pairwise_distances(m[rows], t[first])  # (chunk, distinct texts)
        closer = (np.take_along_axis(d, chosen, 1) < own[rows, None]).sum(1)
        hits += ((closer + 1)[:, None] <= tops[None]).sum(0)
    return hits / len(m)


def mm_dist(motion_feats: np.ndarray, text_feats: np.ndarray) -> float:
    """MM-Dist: mean Euclidean distance between each motion's embedding and its own caption's."""
    return float(np.linalg.norm(np.asarray(motion_feats, np.float64) - np.asarray(text_feats, np.float64), axis=1).mean())


def fid(feats: np.ndarray, reference_feats: np.ndarray) -> float:
    """FID between two sets of motion embeddings (:func:`ramos.motion.metrics.frechet_distance`)."""
    return M.frechet_distance(feats, reference_feats)


def diversity(feats: np.ndarray, pairs: int = 300, seed: int = 0) -> float:
    """Mean distance of ``pairs`` random pairs of motion embeddings (:func:`ramos.motion.metrics.diversity`)."""
    return M.diversity(feats, pairs, seed)


def multimodality(groups: Sequence[np.ndarray], pairs: int = 10, seed: int = 0) -> float:
    """Mean distance between ``pairs`` random pairs of distinct motions within each group (the motions
    made for one prompt, (k, D)), averaged over groups of at least two; nan when there is none."""
    rng = np.random.default_rng(seed)
    per_group = []
    for g in groups:
        g = np.asarray(g, np.float64)
        if len(g) < 2:
            continue
        i = rng.integers(0, len(g), pairs)
        j = (i + rng.integers(1, len(g), pairs)) % len(g)  # any other motion of the group, uniformly
        per_group.append(np.linalg.norm(g[i] - g[j], axis=1).mean())
    return float(np.mean(per_group)) if per_group else float("nan")


def repeated(fn: Callable[[int], float | np.ndarray], times: int = 20) -> tuple[Any, Any]:
    """(mean, 95% confidence interval half-width) of ``fn(r)`` over ``r = 0 .. times - 1``.

    As the field computes it (Guo et al.): 1.96 x the population std / sqrt(times). Works
    element-wise for array-valued ``fn``; floats in, floats out.
    """
    if times < 1:
        raise ValueError(f"times must be >= 1, got {times}")
    values = np.asarray([fn(r) for r in range(times)], np.float64)
    mean, ci = values.mean(0), 1.96 * values.std(0) / math.sqrt(times)
    if values.ndim == 1:
        return float(mean), float(ci)
    return mean, ci
