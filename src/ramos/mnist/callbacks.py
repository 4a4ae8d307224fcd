"""TensorBoard pictures of the MNIST stages, and the image grids they share with the report.

* :class:`ReconstructionImages`: originals above their VAE reconstructions, every validation epoch.
* :class:`LatentProjector`: VAE posterior means of validation digits in TensorBoard's embedding
  projector, with their labels and thumbnails.
* :class:`ClassSampleGrid`: a grid of guided samples, one row per digit, every training epoch.
"""

from __future__ import annotations

import os

import lightning as L
import torch
from torch import Tensor

from ramos.mnist.evaluate import to_images


def image_grid(images: Tensor, ncol: int, pad: int = 1) -> Tensor:
    """Tile images (N, C, H, W) row-major into one (C, H', W') image with ``ncol`` columns."""
    n, c, h, w = images.shape
    nrow = -(-n // ncol)
    grid = torch.ones(c, nrow * (h + pad) + pad, ncol * (w + pad) + pad, dtype=images.dtype)
    for i in range(n):
        r, k = divmod(i, ncol)
        top, left = pad + r * (h + pad), pad + k * (w + pad)
        grid[:, top:top + h, left:left + w] = images[i]
    return grid


def class_grid_labels(num_classes: int, per_class: int) -> Tensor:
    """Labels laid out so that a grid with ``per_class`` columns has one row per class."""
    return torch.arange(num_classes).repeat_interleave(per_class)


def save_class_grid(images: Tensor, num_classes: int, path: str | os.PathLike[str], title: str = "") -> None:
    """Write a PNG of a per-class grid (row c = digit c), labelled on the left, atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ramos.utils.atomic import atomic_path

    per_class = len(images) // num_classes
    grid = image_grid(images, per_class, pad=2)[0].numpy()
    fig, ax = plt.subplots(figsize=(0.45 * per_class + 0.6, 0.45 * num_classes + (0.4 if title else 0.1)), dpi=120)
    ax.imshow(grid, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_yticks([2 + 30 * c + 14 for c in range(num_classes)], [str(c) for c in range(num_classes)])
    ax.set_xticks([])
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp)
    plt.close(fig)


def _writer(trainer: L.Trainer):  # a SummaryWriter, or None without a TensorBoard logger
    logger = trainer.logger
    if logger is None or not hasattr(logger, "experiment") or not hasattr(logger.experiment, "add_image"):
        return None
    return logger.experiment


class ReconstructionImages(L.Callback):
    """Log ``n`` validation digits (odd rows) above their reconstructions (even rows)."""

    def __init__(self, images: Tensor, ncol: int = 16) -> None:
        self.images = images
        self.ncol = ncol

    @torch.no_grad()
    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        writer = _writer(trainer)
        if writer is None or trainer.sanity_checking or not trainer.is_global_zero:
            return
        x = self.images.to(pl_module.device)
        mu, _ = pl_module.encode(x)
        recon = to_images(pl_module.decode(mu)).cpu()
        rows = []
        for i in range(0, len(x), self.ncol):
            rows += [self.images[i:i + self.ncol], recon[i:i + self.ncol]]
        writer.add_image("vae/reconstructions", image_grid(torch.cat(rows), self.ncol), trainer.global_step)


class LatentProjector(L.Callback):
    """At the end of VAE training, put posterior means of ``images`` in the embedding projector."""

    def __init__(self, images: Tensor, labels: Tensor) -> None:
        self.images = images
        self.labels = labels

    @torch.no_grad()
    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        writer = _writer(trainer)
        if writer is None or not trainer.is_global_zero:
            return
        mu, _ = pl_module.encode(self.images.to(pl_module.device))
        writer.add_embedding(mu.cpu(), metadata=[str(int(c)) for c in self.labels], label_img=self.images,
                             global_step=trainer.global_step, tag="vae_latents")
        writer.flush()


class ClassSampleGrid(L.Callback):
    """Every training epoch, log guided samples of a diffusion stage: one row per class."""

    def __init__(self, num_classes: int = 10, per_class: int = 10, steps: int = 20, sampler: str = "ddim",
                 guidance: float = 2.0, seed: int = 0) -> None:
        self.num_classes, self.per_class = num_classes, per_class
        self.steps, self.sampler, self.guidance, self.seed = steps, sampler, guidance, seed

    @torch.no_grad()
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        writer = _writer(trainer)
        if writer is None or not trainer.is_global_zero:
            return
        labels = class_grid_labels(self.num_classes, self.per_class)
        # A private generator: logging pictures must not change the training run's random stream.
        images = pl_module.sample(len(labels), labels, steps=self.steps, sampler=self.sampler,
                                  guidance=self.guidance, generator=torch.Generator().manual_seed(self.seed))
        writer.add_image("samples/per_class", image_grid(to_images(images).cpu(), self.per_class),
                         trainer.current_epoch)

