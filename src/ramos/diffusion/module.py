"""The generic latent-diffusion model and its training.

Trains an injected denoiser to reverse a diffusers noise process in the latent space of a frozen
autoencoder (or directly on the data when ``autoencoder`` is None: the raw-space baseline).
Conditional on a label (class ids) or a text (sentence embeddings), with condition dropout, so
classifier-free guidance works at sampling time; keeps
an exponential moving average (EMA) of the denoiser's weights, which sampling uses by default.

A trained model can be refined by two further LightningModules that take it as input:
:class:`ramos.diffusion.distillation.GuidanceDistillation` adds a one-pass student for its default
guidance, :class:`ramos.diffusion.decoder_tuning.DecoderTuning` fits the autoencoder's decoder to
the latents the sampler gives. Sampling itself (:mod:`ramos.diffusion.sampling`) is written apart.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import warnings
from collections.abc import Iterator
from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from ramos.diffusion.sampling import SamplingConfig, guided, reverse_process
from ramos.diffusion.schedule import NoiseConfig, Sampler, make_scheduler, noise_config_dict
from ramos.utils.atomic import atomic_path
from ramos.utils.checkpoint import CheckpointError, load_checkpoint
from ramos.utils.spec import build
from ramos.utils.training import adamw_cosine, check_finite, read_specs, store_specs

log = logging.getLogger(__name__)

LATENT_KEY = "latent"
"""Batch key of precomputed (unnormalised) latents; see :meth:`LatentDiffusionModule.latents`."""
TEXT_KEY = "text"
"""Batch key of the text condition: float (B, text_dim) sentence embeddings, all zeros for "no text"."""

RETIRED_HPARAMS: dict[str, Any] = {"sample_posterior": False, "min_snr_gamma": None}
"""Hyper-parameters that checkpoints of earlier versions record for options since removed (never set,
or measured worse: Min-SNR weighting, docs/generation.md), with the value that stayed."""


class LatentDiffusionModule(L.LightningModule):
    """Diffusion in the latent space of a frozen autoencoder.

    Args:
        denoiser: network ``denoiser(x_t, t, y, **cond)``; see :mod:`ramos.diffusion.nets`.
        autoencoder: frozen module with ``encode(x, mask=None) -> (mu, logvar)`` and ``decode(z)``
            (e.g. :class:`ramos.vae.VAEModule`); ``None`` diffuses the data itself.
        num_classes: number of labels (0: not label-conditional). Label ``num_classes`` means "none".
        cond_drop_prob: probability of replacing a condition (label or text) by "none" in training (guidance).
        noise: the noise process (:class:`NoiseConfig` or its dict).
        lr, weight_decay: AdamW settings (cosine decay over the run).
        ema_decay: EMA decay of the denoiser weights.
        input_key, label_key: batch keys of the data and of the labels.
        cond_keys: extra batch keys passed to the denoiser as keyword conditions (e.g. "length").
        class_names: names of the labels (index order), kept in the checkpoint for users.
        text_dim: size of the text condition (batch key :data:`TEXT_KEY`; 0: not text-conditional). A model
            conditions on labels or on text, not both; the zero vector means "no text".
        data_info: plain JSON-able facts about the data the stage needs at sampling time
            (e.g. fps, window length, per-label length distributions); kept in the checkpoint.
        sampling: the sampling settings this model is made for (:class:`SamplingConfig` or its dict):
            the defaults of :meth:`sample`, kept in the checkpoint for generation to read.
        cond_drop: per vector condition of ``cond_keys`` (e.g. known frames), the share of training items
            that get it as zeros ("not given"), so that one model serves with and without it.
        student_guidance: the guidance scale of a guidance-distilled student (``None``: no student;
            set by :class:`~ramos.diffusion.distillation.GuidanceDistillation`, kept in the checkpoint
            so that loading rebuilds the student).
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
        class_names: list[str] | None = None,
        data_info: dict[str, Any] | None = None,
        sampling: SamplingConfig | dict[str, Any] | None = None,
        student_guidance: float | None = None,
        text_dim: int = 0,
        cond_drop: dict[str, float] | None = None,
    ) -> None:
        super().__init__()
        if text_dim > 0 and num_classes > 0:
            raise ValueError("a model conditions on labels or on text, not both (give a label as a text prompt)")
        noise_cfg = NoiseConfig.from_any(noise)
        self.save_hyperparameters({
            "num_classes": num_classes, "cond_drop_prob": cond_drop_prob, "noise": noise_config_dict(noise_cfg),
            "lr": lr, "weight_decay": weight_decay, "ema_decay": ema_decay, "input_key": input_key,
            "label_key": label_key, "cond_keys": list(cond_keys or []),
            "class_names": list(class_names) if class_names is not None else None,
            "data_info": dict(data_info or {}), "sampling": SamplingConfig.from_any(sampling).to_dict(),
            "student_guidance": student_guidance, "text_dim": text_dim, "cond_drop": dict(cond_drop or {}),
        })
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class names for {num_classes} classes")
        self.noise_cfg = noise_cfg
        self.denoiser = denoiser
        self.ema = AveragedModel(denoiser, multi_avg_fn=get_ema_multi_avg_fn(ema_decay), use_buffers=True)
        self.ema.requires_grad_(False)
        # The guided student (a denoiser of the same build); its weights come from a checkpoint or
        # from GuidanceDistillation.
        self.student: nn.Module | None = copy.deepcopy(denoiser) if student_guidance is not None else None
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

    @property
    def sampling(self) -> SamplingConfig:
        """The sampling settings this model is made for (the defaults of :meth:`sample`)."""
        return SamplingConfig.from_any(self.hparams.get("sampling"))

    # --- latents ---------------------------------------------------------------------------
    @torch.no_grad()
    def to_latent(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """Data -> (unnormalised) latent: the posterior mean."""
        if self.autoencoder is None:
            return x
        return self.autoencoder.encode(x, mask)[0]

    def from_latent(self, z: Tensor, mask: Tensor | None = None) -> Tensor:
        """(Unnormalised) latent -> data; ``mask`` (e.g. the valid frames) goes to decoders that take one."""
        if self.autoencoder is None:
            return z
        decoder = getattr(self.autoencoder, "decoder", None)  # the network inside a VAEModule
        if (self._frozen is not None and isinstance(decoder, nn.Module) and not torch.is_grad_enabled()
                and not hasattr(decoder, "freeze_for_inference")):
            return self._frozen_call("decode", decoder, (z,) if mask is None else (z, mask))
        return self.autoencoder.decode(z, mask)

    def latents(self, batch: dict[str, Tensor]) -> Tensor:
        """The batch's (unnormalised) latents: its :data:`LATENT_KEY` entry when it carries them (e.g.
        encoded once before training: the frozen encoder gives the same posterior means every epoch),
        else its data encoded."""
        if LATENT_KEY in batch:
            return batch[LATENT_KEY]
        return self.to_latent(batch[self.hparams.input_key], batch.get("mask"))

    def normalize(self, z: Tensor) -> Tensor:
        """Latents -> the unit-variance space the diffusion runs in."""
        return (z - self.latent_shift) / self.latent_scale

    @property
    def is_conditional(self) -> bool:
        """Whether the model takes a label or a text (and so can be guided)."""
        return self.hparams.num_classes > 0 or self.hparams.get("text_dim", 0) > 0

    def null_condition(self, n: int) -> Tensor | None:
        """``n`` times "no condition": the "none" label, or the zero text vector; None when unconditional."""
        if self.hparams.get("text_dim", 0) > 0:
            return torch.zeros(n, self.hparams.text_dim, device=self.device)
        if self.hparams.num_classes > 0:
            return torch.full((n,), self.hparams.num_classes, dtype=torch.long, device=self.device)
        return None

    def condition(self, batch: dict[str, Tensor], drop: bool) -> Tensor | None:
        """The batch's condition (label ids or text embeddings), missing ones (an unlabelled item, a zero
        text) and, with ``drop``, a random ``cond_drop_prob`` share as "none"; None when unconditional."""
        null = self.null_condition(self.batch_size(batch))
        if null is None:
            return None
        if self.hparams.get("text_dim", 0) > 0:
            y = batch[TEXT_KEY].float()
        else:
            k = self.hparams.num_classes
            y = batch[self.hparams.label_key].long()
            y = torch.where((y < 0) | (y >= k), null, y)
        if drop and self.hparams.cond_drop_prob > 0:
            dropped = torch.rand(y.shape[0], device=y.device) < self.hparams.cond_drop_prob
            y = torch.where(dropped.view(-1, *[1] * (y.dim() - 1)), null, y)
        return y

    def conditions(self, batch: dict[str, Tensor], drop: bool = False) -> dict[str, Tensor]:
        """The batch's extra conditions (``cond_keys``) as the denoiser's keyword arguments; with ``drop``,
        a random ``cond_drop`` share of each droppable one zeroed ("not given")."""
        out = {key: batch[key] for key in self.hparams.cond_keys}
        if drop:
            for key, p in (self.hparams.get("cond_drop") or {}).items():
                v = out[key]
                keep = torch.rand(v.shape[0], device=v.device) >= p
                out[key] = v * keep.view(-1, *[1] * (v.dim() - 1)).to(v.dtype)
        return out

    def noised(self, z: Tensor, max_timestep: int | None = None, noise: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``(x_t, t)``: normalised latents ``z`` noised (with ``noise``, default a fresh draw) at
        timesteps drawn uniformly in ``[0, max_timestep]`` (default: the whole chain)."""
        top = self.noise_cfg.num_train_timesteps if max_timestep is None else max_timestep + 1
        t = torch.randint(0, top, (z.shape[0],), device=z.device)
        return self.train_scheduler.add_noise(z, torch.randn_like(z) if noise is None else noise, t), t

    def x0(self, pred: Tensor, x_t: Tensor, t: Tensor) -> Tensor:
        """The clean (normalised) latent that a prediction of :attr:`noise_cfg`'s type implies at ``t``."""
        kind = self.noise_cfg.prediction_type
        if kind == "sample":
            return pred
        alpha_bar = self.train_scheduler.alphas_cumprod.to(x_t.device)[t].view(-1, *[1] * (x_t.dim() - 1))
        a, s = alpha_bar.sqrt(), (1 - alpha_bar).sqrt()
        return (x_t - s * pred) / a if kind == "epsilon" else a * x_t - s * pred

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
    def diffusion_loss(self, batch: dict[str, Tensor], drop: bool = True) -> Tensor:
        """Mean squared error of the denoiser's prediction at uniformly drawn timesteps."""
        z = self.latents(batch)
        if not self.is_initialised:
            self._init_latent_stats(z)
        z = self.normalize(z)
        noise = torch.randn_like(z)
        x_t, t = self.noised(z, noise=noise)
        kind = self.noise_cfg.prediction_type
        target = noise if kind == "epsilon" else z if kind == "sample" else self.train_scheduler.get_velocity(z, noise, t)
        pred = self.denoiser(x_t, t, self.condition(batch, drop), **self.conditions(batch, drop))
        return torch.nn.functional.mse_loss(pred, target)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        loss = self.diffusion_loss(batch)
        return log_step(self, "train/loss", loss, "latent diffusion", self.batch_size(batch))

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        loss = self.diffusion_loss(batch, drop=False)
        self.log("val/loss", loss, prog_bar=True, on_epoch=True, sync_dist=True, batch_size=self.batch_size(batch))
        return loss

    def batch_size(self, batch: dict[str, Tensor]) -> int:
        return int(batch[LATENT_KEY if LATENT_KEY in batch else self.hparams.input_key].shape[0])

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        super().optimizer_step(*args, **kwargs)
        # Here rather than in on_train_batch_end: Lightning runs callbacks' on_train_batch_end first,
        # so a step-interval checkpoint would otherwise miss this step's EMA update.
        self.ema.update_parameters(self.denoiser)

    def configure_optimizers(self) -> Any:
        return adamw_cosine(self, self.denoiser.parameters(), self.hparams.lr, self.hparams.weight_decay)

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

    # --- sampling ---------------------------------------------------------------------------
    @torch.inference_mode()
    def sample_latents(
        self,
        n: int,
        condition: Tensor | None = None,
        steps: int | None = None,
        sampler: Sampler | str | None = None,
        guidance: float | None = None,
        generator: torch.Generator | None = None,
        use_ema: bool = True,
        cond: dict[str, Tensor] | None = None,
        noise: Tensor | None = None,
        cond_until: int | None = None,
    ) -> Tensor:
        """Run the reverse process and return unnormalised latents (n, *latent_shape).

        ``condition`` asks for label ids (n,) or texts (n, text_dim) (``None``, the "none" label or a zero
        text: unconditional);
        ``guidance`` > 1 applies classifier-free guidance; ``steps``, ``sampler`` and ``guidance``
        default to :attr:`sampling`. At the guidance of a distilled student the student gives the
        guided prediction in one pass. Deterministic for a seeded ``generator``. ``noise``
        (n, *latent_shape) replaces the initial draw (e.g. one seed per item). ``cond_until``: the
        droppable conditions of ``cond`` (those with a training ``cond_drop``, e.g. known frames) are
        given only at timesteps <= it, the steps before run as if they were left out (None: every step).
        """
        if not self.is_initialised:
            raise RuntimeError("the diffusion model has not been trained (no latent statistics)")
        default = self.sampling
        steps = default.steps if steps is None else steps
        sampler = default.sampler if sampler is None else sampler
        guidance = default.guidance if guidance is None else guidance
        shape = (n, *self.latent_shape.tolist())
        if noise is not None and tuple(noise.shape) != shape:
            raise ValueError(f"noise of shape {tuple(noise.shape)}, expected {shape}")
        x = noise.to(self.device) if noise is not None else torch.randn(shape, generator=generator, device=self.device)
        y = null = self.null_condition(n)
        if null is not None and condition is not None:
            y = condition.to(self.device).to(null.dtype)
            if y.shape != null.shape:
                raise ValueError(f"condition of shape {tuple(y.shape)}, expected {tuple(null.shape)}")
        cond = {key: v.to(self.device) for key, v in (cond or {}).items()}
        guide = y is not None and guidance != 1.0 and not bool(_is_null(y, null).all())
        student = guide and use_ema and self.student is not None and guidance == self.hparams.student_guidance
        if guide and use_ema and self.student is not None and not student:
            log.info("guidance %g is not the student's %g: sampling with the two-pass teacher", guidance,
                     self.hparams.student_guidance)
        net = self.student if student else self.ema.module if use_ema else self.denoiser
        if net.training:  # eval() walks every submodule: skipped when already set (batch-1 latency)
            net.eval()

        def predictor(c: dict[str, Tensor]) -> Callable[[Tensor, int], Tensor]:
            keys = sorted(c)
            positional = _Denoise(net, keys)  # built once per call, not per step (a Module's __init__ is slow)

            def denoise(x_in: Tensor, t: Tensor, y_in: Tensor | None, c_in: dict[str, Tensor]) -> Tensor:
                if self._frozen is not None and use_ema and y_in is not None:
                    args = (x_in, t, y_in, *[c_in[key] for key in keys])
                    return self._frozen_call(("student" if student else "denoiser", *keys), positional, args)
                return net(x_in, t, y_in, **c_in)

            predict_guided = guided(denoise, y, c, guidance, null) if guide and not student else None

            def predict(x_t: Tensor, t: int) -> Tensor:
                tt = torch.full((n,), t, dtype=torch.long, device=self.device)
                return predict_guided(x_t, tt) if predict_guided is not None else denoise(x_t, tt, y, c)

            return predict

        with_cond = predictor(cond)
        droppable = set(self.hparams.get("cond_drop") or {})
        without = with_cond if cond_until is None else predictor({k: v for k, v in cond.items() if k not in droppable})

        def predict(x_t: Tensor, t: int) -> Tensor:
            return with_cond(x_t, t) if cond_until is None or t <= cond_until else without(x_t, t)

        x = reverse_process(predict, x, self.noise_cfg, steps, sampler, generator)
        return x * self.latent_scale + self.latent_shift

    @torch.inference_mode()
    def sample(self, n: int, condition: Tensor | None = None, steps: int | None = None,
               sampler: Sampler | str | None = None, guidance: float | None = None,
               generator: torch.Generator | None = None, use_ema: bool = True,
               cond: dict[str, Tensor] | None = None, noise: Tensor | None = None,
               decode_mask: Tensor | None = None) -> Tensor:
        """Sample ``n`` items and decode them to data space (see :meth:`sample_latents`);
        ``decode_mask`` goes to the decoder (see :meth:`from_latent`)."""
        with _threads_for_batch(n, self.device):
            z = self.sample_latents(n, condition, steps, sampler, guidance, generator, use_ema, cond, noise)
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

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the model (every network, its specs and hyper-parameters; no optimiser state) as a
        checkpoint that :meth:`load` reads, atomically."""
        checkpoint: dict[str, Any] = {"state_dict": self.state_dict(), "hyper_parameters": dict(self.hparams),
                                      "pytorch-lightning_version": L.__version__}
        self.on_save_checkpoint(checkpoint)
        with atomic_path(path) as tmp:
            torch.save(checkpoint, tmp)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> LatentDiffusionModule:
        """Rebuild a trained diffusion model (autoencoder included) from its checkpoint alone."""
        from ramos.vae.module import VAEModule

        ckpt = load_checkpoint(path)
        specs = read_specs(ckpt, str(path), "denoiser")
        autoencoder = None
        if "ae_encoder" in specs:
            autoencoder = VAEModule(build(specs["ae_encoder"]), build(specs["ae_decoder"]), build(specs["ae_loss"]),
                                    **ckpt.get("ramos_autoencoder_hparams", {}))
        hp = dict(ckpt.get("hyper_parameters", {}))
        for name, kept in RETIRED_HPARAMS.items():
            if name in hp and hp.pop(name) != kept:
                raise CheckpointError(f"{path}: trained with {name}, an option this version of RaMoS no longer has")
        if "sampling" not in hp and hp.get("student_guidance") is not None:
            # Earlier checkpoints did not record their sampling settings: their student's guidance was the default.
            hp["sampling"] = SamplingConfig(guidance=hp["student_guidance"]).to_dict()
        module = cls(build(specs["denoiser"]), autoencoder, **hp)
        module.load_weights(ckpt["state_dict"])
        return module.eval()

    def load_weights(self, state: dict[str, Tensor]) -> None:
        """Load a saved state dict into this module (``latent_shape`` is sized on first use: sized here
        like the saved one first)."""
        self.latent_shape = torch.zeros(tuple(state["latent_shape"].shape), dtype=torch.long)
        self.load_state_dict(state)


def _is_null(y: Tensor, null: Tensor | None) -> Tensor:
    """Per item (B,), whether its condition ``y`` is "none"."""
    if null is None:
        return torch.ones(y.shape[0], dtype=torch.bool, device=y.device)
    return (y == null).reshape(y.shape[0], -1).all(dim=1)


def log_step(module: L.LightningModule, key: str, loss: Tensor, what: str, batch_size: int) -> Tensor:
    """Stop on a non-finite ``loss`` (naming ``what`` is trained), log it under ``key`` and return it:
    the training step of every diffusion phase."""
    check_finite(loss, what, module.global_step)
    module.log(key, loss.detach(), prog_bar=True, on_step=True, on_epoch=True, batch_size=batch_size)
    return loss


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
