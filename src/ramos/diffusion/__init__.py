"""Generic latent diffusion: noise schedules and samplers (diffusers), the sampling loop, the model and
its training, guidance distillation, decoder tuning, denoisers.

Nothing here knows about images or motion: the data-specific parts (autoencoder, denoiser
network) are injected.

    schedule.py        NoiseConfig, diffusers schedulers, per-step affine coefficients
    sampling.py        SamplingConfig (the generation defaults), classifier-free guidance, the reverse process
    module.py          LatentDiffusionModule: the model, its training step, EMA, checkpoints, sampling
    distillation.py    GuidanceDistillation: a one-pass student for the default guidance
    decoder_tuning.py  DecoderTuning: the autoencoder's decoder fitted to the sampler's latents
    nets.py            ResidualMLPDenoiser
"""

from ramos.diffusion.decoder_tuning import DecoderTuning
from ramos.diffusion.distillation import GuidanceDistillation
from ramos.diffusion.module import LatentDiffusionModule
from ramos.diffusion.sampling import SamplingConfig
from ramos.diffusion.schedule import NoiseConfig, Sampler, make_scheduler

__all__ = ["DecoderTuning", "GuidanceDistillation", "LatentDiffusionModule", "NoiseConfig", "Sampler",
           "SamplingConfig", "make_scheduler"]
