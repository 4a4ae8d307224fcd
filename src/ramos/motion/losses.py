"""Reconstruction losses for motion VAEs (Buildable, so checkpoints rebuild them).

Each loss follows the :class:`ramos.vae.VAEModule` contract ``loss(x_hat, batch) -> dict``:
``"recon"`` is optimised, the other keys are logged as diagnostics. Sections:

- pose losses: single frames (B, J, 3), see :class:`PoseReconstruction`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ramos.motion.skeleton import Skeleton
from ramos.utils.spec import Buildable


def bone_lengths(positions: Tensor, bones: Tensor) -> Tensor:
    """Bone lengths (..., n_bones) of positions (..., J, 3) for (n_bones, 2) (parent, child) pairs."""
    return (positions[..., bones[:, 1], :] - positions[..., bones[:, 0], :]).norm(dim=-1)


# --- pose losses -------------------------------------------------------------------------------------
class PoseReconstruction(Buildable):
    """Joint position error plus a bone-length term, for poses (B, J, 3) in metres.

    ``recon = (sum_j |x_hat_j - x_j|^2 + bone_weight * sum_b (l_hat_b - l_b)^2) / sigma_m^2``,
    averaged over the batch. Dividing by ``sigma_m^2`` makes the term a Gaussian log-likelihood
    with a ``sigma_m`` noise scale (up to a factor 2), so ``kl_weight = 1`` is a plain ELBO and the
    KL weight does not depend on the units. The bone term penalises stretched limbs directly,
    which position error alone does weakly (a 1 cm joint error can be a 1 cm bone stretch).

    Diagnostics (not optimised): ``mpjpe_mm`` and ``bone_err_mm`` (mean absolute bone-length error).

    Args:
        skeleton: ``Skeleton.to_dict()`` of the poses.
        key: batch entry holding the target poses.
        sigma_m: noise scale in metres.
        bone_weight: weight of the bone-length term relative to the joint term.
    """

    def __init__(self, skeleton: dict[str, Any], key: str = "pose", sigma_m: float = 0.01,
                 bone_weight: float = 1.0) -> None:
        super().__init__()
        sk = Skeleton.from_dict(skeleton)
        self.key, self.sigma_m, self.bone_weight = key, sigma_m, bone_weight
        self.register_buffer("bones", torch.from_numpy(sk.bones), persistent=False)

    def forward(self, x_hat: Tensor, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        x = batch[self.key]
        diff = x_hat - x
        joint = diff.pow(2).sum((-1, -2))
        bone_diff = bone_lengths(x_hat, self.bones) - bone_lengths(x, self.bones)
        bone = bone_diff.pow(2).sum(-1)
        recon = ((joint + self.bone_weight * bone) / self.sigma_m ** 2).mean()
        with torch.no_grad():
            mpjpe_mm = diff.norm(dim=-1).mean() * 1000.0
            bone_err_mm = bone_diff.abs().mean() * 1000.0
        return {"recon": recon, "mpjpe_mm": mpjpe_mm, "bone_err_mm": bone_err_mm}
