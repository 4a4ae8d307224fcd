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
        # Steps uniform in log-SNR (lambda), as the DPM-Solver papers (Lu et al. 2022) prescribe: the
        # last model call comes at t = 0 instead of t = 99 (of 1000) with 10 "trailing" steps. At t = 99
        # the noise in the 256-d motion latent is as large as the distance between neighbouring
        # training latents, and a clean-latent prediction there averages them (FID 5.05 -> 4.01 on
        # the motion pipeline's checkpoint, same 10 steps; BENCHMARKS.md section 5).
        return DPMSolverMultistepScheduler(**common, algorithm_type="dpmsolver++", solver_order=2,
                                           timestep_spacing="trailing", use_lu_lambdas=True)
    raise ValueError(f"unknown sampler {kind!r}; choose one of {', '.join(SAMPLERS)}")


def noise_config_dict(noise: NoiseConfig) -> dict[str, Any]:
    """Plain-dict form, for hyper-parameters that must survive ``weights_only`` loading."""
    return asdict(noise)


def has_affine_steps(kind: str, noise: NoiseConfig) -> bool:
    """Whether :func:`affine_steps` describes sampler ``kind`` exactly: DDIM always; multistep
    DPM-Solver++ when the network predicts the clean sample (its history then holds the raw outputs;
    for epsilon or v it holds clean-sample estimates that also depend on earlier samples)."""
    return kind == "ddim" or (kind == "dpmsolver++" and noise.prediction_type == "sample")


@dataclass(frozen=True)
class AffineSteps:
    """A deterministic sampler's whole run as per-step coefficients:
    ``x <- a[i] * x + b[i] * out_i + c[i] * out_(i-1)`` (``out``: the network's raw prediction).

    DDIM, and multistep DPM-Solver++ on a clean-sample prediction (no thresholding), are affine in
    the current sample and the current and previous network outputs, with coefficients fixed by the
    timesteps alone (:func:`has_affine_steps`). Read off diffusers' own ``step`` once
    (:func:`affine_steps`), they replace its ~50 small tensor operations per step by three: at
    batch 1 on a CPU the scheduler took about a fifth of sampling.
    """

    timesteps: tuple[int, ...]
    a: tuple[float, ...]
    b: tuple[float, ...]
    c: tuple[float, ...]


def affine_steps(kind: str, steps: int, noise: NoiseConfig) -> AffineSteps:
    """The :class:`AffineSteps` of sampler ``kind`` at ``steps`` steps, measured on diffusers' scheduler.

    For step ``i`` the scheduler is run from a fresh copy on one-element inputs that are zero except
    one probe (the sample at step ``i``, the output at step ``i``, or the output at step ``i - 1``); by
    linearity each run's result is that probe's coefficient. Costs O(steps^2) scalar scheduler steps,
    once per (sampler, steps, noise process). Raises ValueError where :func:`has_affine_steps` is False.
    """
    if not has_affine_steps(kind, noise):
        raise ValueError(f"sampler {kind!r} with {noise.prediction_type} prediction is not an affine map of the outputs")
    return _affine_steps(kind, steps, *astuple(noise))


@functools.lru_cache(maxsize=64)
def _affine_steps(kind: str, steps: int, *noise_fields: Any) -> AffineSteps:
    import torch

    noise = NoiseConfig(*noise_fields)

    def run(i: int, x_i: float, out_i: float, out_prev: float) -> float:
        sched = make_scheduler(kind, noise)
        sched.set_timesteps(steps)
        x = torch.zeros(1, dtype=torch.float64)
        for j, t in enumerate(sched.timesteps[: i + 1]):
            out = {i: out_i, i - 1: out_prev}.get(j, 0.0)
            sample = torch.full_like(x, x_i) if j == i else x
            x = sched.step(torch.full_like(x, out), t, sample).prev_sample
        return float(x[0])

    proto = make_scheduler(kind, noise)
    proto.set_timesteps(steps)
    n = len(proto.timesteps)
    a = tuple(run(i, 1.0, 0.0, 0.0) for i in range(n))
    b = tuple(run(i, 0.0, 1.0, 0.0) for i in range(n))
    c = tuple(run(i, 0.0, 0.0, 1.0) if i > 0 else 0.0 for i in range(n))
    return AffineSteps(tuple(int(t) for t in proto.timesteps), a, b, c)
