"""The trainings of ``ramos mnist``: the VAE, the LeNet classifier, the latent diffusion and the pixel baseline.

Each stage trains in its own folder of the output directory (``vae/``, ``classifier/``,
``diffusion/``, ``pixel/``) with its config, its ``checkpoints/last.ckpt`` (written every epoch)
and, once finished, its final checkpoint. A stage whose final checkpoint exists is skipped; an
interrupted stage resumes from ``last.ckpt`` and ends where an uninterrupted run would have.
Stages meet only through those checkpoint files.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import lightning as L
import torch
import yaml
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger

from ramos.diffusion.module import LatentDiffusionModule
from ramos.diffusion.nets import ResidualMLPDenoiser
from ramos.mnist.callbacks import ClassSampleGrid, LatentProjector, ReconstructionImages
from ramos.mnist.classifier import ClassifierModule
from ramos.mnist.data import NUM_CLASSES, MNISTArrays, MNISTDataModule, load_mnist
from ramos.mnist.nets import BernoulliImageLoss, ConvDecoder, ConvEncoder, LeNet, PixelUNet
from ramos.stages.mnist.config import MnistConfig
from ramos.utils.atomic import write_json
from ramos.utils.config import ConfigError, to_dict
from ramos.utils.training import SeedEachStep, save_final_checkpoint
from ramos.vae.module import VAEModule

log = logging.getLogger(__name__)

STAGES: tuple[str, ...] = ("vae", "classifier", "diffusion", "pixel")
FINAL_CHECKPOINT = {"vae": "vae.ckpt", "classifier": "classifier.ckpt", "diffusion": "diffusion.ckpt",
                    "pixel": "pixel.ckpt"}


class StageConfigMismatch(ConfigError):
    """An output folder holds a stage trained with a different config."""


@dataclass
class StageResult:
    """Where a stage's final checkpoint is, how long its training took, and whether it was reused."""

    checkpoint: Path
    seconds: float
    skipped: bool


class Run:
    """One ``ramos mnist`` run: its config, output folder and the data every stage shares."""

    def __init__(self, cfg: MnistConfig, out: str | os.PathLike[str], progress: bool = True) -> None:
        self.cfg = cfg
        self.out = Path(out)
        self.progress = progress and cfg.trainer.progress_bar
        if cfg.threads is not None:
            torch.set_num_threads(cfg.threads)
        self._arrays: MNISTArrays | None = None

    # --- shared pieces ---------------------------------------------------------------------------
    @property
    def arrays(self) -> MNISTArrays:
        """MNIST, read once per run."""
        if self._arrays is None:
            self._arrays = load_mnist(self.cfg.data.data_dir)
        return self._arrays

    def datamodule(self, batch_size: int) -> MNISTDataModule:
        d = self.cfg.data
        dm = MNISTDataModule(d.data_dir, d.val_size, batch_size, d.limit, seed=self.cfg.seed, arrays=self.arrays)
        dm.setup()
        return dm

    def stage_dir(self, stage: str) -> Path:
        return self.out / stage

    def final_checkpoint(self, stage: str) -> Path:
        return self.stage_dir(stage) / FINAL_CHECKPOINT[stage]

    def _stage_config(self, stage: str) -> dict[str, Any]:
        # What a stage's result depends on; a finished stage is reused only if this is unchanged.
        full = to_dict(self.cfg)
        section = {"vae": ["vae"], "classifier": ["classifier"], "diffusion": ["vae", "diffusion"],
                   "pixel": ["diffusion", "pixel"]}[stage]
        return {"seed": full["seed"], "data": full["data"], **{k: full[k] for k in section}}

    def _check_or_write_config(self, stage: str) -> None:
        path = self.stage_dir(stage) / "config.yaml"
        wanted = self._stage_config(stage)
        if path.is_file():
            saved = yaml.safe_load(path.read_text(encoding="utf-8"))
            if saved != wanted:
                changed = sorted(k for k in set(saved or {}) | set(wanted) if (saved or {}).get(k) != wanted.get(k))
                raise StageConfigMismatch(
                    f"{path}: this stage was trained with a different config (sections {', '.join(changed)}); "
                    "use another --out or delete the folder"
                )
            return
        from ramos.utils.atomic import write_text

        write_text(path, yaml.safe_dump(wanted, sort_keys=False))

    def _trainer(self, stage: str, callbacks: Sequence[L.Callback] = (), max_epochs: int | None = None,
                 max_time_s: float | None = None, limit_val_batches: int | None = None) -> L.Trainer:
        t = self.cfg.trainer
        return L.Trainer(
            **t.kwargs(),
            max_epochs=max_epochs if max_epochs is not None else -1,
            max_time=None if max_time_s is None else timedelta(seconds=max_time_s),
            logger=TensorBoardLogger(save_dir=str(self.out / "tb"), name=stage, version="", default_hp_metric=False),
            # One rolling checkpoint per epoch, named last.ckpt: what an interrupted stage resumes from.
            callbacks=[ModelCheckpoint(dirpath=self.stage_dir(stage) / "checkpoints", filename="last", save_top_k=1,
                                       enable_version_counter=False),
                       SeedEachStep(self.cfg.seed), *callbacks],
            log_every_n_steps=t.log_every_n_steps,
            enable_progress_bar=self.progress,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            limit_val_batches=limit_val_batches,
            default_root_dir=self.stage_dir(stage),
        )

    def _fit(self, stage: str, module: L.LightningModule, dm: MNISTDataModule,
             callbacks: Sequence[L.Callback] = (), max_epochs: int | None = None,
             max_time_s: float | None = None, limit_val_batches: int | None = None) -> StageResult:
        """Train ``module`` (resuming from ``last.ckpt`` when present) and write the final checkpoint."""
        final = self.final_checkpoint(stage)
        last = self.stage_dir(stage) / "checkpoints" / "last.ckpt"
        trainer = self._trainer(stage, callbacks, max_epochs, max_time_s, limit_val_batches)
        resumed = last.is_file()
        if resumed:
            log.info("%s: resuming from %s", stage, last)
        start = time.perf_counter()
        trainer.fit(module, datamodule=dm, ckpt_path=str(last) if resumed else None, weights_only=True)
        seconds = time.perf_counter() - start
        save_final_checkpoint(trainer, final)
        if trainer.is_global_zero:
            # Of this invocation only: a stage resumed after an interruption reports its remaining part.
            write_json(self.stage_dir(stage) / "timing.json", {"seconds": seconds, "resumed": resumed})
        trainer.strategy.barrier()
        return StageResult(final, seconds, skipped=False)

    def _reuse(self, stage: str) -> StageResult | None:
        self._check_or_write_config(stage)
        final = self.final_checkpoint(stage)
        if not final.is_file():
            return None
        log.info("%s: reusing %s", stage, final)
        return StageResult(final, _read_seconds(self.stage_dir(stage) / "timing.json"), skipped=True)

    # --- stages ------------------------------------------------------------------------------------
    def train_vae(self, callbacks: Sequence[L.Callback] = ()) -> StageResult:
        """Stage 1: the convolutional VAE."""
        if (done := self._reuse("vae")) is not None:
            return done
        c = self.cfg.vae
        L.seed_everything(self.cfg.seed, workers=True)
        module = VAEModule(ConvEncoder(c.latent_dim, c.channels, c.hidden), ConvDecoder(c.latent_dim, c.channels, c.hidden),
                           BernoulliImageLoss("x"), kl_weight=c.kl_weight, kl_warmup_steps=c.kl_warmup_steps, lr=c.lr)
        dm = self.datamodule(c.batch_size)
        assert dm.val_set is not None
        pictures = [ReconstructionImages(dm.val_set.x[:32]),
                    LatentProjector(dm.val_set.x[:1000], dm.val_set.label[:1000])]
        return self._fit("vae", module, dm, [*pictures, *callbacks], max_epochs=c.epochs)

    def train_classifier(self, callbacks: Sequence[L.Callback] = ()) -> StageResult:
        """Stage 2: the LeNet evaluator."""
        if (done := self._reuse("classifier")) is not None:
            return done
        c = self.cfg.classifier
        L.seed_everything(self.cfg.seed, workers=True)
        module = ClassifierModule(LeNet(c.channels, c.hidden, c.dropout, NUM_CLASSES), lr=c.lr)
        return self._fit("classifier", module, self.datamodule(c.batch_size), callbacks, max_epochs=c.epochs)

    def _diffusion_module(self, denoiser: torch.nn.Module, autoencoder: VAEModule | None, lr: float,
                          ema_decay: float) -> LatentDiffusionModule:
        c = self.cfg.diffusion
        return LatentDiffusionModule(denoiser, autoencoder, num_classes=NUM_CLASSES, cond_drop_prob=c.cond_drop_prob,
                                     noise=c.noise, lr=lr, ema_decay=ema_decay)

    def _sample_grid(self) -> ClassSampleGrid:
        e = self.cfg.evaluation
        return ClassSampleGrid(NUM_CLASSES, 10, steps=20, sampler=e.sampler, guidance=e.guidance, seed=self.cfg.seed)

    def train_diffusion(self, callbacks: Sequence[L.Callback] = ()) -> StageResult:
        """Stage 3: latent diffusion on the frozen VAE (loaded from its checkpoint)."""
        if (done := self._reuse("diffusion")) is not None:
            return done
        c = self.cfg.diffusion
        vae = VAEModule.load(self.final_checkpoint("vae"))
        L.seed_everything(self.cfg.seed, workers=True)
        denoiser = ResidualMLPDenoiser(self.cfg.vae.latent_dim, c.width, c.depth, NUM_CLASSES)
        module = self._diffusion_module(denoiser, vae, c.lr, c.ema_decay)
        return self._fit("diffusion", module, self.datamodule(c.batch_size), [self._sample_grid(), *callbacks],
                         max_epochs=c.epochs)

    def train_pixel_baseline(self, max_time_s: float, callbacks: Sequence[L.Callback] = ()) -> StageResult:
        """Baseline: the same diffusion stage on raw pixels with a small UNet, for ``max_time_s`` seconds."""
        if (done := self._reuse("pixel")) is not None:
            return done
        p = self.cfg.pixel
        L.seed_everything(self.cfg.seed, workers=True)
        module = self._diffusion_module(PixelUNet(p.channels, NUM_CLASSES), None, p.lr, p.ema_decay)
        # A full validation pass of the UNet costs most of a minute: a few batches keep the time
        # budget for training, as the latent stage's (cheap) validation does.
        return self._fit("pixel", module, self.datamodule(p.batch_size), [self._sample_grid(), *callbacks],
                         max_epochs=10**6, max_time_s=max_time_s, limit_val_batches=10)


def _read_seconds(path: Path) -> float:
    import json

    try:
        return float(json.loads(path.read_text(encoding="utf-8"))["seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        return float("nan")
