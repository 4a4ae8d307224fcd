"""The raw-space baseline: the same generic diffusion stage applied directly to the motion window.

:class:`ramos.diffusion.LatentDiffusionModule` with ``autoencoder=None`` diffuses the standardised
per-frame motion features (W x J * 3 = 200 x 66: root velocity and height, joints relative to the
root) with the MDM-style transformer
:class:`ramos.motion.nets.raw_denoiser.RawMotionDenoiser`, conditioned on label and length. It is
trained for a wall-clock budget (Lightning's ``max_time``), normally the latent model's training
time, so that the two can be compared at equal cost (``benchmarks/bench_vs_raw.py``).

    ramos train raw-baseline [--dataset DIR] [--seconds 600] --out runs/raw_baseline
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ramos.diffusion import NoiseConfig, SamplingConfig

log = logging.getLogger(__name__)

REPRESENTATION = "standardised MotionFeatures (W, J * 3): root velocity + height, root-relative joints"


@dataclass
class RawDenoiserConfig:
    """Sizes of :class:`ramos.motion.nets.raw_denoiser.RawMotionDenoiser`; the defaults are MDM's own
    (latent_dim 512, 8 layers, 4 heads, feed-forward 1024, dropout 0.1), the reference the latent
    model's speed is measured against."""

    d_model: int = 512
    num_layers: int = 8
    num_heads: int = 4
    ff_dim: int = 1024
    dropout: float = 0.1


@dataclass
class RawBaselineConfig:
    """Training of the raw-space baseline.

    Attributes:
        denoiser: transformer sizes.
        noise: the noise process; MDM's: 1000-step cosine schedule, the network predicts the clean motion.
        cond_drop_prob: label dropout for classifier-free guidance.
        lr, weight_decay: AdamW (cosine decay over ``max_steps``).
        ema_decay: EMA of the denoiser weights (used for sampling; 0.998: a short run).
        sampling: the default sampling settings, recorded in the checkpoint (the latent model's, so
            that the two are compared alike).
        batch_size: windows per step.
        max_time_s: wall-clock training budget in seconds (None: ``max_steps`` only);
            ``benchmarks/bench_vs_raw.py`` passes the latent model's training time.
        max_steps: step limit (also the length of the cosine schedule).
        seed: seed of weights, batches and noise.
        threads: torch CPU threads (None: torch's default).
    """

    denoiser: RawDenoiserConfig = field(default_factory=RawDenoiserConfig)
    noise: NoiseConfig = field(default_factory=lambda: NoiseConfig(prediction_type="sample"))
    cond_drop_prob: float = 0.1
    lr: float = 3e-4
    weight_decay: float = 0.0
    ema_decay: float = 0.998
    batch_size: int = 32
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    max_time_s: float | None = 600.0
    max_steps: int = 20000
    seed: int = 0
    threads: int | None = None


def build_baseline(data: Any, cfg: RawBaselineConfig, stats_windows: int = 512, seed: int = 0) -> Any:
    """A fresh raw-space :class:`LatentDiffusionModule` for the prepared data set ``data``.

    Feature statistics come from up to ``stats_windows`` training windows.
    """
    import torch

    from ramos.diffusion.module import LatentDiffusionModule
    from ramos.motion.nets.motion import feature_stats
    from ramos.motion.nets.raw_denoiser import RawMotionDenoiser

    train = data.split_indices("train")
    if len(train) == 0:
        raise ValueError(f"{data.path}: no training windows")
    sub = np.sort(np.random.default_rng(seed).choice(train, min(stats_windows, len(train)), replace=False))
    w = torch.from_numpy(np.asarray(data.windows[sub], np.float32))
    mask = torch.arange(data.window)[None] < torch.from_numpy(data.lengths[sub].astype(np.int64))[:, None]
    skel = data.skeleton
    mean, std = feature_stats(w, mask, skel.root, skel.up_axis)
    names = list(data.labels)
    d = cfg.denoiser
    denoiser = RawMotionDenoiser(data.window, skel.num_joints, len(names), d.d_model, d.num_layers, d.num_heads,
                                 d.ff_dim, d.dropout, cond_scalars=["length"], root=skel.root, up_axis=skel.up_axis,
                                 feature_mean=mean, feature_std=std)
    info = {"fps": data.fps, "window": data.window, "representation": REPRESENTATION,
            "skeleton": skel.to_dict(), "length_unit": "frames", "length_hist": data.length_histograms()}
    return LatentDiffusionModule(denoiser, None, num_classes=len(names), cond_drop_prob=cfg.cond_drop_prob,
                                 noise=cfg.noise, lr=cfg.lr, weight_decay=cfg.weight_decay, ema_decay=cfg.ema_decay,
                                 input_key="motion", label_key="label", cond_keys=["length"], class_names=names,
                                 data_info=info, sampling=cfg.sampling)


class _FeatureCollate:
    """Collate window items and turn positions into the denoiser's standardised features."""

    def __init__(self, denoiser: Any) -> None:
        self.denoiser = denoiser

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        import torch
        from torch.utils.data import default_collate

        batch = default_collate(items)
        with torch.no_grad():
            batch["motion"] = self.denoiser.normalize(batch["motion"], batch["mask"])
        return batch


def train_raw_baseline(dataset: str | os.PathLike[str], out: str | os.PathLike[str],
                       cfg: RawBaselineConfig | None = None, max_time_s: float | None = None,
                       progress: bool = True) -> Path:
    """Train the raw-space baseline on a prepared data set; returns the checkpoint path.

    ``max_time_s`` overrides ``cfg.max_time_s`` (the equal-time comparison passes the latent
    model's training time). The checkpoint ``<out>/raw_baseline.ckpt`` is written atomically;
    ``<out>/train_seconds.txt`` records the training time actually spent.
    """
    import lightning as L
    import torch

    from ramos.motion.datamodule import MotionDataModule
    from ramos.utils.atomic import atomic_path, write_text
    from ramos.utils.training import SeedEachStep

    cfg = cfg or RawBaselineConfig()
    budget = max_time_s if max_time_s is not None else cfg.max_time_s
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    L.seed_everything(cfg.seed, verbose=False)
    from torch.utils.data import DataLoader

    dm = MotionDataModule(dataset, batch_size=cfg.batch_size, normalized=False)
    module = build_baseline(dm.dataset, cfg, seed=cfg.seed)
    train = dm.split("train")
    loader = DataLoader(train, batch_size=cfg.batch_size, shuffle=True, drop_last=len(train) > cfg.batch_size,
                        collate_fn=_FeatureCollate(module.denoiser))
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    trainer = L.Trainer(
        max_steps=cfg.max_steps, max_epochs=-1,
        max_time=_dt.timedelta(seconds=budget) if budget is not None else None,
        accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, limit_val_batches=0,
        num_sanity_val_steps=0, enable_progress_bar=progress, enable_model_summary=False,
        default_root_dir=out_dir, callbacks=[SeedEachStep(cfg.seed)], log_every_n_steps=50)
    start = time.perf_counter()
    trainer.fit(module, train_dataloaders=loader)
    seconds = time.perf_counter() - start
    path = out_dir / "raw_baseline.ckpt"
    with atomic_path(path) as tmp:
        trainer.save_checkpoint(tmp)
    write_text(out_dir / "train_seconds.txt", f"{seconds:.1f} s, {trainer.global_step} steps\n")
    log.info("raw baseline: %d steps in %.0f s -> %s", trainer.global_step, seconds, path)
    return path


def load_raw_baseline(path: str | os.PathLike[str]) -> Any:
    """A trained raw-space baseline (a :class:`LatentDiffusionModule` without autoencoder), in eval mode."""
    from ramos.diffusion.module import LatentDiffusionModule
    from ramos.motion.nets.raw_denoiser import RawMotionDenoiser
    from ramos.utils.checkpoint import CheckpointError

    module = LatentDiffusionModule.load(path)
    if module.autoencoder is not None or not isinstance(module.denoiser, RawMotionDenoiser):
        raise CheckpointError(f"{path}: not a raw-space baseline checkpoint (it has an autoencoder "
                              "or another denoiser)")
    return module


def is_raw_baseline(path: str | os.PathLike[str]) -> bool:
    """Whether the checkpoint at ``path`` holds a raw-space baseline (by its denoiser's spec)."""
    from ramos.utils.checkpoint import load_checkpoint

    specs = load_checkpoint(path).get("ramos_specs") or {}
    return str(specs.get("denoiser", {}).get("class_path", "")).endswith(".RawMotionDenoiser")


def sample_raw_baseline(module: Any, labels: Sequence[int], lengths: Sequence[int], steps: int | None = None,
                        sampler: str | None = None, guidance: float | None = None, seed: int = 0,
                        batch_size: int = 64) -> list[np.ndarray]:
    """Generate one motion per (label index, length in frames); returns (length, J, 3) arrays in metres.
    ``steps``, ``sampler`` and ``guidance`` default to the checkpoint's (``module.sampling``)."""
    import torch

    if len(labels) != len(lengths):
        raise ValueError(f"{len(labels)} labels for {len(lengths)} lengths")
    window = int(module.hparams.data_info.get("window", module.denoiser.window))
    if any(not 1 <= int(n) <= window for n in lengths):
        raise ValueError(f"lengths must be between 1 and {window} frames")
    gen = torch.Generator().manual_seed(seed)
    out: list[np.ndarray] = []
    for a in range(0, len(labels), batch_size):
        y = torch.as_tensor(list(labels[a:a + batch_size]), dtype=torch.long)
        n = torch.as_tensor(list(lengths[a:a + batch_size]), dtype=torch.long)
        x = module.sample(len(y), y, steps, sampler, guidance, gen, cond={"length": n})
        pos = module.denoiser.to_positions(x.float()).cpu().numpy()
        out += [p[: int(k)] for p, k in zip(pos, n)]
    return out
