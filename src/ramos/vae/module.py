"""A generic VAE LightningModule: encoder, decoder and reconstruction loss are injected.

The same module trains the MNIST VAE, the pose VAE and the motion VAE; what differs between them
(networks, what "reconstruction" means, masks) lives in the injected objects.

Contracts:
    encoder(x) -> (mu, logvar), or encoder(x, mask) when the batch carries a ``mask``
    decoder(z) -> x_hat, same shape as x
    loss(x_hat, batch) -> dict of scalar tensors; ``"recon"`` is the term that is optimised,
        any other keys are logged as diagnostics.
"""

from __future__ import annotations

import os
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn

from ramos.utils.checkpoint import load_checkpoint
from ramos.utils.spec import build
from ramos.utils.training import adamw_cosine, check_finite, read_specs, store_specs


def gaussian_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)), summed over latent dims, averaged over the batch."""
    kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)
    return kl.flatten(1).sum(1).mean()


class VAEModule(L.LightningModule):
    """Train a VAE with loss = recon + kl_weight * KL (KL weight linearly warmed up)."""

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        loss: nn.Module,
        kl_weight: float = 1e-3,
        kl_warmup_steps: int = 0,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        input_key: str = "x",
        lr_schedule: str = "cosine",
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["encoder", "decoder", "loss"])
        self.encoder = encoder
        self.decoder = decoder
        self.loss = loss

    # --- the model --------------------------------------------------------------------
    def encode(self, x: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Posterior parameters (mu, logvar) of ``x``."""
        return self.encoder(x) if mask is None else self.encoder(x, mask)

    def decode(self, z: Tensor, mask: Tensor | None = None) -> Tensor:
        """Reconstruction from latent ``z``; ``mask`` (valid frames) goes to decoders that take it."""
        return self.decoder(z) if mask is None else self.decoder(z, mask)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        mu, logvar = self.encode(x, mask)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp() if self.training else mu
        return self.decode(z, mask), mu, logvar

    # --- training -----------------------------------------------------------------------
    def kl_weight_now(self) -> float:
        """KL weight after linear warm-up (avoids posterior collapse early in training)."""
        warm = self.hparams.kl_warmup_steps
        frac = 1.0 if warm <= 0 else min(1.0, self.global_step / warm)
        return self.hparams.kl_weight * frac

    def compute_losses(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """All loss terms of a batch: the injected loss's terms plus ``kl`` and the total ``loss``."""
        x = batch[self.hparams.input_key]
        x_hat, mu, logvar = self(x, batch.get("mask"))
        terms = dict(self.loss(x_hat, batch))
        terms["kl"] = gaussian_kl(mu, logvar)
        terms["loss"] = terms["recon"] + self.kl_weight_now() * terms["kl"]
        return terms

    def _step(self, batch: dict[str, Tensor], stage: str) -> Tensor:
        terms = self.compute_losses(batch)
        if stage == "train":
            check_finite(terms["loss"], "VAE", self.global_step)
        self.log_dict({f"{stage}/{k}": v.detach() for k, v in terms.items()}, prog_bar=stage == "val",
                      on_step=stage == "train", on_epoch=True, batch_size=batch[self.hparams.input_key].shape[0],
                      sync_dist=stage != "train")
        return terms["loss"]

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        return self._step(batch, "val")

    def configure_optimizers(self) -> Any:
        if self.hparams.lr_schedule != "cosine":
            return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay,
                                     fused=True)
        return adamw_cosine(self, self.parameters(), self.hparams.lr, self.hparams.weight_decay)

    # --- checkpoints ----------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        store_specs(checkpoint, encoder=self.encoder, decoder=self.decoder, loss=self.loss)

    @classmethod
    def load(cls, path: str | os.PathLike[str], freeze: bool = True) -> VAEModule:
        """Rebuild a trained VAE from its checkpoint alone (no unpickling of code)."""
        ckpt = load_checkpoint(path)
        specs = read_specs(ckpt, str(path), "encoder", "decoder", "loss")
        module = cls(build(specs["encoder"]), build(specs["decoder"]), build(specs["loss"]),
                     **ckpt.get("hyper_parameters", {}))
        module.load_state_dict(ckpt["state_dict"])
        if freeze:
            module.eval().requires_grad_(False)
        return module
