"""Reconstruction losses of the motion and pose VAEs (Buildable, so checkpoints rebuild them).

Each loss follows the :class:`ramos.vae.VAEModule` contract ``loss(x_hat, batch) -> dict``:
``"recon"`` is optimised, the other keys are logged as diagnostics.

- :class:`MaskedMotionLoss`: windows (B, T, J, 3) of the motion VAE. Every term is a sum over the
  *valid* frames of an item (frames >= its length are padding and never count), averaged over the
  batch. Units are metres and metres per frame. With ``per_window=True`` each item's sums are
  rescaled to ``W`` frames (``W / length``), so that a short window weighs as much as a full one
  instead of ``length / W`` of it.
- :class:`PoseReconstruction`: single poses (B, J, 3) of the pose VAE.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ramos.motion.nets.motion import MotionFeatures
from ramos.motion.skeleton import Skeleton
from ramos.utils.spec import Buildable


def valid_mask(batch: dict[str, Tensor], x: Tensor) -> Tensor:
    """The (B, T) bool mask of a batch (all frames valid when the batch has no ``"mask"``)."""
    mask = batch.get("mask")
    if mask is None:
        return torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
    return mask.bool()


def pair_mask(mask: Tensor) -> Tensor:
    """(B, T-1) mask of frame transitions whose two frames are both valid."""
    return mask[:, 1:] & mask[:, :-1]


def foot_contacts(x: Tensor, feet: list[int], up_axis: int, height_m: float, speed_m_per_frame: float) -> Tensor:
    """(B, T-1, F) bool: foot below ``height_m`` in both frames of a transition and moving slower
    than ``speed_m_per_frame`` horizontally (the ground truth's contacts, HumanML3D-style)."""
    foot = x[:, :, feet]
    low = foot[..., up_axis] < height_m
    horizontal = [a for a in range(3) if a != up_axis]
    step = (foot[:, 1:, :, horizontal] - foot[:, :-1, :, horizontal]).norm(dim=-1)
    return low[:, 1:] & low[:, :-1] & (step < speed_m_per_frame)


# --- motion losses -----------------------------------------------------------------------------------
class MaskedMotionLoss(Buildable):
    """Position + velocity (+ foot contact) reconstruction loss on batch[``key``], padding masked out.

    Args:
        position_weight: weight of the squared joint-position error (m^2; see ``root``).
        velocity_weight: weight of the squared error of per-frame joint displacements (m/frame)^2:
            keeps reconstructions as smooth as the data (jitter, skating).
        foot_contact_weight: weight of the squared horizontal displacement of the reconstructed feet
            on transitions where the ground-truth foot is in contact (0 disables).
        feet: foot joint indices (``Skeleton.feet``).
        up_axis: vertical axis index.
        contact_height_m: a foot lower than this may be in contact.
        contact_speed_m_per_frame: ... and slower than this (0.025 m/frame = 0.5 m/s at 20 fps).
        root: root joint index. The position term is split into the root's error (counted once per
            joint, as in MPJPE) and the root-relative error of the other joints, so that early root
            drift does not push the pose to compensate (better conditioned than raw positions).
        key: batch key of the ground-truth motion (B, T, J, 3).
        per_window: rescale every item's sums to ``T`` frames (weight ``T / length``): short windows
            (the held-out segments are 3-13 frames) then count as much as full ones.
        feature_weight: weight of the squared error of the standardised features (the networks'
            own representation, :class:`~ramos.motion.nets.motion.MotionFeatures`); every
            feature has unit variance there, so the pose is not drowned by the root trajectory.
        feature_mean, feature_std: the features' statistics (needed when ``feature_weight > 0``).
    """

    def __init__(self, position_weight: float = 1.0, velocity_weight: float = 1.0, foot_contact_weight: float = 0.0,
                 feet: list[int] | None = None, up_axis: int = 1, contact_height_m: float = 0.05,
                 contact_speed_m_per_frame: float = 0.025, root: int = 0, key: str = "motion",
                 per_window: bool = False, feature_weight: float = 0.0,
                 feature_mean: list[float] | None = None, feature_std: list[float] | None = None) -> None:
        super().__init__()
        if foot_contact_weight > 0 and not feet:
            raise ValueError("foot_contact_weight > 0 needs the foot joint indices (feet)")
        self.per_window, self.feature_weight = per_window, feature_weight
        self.features: nn.Module | None = None
        if feature_weight > 0:
            if feature_std is None:
                raise ValueError("feature_weight > 0 needs the feature statistics (feature_mean/feature_std)")
            self.features = MotionFeatures(len(feature_std) // 3, root, up_axis, feature_mean, feature_std)
        self.position_weight, self.velocity_weight = position_weight, velocity_weight
        self.foot_contact_weight, self.feet, self.up_axis = foot_contact_weight, list(feet or []), up_axis
        self.contact_height_m, self.contact_speed = contact_height_m, contact_speed_m_per_frame
        self.root, self.key = root, key

    def forward(self, x_hat: Tensor, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        x = batch[self.key]
        mask = valid_mask(batch, x)
        m = mask.to(x.dtype)
        batch_size = x.shape[0]
        # Per-item weight of every frame sum: 1, or T / length (each window counts as T frames).
        w = x.shape[1] / m.sum(1).clamp_min(1) if self.per_window else torch.ones_like(m[:, 0])
        mw = m * w[:, None]
        sq = (x_hat - x).pow(2).sum(-1)  # (B, T, J)
        r = self.root
        root_sq = (x_hat[:, :, r] - x[:, :, r]).pow(2).sum(-1)  # (B, T)
        local_sq = ((x_hat - x_hat[:, :, r:r + 1]) - (x - x[:, :, r:r + 1])).pow(2).sum(-1)  # (B, T, J), 0 at root
        pos = ((x.shape[2] * root_sq + local_sq.sum(-1)) * mw).sum() / batch_size
        mp = pair_mask(mask).to(x.dtype) * w[:, None]
        vel_err = ((x_hat[:, 1:] - x_hat[:, :-1]) - (x[:, 1:] - x[:, :-1])).pow(2).sum(-1)
        vel = (vel_err * mp[..., None]).sum() / batch_size
        terms = {"pos": pos, "vel": vel}
        recon = self.position_weight * pos + self.velocity_weight * vel
        if self.features is not None:
            fe = (self.features.normalize(x_hat) - self.features.normalize(x)).pow(2).sum(-1)  # (B, T)
            terms["feat"] = (fe * mw).sum() / batch_size
            recon = recon + self.feature_weight * terms["feat"]
        if self.feet:
            contact = foot_contacts(x, self.feet, self.up_axis, self.contact_height_m, self.contact_speed)
            contact = contact & pair_mask(mask)[..., None]
            horizontal = [a for a in range(3) if a != self.up_axis]
            f = x_hat[:, :, self.feet][..., horizontal]
            slide = (f[:, 1:] - f[:, :-1]).pow(2).sum(-1)
            terms["foot"] = (slide * contact.to(x.dtype) * w[:, None, None]).sum() / batch_size
            if self.foot_contact_weight > 0:
                recon = recon + self.foot_contact_weight * terms["foot"]
        terms["recon"] = recon
        with torch.no_grad():
            # Diagnostic in millimetres over valid frames only (the headline metric, per batch).
            terms["mpjpe_mm"] = 1000.0 * (sq.sqrt() * m[..., None]).sum() / (m.sum() * x.shape[2]).clamp_min(1)
        return terms


# --- pose losses -------------------------------------------------------------------------------------
def bone_lengths(positions: Tensor, bones: Tensor) -> Tensor:
    """Bone lengths (..., n_bones) of positions (..., J, 3) for (n_bones, 2) (parent, child) pairs."""
    return (positions[..., bones[:, 1], :] - positions[..., bones[:, 0], :]).norm(dim=-1)


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
