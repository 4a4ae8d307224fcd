"""Reconstruction losses for :class:`ramos.vae.VAEModule` (Buildable, so checkpoints rebuild them)."""

from __future__ import annotations

import torch
from torch import Tensor

from ramos.utils.spec import Buildable


class MSEReconstruction(Buildable):
    """Sum of squared errors per item (averaged over the batch), on batch[``key``]."""

    def __init__(self, key: str = "x") -> None:
        super().__init__()
        self.key = key

    def forward(self, x_hat: Tensor, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        x = batch[self.key]
        return {"recon": (x_hat - x).pow(2).flatten(1).sum(1).mean()}


class BernoulliReconstruction(Buildable):
    """Binary cross-entropy per item for data in [0, 1]; the decoder outputs logits."""

    def __init__(self, key: str = "x") -> None:
        super().__init__()
        self.key = key

    def forward(self, x_hat: Tensor, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        x = batch[self.key]
        bce = torch.nn.functional.binary_cross_entropy_with_logits(x_hat, x, reduction="none")
        return {"recon": bce.flatten(1).sum(1).mean()}
