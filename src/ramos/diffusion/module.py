"""The generic latent-diffusion stage.

Trains an injected denoiser to reverse a diffusers noise process in the latent space of a frozen
autoencoder (or directly on the data when ``autoencoder`` is None: the raw-space baseline).
Class-conditional with label dropout, so classifier-free guidance works at sampling time; keeps
an exponential moving average (EMA) of the denoiser's weights, which sampling uses by default.

Guidance distillation (Meng et al. 2023, "On distillation of guided diffusion models", stage one):
after training, :meth:`LatentDiffusionModule.add_guided_student` adds a copy of the EMA denoiser
that a further fit teaches to predict, in one pass, what the EMA denoiser predicts with
classifier-free guidance at one fixed scale (two passes: with and without the label). Sampling at
that scale then runs the student; any other scale still runs the guided EMA denoiser.

Decoder tuning (:meth:`LatentDiffusionModule.add_decoder_tuning`), last: the autoencoder's decoder
learns to decode the latents the sampler gives, not only the encoder's. A training window's latent
is noised a little and replaced by the sampling network's prediction of it, and the decoder is
fitted to reconstruct the window from that prediction with the autoencoder's own loss. The
encoder, and with it the latent space the denoiser learnt, does not change.
"""

from __future__ import annotations

import contextlib
import copy
import os
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from ramos.diffusion.schedule import (
    NoiseConfig,
    Sampler,
    affine_steps,
    has_affine_steps,
    make_scheduler,
    noise_config_dict,
)
from ramos.utils.checkpoint import load_checkpoint
from ramos.utils.spec import build
from ramos.utils.training import check_finite, read_specs, store_specs

LATENT_KEY = "latent"
"""Batch key of precomputed (unnormalised) latents; see :meth:`LatentDiffusionModule.diffusion_loss`."""


class LatentDiffusionModule(L.LightningModule):
    """Diffusion in the latent space of a frozen autoencoder.

    Args:
        denoiser: network ``denoiser(x_t, t, y, **cond)``; see :mod:`ramos.diffusion.nets`.
        autoencoder: frozen module with ``encode(x, mask=None) -> (mu, logvar)`` and ``decode(z)``
            (e.g. :class:`ramos.vae.VAEModule`); ``None`` diffuses the data itself.
        num_classes: number of labels (0 = unconditional). Label ``num_classes`` means "none".
        cond_drop_prob: probability of replacing a label by "none" in training (guidance).
        noise: the noise process (:class:`NoiseConfig` or its dict).
        lr, weight_decay: AdamW settings (cosine decay over the run).
        ema_decay: EMA decay of the denoiser weights.
        input_key, label_key: batch keys of the data and of the labels.
        cond_keys: extra batch keys passed to the denoiser as keyword conditions (e.g. "length").
        sample_posterior: train on posterior samples instead of posterior means.
        class_names: names of the labels (index order), kept in the checkpoint for users.
        data_info: plain JSON-able facts about the data the stage needs at sampling time
            (e.g. fps, window length, per-label length distributions); kept in the checkpoint.
        min_snr_gamma: weight each item's loss as Min-SNR-gamma (Hang et al. 2023): the
            weight of an x0 error is min(SNR(t), gamma), whatever the network predicts. ``None``:
            plain mean squared error of the prediction.
        student_guidance: the guidance scale of a guidance-distilled student (``None``: no student;
            set by :meth:`add_guided_student`, kept in the checkpoint so that loading rebuilds it).
    """

    def __init__(
        self,
        denoiser: nn.Module,
        autoencoder: nn.Module | None = None,
        num_classes: int = 0,
        cond_drop_prob: float = 0.1,
        noise: NoiseConfig | dict[str, Any] | None = None,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        ema_decay: float = 0.999,
        input_key: str = "x",
        label_key: str = "label",
        cond_keys: list[str] | None = None,
        sample_posterior: bool = False,
        class_names: list[str] | None = None,
        data_info: dict[str, Any] | None = None,
        min_snr_gamma: float | None = None,
        student_guidance: float | None = None,
    ) -> None:
        super().__init__()
        noise_cfg = NoiseConfig.from_any(noise)
        self.save_hyperparameters({
            "num_classes": num_classes, "cond_drop_prob": cond_drop_prob, "noise": noise_config_dict(noise_cfg),
            "lr": lr, "weight_decay": weight_decay, "ema_decay": ema_decay, "input_key": input_key,
            "label_key": label_key, "cond_keys": list(cond_keys or []), "sample_posterior": sample_posterior,
            "class_names": list(class_names) if class_names is not None else None,
            "data_info": dict(data_info or {}), "min_snr_gamma": min_snr_gamma,
            "student_guidance": student_guidance,
        })
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class names for {num_classes} classes")
        self.noise_cfg = noise_cfg
        self.denoiser = denoiser
        self.ema = AveragedModel(denoiser, multi_avg_fn=get_ema_multi_avg_fn(ema_decay), use_buffers=True)
        self.ema.requires_grad_(False)
        # The guided student (a denoiser of the same build); its weights come from a checkpoint or
        # from add_guided_student.
        self.student: nn.Module | None = copy.deepcopy(denoiser) if student_guidance is not None else None
        self._student_lr: float | None = None
        self._decoder_tuning: _DecoderTuning | None = None
        self.autoencoder = autoencoder
        if autoencoder is not None:
            autoencoder.eval().requires_grad_(False)
        self.train_scheduler = make_scheduler("ddpm", noise_cfg)
        # Latent statistics, fixed from the first training batch (scalar shift/scale, as in Stable
        # Diffusion's scale factor) so that the diffusion sees unit-variance inputs.
        self.register_buffer("latent_shift", torch.zeros(()))
        self.register_buffer("latent_scale", torch.zeros(()))
        self.register_buffer("latent_shape", torch.zeros(0, dtype=torch.long))
        # TorchScript copies used for sampling after freeze_for_inference(); None: eager modules.
        self._frozen: dict[Any, Any] | None = None

    # --- latents ---------------------------------------------------------------------------
    @torch.no_grad()
    def to_latent(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """Data -> (unnormalised) latent."""
        if self.autoencoder is None:
            return x
        mu, logvar = self.autoencoder.encode(x, mask)
        if self.hparams.sample_posterior:
            return mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        return mu

    def from_latent(self, z: Tensor, mask: Tensor | None = None) -> Tensor:
        """(Unnormalised) latent -> data; ``mask`` (e.g. the valid frames) goes to decoders that take one."""
        if self.autoencoder is None:
            return z
        decoder = getattr(self.autoencoder, "decoder", None)  # the network inside a VAEModule
        if (self._frozen is not None and isinstance(decoder, nn.Module) and not torch.is_grad_enabled()
                and not hasattr(decoder, "freeze_for_inference")):
            return self._frozen_call("decode", decoder, (z,) if mask is None else (z, mask))
        return self.autoencoder.decode(z, mask)

    # --- fast inference ------------------------------------------------------------------------
    def freeze_for_inference(self) -> LatentDiffusionModule:
        """Sample through TorchScript-frozen copies of the EMA denoiser and of the decoder.

        Small-batch sampling on a CPU is dominated by per-operator overhead and by reading weights;
        ``torch.jit.optimize_for_inference`` (tracing, freezing, pre-packed oneDNN weights) makes the
        denoiser's forward about 3x faster at batch 1-2. The copies are traced on first use for each
        input signature (condition keys, shapes) and hold the weights of that moment: call
        this only on a module that will not be trained any more (e.g. one loaded for generation).
        """
        self.eval()
        self._frozen = {}
        # A decoder that knows which of its parts to freeze (e.g. routing by length stays eager) does it.
        decoder = getattr(self.autoencoder, "decoder", None)
        if hasattr(decoder, "freeze_for_inference"):
            decoder.freeze_for_inference()
        return self

    def _frozen_call(self, key: Any, module: nn.Module, args: tuple[Tensor, ...]) -> Tensor:
        assert self._frozen is not None
        # Traces can bake in tensor shapes (views sized by the batch): one copy per shape signature.
        key = (key, *(tuple(a.shape) for a in args))
        fn = self._frozen.get(key)
        if fn is None:
            if len(self._frozen) >= 16:  # e.g. an evaluation asking many batch sizes: keep memory bounded
                self._frozen.pop(next(iter(self._frozen)))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", torch.jit.TracerWarning)
                fn = torch.jit.optimize_for_inference(torch.jit.trace(module.eval(), args, check_trace=False))
            self._frozen[key] = fn
        return fn(*args)

    def _init_latent_stats(self, z: Tensor) -> None:
        shift, var = z.mean(), z.var()
        # ``self.trainer`` raises outside a Trainer; the statistics are also needed there (tests, notebooks).
        trainer = self._trainer
        if trainer is not None and trainer.world_size > 1:
            # Every DDP rank must use identical statistics.
            shift = trainer.strategy.reduce(shift, reduce_op="mean")
            var = trainer.strategy.reduce(var, reduce_op="mean")
        self.latent_shift.copy_(shift)
        self.latent_scale.copy_(var.clamp_min(1e-8).sqrt())
        self.latent_shape = torch.tensor(z.shape[1:], dtype=torch.long, device=z.device)

    @property
    def is_initialised(self) -> bool:
        return bool(self.latent_scale > 0)

    # --- training ---------------------------------------------------------------------------
    def _labels(self, batch: dict[str, Tensor], n: int, drop: bool) -> Tensor | None:
        k = self.hparams.num_classes
        if k == 0:
            return None
        y = batch[self.hparams.label_key].long()
        y = torch.where((y < 0) | (y >= k), torch.full_like(y, k), y)  # unlabelled -> "none"
        if drop and self.hparams.cond_drop_prob > 0:
            y = torch.where(torch.rand(n, device=y.device) < self.hparams.cond_drop_prob, torch.full_like(y, k), y)
        return y

    def diffusion_loss(self, batch: dict[str, Tensor], drop_labels: bool = True) -> Tensor:
        """Mean squared error of the denoiser's prediction at uniformly drawn timesteps.

        A batch that carries its latents already (key :data:`LATENT_KEY`, e.g. encoded once before
        training: the frozen encoder gives the same posterior means every epoch) skips the encoder.
        """
        if LATENT_KEY in batch:
            z = batch[LATENT_KEY]
        else:
            z = self.to_latent(batch[self.hparams.input_key], batch.get("mask"))
        if not self.is_initialised:
            self._init_latent_stats(z)
        z = (z - self.latent_shift) / self.latent_scale
        n = z.shape[0]
        noise = torch.randn_like(z)
        t = torch.randint(0, self.noise_cfg.num_train_timesteps, (n,), device=z.device)
        x_t = self.train_scheduler.add_noise(z, noise, t)
        kind = self.noise_cfg.prediction_type
        target = noise if kind == "epsilon" else z if kind == "sample" else self.train_scheduler.get_velocity(z, noise, t)
        cond = {k: batch[k] for k in self.hparams.cond_keys}
        pred = self.denoiser(x_t, t, self._labels(batch, n, drop_labels), **cond)
        gamma = self.hparams.get("min_snr_gamma")
        if gamma is None:
            return torch.nn.functional.mse_loss(pred, target)
        # Per timestep, an error e in x0 is an error SNR*e in epsilon and (SNR+1)*e in v (squared);
        # dividing by that factor puts every prediction type on the same min(SNR, gamma) x0 weight.
        snr = self._snr(t)
        factor = {"epsilon": snr, "v_prediction": snr + 1, "sample": torch.ones_like(snr)}[kind]
        per_item = (pred - target).pow(2).flatten(1).mean(1)
        return (per_item * snr.clamp_max(gamma) / factor).mean()

    def _snr(self, t: Tensor) -> Tensor:
        """Signal-to-noise ratio alpha_bar / (1 - alpha_bar) of the training timesteps ``t``."""
        from diffusers.training_utils import compute_snr

        return compute_snr(self.train_scheduler, t)

    # --- guidance distillation -------------------------------------------------------------------
    def add_guided_student(self, guidance: float, lr: float | None = None) -> None:
        """Add a student denoiser, initialised from the EMA weights, for guidance ``guidance``.

        From here on :meth:`training_step` trains the student (:meth:`distillation_loss`, AdamW at
        ``lr``, default: the training lr) and nothing else: the denoiser and its EMA stay as they
        are and serve every other guidance scale.
        """
        if self.hparams.num_classes == 0:
            raise ValueError("guidance distillation needs a label-conditional model")
        if not self.is_initialised:
            raise RuntimeError("train the diffusion model before distilling its guidance")
        self.student = copy.deepcopy(self.ema.module).train().requires_grad_(True)
        # Frozen, so that only the student's gradients exist (and DDP synchronises only those).
        self.denoiser.requires_grad_(False)
        self.hparams.student_guidance = float(guidance)
        self._student_lr = lr

    @property
    def distilling(self) -> bool:
        """True once :meth:`add_guided_student` was called: training fits the student."""
        return self.student is not None

    def distillation_loss(self, batch: dict[str, Tensor]) -> Tensor:
        """Mean squared error between the student's one-pass prediction and the EMA teacher's guided one.

        Inputs are training latents noised at uniform timesteps (stage one of Meng et al. 2023); labels
        are dropped as in training, and for an unlabelled item the target is the teacher's unguided
        prediction, so the student also serves unconditional sampling.
        """
        assert self.student is not None
        z = batch[LATENT_KEY] if LATENT_KEY in batch else self.to_latent(batch[self.hparams.input_key], batch.get("mask"))
        z = (z - self.latent_shift) / self.latent_scale
        n, k = z.shape[0], self.hparams.num_classes
        t = torch.randint(0, self.noise_cfg.num_train_timesteps, (n,), device=z.device)
        x_t = self.train_scheduler.add_noise(z, torch.randn_like(z), t)
        y = self._labels(batch, n, drop=True)
        assert y is not None
        cond = {key: batch[key] for key in self.hparams.cond_keys}
        with torch.no_grad():
            target = self._guided(self.ema.module.eval(), x_t, t, y, cond, self.hparams.student_guidance)
        return torch.nn.functional.mse_loss(self.student(x_t, t, y, **cond), target)

    def _guided(self, net: nn.Module, x_t: Tensor, t: Tensor, y: Tensor, cond: dict[str, Tensor],
                guidance: float) -> Tensor:
        """``net``'s prediction with classifier-free guidance ``guidance``, two passes (with and without
        the label); for an unlabelled item (label "none") the unguided prediction."""
        k = self.hparams.num_classes
        out_c, out_u = net(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([y, torch.full_like(y, k)]),
                           **{key: torch.cat([v, v]) for key, v in cond.items()}).chunk(2)
        return torch.where((y == k).view(-1, *[1] * (x_t.dim() - 1)), out_u, out_u + guidance * (out_c - out_u))

    # --- decoder tuning ----------------------------------------------------------------------------
    def add_decoder_tuning(self, lr: float, mix: float = 0.5, max_timestep: int = 300,
                           parameters: Iterable[nn.Parameter] | None = None) -> None:
        """From here on :meth:`training_step` fine-tunes the autoencoder's decoder (:meth:`decoder_tuning_loss`)
        and nothing else: the denoiser, its EMA, the student and the encoder stay as they are.

        Why: a decoder trained only on the encoder's latents meets, at sampling time, latents that
        are near but not on them, and turns that error into artefacts (e.g. feet sliding on the
        floor); tuning on what the sampler predicts teaches it to decode those to clean data.

        Args:
            lr: AdamW learning rate (cosine decay to 5 %).
            mix: share of the items whose latent is replaced by the sampler's prediction (the rest
                keep the encoder's latent, so reconstructions stay as good).
            max_timestep: the predictions are made from latents noised at timesteps drawn uniformly in
                ``[0, max_timestep]`` (the end of the reverse process, where the sample takes its shape).
            parameters: the decoder parameters to tune (default: all of them).
        """
        decoder = getattr(self.autoencoder, "decoder", None)
        if not isinstance(decoder, nn.Module):
            raise ValueError("decoder tuning needs an autoencoder with a decoder")
        if not self.is_initialised:
            raise RuntimeError("train the diffusion model before tuning the decoder")
        if not 0.0 <= mix <= 1.0 or not 0 <= max_timestep < self.noise_cfg.num_train_timesteps:
            raise ValueError(f"decoder tuning needs 0 <= mix <= 1 and 0 <= max_timestep < "
                             f"{self.noise_cfg.num_train_timesteps}, got {mix} and {max_timestep}")
        self.denoiser.requires_grad_(False)
        if self.student is not None:
            self.student.requires_grad_(False)
        params = list(decoder.parameters() if parameters is None else parameters)
        # Only these have gradients, so DDP synchronises only them.
        decoder.requires_grad_(False)
        for p in params:
            p.requires_grad_(True)
        self._decoder_tuning = _DecoderTuning(params, lr, mix, max_timestep)

    @property
    def tuning_decoder(self) -> bool:
        """True once :meth:`add_decoder_tuning` was called: training fits the decoder."""
        return self._decoder_tuning is not None

    def decoder_tuning_loss(self, batch: dict[str, Tensor]) -> Tensor:
        """The autoencoder's reconstruction loss of the batch's data, decoded from the encoder's latent or
        (share ``mix``) from the sampling network's prediction of it after a little noise.

        The prediction is the one sampling makes at the default guidance: the student's where there
        is one, otherwise the EMA denoiser's, with the label (unguided for a dropped label).
        """
        tuning = self._decoder_tuning
        assert tuning is not None and self.autoencoder is not None
        z = batch[LATENT_KEY] if LATENT_KEY in batch else self.to_latent(batch[self.hparams.input_key], batch.get("mask"))
        n = z.shape[0]
        with torch.no_grad():
            z_norm = (z - self.latent_shift) / self.latent_scale
            t = torch.randint(0, tuning.max_timestep + 1, (n,), device=z.device)
            x_t = self.train_scheduler.add_noise(z_norm, torch.randn_like(z_norm), t)
            y = self._labels(batch, n, drop=True)
            cond = {key: batch[key] for key in self.hparams.cond_keys}
            net = (self.student if self.student is not None else self.ema.module).eval()
            pred = net(x_t, t, y, **cond)
            pred = self._x0(pred, x_t, t) * self.latent_scale + self.latent_shift
            use = torch.rand(n, device=z.device) < tuning.mix
            z = torch.where(use.view(-1, *[1] * (z.dim() - 1)), pred, z)
        x_hat = self.autoencoder.decode(z, batch.get("mask"))
        return self.autoencoder.loss(x_hat, batch)["recon"]

    def _x0(self, pred: Tensor, x_t: Tensor, t: Tensor) -> Tensor:
        """The clean latent that a prediction of :attr:`noise_cfg`'s type implies at timesteps ``t``."""
        kind = self.noise_cfg.prediction_type
        if kind == "sample":
            return pred
        alpha_bar = self.train_scheduler.alphas_cumprod.to(x_t.device)[t].view(-1, *[1] * (x_t.dim() - 1))
        a, s = alpha_bar.sqrt(), (1 - alpha_bar).sqrt()
        return (x_t - s * pred) / a if kind == "epsilon" else a * x_t - s * pred

    def _phase(self) -> tuple[str, str]:
        """(log prefix, what is trained) of the current phase: training, distillation or decoder tuning."""
        if self.tuning_decoder:
            return "decoder", "decoder tuning"
        return ("distill", "guidance distillation") if self.distilling else ("train", "latent diffusion")

    def _phase_loss(self, batch: dict[str, Tensor], training: bool) -> Tensor:
        if self.tuning_decoder:
            return self.decoder_tuning_loss(batch)
        if self.distilling:
            return self.distillation_loss(batch)
        return self.diffusion_loss(batch, drop_labels=training)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        prefix, what = self._phase()
        loss = self._phase_loss(batch, training=True)
        check_finite(loss, what, self.global_step)
        self.log(f"{prefix}/loss", loss.detach(), prog_bar=True, on_step=True, on_epoch=True,
                 batch_size=self._batch_size(batch))
        return loss

    def _batch_size(self, batch: dict[str, Tensor]) -> int:
        return int(batch[LATENT_KEY if LATENT_KEY in batch else self.hparams.input_key].shape[0])

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        prefix = self._phase()[0]
        loss = self._phase_loss(batch, training=False)
        # "val/loss" for training (what earlier checkpoints and the docs call it), "<phase>/val_loss" after.
        self.log("val/loss" if prefix == "train" else f"{prefix}/val_loss", loss, prog_bar=True, on_epoch=True,
                 sync_dist=True, batch_size=self._batch_size(batch))
        return loss

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        super().optimizer_step(*args, **kwargs)
        # Here rather than in on_train_batch_end: Lightning runs callbacks' on_train_batch_end first,
        # so a step-interval checkpoint would otherwise miss this step's EMA update.
        if not self.distilling and not self.tuning_decoder:
            self.ema.update_parameters(self.denoiser)

    def configure_optimizers(self) -> Any:
        # Fused AdamW: one kernel per step instead of a dozen per tensor (on 2 CPU cores, 1.5 ms
        # instead of 7.6 ms per step for the 2M-parameter motion denoiser: a fifth of a training step).
        lr = self.hparams.lr
        params = self.denoiser.parameters()
        if self._decoder_tuning is not None:
            params, lr = self._decoder_tuning.parameters, self._decoder_tuning.lr
        elif self.student is not None:
            params, lr = self.student.parameters(), self._student_lr or lr
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=self.hparams.weight_decay, fused=True)
        if self.trainer is None:
            return opt
        total = max(1, int(self.trainer.estimated_stepping_batches))
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total, eta_min=lr * 0.05)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # --- sampling ---------------------------------------------------------------------------
    @torch.inference_mode()
    def sample_latents(
        self,
        n: int,
        labels: Tensor | None = None,
        steps: int = 20,
        sampler: Sampler | str = "ddim",
        guidance: float = 1.0,
        generator: torch.Generator | None = None,
        use_ema: bool = True,
        cond: dict[str, Tensor] | None = None,
        noise: Tensor | None = None,
    ) -> Tensor:
        """Run the reverse process and return unnormalised latents (n, *latent_shape).

        ``labels`` (n,) asks for classes (``None`` or the "none" index: unconditional);
        ``guidance`` > 1 applies classifier-free guidance. Deterministic for a seeded ``generator``.
        ``noise`` (n, *latent_shape) replaces the initial draw (e.g. one seed per item).
        """
        if not self.is_initialised:
            raise RuntimeError("the diffusion model has not been trained (no latent statistics)")
        net = self.ema.module if use_ema else self.denoiser
        if net.training:  # eval() walks every submodule: skipped when already set (batch-1 latency)
            net.eval()
        scheduler = make_scheduler(sampler, self.noise_cfg)  # also rejects an unknown sampler
        shape = (n, *self.latent_shape.tolist())
        if noise is not None and tuple(noise.shape) != shape:
            raise ValueError(f"noise of shape {tuple(noise.shape)}, expected {shape}")
        x = noise.to(self.device) if noise is not None else torch.randn(shape, generator=generator, device=self.device)
        x = x * scheduler.init_noise_sigma
        k = self.hparams.num_classes
        y = None
        if k > 0:
            y = torch.full((n,), k, dtype=torch.long, device=self.device) if labels is None else labels.to(self.device).long()
        guided = y is not None and guidance != 1.0 and bool((y != k).any())
        cond = {key: v.to(self.device) for key, v in (cond or {}).items()}
        # The guidance-distilled student gives the guided prediction in one pass (see add_guided_student).
        student = guided and use_ema and self.student is not None and guidance == self.hparams.student_guidance
        if student:
            net, guided = self.student, False
            if net.training:
                net.eval()
        if guided:
            y_in = torch.cat([y, torch.full_like(y, k)])
            cond_in = {key: torch.cat([v, v]) for key, v in cond.items()}
        keys = sorted(cond)
        positional = _Denoise(net, keys)  # built once per call, not per step (a Module's __init__ is slow)

        def denoise(x_in: Tensor, tt: Tensor, y_in: Tensor | None, c: dict[str, Tensor]) -> Tensor:
            if self._frozen is not None and use_ema and y_in is not None:
                args = (x_in, tt, y_in, *[c[k] for k in keys])
                return self._frozen_call(("student" if student else "denoiser", *keys), positional, args)
            return net(x_in, tt, y_in, **c)

        def predict(x_in: Tensor, t: int) -> Tensor:
            tt = torch.full((n,), t, dtype=torch.long, device=self.device)
            if guided:
                out_c, out_u = denoise(torch.cat([x_in, x_in]), torch.cat([tt, tt]), y_in, cond_in).chunk(2)
                return out_u + guidance * (out_c - out_u)
            return denoise(x_in, tt, y, cond)

        if has_affine_steps(sampler, self.noise_cfg):
            # The same update as diffusers' step, as three operations per step (see AffineSteps).
            table = affine_steps(sampler, steps, self.noise_cfg)
            previous: Tensor | None = None
            for i, t in enumerate(table.timesteps):
                out = predict(x, t)
                x = table.a[i] * x + table.b[i] * out + (table.c[i] * previous if previous is not None else 0.0)
                previous = out
        else:
            scheduler.set_timesteps(steps, device=self.device)
            for t in scheduler.timesteps:
                out = predict(scheduler.scale_model_input(x, t), int(t))
                x = scheduler.step(out, t, x, generator=generator).prev_sample
        return x * self.latent_scale + self.latent_shift

    @torch.inference_mode()
    def sample(self, n: int, labels: Tensor | None = None, steps: int = 20, sampler: Sampler | str = "ddim",
               guidance: float = 1.0, generator: torch.Generator | None = None, use_ema: bool = True,
               cond: dict[str, Tensor] | None = None, noise: Tensor | None = None,
               decode_mask: Tensor | None = None) -> Tensor:
        """Sample ``n`` items and decode them to data space (see :meth:`sample_latents`);
        ``decode_mask`` goes to the decoder (see :meth:`from_latent`)."""
        with _threads_for_batch(n, self.device):
            z = self.sample_latents(n, labels, steps, sampler, guidance, generator, use_ema, cond, noise)
            return self.from_latent(z, None if decode_mask is None else decode_mask.to(self.device))

    # --- checkpoints -------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        nets: dict[str, nn.Module] = {"denoiser": self.denoiser}  # the student has the denoiser's build
        if self.autoencoder is not None:
            ae = self.autoencoder
            nets.update(ae_encoder=ae.encoder, ae_decoder=ae.decoder, ae_loss=ae.loss)
            checkpoint["ramos_autoencoder_hparams"] = dict(ae.hparams)
        store_specs(checkpoint, **nets)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # latent_shape is sized by the first training batch; size it like the saved one so that
        # Lightning's strict state-dict load works when a run resumes (trainer.fit(ckpt_path=...)).
        saved = checkpoint.get("state_dict", {}).get("latent_shape")
        if saved is not None:
            self.latent_shape = torch.zeros(tuple(saved.shape), dtype=torch.long, device=self.latent_shape.device)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> LatentDiffusionModule:
        """Rebuild a trained diffusion stage (autoencoder included) from its checkpoint alone."""
        from ramos.vae.module import VAEModule

        ckpt = load_checkpoint(path)
        specs = read_specs(ckpt, str(path), "denoiser")
        autoencoder = None
        if "ae_encoder" in specs:
            autoencoder = VAEModule(build(specs["ae_encoder"]), build(specs["ae_decoder"]), build(specs["ae_loss"]),
                                    **ckpt.get("ramos_autoencoder_hparams", {}))
        hp = dict(ckpt.get("hyper_parameters", {}))
        module = cls(build(specs["denoiser"]), autoencoder, **hp)
        module.load_weights(ckpt["state_dict"])
        return module.eval()

    def load_weights(self, state: dict[str, Tensor]) -> None:
        """Load a saved state dict into this module (``latent_shape`` is sized on first use: sized here
        like the saved one first)."""
        self.latent_shape = torch.zeros(tuple(state["latent_shape"].shape), dtype=torch.long)
        self.load_state_dict(state)


@dataclass
class _DecoderTuning:
    """Settings of the decoder-tuning phase (see :meth:`LatentDiffusionModule.add_decoder_tuning`)."""

    parameters: list[nn.Parameter]
    lr: float
    mix: float
    max_timestep: int


class _Denoise(nn.Module):
    """``net(x, t, y, **cond)`` with the conditions as positional tensors (what tracing takes)."""

    def __init__(self, net: nn.Module, keys: list[str]) -> None:
        super().__init__()
        self.net, self.keys = net, keys

    def forward(self, x: Tensor, t: Tensor, y: Tensor, *cond: Tensor) -> Tensor:
        return self.net(x, t, y, **dict(zip(self.keys, cond)))


SMALL_BATCH = 4
"""Batches up to this size sample on one CPU thread (see :func:`_threads_for_batch`)."""


@contextlib.contextmanager
def _threads_for_batch(n: int, device: torch.device) -> Iterator[None]:
    """One CPU thread for a small batch sampled on the CPU, restored afterwards.

    At batch 1-4 every operator is a matrix-vector product of microseconds: splitting it over
    threads costs more in OpenMP synchronisation than it saves (on 2 cores, 10-step sampling of one
    motion took 28 ms with 2 threads and 22 ms with 1). Larger batches and GPUs are left alone.
    """
    before = torch.get_num_threads()
    if n > SMALL_BATCH or before == 1 or device.type != "cpu":
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
