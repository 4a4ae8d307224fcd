"""Guidance distillation (Meng et al. 2023, "On distillation of guided diffusion models", stage one).

:class:`GuidanceDistillation` takes a trained :class:`~ramos.diffusion.module.LatentDiffusionModule`
and gives it a student: a copy of its EMA denoiser that learns to predict, in one pass, what the
EMA denoiser predicts with classifier-free guidance at the model's default guidance (two passes,
with and without the condition). Sampling at that guidance then runs the student, at half the cost;
any other guidance still runs the guided EMA denoiser. The denoiser, its EMA and the autoencoder
do not change.
"""

from __future__ import annotations

import copy
from typing import Any

import lightning as L
import torch
from torch import Tensor

from ramos.diffusion.module import LatentDiffusionModule, log_step
from ramos.diffusion.sampling import guided
from ramos.utils.training import adamw_cosine


class GuidanceDistillation(L.LightningModule):
    """Fits ``model.student`` to the guided prediction of ``model``'s EMA denoiser.

    Args:
        model: a trained conditional model (labels or text); it gets the student (a copy of its EMA denoiser,
            unless it has one already, e.g. when a run resumes) and ``student_guidance`` in its
            hyper-parameters, so that its checkpoint rebuilds the student.
        lr: AdamW learning rate of the student (cosine decay to 5 %); default: the model's.
    """

    def __init__(self, model: LatentDiffusionModule, lr: float | None = None) -> None:
        super().__init__()
        if not model.is_conditional:
            raise ValueError("guidance distillation needs a conditional model (labels or text)")
        if not model.is_initialised:
            raise RuntimeError("train the diffusion model before distilling its guidance")
        self.model = model
        self.guidance = float(model.sampling.guidance)
        self.lr = model.hparams.lr if lr is None else lr
        if model.student is None:
            model.student = copy.deepcopy(model.ema.module)
        model.student.train().requires_grad_(True)
        # Frozen, so that only the student's gradients exist (and DDP synchronises only those).
        model.denoiser.requires_grad_(False)
        model.hparams.student_guidance = self.guidance

    def loss(self, batch: dict[str, Tensor]) -> Tensor:
        """Mean squared error between the student's one-pass prediction and the EMA teacher's guided one.

        Inputs are training latents noised at uniform timesteps; conditions are dropped as in training,
        and for an item without one the target is the teacher's unguided prediction, so the student
        also serves unconditional sampling.
        """
        m = self.model
        assert m.student is not None
        x_t, t = m.noised(m.normalize(m.latents(batch)))
        y = m.condition(batch, drop=True)
        null = m.null_condition(len(x_t))
        assert y is not None and null is not None
        cond = m.conditions(batch, drop=True)
        teacher = m.ema.module.eval()
        with torch.no_grad():
            target = guided(lambda x, tt, yy, c: teacher(x, tt, yy, **c), y, cond, self.guidance, null)(x_t, t)
        return torch.nn.functional.mse_loss(m.student(x_t, t, y, **cond), target)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        return log_step(self, "distill/loss", self.loss(batch), "guidance distillation", self.model.batch_size(batch))

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        loss = self.loss(batch)
        self.log("distill/val_loss", loss, prog_bar=True, on_epoch=True, sync_dist=True,
                 batch_size=self.model.batch_size(batch))
        return loss

    def configure_optimizers(self) -> Any:
        assert self.model.student is not None
        return adamw_cosine(self, self.model.student.parameters(), self.lr, self.model.hparams.weight_decay)
