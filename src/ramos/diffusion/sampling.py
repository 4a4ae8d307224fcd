"""Sampling, apart from the networks and their training: the settings, classifier-free guidance and the
reverse process written in the open (the diffusers way)::

    x = noise
    for t in timesteps:
        out = predict(x, t)                       # the network, guided or not
        x = scheduler.step(out, t, x).prev_sample

:class:`SamplingConfig` is the one source of the generation defaults: a diffusion checkpoint records
the settings it was trained for (its guidance-distilled student serves exactly that guidance), and
generation, evaluation and the pipeline read them from there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor

from ramos.diffusion.schedule import NoiseConfig, Sampler, affine_steps, has_affine_steps, make_scheduler

Denoise = Callable[[Tensor, Tensor, Tensor | None, dict[str, Tensor]], Tensor]
"""``denoise(x_t, t, y, cond) -> prediction``: a denoiser network with its conditions as a dict."""


@dataclass
class SamplingConfig:
    """How motions (or images) are sampled by default.

    Attributes:
        steps: reverse-process steps. DPM-Solver++ reaches at 10 steps what DDIM needs about 20 for
            (docs/generation.md), at half the latency.
        sampler: "dpmsolver++" (2nd order, steps uniform in log-SNR), "ddim" or "ddpm".
        guidance: classifier-free guidance scale (1: none). 2 gave the best FID of 1-3.5 on the motion
            pipeline (docs/generation.md); a guidance-distilled student learns this scale and then gives
            the guided prediction in one pass.
    """

    steps: int = 10
    sampler: Sampler = "dpmsolver++"
    guidance: float = 2.0

    @classmethod
    def from_any(cls, value: SamplingConfig | dict[str, Any] | None) -> SamplingConfig:
        """A config from itself, its dict (as checkpoints store it) or None (the defaults)."""
        if value is None:
            return cls()
        return value if isinstance(value, cls) else cls(**value)

    def to_dict(self) -> dict[str, Any]:
        """Plain values, for hyper-parameters that must survive ``weights_only`` loading."""
        return asdict(self)


def guided(denoise: Denoise, y: Tensor, cond: dict[str, Tensor], guidance: float,
           null: Tensor) -> Callable[[Tensor, Tensor], Tensor]:
    """``(x_t, t) -> prediction`` with classifier-free guidance: ``u + guidance * (c - u)`` of the
    predictions with (``c``) and without (``u``) the conditions ``y`` (label ids or text vectors), both
    in one batch; ``null`` is "no condition" for each item (the "none" label, the zero text). An item
    whose condition is ``null`` gets its unguided prediction."""
    y2 = torch.cat([y, null])
    cond2 = {key: torch.cat([v, v]) for key, v in cond.items()}
    unconditional = (y == null).reshape(y.shape[0], -1).all(dim=1)

    def predict(x: Tensor, t: Tensor) -> Tensor:
        out_c, out_u = denoise(torch.cat([x, x]), torch.cat([t, t]), y2, cond2).chunk(2)
        where = unconditional.view(-1, *[1] * (x.dim() - 1))
        return torch.where(where, out_u, out_u + guidance * (out_c - out_u))

    return predict


def reverse_process(predict: Callable[[Tensor, int], Tensor], x: Tensor, noise: NoiseConfig, steps: int,
                    sampler: Sampler | str, generator: torch.Generator | None = None) -> Tensor:
    """Run ``sampler`` for ``steps`` from the initial noise ``x`` (scaled here by the sampler's initial
    sigma); ``predict(x_t, t)`` gives the network's output of :attr:`NoiseConfig.prediction_type`.
    Returns the clean sample. Deterministic samplers ignore ``generator``; "ddpm" draws from it."""
    scheduler = make_scheduler(sampler, noise)  # also rejects an unknown sampler
    x = x * scheduler.init_noise_sigma
    if has_affine_steps(sampler, noise):
        # The same update as diffusers' step, as three operations per step (see AffineSteps).
        table = affine_steps(sampler, steps, noise)
        previous: Tensor | None = None
        for i, t in enumerate(table.timesteps):
            out = predict(x, t)
            x = table.a[i] * x + table.b[i] * out + (table.c[i] * previous if previous is not None else 0.0)
            previous = out
        return x
    scheduler.set_timesteps(steps, device=x.device)
    for t in scheduler.timesteps:
        out = predict(scheduler.scale_model_input(x, t), int(t))
        x = scheduler.step(out, t, x, generator=generator).prev_sample
    return x
