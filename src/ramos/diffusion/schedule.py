"""Noise schedules and samplers: thin typed wrappers over diffusers' schedulers.

A scheduler knows nothing about the network and is never part of a checkpoint: it is rebuilt
from :class:`NoiseConfig` (plain values, stored in the module's hyper-parameters).
"""

from __future__ import annotations

import copy
import functools
from dataclasses import asdict, astuple, dataclass
from typing import Any, Literal

from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler
from diffusers.schedulers.scheduling_utils import SchedulerMixin

Sampler = Literal["ddpm", "ddim", "dpmsolver++"]
SAMPLERS: tuple[str, ...] = ("ddpm", "ddim", "dpmsolver++")


@dataclass
class NoiseConfig:
    """The forward (noising) process shared by training and every sampler.

    Attributes:
        num_train_timesteps: length of the training chain.
        beta_schedule: diffusers name: "squaredcos_cap_v2" (cosine, MDM), "scaled_linear" (MLD), "linear".
        beta_start, beta_end: ends of linear schedules (ignored by cosine).
        prediction_type: what the denoiser predicts: "epsilon", "v_prediction" or "sample".
    """

    num_train_timesteps: int = 1000
    beta_schedule: Literal["squaredcos_cap_v2", "scaled_linear", "linear"] = "squaredcos_cap_v2"
    beta_start: float = 0.00085
    beta_end: float = 0.012
    # Epsilon prediction divides by sqrt(alpha_bar) ~ 5e-5 at the cosine schedule's last step,
    # where "trailing" samplers start: sampled MNIST latents came out 1000x too large. v does not.
    prediction_type: Literal["epsilon", "v_prediction", "sample"] = "v_prediction"

    @classmethod
    def from_any(cls, value: NoiseConfig | dict[str, Any] | None) -> NoiseConfig:
        if value is None:
            return cls()
        return value if isinstance(value, cls) else cls(**value)


def make_scheduler(kind: Sampler | str, noise: NoiseConfig) -> SchedulerMixin:
    """A fresh diffusers scheduler of the given kind for the noise process ``noise``.

    Schedulers are stateful (step index, solver history), so every call gets its own; they are
    copied from a cached prototype because building one evaluates the whole beta schedule in Python
    (about 3 ms: more than a sampling step of a small denoiser). The copy is shallow: the schedule's
    tensors are shared read-only, and ``set_timesteps``, which every sampling loop calls first,
    gives the copy its own timesteps, solver history and step index.
    """
    return copy.copy(_prototype(kind, *astuple(noise)))


@functools.lru_cache(maxsize=32)
def _prototype(kind: str, *noise_fields: Any) -> SchedulerMixin:
    noise = NoiseConfig(*noise_fields)
    common: dict[str, Any] = dict(
        num_train_timesteps=noise.num_train_timesteps,
        beta_schedule=noise.beta_schedule,
        beta_start=noise.beta_start,
        beta_end=noise.beta_end,
        prediction_type=noise.prediction_type,
    )
    if kind == "ddpm":
        return DDPMScheduler(**common, clip_sample=False, timestep_spacing="trailing")
    if kind == "ddim":
        # "trailing" spacing starts at the last training step and alpha_0 = 1 ends on a clean sample,
        # which both matter at few steps.
        return DDIMScheduler(**common, clip_sample=False, set_alpha_to_one=True, timestep_spacing="trailing")
    if kind == "dpmsolver++":
        return DPMSolverMultistepScheduler(**common, algorithm_type="dpmsolver++", solver_order=2,
                                           timestep_spacing="trailing")
    raise ValueError(f"unknown sampler {kind!r}; choose one of {', '.join(SAMPLERS)}")


def noise_config_dict(noise: NoiseConfig) -> dict[str, Any]:
    """Plain-dict form, for hyper-parameters that must survive ``weights_only`` loading."""
    return asdict(noise)
