"""The LeNet evaluator as a LightningModule (network injected, rebuilt from its checkpoint alone)."""

from __future__ import annotations

import os
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ramos.utils.checkpoint import load_checkpoint
from ramos.utils.spec import build
from ramos.utils.training import check_finite, read_specs, store_specs


class ClassifierModule(L.LightningModule):
    """Cross-entropy training of an injected image classifier; logs loss and accuracy."""

    def __init__(self, net: nn.Module, lr: float = 2e-3, input_key: str = "x", label_key: str = "label") -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["net"])
        self.net = net

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def _step(self, batch: dict[str, Tensor], stage: str) -> Tensor:
        x, y = batch[self.hparams.input_key], batch[self.hparams.label_key]
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        if stage == "train":
            check_finite(loss, "classifier", self.global_step)
        acc = (logits.argmax(1) == y).float().mean()
        self.log_dict({f"{stage}/loss": loss.detach(), f"{stage}/acc": acc}, prog_bar=True,
                      on_step=stage == "train", on_epoch=True, batch_size=len(y), sync_dist=stage != "train")
        return loss

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        return self._step(batch, "val")

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        return self._step(batch, "test")

    def configure_optimizers(self) -> Any:
        opt = torch.optim.AdamW(self.net.parameters(), lr=self.hparams.lr)
        if self.trainer is None:
            return opt
        # One-cycle reaches >= 99 % on MNIST in two epochs, which a constant rate does not reliably do.
        total = max(1, int(self.trainer.estimated_stepping_batches))
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.hparams.lr, total_steps=total, pct_start=0.2)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        store_specs(checkpoint, net=self.net)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ClassifierModule:
        """Rebuild a trained classifier from its checkpoint alone, frozen and in eval mode."""
        ckpt = load_checkpoint(path)
        specs = read_specs(ckpt, str(path), "net")
        module = cls(build(specs["net"]), **ckpt.get("hyper_parameters", {}))
        module.load_state_dict(ckpt["state_dict"])
        return module.eval().requires_grad_(False)


@torch.no_grad()
def predict(net: nn.Module, images: Tensor, batch_size: int = 1000) -> Tensor:
    """Predicted classes (N,) of images (N, 1, 28, 28) in [0, 1]."""
    net.eval()
    return torch.cat([net(images[i:i + batch_size]).argmax(1) for i in range(0, len(images), batch_size)])
