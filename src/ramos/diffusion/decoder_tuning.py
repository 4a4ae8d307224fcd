"""Decoder tuning: the autoencoder's decoder learns to decode the latents the sampler gives.

Why: a decoder trained only on the encoder's latents meets, at sampling time, latents that are near
but not on them, and turns that error into artefacts (for motion: feet sliding on the floor).
:class:`DecoderTuning` takes a trained :class:`~ramos.diffusion.module.LatentDiffusionModule`: a
training item's latent is noised a little and replaced by the sampling network's clean-latent
prediction of it, and the decoder is fitted to reconstruct the item from that prediction with the
autoencoder's own loss. The encoder, and with it the latent space the denoiser learnt, does not
change; nor do the denoiser, its EMA and the student.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn

from ramos.diffusion.module import LatentDiffusionModule, log_step
from ramos.utils.training import adamw_cosine


class DecoderTuning(L.LightningModule):
    """Fits (part of) ``model.autoencoder.decoder`` to the sampler's latents.

    Args:
        model: a trained model with an autoencoder (batches must carry the data, e.g. ``motion`` and
            ``mask``, beside their latents).
        lr: AdamW learning rate (cosine decay to 5 %).
        mix: share of the items whose latent is replaced by the sampler's prediction (the rest keep the
            encoder's latent, so reconstructions stay as good).
        max_timestep: the predictions are made from latents noised at timesteps drawn uniformly in
            ``[0, max_timestep]`` (the end of the reverse process, where the sample takes its shape).
        parameters: the decoder parameters to tune (default: all of them).
    """

    def __init__(self, model: LatentDiffusionModule, lr: float, mix: float = 0.5, max_timestep: int = 300,
                 parameters: Iterable[nn.Parameter] | None = None) -> None:
        super().__init__()
        decoder = getattr(model.autoencoder, "decoder", None)
        if not isinstance(decoder, nn.Module):
            raise ValueError("decoder tuning needs an autoencoder with a decoder")
        if not model.is_initialised:
            raise RuntimeError("train the diffusion model before tuning the decoder")
        if not 0.0 <= mix <= 1.0 or not 0 <= max_timestep < model.noise_cfg.num_train_timesteps:
            raise ValueError(f"decoder tuning needs 0 <= mix <= 1 and 0 <= max_timestep < "
                             f"{model.noise_cfg.num_train_timesteps}, got {mix} and {max_timestep}")
        self.model, self.lr, self.mix, self.max_timestep = model, lr, mix, max_timestep
        model.denoiser.requires_grad_(False)
        if model.student is not None:
            model.student.requires_grad_(False)
        self.tuned = list(decoder.parameters() if parameters is None else parameters)
        # Only these have gradients, so DDP synchronises only them.
        decoder.requires_grad_(False)
        for p in self.tuned:
            p.requires_grad_(True)

    def loss(self, batch: dict[str, Tensor]) -> Tensor:
        """The autoencoder's reconstruction loss of the batch's data, decoded from the encoder's latent or
        (share ``mix``) from the sampling network's prediction of it after a little noise.

        The prediction is the one sampling makes at the default guidance: the student's where there
        is one, otherwise the EMA denoiser's, with the label (unguided for a dropped label).
        """
        m = self.model
        assert m.autoencoder is not None
        z = m.latents(batch)
        with torch.no_grad():
            x_t, t = m.noised(m.normalize(z), self.max_timestep)
            y = m.condition(batch, drop=True)
            net = (m.student if m.student is not None else m.ema.module).eval()
            pred = m.x0(net(x_t, t, y, **m.conditions(batch, drop=True)), x_t, t) * m.latent_scale + m.latent_shift
            use = torch.rand(z.shape[0], device=z.device) < self.mix
            z = torch.where(use.view(-1, *[1] * (z.dim() - 1)), pred, z)
        x_hat = m.autoencoder.decode(z, batch.get("mask"))
        return m.autoencoder.loss(x_hat, batch)["recon"]

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        return log_step(self, "decoder/loss", self.loss(batch), "decoder tuning", self.model.batch_size(batch))

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        loss = self.loss(batch)
        self.log("decoder/val_loss", loss, prog_bar=True, on_epoch=True, sync_dist=True,
                 batch_size=self.model.batch_size(batch))
        return loss

    def configure_optimizers(self) -> Any:
        return adamw_cosine(self, self.tuned, self.lr, self.model.hparams.weight_decay)
