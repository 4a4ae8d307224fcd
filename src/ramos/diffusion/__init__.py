"""Generic diffusion: noise schedules and samplers (diffusers), the latent-diffusion stage, denoisers.

Nothing here knows about images or motion: the data-specific parts (autoencoder, denoiser
network) are injected.
"""

from ramos.diffusion.module import LatentDiffusionModule
from ramos.diffusion.schedule import NoiseConfig, Sampler, make_scheduler

__all__ = ["LatentDiffusionModule", "NoiseConfig", "Sampler", "make_scheduler"]
