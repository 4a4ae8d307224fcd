"""Motion metrics shared by the VAE and diffusion stages (definitions: docs/metrics.md).

All functions take NumPy arrays of joint positions in metres, y up, shaped (..., T, J, 3), and an
optional validity mask (..., T) (padded frames are False and take no part in any metric). Values
are returned in SI units: metres, m/s^2, m/s^3; ratios in [0, 1].
"""

from __future__ import annotations

import numpy as np
from scipy import linalg, ndimage

from ramos.motion.skeleton import HUMANML3D, Skeleton


def _mask(positions: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    if mask is None:
        return np.ones(positions.shape[:-2], dtype=bool)
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != positions.shape[:-2]:
        raise ValueError(f"mask shape {mask.shape} does not match positions {positions.shape[:-2]}")
    return mask


def _masked_mean(values: np.ndarray, mask: np.ndarray) -> float:
    """Mean of ``values`` (..., T) over entries where ``mask`` (..., T) is True (nan if none)."""
    n = mask.sum()
    return float((values * mask).sum() / n) if n else float("nan")


def _window_mask(mask: np.ndarray, k: int) -> np.ndarray:
    """Valid (..., T-k) mask for a k-th finite difference: all k+1 frames must be valid."""
    out = mask[..., : mask.shape[-1] - k].copy()
    for i in range(1, k + 1):
        out &= mask[..., i: mask.shape[-1] - k + i]
    return out


def mpjpe(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean per-joint position error (m) over valid frames."""
    m = _mask(gt, mask)
    return _masked_mean(np.linalg.norm(pred - gt, axis=-1).mean(-1), m)


def procrustes_align(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Align each pose in ``pred`` (..., J, 3) to ``gt`` by the best similarity transform.

    Rotation (no reflection), uniform scale and translation, solved in closed form (Umeyama).
    """
    mu_p, mu_g = pred.mean(-2, keepdims=True), gt.mean(-2, keepdims=True)
    p, g = pred - mu_p, gt - mu_g
    cov = np.swapaxes(p, -1, -2) @ g
    u, s, vt = np.linalg.svd(cov)
    d = np.sign(np.linalg.det(u @ vt))
    # Flip the last singular direction where needed so R is a proper rotation.
    fix = np.ones_like(s)
    fix[..., -1] = d
    r = (u * fix[..., None, :]) @ vt
    var_p = (p ** 2).sum((-1, -2))
    scale = (s * fix).sum(-1) / np.maximum(var_p, 1e-12)
    return scale[..., None, None] * (p @ r) + mu_g


def pa_mpjpe(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None) -> float:
    """MPJPE (m) after per-frame Procrustes alignment of ``pred`` to ``gt``."""
    return mpjpe(procrustes_align(pred, gt), gt, mask)


def acceleration_error(pred: np.ndarray, gt: np.ndarray, fps: float, mask: np.ndarray | None = None) -> float:
    """Mean per-joint error of accelerations (m/s^2), second finite differences."""
    m = _window_mask(_mask(gt, mask), 2)
    acc = lambda x: (x[..., 2:, :, :] - 2 * x[..., 1:-1, :, :] + x[..., :-2, :, :]) * fps ** 2  # noqa: E731
    return _masked_mean(np.linalg.norm(acc(pred) - acc(gt), axis=-1).mean(-1), m)


def jitter(positions: np.ndarray, fps: float, mask: np.ndarray | None = None) -> float:
    """Mean magnitude of jerk (third finite difference x fps^3), m/s^3."""
    m = _window_mask(_mask(positions, mask), 3)
    jerk = np.diff(positions, n=3, axis=-3) * fps ** 3
    return _masked_mean(np.linalg.norm(jerk, axis=-1).mean(-1), m)


def bone_length_std(positions: np.ndarray, skeleton: Skeleton = HUMANML3D, mask: np.ndarray | None = None) -> float:
    """Std over time of each bone's length (m), averaged over bones and motions (a real body: 0)."""
    m = _mask(positions, mask)
    lengths = skeleton.bone_lengths(positions)  # (..., T, B)
    w = m[..., None].astype(np.float64)
    n = np.maximum(w.sum(-2, keepdims=True), 1)
    mean = (lengths * w).sum(-2, keepdims=True) / n
    std = np.sqrt(((lengths - mean) ** 2 * w).sum(-2) / n[..., 0, :])  # (..., B)
    has = m.any(-1)
    return float(std[has].mean()) if has.any() else float("nan")


def foot_contacts(positions: np.ndarray, skeleton: Skeleton, height_m: float = 0.05
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per frame transition and foot: ``(contact, step, height)``.

    ``contact`` (..., T-1, F) is True where the foot is below ``height_m`` in both frames, ``step``
    (..., T-1, F, 2) its horizontal displacement, ``height`` (..., T, F) its height. Shared by
    :func:`foot_skating_ratio` and the foot clean-up (``ramos.motion.postprocess``), so that both
    mean the same thing by "on the floor". Raises ValueError for a skeleton without feet.
    """
    if not skeleton.feet:
        raise ValueError("the skeleton names no foot joints")
    up = skeleton.up_axis
    horiz = [a for a in range(3) if a != up]
    feet = np.asarray(positions)[..., list(skeleton.feet), :]  # (..., T, F, 3)
    height = feet[..., up]
    contact = (height[..., 1:, :] < height_m) & (height[..., :-1, :] < height_m)
    step = np.diff(feet[..., horiz], axis=-3)
    return contact, step, height


def foot_skating_ratio(positions: np.ndarray, skeleton: Skeleton = HUMANML3D, fps: float = 20.0,
                       mask: np.ndarray | None = None, height_m: float = 0.05, speed_mps: float = 0.5) -> float:
    """Share of valid frames where a foot in contact slides (GMD / MotionLCM definition).

    A foot is in contact when its height is below ``height_m`` in two consecutive frames; a
    contact frame skates when the horizontal foot speed exceeds ``speed_mps`` and so does its
    5-frame moving average. Frames are counted over pairs of consecutive valid frames.
    """
    contact, step, _ = foot_contacts(positions, skeleton, height_m)
    m = _window_mask(_mask(positions, mask), 1)  # (..., T-1)
    speed = np.linalg.norm(step, axis=-1) * fps  # (..., T-1, F)
    smooth = ndimage.uniform_filter1d(speed, size=5, axis=-2, mode="nearest")
    skate = (contact & (speed > speed_mps) & (smooth > speed_mps)).any(-1)
    return _masked_mean(skate.astype(np.float64), m)


def floor_penetration(positions: np.ndarray, skeleton: Skeleton = HUMANML3D, mask: np.ndarray | None = None) -> float:
    """Mean depth (m) of the lowest joint below the floor (y = 0), 0 for frames above it."""
    m = _mask(positions, mask)
    lowest = positions[..., skeleton.up_axis].min(-1)
    return _masked_mean(np.maximum(0.0, -lowest), m)


def root_speed(positions: np.ndarray, skeleton: Skeleton = HUMANML3D, fps: float = 20.0,
               mask: np.ndarray | None = None) -> np.ndarray:
    """Horizontal root speeds (m/s) of all valid frame pairs, flattened (for distributions)."""
    m = _window_mask(_mask(positions, mask), 1)
    horiz = [a for a in range(3) if a != skeleton.up_axis]
    root = positions[..., skeleton.root, :][..., horiz]
    speed = np.linalg.norm(np.diff(root, axis=-2), axis=-1) * fps
    return speed[m]


# --- feature-space metrics -------------------------------------------------------------------
def frechet_distance(feats_a: np.ndarray, feats_b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two feature sets (N, D) (the FID formula)."""
    a, b = np.asarray(feats_a, np.float64), np.asarray(feats_b, np.float64)
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean, _ = linalg.sqrtm(cov_a @ cov_b, disp=False)
    if not np.isfinite(covmean).all():
        # Near-singular covariances (few samples): regularise as the reference FID code does.
        eps = np.eye(a.shape[1]) * 1e-6
        covmean = linalg.sqrtm((cov_a + eps) @ (cov_b + eps))
    covmean = np.real(covmean)
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(covmean))


def diversity(feats: np.ndarray, n_pairs: int = 300, seed: int = 0) -> float:
    """Mean Euclidean distance between ``n_pairs`` random pairs of feature vectors."""
    feats = np.asarray(feats, np.float64)
    rng = np.random.default_rng(seed)
    i = rng.integers(0, len(feats), n_pairs)
    j = rng.integers(0, len(feats), n_pairs)
    return float(np.linalg.norm(feats[i] - feats[j], axis=-1).mean())


def multimodality(feats: np.ndarray, labels: np.ndarray, n_pairs: int = 20, seed: int = 0) -> float:
    """Mean distance between random pairs of features that share a label, averaged over labels."""
    feats, labels = np.asarray(feats, np.float64), np.asarray(labels)
    rng = np.random.default_rng(seed)
    per_label = []
    for lab in np.unique(labels):
        idx = np.flatnonzero(labels == lab)
        if len(idx) < 2:
            continue
        i, j = rng.choice(idx, n_pairs), rng.choice(idx, n_pairs)
        per_label.append(np.linalg.norm(feats[i] - feats[j], axis=-1).mean())
    return float(np.mean(per_label)) if per_label else float("nan")
