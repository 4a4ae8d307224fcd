"""The motion latent-diffusion stage (``ramos train motion-diffusion``): config, data, construction and
its three phases.

The model is the generic :class:`ramos.diffusion.LatentDiffusionModule`; this module injects a
frozen motion VAE (any :class:`ramos.vae.VAEModule` that encodes and decodes windows in metres) and
a :class:`ramos.diffusion.nets.ResidualMLPDenoiser`, conditions it on

- the text: the sentence embedding (:mod:`ramos.motion.text`) of one of the window's prompts, drawn
  afresh each time the window is used; its prompts are its captions and its label read as text, so
  captioned data (HumanML3D), labelled data (the embedded set has both) and a label asked at
  generation all take the one text path. Randomly dropped in training, so classifier-free guidance
  works at sampling time; a data set with neither trains an unconditional model. And
- the valid length of the window in **seconds** (batch key ``"length"``), so that a sampled latent
  decodes to a motion of the asked length (the decoded frames after it are padding and are cut),

and stores in the checkpoint what sampling needs without the data set (``data_info``: frame rate,
window, skeleton, text encoder, labels and each label's training length distribution, from which generation draws
lengths when none is asked; ``sampling``: the default steps, sampler and guidance). The phases:
training, then :class:`~ramos.diffusion.GuidanceDistillation`, then
:class:`~ramos.diffusion.DecoderTuning`, each a LightningModule of its own that takes the model.
It writes into ``out``::

    last.ckpt        the model (VAE included: LatentDiffusionModule.load(path) is enough)
    checkpoints/     the rolling resume point of each phase, and trained.ckpt once training ends
    config.yaml      the config used
    summary.json     steps, seconds, final losses
    samples/*.png    a strip of generated motions (one per label) at each validation
    tb/              TensorBoard logs (loss, learning rate, sample strips)
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from ramos.diffusion import DecoderTuning, GuidanceDistillation, LatentDiffusionModule, NoiseConfig, SamplingConfig
from ramos.diffusion.module import LATENT_KEY, TEXT_KEY
from ramos.diffusion.nets import ResidualMLPDenoiser
from ramos.motion.compose import context_condition, context_features, context_stats
from ramos.motion.datamodule import MotionDataModule
from ramos.motion.dataset import MotionDataset
from ramos.motion.generate import DATA_KIND
from ramos.motion.nets.motion import BucketedMotionDecoder
from ramos.motion.preprocess import crop_window
from ramos.motion.text import ENCODER, TEXT_DIM, PromptTable, prompt_table
from ramos.utils.atomic import write_json
from ramos.utils.checkpoint import CheckpointError, load_checkpoint
from ramos.utils.config import save_config
from ramos.utils.training import RunReport, SeedEachStep, TrainerConfig, global_rank, save_final_checkpoint

log = logging.getLogger(__name__)


# --- configuration ------------------------------------------------------------------------------------
@dataclass
class DenoiserConfig:
    """The residual MLP denoiser over the VAE latent vector, conditioned on timestep, label and length (s).

    Attributes:
        width: hidden width (512 at batch 256 trained 4.4 steps/s on one thread: 8,000 steps would
            take 30 minutes; BENCHMARKS.md section 5).
        depth: residual blocks.
        dropout: dropout inside the blocks.
    """

    width: int = 256
    depth: int = 4
    dropout: float = 0.0


@dataclass
class MotionDiffusionConfig:
    """All parameters of ``ramos train motion-diffusion`` (why each default: docs/generation.md).

    Attributes:
        seed: seed of initialisation, batch order, timesteps and label dropout.
        steps: optimiser steps (about 10 minutes on 2 CPU cores on the embedded set). At 8,000 the
            training's own convergence check still saw the validation loss falling (39 % over the last
            fifth) and the label FID over 20 draws was 2.34x the floor; at 16,000: 7 %, 1.60x, raw foot
            skating 1.53x -> 1.46x, text R-precision top-3 0.959 -> 0.986 (BENCHMARKS.md, "FID over 20 draws").
        batch_size: windows per step.
        lr, weight_decay: AdamW (cosine decay to 5 % over the run).
        ema_decay: EMA of the denoiser's weights (sampling uses the EMA copy).
        cond_drop_prob: share of training prompts replaced by "none" (enables classifier-free guidance).
        text_noise: standard deviation of Gaussian noise added to each dimension of a training prompt's
            embedding (then made unit length again), so that the model answers the neighbourhood of each
            caption, not only the caption itself: free text never seen in training lands there. On the
            embedded set (one training run each, same VAE; benchmarks/bench_paraphrases.py, ramos evaluate),
            49 held-out paraphrases were recognised as their action 0.719 of the time at 0, 0.801 at 0.01,
            0.847 at 0.02, 0.872 at 0.03 and 0.867 at 0.06; labels asked as labels 1.000 up to 0.02, 0.985
            at 0.03, 0.956 at 0.06; label FID 6.3, 9.8, 6.5, 13.9 (floor 4.1; it varies between runs) and
            text R-precision top-3 0.974, 0.968, 0.966, 0.956. 0.02 (cosine about 0.94 to the clean
            embedding) meets every target.
        length_crops: random-length pieces (1 s to the whole window, re-normalised at their first frame)
            of training windows added to the diffusion training set, per window (0.5: one for every
            other window). The embedded set's windows are 10 s loops or short clip ends, so lengths
            between about 2.5 and 9.9 s are never seen, and there the denoiser can ignore its noise
            (every seed gave the same 3 s motion, 0.1 cm apart). 0.5 gives 44 cm between seeds at 3 s
            but label FID 1.78x the floor instead of 1.31x (0.25: 2.72x), so it is off by default; data with motions
            of every length (HumanML3D) do not need it (BENCHMARKS.md, "Lengths never trained").
        noise: the noise process (see :class:`ramos.diffusion.NoiseConfig`): cosine schedule (MDM; MLD
            uses scaled_linear), and the denoiser predicts the clean latent ("sample"): FID 8.2 where v
            gave 40.5 at the same steps, as the latents lie on a thin manifold and noise does not.
            Plain MSE of that prediction: Min-SNR-5 weighting measured worse (FID 9.7 against 8.2).
        denoiser: see :class:`DenoiserConfig`.
        sampling: how motions are sampled by default (10 DPM-Solver++ steps, guidance 2); recorded in
            the checkpoint, where generation, evaluation and the pipeline read it, and the guidance
            the distilled student learns.
        val_every_n_steps: validation loss and sample strip every this many steps.
        strip_steps, strip_labels: sampler steps of the strip (at the default sampler and guidance),
            and at most that many prompts (labels, else captions), one motion each.
        log_every_n_steps: TensorBoard scalar interval.
        num_workers: DataLoader workers.
        distill_steps: optimiser steps of guidance distillation after training (0: none): a student
            denoiser learns to give the guided prediction at ``sampling.guidance`` in one pass, which
            halves the cost of sampling at that scale (1,190 -> 1,554 motions/s, FID 4.35 -> 4.95;
            :class:`ramos.diffusion.GuidanceDistillation`).
        distill_lr: AdamW learning rate of the student, which starts from the EMA weights: a small step.
        distill_batch_size: windows per distillation step.
        decoder_steps: optimiser steps of decoder tuning, last (0: none): the VAE decoder inside this
            checkpoint learns to decode what the sampler predicts from lightly noised training latents
            (:class:`ramos.diffusion.DecoderTuning`; foot skating 1.84x -> 1.40x real). The encoder,
            the latent space and the VAE checkpoint on disk do not change. 1,600 since the decoder
            ends in a rigid skeleton (skating 1.58x at 800 steps, 1.50x at 1,600; about 100 s more
            on 2 cores; BENCHMARKS.md, "Rigid skeletons and exact exports").
        decoder_lr: AdamW learning rate of decoder tuning (cosine decay to 5 %).
        decoder_batch_size: windows per decoder-tuning step.
        decoder_mix: share of a batch decoded from the sampler's prediction (the rest from the
            encoder's latent): the larger, the less skating (1.65x at 0, 1.48x at 0.5, 1.45x at 0.8).
        decoder_max_timestep: the predictions start from latents noised at timesteps up to this.
        context_frames: known frames the denoiser can be given at each end of the window (0: none):
            the window's first ``context_frames`` (``prefix``) and its last valid ones (``suffix``), in
            the window's coordinates; how long motions are continued, composed and in-betweened
            (:mod:`ramos.motion.compose`).
        prefix_drop, suffix_drop: share of training windows that get no prefix / no suffix (zeros), so
            that the same model samples with either, both or neither. 0.5 / 0.75 gave label FID 1.90x
            the floor and recognition 0.974; 0.7 / 0.85 gave 1.72x and 0.996 (raw known frames) and,
            with the known frames standardised, 1.29x and 0.982 (docs/generation.md, section 9).
        decoder_refine: channels of a :class:`~ramos.motion.nets.motion.TemporalRefiner` added to the
            longest length range of the bucketed decoder before tuning (0: none; 16 left skating at
            1.54x); only that range is tuned (the windows of the other ranges are not used).
        trainer: accelerator, devices, strategy (DDP), precision of every phase
            (:class:`ramos.utils.training.TrainerConfig`).
    """

    seed: int = 0
    steps: int = 16000
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    ema_decay: float = 0.999
    cond_drop_prob: float = 0.1
    text_noise: float = 0.02
    length_crops: float = 0.0
    noise: NoiseConfig = field(default_factory=lambda: NoiseConfig(prediction_type="sample"))
    denoiser: DenoiserConfig = field(default_factory=DenoiserConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    val_every_n_steps: int = 1000
    strip_steps: int = 20
    strip_labels: int = 6
    log_every_n_steps: int = 50
    num_workers: int = 0
    distill_steps: int = 1000
    distill_lr: float = 3e-4
    distill_batch_size: int = 256
    decoder_steps: int = 1600
    decoder_lr: float = 4e-4
    decoder_batch_size: int = 64
    decoder_mix: float = 0.8
    decoder_max_timestep: int = 300
    decoder_refine: int = 32
    context_frames: int = 10
    prefix_drop: float = 0.7
    suffix_drop: float = 0.85
    trainer: TrainerConfig = field(default_factory=TrainerConfig)


class MotionDiffusionError(ValueError):
    """The VAE, data set or config cannot be used together; the message is one line."""


# --- data ---------------------------------------------------------------------------------------------
class SecondsDataModule(MotionDataModule):
    """:class:`MotionDataModule` (positions in metres) whose ``length`` is in seconds (float).

    Seconds, not frames, because the denoiser embeds scalars at a scale suited to a few units, and
    because a length in seconds keeps its meaning if the frame rate of the data changes.
    """

    def __init__(self, path: str | os.PathLike[str], batch_size: int, num_workers: int = 0) -> None:
        super().__init__(path, batch_size=batch_size, normalized=False, num_workers=num_workers, shuffle=True)
        self.latents: dict[str, _LatentItems] = {}

    @torch.no_grad()
    def cache_latents(self, module: LatentDiffusionModule, prompts: PromptTable | None = None,
                      batch_size: int = 256, text_noise: float = 0.0, crops: float = 0.0, seed: int = 0) -> None:
        """Encode the train and val windows once (posterior means of the frozen VAE): batches then
        carry ``latent`` instead of ``motion``, and training neither reads windows nor runs the encoder.
        With ``prompts`` (a text model) each item also carries ``text``: one of its prompts' embeddings
        (training items: with ``text_noise``, see :class:`MotionDiffusionConfig`). For a module trained with
        known frames (its ``data_info["context"]``, :func:`ramos.motion.compose.context_stats`) each item
        also carries its ``prefix`` and ``suffix`` conditions (:func:`ramos.motion.compose.context_condition`).
        ``crops``: random-length pieces of training windows added to the training items, per window
        (see ``length_crops`` in :class:`MotionDiffusionConfig`); they follow the windows in the split."""
        data = self.dataset
        context = (module.hparams.get("data_info") or {}).get("context")
        rng = np.random.default_rng(seed)
        for split in ("train", "val"):
            idx = data.split_indices(split)
            pieces = self._crops(idx, crops, rng) if split == "train" else []
            rows = np.concatenate([idx, np.asarray([r for r, _, _ in pieces], dtype=idx.dtype)])
            cuts = [None] * len(idx) + [(start, frames) for _, start, frames in pieces]
            parts, prefixes, suffixes, lengths = [], [], [], []
            for a in range(0, len(rows), batch_size):
                x = np.array(data.windows[rows[a:a + batch_size]], dtype=np.float32)
                n = np.array(data.lengths[rows[a:a + batch_size]])
                for j, cut in enumerate(cuts[a:a + batch_size]):
                    if cut is not None:
                        x[j], n[j] = crop_window(x[j], cut[0], cut[1], data.skeleton), cut[1]
                mask = torch.arange(data.window)[None, :] < torch.as_tensor(n)[:, None]
                parts.append(module.to_latent(torch.from_numpy(x), mask))
                lengths.append(torch.as_tensor(n).long())
                if context:
                    pre, suf = context_features(x, n, context["frames"])
                    prefixes.append(torch.from_numpy(context_condition(pre, context, "prefix")))
                    suffixes.append(torch.from_numpy(context_condition(suf, context, "suffix")))
            if parts:
                labels = torch.as_tensor([data.label_id(int(i)) for i in rows], dtype=torch.long)
                texts = None if prompts is None else _Prompts(prompts, rows, text_noise if split == "train" else 0.0)
                known = (torch.cat(prefixes), torch.cat(suffixes)) if prefixes else None
                self.latents[split] = _LatentItems(torch.cat(parts), torch.cat(lengths), labels, texts, known)

    def _crops(self, idx: np.ndarray, share: float, rng: np.random.Generator) -> list[tuple[int, int, int]]:
        """``(row, start, frames)`` of ``share * len(idx)`` pieces of the windows ``idx``, each of a length
        drawn uniformly between 1 s and the window's own, from a random start."""
        data = self.dataset
        low = max(2, round(data.fps))
        long_enough = idx[np.asarray(data.lengths[idx]) > low]
        if share <= 0 or len(long_enough) == 0:
            return []
        out = []
        for r in rng.choice(long_enough, int(round(share * len(idx))), replace=True):
            length = int(data.lengths[r])
            n = int(rng.integers(low, length + 1))
            out.append((int(r), int(rng.integers(0, length - n + 1)), n))
        return out

    def use_windows(self, min_frames: int = 1) -> None:
        """From here on the cached splits also carry the windows (``motion``, ``mask``; read from the
        data set per item) of at least ``min_frames`` valid frames, and only those (decoder tuning)."""
        data = self.dataset
        for split, items in self.latents.items():
            idx = data.split_indices(split)  # the windows themselves (the crops that follow them are left out)
            keep = np.flatnonzero(data.lengths[idx] >= min_frames)
            texts = None if items.texts is None else items.texts.subset(keep)
            context = None if items.context is None else (items.context[0][keep], items.context[1][keep])
            self.latents[split] = _WindowItems(data, idx[keep], items.latents[keep], items.lengths[keep],
                                               items.labels[keep], texts, context)

    def split(self, name: str) -> Dataset:
        return self.latents[name] if name in self.latents else super().split(name)

    def on_before_batch_transfer(self, batch: dict[str, Tensor], dataloader_idx: int) -> dict[str, Tensor]:
        batch = dict(batch)
        batch["length"] = batch["length"].float() / self.dataset.fps
        return batch


class _Rows:
    """Rows ``rows`` of an array (e.g. the memory-mapped windows) as an array-like, read on slicing."""

    def __init__(self, array: np.ndarray, rows: np.ndarray) -> None:
        self.array, self.rows = array, np.asarray(rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key: slice) -> np.ndarray:
        return np.asarray(self.array[self.rows[key]])


class _Prompts:
    """The prompt embeddings of a split's windows: item ``i`` draws one of its prompts at random each time
    (HumanML3D gives 3 or more captions per motion; all of them are trained on)."""

    def __init__(self, table: PromptTable, rows: np.ndarray, noise: float = 0.0) -> None:
        self.embeddings = torch.from_numpy(table.embeddings)
        self.options = [table.options[int(r)] for r in rows]
        self.zero = torch.zeros(TEXT_DIM)
        self.noise = noise

    def subset(self, keep: np.ndarray) -> _Prompts:
        new = object.__new__(_Prompts)
        new.embeddings, new.zero, new.noise = self.embeddings, self.zero, self.noise
        new.options = [self.options[int(k)] for k in keep]
        return new

    def __getitem__(self, i: int) -> Tensor:
        options = self.options[i]
        if not options:  # no caption and no label: only ever trained as "no text"
            return self.zero
        vector = self.embeddings[options[int(torch.randint(len(options), ()))]]
        if self.noise > 0:
            vector = torch.nn.functional.normalize(vector + self.noise * torch.randn_like(vector), dim=0)
        return vector


class _LatentItems(Dataset):
    """A split's cached latents with their lengths (frames), labels and (a text model) prompts, as batch items."""

    def __init__(self, latents: Tensor, lengths: Tensor, labels: Tensor, texts: _Prompts | None = None,
                 context: tuple[Tensor, Tensor] | None = None) -> None:
        self.latents, self.lengths, self.labels, self.texts = latents, lengths, labels, texts
        self.context = context

    def __len__(self) -> int:
        return len(self.latents)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        item = {LATENT_KEY: self.latents[i], "length": self.lengths[i], "label": self.labels[i]}
        if self.texts is not None:
            item[TEXT_KEY] = self.texts[i]
        if self.context is not None:
            item["prefix"], item["suffix"] = self.context[0][i], self.context[1][i]
        return item


class _WindowItems(_LatentItems):
    """:class:`_LatentItems` with each item's window (``motion`` in metres, ``mask``)."""

    def __init__(self, data: MotionDataset, rows: np.ndarray, latents: Tensor, lengths: Tensor,
                 labels: Tensor, texts: _Prompts | None = None, context: tuple[Tensor, Tensor] | None = None) -> None:
        super().__init__(latents, lengths, labels, texts, context)
        self.data, self.rows = data, rows

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        item = super().__getitem__(i)
        window = self.data.item(int(self.rows[i]))
        item["motion"], item["mask"] = torch.from_numpy(window["motion"]), torch.from_numpy(window["mask"])
        return item


def data_info(data: MotionDataset, vae_path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The facts about the data that generation needs, stored in the checkpoint (plain JSON values)."""
    return {
        "kind": DATA_KIND,
        "fps": data.fps,
        "window": data.window,
        "length_unit": "seconds",
        "skeleton": data.skeleton.to_dict(),
        "length_hist": data.length_histograms(),
        "labels": list(data.labels),
        "text_encoder": ENCODER,
        "example_prompts": _example_prompts(data),
        "dataset": str(data.path),
        "dataset_config_hash": data.manifest.get("config_hash"),
        "vae_checkpoint": None if vae_path is None else str(vae_path),
    }


def _example_prompts(data: MotionDataset, n: int = 8) -> list[str]:
    """The first caption of up to ``n`` clips of the training split, each caption once (what the sample
    strip and the pipeline's samples show for a model without labels)."""
    seen: dict[str, None] = {}
    for i in data.split_indices("train"):
        meta = data.meta[int(i)]
        if meta.get("captions") and not meta.get("mirrored"):
            seen.setdefault(" ".join(meta["captions"][0].split()), None)
        if len(seen) >= n:
            break
    return list(seen)


# --- construction ----------------------------------------------------------------------------------------
def check_vae(vae: torch.nn.Module, data: MotionDataset, vae_path: str | os.PathLike[str]) -> torch.Size:
    """Encode and decode two windows of ``data``: the latent shape, or a one-line error on mismatch."""
    item = [data.item(i) for i in range(min(2, len(data)))]
    x = torch.from_numpy(np.stack([it["motion"] for it in item]))
    mask = torch.from_numpy(np.stack([it["mask"] for it in item]))
    shape = f"windows of {data.window} frames x {data.skeleton.num_joints} joints"
    try:
        with torch.no_grad():
            mu, _ = vae.encode(x, mask)
            out = vae.decode(mu, mask)
    except (RuntimeError, ValueError, IndexError) as exc:
        raise MotionDiffusionError(f"{vae_path}: this VAE cannot encode {data.path}'s {shape} "
                                   f"({' '.join(str(exc).split())[:160]})") from None
    if tuple(out.shape) != tuple(x.shape):
        raise MotionDiffusionError(f"{vae_path}: the VAE decodes {tuple(out.shape[1:])}, but {data.path} has "
                                   f"{tuple(x.shape[1:])} windows (another skeleton or window length)")
    return mu.shape[1:]


def build_module(vae: torch.nn.Module, data: MotionDataset, cfg: MotionDiffusionConfig,
                 vae_path: str | os.PathLike[str] = "<vae>", text: bool = True) -> LatentDiffusionModule:
    """The untrained diffusion stage for ``vae`` (frozen) on ``data``: text-conditional when ``text``
    (the data has prompts), else unconditional."""
    latent_shape = check_vae(vae, data, vae_path)
    d = cfg.denoiser
    text_dim = TEXT_DIM if text else 0
    h = cfg.context_frames
    size = h * data.skeleton.num_joints * 3 + 1  # standardised known frames and a "given" flag
    vectors = {"prefix": size, "suffix": size} if h > 0 else {}
    denoiser = ResidualMLPDenoiser(dim=int(np.prod(latent_shape)), width=d.width, depth=d.depth,
                                   cond_scalars=["length"], dropout=d.dropout, text_dim=text_dim,
                                   cond_vectors=vectors)
    info = data_info(data, vae_path)
    if h > 0:
        train = data.split_indices("train")
        info["context"] = context_stats(_Rows(data.windows, train), data.lengths[train], h)
    return LatentDiffusionModule(
        denoiser, vae, cond_drop_prob=cfg.cond_drop_prob, noise=cfg.noise,
        lr=cfg.lr, weight_decay=cfg.weight_decay, ema_decay=cfg.ema_decay, input_key="motion",
        cond_keys=["length", *vectors], data_info=info, sampling=cfg.sampling, text_dim=text_dim,
        cond_drop={"prefix": cfg.prefix_drop, "suffix": cfg.suffix_drop} if h > 0 else None,
    )


def load_vae(path: str | os.PathLike[str]) -> torch.nn.Module:
    """A frozen VAE from its checkpoint, with a clear error for anything else."""
    from ramos.vae import VAEModule

    ckpt_path = Path(path)
    try:
        return VAEModule.load(ckpt_path)
    except CheckpointError as exc:
        raise CheckpointError(f"{exc} (--vae needs a checkpoint written by `ramos train motion-vae`)") from None
    except (KeyError, RuntimeError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{ckpt_path}: not a RaMoS VAE checkpoint ({type(exc).__name__})") from None


# --- TensorBoard sample strips ------------------------------------------------------------------------
class SampleStrip(L.Callback):
    """At each validation, sample one motion per label (else per example caption; up to ``max_labels``, with
    ``steps`` sampler steps and the model's default sampler and guidance) and save a contact sheet.

    The PNG goes to ``<out>/samples/step_<N>.png`` and to TensorBoard as ``samples/strip``.
    """

    def __init__(self, model: LatentDiffusionModule, out_dir: str | os.PathLike[str], max_labels: int = 6,
                 steps: int = 20, seed: int = 0) -> None:
        self.model, self.out_dir = model, Path(out_dir)
        self.max_labels, self.steps, self.seed = max_labels, steps, seed

    @torch.no_grad()
    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero or not self.model.is_initialised:
            return
        from ramos.motion.generate import MotionGenerator
        from ramos.motion.render import render_grid

        gen = MotionGenerator(self.model)
        if gen.labels or not gen.text:
            result = gen.sample(list(gen.labels[: self.max_labels]) or [None], steps=self.steps, seed=self.seed)
        else:
            result = gen.sample(texts=gen.example_prompts[: self.max_labels] or [None], steps=self.steps,
                                seed=self.seed)
        titles = [f"{name[:28]} {m.shape[0] / gen.fps:.1f}s" for name, m in zip(result.names, result.motions)]
        path = self.out_dir / "samples" / f"step_{trainer.global_step:06d}.png"
        render_grid(result.motions, gen.skeleton, path, titles=titles, n_frames=6, panel_px=110)
        logger = trainer.logger
        if logger is not None and hasattr(getattr(logger, "experiment", None), "add_image"):
            from PIL import Image

            image = np.asarray(Image.open(path).convert("RGB"))
            logger.experiment.add_image("samples/strip", image, trainer.global_step, dataformats="HWC")


# --- training --------------------------------------------------------------------------------------------
@dataclass
class TrainResult:
    """What :func:`train_motion_diffusion` wrote."""

    checkpoint: Path
    seconds: float
    steps: int
    final_loss: float | None
    distill_steps: int = 0
    decoder_steps: int = 0

    @property
    def steps_text(self) -> str:
        """e.g. "8000 steps + 1000 of guidance distillation + 800 of decoder tuning"."""
        parts = [f"{self.steps} steps"]
        parts += [f"{n} of {what}" for n, what in [(self.distill_steps, "guidance distillation"),
                                                   (self.decoder_steps, "decoder tuning")] if n]
        return " + ".join(parts)


_RESUME = {"train": "last", "distill": "distill_last", "decoder": "decoder_last"}
"""Resume checkpoint name (in ``<out>/checkpoints``) per phase; "last" is what earlier versions wrote."""
_LOSS_KEYS = {"train": ("train/loss", "val/loss"), "distill": ("distill/loss", "distill/val_loss"),
              "decoder": ("decoder/loss", "decoder/val_loss")}
"""(train, validation) loss keys each phase logs (what its :class:`RunReport` reads)."""


def _fit_phase(phase: str, module: L.LightningModule, model: LatentDiffusionModule, dm: SecondsDataModule,
               out_dir: Path, steps: int, cfg: MotionDiffusionConfig, progress: bool) -> tuple[L.Trainer, RunReport]:
    """Fit ``module`` (one phase: ``"train"``, ``"distill"`` or ``"decoder"``) for ``steps``, resuming from
    ``<out>/checkpoints/<phase>_last.ckpt`` when there is one; ``model`` draws the sample strips. The
    :class:`RunReport` says what the phase did (steps, time, data size) and warns when it looks cut short."""
    from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
    from lightning.pytorch.loggers import TensorBoardLogger

    val_every = max(1, min(cfg.val_every_n_steps, steps))
    has_val = len(dm.split("val")) > 0
    train_key, val_key = _LOSS_KEYS[phase]
    report = RunReport(f"motion diffusion ({phase})", len(dm.split("train")), dm.batch_size, train_key=train_key,
                       val_key=val_key)
    trainer = L.Trainer(
        **cfg.trainer.kwargs(routed=True), max_steps=steps, max_epochs=-1,
        logger=TensorBoardLogger(save_dir=str(out_dir), name="tb", version="" if phase == "train" else phase,
                                 default_hp_metric=False),
        # One rolling resume point per phase; save_top_k=0 with save_last would never write it.
        callbacks=[ModelCheckpoint(dirpath=out_dir / "checkpoints", filename=_RESUME[phase], monitor=None,
                                   save_top_k=1, every_n_train_steps=val_every, enable_version_counter=False),
                   SeedEachStep(cfg.seed), LearningRateMonitor("step"),
                   SampleStrip(model, out_dir / ("" if phase == "train" else phase), cfg.strip_labels,
                               cfg.strip_steps, cfg.seed), report],
        # Validation (and the sample strip) on a step interval: epochs of the small data sets are a
        # handful of steps, those of HumanML3D hundreds.
        val_check_interval=val_every, check_val_every_n_epoch=None,
        limit_val_batches=1.0 if has_val else 0,
        log_every_n_steps=min(cfg.log_every_n_steps, val_every),
        enable_progress_bar=progress, enable_model_summary=False, num_sanity_val_steps=0,
        default_root_dir=out_dir,
    )
    resume = _resume_point(out_dir / "checkpoints" / f"{_RESUME[phase]}.ckpt", module, phase)
    trainer.fit(module, datamodule=dm, ckpt_path=None if resume is None else str(resume), weights_only=True)
    return trainer, report


def _resume_point(path: Path, module: L.LightningModule, phase: str) -> Path | None:
    """``path`` when it is a resume point of this phase's module; None (start the phase afresh, with a
    warning) when there is none or it holds another module's weights (e.g. an interrupted distillation
    of an earlier version, whose phase was part of the diffusion module)."""
    if not path.is_file():
        return None
    saved = set(load_checkpoint(path).get("state_dict", {}))
    if saved != set(module.state_dict()):
        log.warning("%s: not a resume point of this version's %s phase; the phase starts afresh", path, phase)
        return None
    log.info("resuming phase %r from %s", phase, path)
    return path


def train_motion_diffusion(vae_path: str | os.PathLike[str], dataset: str | os.PathLike[str],
                           out: str | os.PathLike[str], cfg: MotionDiffusionConfig | None = None,
                           progress: bool = True) -> TrainResult:
    """Train the motion latent diffusion on ``dataset`` in the latent space of the VAE at ``vae_path``,
    then (``cfg.distill_steps`` > 0) distil its default guidance into a one-pass student, then
    (``cfg.decoder_steps`` > 0) tune the VAE decoder inside the checkpoint to the sampler's latents.

    Resumable phase by phase: training from ``<out>/checkpoints/last.ckpt``; a finished training
    is kept as ``<out>/checkpoints/trained.ckpt``; distillation resumes from
    ``<out>/checkpoints/distill_last.ckpt``, decoder tuning from ``<out>/checkpoints/decoder_last.ckpt``.
    The final checkpoint ``<out>/last.ckpt`` (the model alone: :meth:`LatentDiffusionModule.load`)
    is written atomically.
    """
    cfg = cfg or MotionDiffusionConfig()
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    dm = SecondsDataModule(dataset, cfg.batch_size, cfg.num_workers)
    data = dm.dataset
    if len(data.split_indices("train")) == 0:
        raise MotionDiffusionError(f"{data.path}: no training windows")
    prompts = prompt_table(data)
    if not prompts.has_text:
        log.warning("%s has no captions and no labels: training an unconditional model", data.path)
    model = build_module(load_vae(vae_path), data, cfg, vae_path, text=prompts.has_text)
    dm.cache_latents(model, prompts if prompts.has_text else None, text_noise=cfg.text_noise,
                     crops=cfg.length_crops, seed=cfg.seed)
    save_config(cfg, out_dir / "config.yaml")
    trained = out_dir / "checkpoints" / "trained.ckpt"
    start = time.perf_counter()
    metrics: dict[str, Any] = {}
    runs: dict[str, Any] = {}
    if trained.is_file():
        log.info("training finished earlier: %s", trained)
        model.load_weights(load_checkpoint(trained)["state_dict"])
        steps = cfg.steps
    else:
        trainer, report = _fit_phase("train", model, model, dm, out_dir, cfg.steps, cfg, progress)
        steps, metrics, runs["train"] = int(trainer.global_step), dict(trainer.callback_metrics), report.summary
        save_final_checkpoint(trainer, trained)
    distilled = cfg.distill_steps > 0 and model.is_conditional
    if distilled:
        dm.batch_size = cfg.distill_batch_size
        trainer, report = _fit_phase("distill", GuidanceDistillation(model, cfg.distill_lr), model, dm, out_dir,
                                     cfg.distill_steps, cfg, progress)
        runs["distill"] = report.summary
        metrics.update({k: v for k, v in trainer.callback_metrics.items() if k.startswith("distill/")})
    tuned = cfg.decoder_steps > 0 and _tune_decoder(model, dm, out_dir, cfg, progress, metrics, runs)
    seconds = time.perf_counter() - start
    final = out_dir / "last.ckpt"
    if global_rank() != 0:  # under DDP the other ranks stop here; rank 0 writes the model
        return TrainResult(final, seconds, steps, None)
    model = model.cpu()
    model.save(final)
    loss = metrics.get("train/loss_epoch", metrics.get("train/loss_step"))
    val = metrics.get("val/loss")
    distill = metrics.get("distill/loss_epoch")
    decoder = metrics.get("decoder/loss_epoch")
    summary = {"checkpoint": str(final), "steps": steps, "seconds": round(seconds, 2),
               "train_loss": None if loss is None else float(loss), "val_loss": None if val is None else float(val),
               "distill_steps": cfg.distill_steps if distilled else 0,
               "distill_loss": None if distill is None else float(distill),
               "decoder_steps": cfg.decoder_steps if tuned else 0,
               "decoder_loss": None if decoder is None else float(decoder),
               "labels": list(data.labels), "prompts": len(prompts.texts),
               "windows_train": int(len(data.split_indices("train"))),
               "runs": runs, "warnings": [w for run in runs.values() for w in run.get("warnings", [])]}
    write_json(out_dir / "summary.json", summary)
    return TrainResult(final, seconds, steps, summary["train_loss"], summary["distill_steps"], summary["decoder_steps"])


def _tune_decoder(model: LatentDiffusionModule, dm: SecondsDataModule, out_dir: Path, cfg: MotionDiffusionConfig,
                  progress: bool, metrics: dict[str, Any], runs: dict[str, Any]) -> bool:
    """The decoder-tuning phase (see :class:`MotionDiffusionConfig`); its losses go to ``metrics``, its run
    report to ``runs``. False
    (skipped, with a warning) when no training window is long enough for the tuned range."""
    assert model.autoencoder is not None
    decoder = model.autoencoder.decoder
    data = dm.dataset
    min_frames = decoder.longest_range_frames[0] if isinstance(decoder, BucketedMotionDecoder) else 1
    if not (data.lengths[data.split_indices("train")] >= min_frames).any():
        log.warning("decoder tuning skipped: no training window of %d frames or more", min_frames)
        return False
    params = None
    if isinstance(decoder, BucketedMotionDecoder):
        # Only the longest range is tuned: the short ranges reconstruct to about 1 cm already, and the
        # sampled 10 s motions are where the decoder's tolerance shows (docs/generation.md).
        decoder = decoder.with_refiner(cfg.decoder_refine)
        model.autoencoder.decoder = decoder
        params = decoder.longest_range_parameters()
    tuning = DecoderTuning(model, cfg.decoder_lr, cfg.decoder_mix, cfg.decoder_max_timestep, params)
    dm.use_windows(min_frames)
    dm.batch_size = cfg.decoder_batch_size
    trainer, report = _fit_phase("decoder", tuning, model, dm, out_dir, cfg.decoder_steps, cfg, progress)
    runs["decoder"] = report.summary
    metrics.update({k: v for k, v in trainer.callback_metrics.items() if k.startswith("decoder/")})
    return True
