"""The motion VAE stage: config, construction, training and held-out evaluation.

The LightningModule is the generic :class:`ramos.vae.VAEModule`; this module only injects the
motion networks (:mod:`ramos.motion.nets.motion`) and loss (:mod:`ramos.motion.losses`),
adds the held-out motion metrics and TensorBoard renders as a callback, and writes
``<out>/motion_vae.ckpt`` + ``<out>/metrics.json``. ``VAEModule.load(ckpt)`` rebuilds the trained VAE
from the checkpoint alone; it encodes and decodes windows in metres (see docs/motion_vae.md).
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from ramos.motion import metrics as M
from ramos.motion.losses import MaskedMotionLoss
from ramos.motion.nets.motion import (
    BucketedMotionDecoder,
    BucketedMotionEncoder,
    feature_stats,
    init_buckets_from_pca,
)
from ramos.motion.preprocess import crop_window
from ramos.motion.rigid import rest_skeleton
from ramos.motion.skeleton import Skeleton
from ramos.utils.atomic import atomic_path, write_json
from ramos.utils.config import save_config, to_dict
from ramos.utils.training import RunReport, TrainerConfig, save_final_checkpoint
from ramos.vae import VAEModule

log = logging.getLogger(__name__)


# --- configuration ----------------------------------------------------------------------------------
@dataclass
class NetConfig:
    """The length-bucketed encoder/decoder pair (:mod:`ramos.motion.nets.motion`; the flattened MLP,
    convolutional and transformer families it replaced, and their numbers: docs/motion_vae.md).

    Attributes:
        latent_dim: size of the latent vector per window.
        buckets: the longest length (frames) of each length range with its own encoder and decoder,
            ascending, ending at the window; a window uses the first range that holds it.
        residual: width of each range's MLP beside its PCA-initialised linear map (0: linear only).
    """

    latent_dim: int = 256
    buckets: list[int] = field(default_factory=lambda: [16, 48, 200])
    residual: int = 512


@dataclass
class LossConfig:
    """Reconstruction loss weights (see :class:`ramos.motion.losses.MaskedMotionLoss`): sums over the
    valid frames (m^2, (m/frame)^2), averaged over the batch.

    Attributes:
        position_weight: squared joint-position error.
        velocity_weight: squared error of per-frame displacements: reconstructions as smooth as the
            data (jitter, acceleration error).
        foot_contact_weight: reconstructed feet stay put where the input's feet are in contact.
        contact_height_m, contact_speed_m_per_frame: what counts as a foot in contact.
        per_window: each window's sums rescaled to the full window, so short windows (the held-out
            segments) count as much as full ones.
        feature_weight: squared error of the standardised features (unit scale per feature, so the
            pose is not drowned by the root trajectory).
        root_feature_scale: the root's per-frame horizontal displacement is standardised to this
            many units instead of 1, so it weighs ``root_feature_scale**2`` more in the PCA start and
            the feature loss. At 4 the decoded root of full training windows is 3.8 cm from the data
            instead of 9.1 (3.9 cm instead of 13.3 at the last frame), long motions join more smoothly
            (skating at the joins 1.21-1.25x real instead of 1.41-1.60x) and in-betweening misses the
            given frames by 20-22 cm instead of 27-28; but the label FID of the whole pipeline was
            1.36x and 1.87x the floor (planted feet 2.13x, over the 2x target) against 1.29-1.31x,
            so the default stays 1 (docs/motion_vae.md; BENCHMARKS.md, "The motion VAE's root path").
    """

    position_weight: float = 1.0
    velocity_weight: float = 10.0
    foot_contact_weight: float = 5.0
    contact_height_m: float = 0.05
    contact_speed_m_per_frame: float = 0.025
    per_window: bool = True
    feature_weight: float = 1.0
    root_feature_scale: float = 1.0


@dataclass
class OptimConfig:
    """Optimisation and run length. The budget is in optimiser steps, not epochs: an epoch of a
    60-clip set is one step, one of HumanML3D hundreds (docs/motion_vae.md, "Training budgets").

    Attributes:
        batch_size: windows per step.
        lr: AdamW learning rate (cosine decay over ``max_steps``). Training starts at the PCA solution: a
            small step refines it (2e-3 first moves away from it).
        weight_decay: AdamW weight decay.
        kl_weight: weight of the KL term after warm-up (relative to the summed squared error in m^2).
        kl_warmup_steps: steps of linear KL warm-up.
        max_steps: optimiser steps of the run, whatever the data size (1,500: the 1,472 steps of the
            former 32 epochs on the embedded set's 3,000 training windows, where the defaults were tuned).
        max_minutes: wall-clock cap on fitting (the run stops early, warns, and still evaluates and saves;
            None: no cap).
        crop_prob: share of training windows cut to a random shorter length each time they are drawn,
            so that the model also learns short, mostly padded windows (the held-out segments are short).
        min_crop_frames: shortest length of such a crop.
        crop_anywhere: crops start at a random frame and are normalised again at it, as held-out
            windows start mid-clip (else: prefixes).
        seed: random seed (weights, shuffling, crops).
        val_every_n_steps: how often the validation loss and the held-out metrics are computed and
            logged (100: 15 points of the validation curve, for the run report's trend).
        render_every_n_steps: how often input-vs-reconstruction strips go to TensorBoard (0: never).
        threads: torch CPU threads (0: leave torch's default). 1: no OpenMP barrier stalls on a
            shared CPU, and the pipeline trains the pose VAE on the other core meanwhile.
    """

    RETIRED: ClassVar[dict[str, str]] = {
        "max_epochs": "the budget is optim.max_steps (optimiser steps, independent of the data size; the "
                      "former default of 32 epochs was 1,472 steps on the embedded set)",
        "val_every_n_epochs": "use optim.val_every_n_steps",
        "render_every_n_epochs": "use optim.render_every_n_steps",
    }
    """Options of earlier versions (epochs, whose length depends on the data size) and what replaced them."""

    batch_size: int = 64
    lr: float = 2e-4
    weight_decay: float = 0.0
    kl_weight: float = 1e-4
    kl_warmup_steps: int = 500
    max_steps: int = 1500
    max_minutes: float | None = 10.0
    crop_prob: float = 0.5
    min_crop_frames: int = 3
    crop_anywhere: bool = True
    seed: int = 0
    val_every_n_steps: int = 100
    render_every_n_steps: int = 500
    threads: int = 1


@dataclass
class MotionVAEConfig:
    """Everything ``ramos train motion-vae`` needs besides the data set and output folder."""

    net: NetConfig = field(default_factory=NetConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)


# --- construction ----------------------------------------------------------------------------------
def build_motion_vae(cfg: MotionVAEConfig, skeleton: Skeleton, window: int,
                     feature_mean: list[float] | None = None, feature_std: list[float] | None = None,
                     rest_offsets: np.ndarray | None = None) -> VAEModule:
    """The generic VAE module with the motion networks and loss of ``cfg`` injected.

    ``rest_offsets`` (J, 3), the training data's rest skeleton (:func:`ramos.motion.rigid.rest_skeleton`),
    ends the decoder in a rigid skeleton (what :func:`train_motion_vae` always does)."""
    n = cfg.net
    common: dict[str, Any] = {"window": window, "num_joints": skeleton.num_joints, "latent_dim": n.latent_dim,
                              "root": skeleton.root, "up_axis": skeleton.up_axis,
                              "feature_mean": feature_mean, "feature_std": feature_std,
                              "buckets": [b for b in n.buckets if b < window] + [window],  # a shorter window caps them
                              "hidden": n.residual}
    rigid = {} if rest_offsets is None else {"skeleton": skeleton.to_dict(),
                                             "rest_offsets": np.asarray(rest_offsets, dtype=float).tolist()}
    encoder, decoder = BucketedMotionEncoder(**common), BucketedMotionDecoder(**common, **rigid)
    lc = cfg.loss
    dim = skeleton.num_joints * 3
    if lc.feature_weight > 0 and feature_std is None:  # untrained/benchmark builds: unit statistics
        feature_mean, feature_std = [0.0] * dim, [1.0] * dim
    loss = MaskedMotionLoss(lc.position_weight, lc.velocity_weight, lc.foot_contact_weight,
                            feet=list(skeleton.feet), up_axis=skeleton.up_axis, contact_height_m=lc.contact_height_m,
                            contact_speed_m_per_frame=lc.contact_speed_m_per_frame,
                            root=skeleton.root, key="motion", per_window=lc.per_window,
                            feature_weight=lc.feature_weight,
                            feature_mean=feature_mean if lc.feature_weight > 0 else None,
                            feature_std=feature_std if lc.feature_weight > 0 else None)
    o = cfg.optim
    return VAEModule(encoder, decoder, loss, kl_weight=o.kl_weight, kl_warmup_steps=o.kl_warmup_steps,
                     lr=o.lr, weight_decay=o.weight_decay, input_key="motion")


# --- data ------------------------------------------------------------------------------------------------
class RandomLengthCrop(Dataset):
    """Wrap a window dataset: with probability ``prob`` an item keeps only a random piece of itself.

    Frames after the new length become padding (mask False, the last pose repeated). With
    ``skeleton`` the piece starts anywhere and is normalised again at its own first frame (root xz
    at the origin, facing +z), as every prepared window is; without it the piece is a prefix. This
    teaches short windows that start mid-motion, which the long looped training windows rarely are
    (the embedded set's held-out windows are the 3-13 last frames of each clip).
    """

    def __init__(self, base: Dataset, prob: float, min_frames: int, seed: int = 0,
                 skeleton: Skeleton | None = None) -> None:
        self.base, self.prob, self.min_frames = base, prob, max(1, min_frames)
        self.skeleton = skeleton
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = dict(self.base[i])
        length = int(item["length"])
        if length > self.min_frames and self.rng.random() < self.prob:
            new = _log_uniform_length(self.rng, self.min_frames, length)
            item["length"] = torch.tensor(new, dtype=torch.long)
            item["mask"] = torch.arange(item["mask"].shape[0]) < new
            if self.skeleton is not None:
                start = int(self.rng.integers(0, length - new + 1))
                item["motion"] = torch.from_numpy(crop_window(item["motion"].numpy(), start, new, self.skeleton))
        return item


def _log_uniform_length(rng: np.random.Generator, low: int, high: int) -> int:
    """A length in [low, high] drawn log-uniformly: short crops as common as long ones."""
    return int(round(math.exp(rng.uniform(math.log(low), math.log(high)))))


def _init_buckets(vae: VAEModule, data: Any, train_idx: np.ndarray, seed: int, per_bucket: int = 3000) -> None:
    """PCA-initialise every bucket of a bucketed VAE from training windows of the bucket's lengths:
    crops starting anywhere (normalised again, as :class:`RandomLengthCrop` makes them) and, for the
    longest bucket, half of them whole prepared windows."""
    rng = np.random.default_rng(seed)
    skeleton, window = data.skeleton, data.window
    lengths = data.lengths[train_idx]
    lo = 0
    for b in vae.encoder.buckets:
        pool = train_idx[lengths > lo]
        if len(pool) == 0:
            break
        xs, ns = [], []
        for i in rng.choice(pool, per_bucket):
            valid = int(data.lengths[i])
            if b == window and rng.random() < 0.5:
                xs.append(np.asarray(data.windows[i], np.float32))
                ns.append(valid)
                continue
            top = min(b, valid)
            n = _log_uniform_length(rng, min(lo + 1, top), top)
            start = int(rng.integers(0, valid - n + 1))
            xs.append(crop_window(np.asarray(data.windows[i]), start, n, skeleton))
            ns.append(n)
        x = torch.from_numpy(np.stack(xs))
        init_buckets_from_pca(vae.encoder, vae.decoder, x, torch.arange(window)[None, :] < torch.tensor(ns)[:, None])
        lo = b


# --- evaluation ------------------------------------------------------------------------------------------
@torch.no_grad()
def reconstruct(vae: VAEModule, windows: np.ndarray, lengths: np.ndarray, batch_size: int = 256,
                progress: bool = False) -> np.ndarray:
    """Posterior-mean reconstructions (N, W, J, 3) metres of ``windows`` with valid ``lengths``."""
    was_training = vae.training
    vae.eval()
    device = next(vae.parameters()).device  # the GPU during a GPU run's validation
    out = np.empty(windows.shape, dtype=np.float32)
    w = windows.shape[1]
    for a in tqdm(range(0, len(windows), batch_size), desc="reconstruct", disable=not progress or None):
        x = torch.as_tensor(np.asarray(windows[a:a + batch_size], dtype=np.float32), device=device)
        mask = torch.arange(w, device=device)[None, :] < torch.as_tensor(lengths[a:a + batch_size],
                                                                        device=device)[:, None]
        mu, _ = vae.encode(x, mask)
        out[a:a + len(x)] = vae.decode(mu, mask).float().cpu().numpy()
    vae.train(was_training)
    return out


def reconstruction_metrics(pred: np.ndarray, gt: np.ndarray, lengths: np.ndarray, skeleton: Skeleton,
                           fps: float) -> dict[str, float]:
    """Held-out metrics of reconstructions (millimetres where the name says so), padding excluded."""
    mask = np.arange(gt.shape[1])[None, :] < lengths[:, None]
    gt_skate = M.foot_skating_ratio(gt, skeleton, fps, mask)
    rec_skate = M.foot_skating_ratio(pred, skeleton, fps, mask)
    return {
        "windows": int(len(gt)),
        "frames": int(mask.sum()),
        "mpjpe_mm": 1000 * M.mpjpe(pred, gt, mask),
        "pa_mpjpe_mm": 1000 * M.pa_mpjpe(pred, gt, mask),
        "accel_error_mps2": M.acceleration_error(pred, gt, fps, mask),
        "foot_skating_ratio": rec_skate,
        "foot_skating_ratio_gt": gt_skate,
        "bone_length_std_mm": 1000 * M.bone_length_std(pred, skeleton, mask),
        "bone_length_std_gt_mm": 1000 * M.bone_length_std(gt, skeleton, mask),
        "jitter_mps3": M.jitter(pred, fps, mask),
        "jitter_gt_mps3": M.jitter(gt, fps, mask),
    }


def evaluate_split(vae: VAEModule, data: Any, split: str, max_windows: int | None = None,
                   seed: int = 0) -> dict[str, float]:
    """:func:`reconstruction_metrics` on a split of a :class:`~ramos.motion.dataset.MotionDataset`
    (a random subset of ``max_windows`` when given)."""
    idx = data.split_indices(split)
    if max_windows is not None and len(idx) > max_windows:
        idx = np.sort(np.random.default_rng(seed).choice(idx, max_windows, replace=False))
    if len(idx) == 0:
        return {"windows": 0}
    gt = np.asarray(data.windows[idx], dtype=np.float32)
    lengths = np.asarray(data.lengths[idx])
    return reconstruction_metrics(reconstruct(vae, gt, lengths), gt, lengths, data.skeleton, data.fps)


class MotionVAEMonitor(L.Callback):
    """Held-out motion metrics (``val/mpjpe_mm``, ...) at every validation, and TensorBoard renders of input
    vs reconstruction every ``render_every_n_steps`` optimiser steps and at the end (0: never)."""

    def __init__(self, data: Any, render_every_n_steps: int = 500, n_render: int = 3) -> None:
        self.data, self.render_every, self.n_render = data, render_every_n_steps, n_render
        self._rendered_at = 0

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        m = evaluate_split(pl_module, self.data, "val")
        pl_module.log_dict({f"val/{k}": float(v) for k, v in m.items() if k not in ("windows", "frames")})
        if self.render_every and trainer.global_step - self._rendered_at >= self.render_every:
            self.render(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.render_every and trainer.global_step > self._rendered_at:
            self.render(trainer, pl_module)

    def render(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Input and reconstruction of a few long training windows as PNG strips in TensorBoard."""
        import imageio.v3 as iio

        from ramos.motion.render import render_grid

        logger = trainer.logger
        if not trainer.is_global_zero or logger is None or not hasattr(logger.experiment, "add_image"):
            return
        idx = render_indices(self.data, self.n_render)
        gt = np.asarray(self.data.windows[idx], dtype=np.float32)
        lengths = np.asarray(self.data.lengths[idx])
        rec = reconstruct(pl_module, gt, lengths)
        motions, titles = [], []
        for k, i in enumerate(idx):
            label = (self.data.meta[i].get("labels") or ["?"])[0]
            motions += [gt[k, : lengths[k]], rec[k, : lengths[k]]]
            titles += [f"{label}: input", f"{label}: reconstruction"]
        self._rendered_at = trainer.global_step
        with atomic_path(Path(trainer.default_root_dir) / "renders" / f"step{trainer.global_step:06d}.png") as p:
            render_grid(motions, self.data.skeleton, p, titles=titles, n_frames=8)
            image = iio.imread(p)[..., :3]
        logger.experiment.add_image("reconstruction", image, trainer.global_step, dataformats="HWC")


def render_indices(data: Any, n: int) -> list[int]:
    """``n`` windows from the training split (deterministic): of distinct labels (of distinct clips where
    windows have no label) and at least half the window long where the data has such windows, then the
    longest of the others (a data set of short clips still gets its renders)."""
    train = [int(i) for i in data.split_indices("train")]
    seen: set[str] = set()
    out: list[int] = []
    for i in train:
        key = (data.meta[i].get("labels") or [f"clip {data.meta[i].get('clip_id')}"])[0]
        if key not in seen and data.lengths[i] >= data.window // 2:
            seen.add(key)
            out.append(i)
        if len(out) == n:
            return out
    rest = sorted((i for i in train if i not in set(out)), key=lambda i: -int(data.lengths[i]))
    return out + rest[: n - len(out)]


# --- training ------------------------------------------------------------------------------------------------
def train_motion_vae(cfg: MotionVAEConfig, dataset_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str],
                     progress: bool = True) -> dict[str, Any]:
    """Fit a motion VAE on a prepared data set; write ``motion_vae.ckpt``, ``metrics.json``, ``config.yaml``
    and TensorBoard logs under ``out_dir``. Returns the metrics dictionary; its ``run`` entry is the
    :class:`~ramos.utils.training.RunReport` (steps, time, data size, and warnings when the run looks cut short)."""
    from lightning.pytorch.loggers import TensorBoardLogger

    from ramos.motion.datamodule import MotionDataModule

    o = cfg.optim
    if o.threads > 0:
        torch.set_num_threads(o.threads)
    L.seed_everything(o.seed, workers=True, verbose=False)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dm = MotionDataModule(dataset_dir, batch_size=o.batch_size, normalized=False, num_workers=0)
    data = dm.dataset
    train_idx = data.split_indices("train")
    if len(train_idx) == 0:
        raise ValueError(f"{dataset_dir}: the data set has no training windows")
    stats_idx = train_idx[np.random.default_rng(o.seed).permutation(len(train_idx))[:2048]]
    sample = torch.as_tensor(np.asarray(data.windows[np.sort(stats_idx)], dtype=np.float32))
    sample_mask = torch.arange(data.window)[None, :] < torch.as_tensor(data.lengths[np.sort(stats_idx)])[:, None]
    mean, std = feature_stats(sample, sample_mask, data.skeleton.root, data.skeleton.up_axis, cfg.loss.root_feature_scale)
    # Decoded motions are forward kinematics of the training data's skeleton (bones never stretch).
    rest = rest_skeleton(sample[sample_mask].numpy(), data.skeleton)
    vae = build_motion_vae(cfg, data.skeleton, data.window, mean, std, rest)
    _init_buckets(vae, data, train_idx, o.seed)

    train_ds = RandomLengthCrop(dm.split("train"), o.crop_prob, o.min_crop_frames, o.seed,
                                data.skeleton if o.crop_anywhere else None)
    train_loader = DataLoader(train_ds, batch_size=o.batch_size, shuffle=True, drop_last=len(train_ds) > o.batch_size)
    val_loader = dm.val_dataloader()
    report = RunReport("motion VAE", len(train_idx), o.batch_size)
    trainer = L.Trainer(
        # Steps, not epochs: the run costs and trains the same whatever the data size (an epoch of a
        # 60-clip set is one step, one of HumanML3D hundreds); validation on a step interval too.
        max_steps=o.max_steps, max_epochs=-1,
        max_time={"minutes": o.max_minutes} if o.max_minutes else None, **cfg.trainer.kwargs(routed=True),
        logger=TensorBoardLogger(str(out), name="tb", version=""), default_root_dir=str(out),
        enable_checkpointing=False, enable_progress_bar=progress, enable_model_summary=False,
        log_every_n_steps=min(10, o.val_every_n_steps), num_sanity_val_steps=0,
        val_check_interval=max(1, min(o.val_every_n_steps, o.max_steps)), check_val_every_n_epoch=None,
        limit_val_batches=1.0 if len(data.split_indices("val")) else 0,
        callbacks=[MotionVAEMonitor(data, o.render_every_n_steps), report],
    )
    start = time.perf_counter()
    trainer.fit(vae, train_loader, val_loader)
    fit_seconds = time.perf_counter() - start
    ckpt = out / "motion_vae.ckpt"
    save_final_checkpoint(trainer, ckpt)
    if not trainer.is_global_zero:  # under DDP the other ranks stop here; rank 0 evaluates and reports
        return {"checkpoint": os.fspath(ckpt), "steps": trainer.global_step, "rank": trainer.global_rank}
    save_config(cfg, out / "config.yaml")
    vae = vae.cpu().eval()  # evaluation reads the data set's arrays on the CPU, whatever trained
    result: dict[str, Any] = {
        "dataset": os.fspath(dataset_dir), "checkpoint": os.fspath(ckpt), "config": to_dict(cfg),
        "epochs": trainer.current_epoch, "steps": trainer.global_step, "fit_seconds": round(fit_seconds, 1),
        "threads": torch.get_num_threads(),
        "parameters": sum(p.numel() for p in vae.parameters()),
        "run": report.summary,
        "val": evaluate_split(vae, data, "val"),
        "test": evaluate_split(vae, data, "test"),
        "train_subset": evaluate_split(vae, data, "train", max_windows=256, seed=o.seed),
    }
    write_json(out / "metrics.json", result)
    return result


def summary_line(result: dict[str, Any]) -> str:
    """One line of the headline numbers of :func:`train_motion_vae`, then one per warning of its run report."""
    v = result["val"]
    return (f"motion VAE: val MPJPE {v.get('mpjpe_mm', float('nan')):.1f} mm, PA-MPJPE "
            f"{v.get('pa_mpjpe_mm', float('nan')):.1f} mm, foot skating {v.get('foot_skating_ratio', float('nan')):.3f}"
            f" (ground truth {v.get('foot_skating_ratio_gt', float('nan')):.3f}); {result['steps']} steps in "
            f"{result['fit_seconds']:.0f} s -> {result['checkpoint']}"
            + "".join(f"\nwarning: {w}" for w in result.get("run", {}).get("warnings", [])))

