"""The motion feature extractor of ``ramos evaluate``: a label classifier trained on random crops of real windows.

Its penultimate features give FID, diversity and multimodality; its predictions give the
recognition accuracy of generated motions (definitions: docs/evaluation.md). No pretrained
evaluator exists for the user's own data, so RaMoS trains one on the data set's training windows.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ramos.motion.dataset import MotionDataset
from ramos.motion.preprocess import pad_motions


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
                              data.skeleton.root, data.skeleton.up_axis)
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
                            "steps": cfg.steps, "config": asdict(cfg), "heldout_windows": len(held)}
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
