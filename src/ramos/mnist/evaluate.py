"""Evaluation of generated digits with the project's LeNet.

* conditional accuracy: the share of samples asked for digit c that the classifier reads as c;
* FID on the LeNet's penultimate features (torchmetrics' FrechetInceptionDistance with a custom
  feature module), against a reference set of training images; the real test set's FID against
  the same reference is the floor;
* sampling speed in images per second, decoding included.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch
from torch import Tensor, nn
from torchmetrics.image.fid import FrechetInceptionDistance
from tqdm.auto import tqdm

from ramos.diffusion.module import LatentDiffusionModule


class LeNetFeatures(nn.Module):
    """The penultimate activations of a trained :class:`~ramos.mnist.nets.LeNet`, for the FID."""

    def __init__(self, lenet: nn.Module) -> None:
        super().__init__()
        self.lenet = lenet.eval().requires_grad_(False)
        self.num_features = int(lenet.num_features)

    def forward(self, x: Tensor) -> Tensor:
        return self.lenet.features(x.float())


class FIDScorer:
    """FID of image sets against a fixed reference set, in LeNet feature space.

    The reference statistics are computed once; :meth:`score` can then be called for any number
    of generated sets.
    """

    def __init__(self, lenet: nn.Module, reference: Tensor, batch_size: int = 1000) -> None:
        self.batch_size = batch_size
        self.metric = FrechetInceptionDistance(feature=LeNetFeatures(lenet), reset_real_features=False,
                                               normalize=True)
        with torch.no_grad():
            for i in range(0, len(reference), batch_size):
                self.metric.update(reference[i:i + batch_size], real=True)
        self.num_reference = len(reference)

    @torch.no_grad()
    def score(self, images: Tensor) -> float:
        """FID of ``images`` (N, 1, 28, 28) in [0, 1] against the reference set."""
        self.metric.reset()  # keeps the reference features (reset_real_features=False)
        for i in range(0, len(images), self.batch_size):
            self.metric.update(images[i:i + self.batch_size], real=False)
        return float(self.metric.compute())


def balanced_labels(n: int, num_classes: int = 10) -> Tensor:
    """Labels 0, 1, ..., num_classes-1, 0, 1, ... (as balanced as ``n`` allows)."""
    return torch.arange(n) % num_classes


def to_images(x: Tensor) -> Tensor:
    """Model output -> displayable images in [0, 1] (decoders give probabilities, pixel models may overshoot)."""
    return x.clamp(0.0, 1.0)


@torch.no_grad()
def generate(model: LatentDiffusionModule, labels: Tensor | None, n: int | None = None, steps: int = 20,
             sampler: str = "ddim", guidance: float = 1.0, seed: int = 0, batch_size: int = 500,
             progress: bool = True, desc: str = "sampling") -> Tensor:
    """Generate images in batches; ``labels`` None draws ``n`` unconditional samples.

    Deterministic for a given seed (a dedicated generator; the global RNG is not touched).
    """
    total = len(labels) if labels is not None else int(n or 0)
    generator = torch.Generator().manual_seed(seed)
    out = []
    for i in tqdm(range(0, total, batch_size), desc=desc, disable=not progress, leave=False):
        m = min(batch_size, total - i)
        y = None if labels is None else labels[i:i + m]
        out.append(to_images(model.sample(m, y, steps=steps, sampler=sampler, guidance=guidance,
                                          generator=generator)))
    return torch.cat(out) if out else torch.zeros(0, 1, 28, 28)


def conditional_accuracy(classify: Callable[[Tensor], Tensor], images: Tensor, labels: Tensor) -> float:
    """Share of images that ``classify`` (images -> predicted classes) reads as their requested label."""
    return float((classify(images) == labels).float().mean())


@torch.no_grad()
def sampling_speed(model: LatentDiffusionModule, batch: int = 500, steps: int = 20, sampler: str = "ddim",
                   guidance: float = 2.0, repeats: int = 3, num_classes: int = 10) -> float:
    """Median images/s of guided class-conditional sampling of ``batch`` images, decoding included."""
    labels = balanced_labels(batch, num_classes)
    model.sample(min(batch, 16), labels[:16], steps=steps, sampler=sampler, guidance=guidance)  # warm-up
    rates = []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        model.sample(batch, labels, steps=steps, sampler=sampler, guidance=guidance,
                     generator=torch.Generator().manual_seed(0))
        rates.append(batch / (time.perf_counter() - start))
    return statistics.median(rates)
