"""Export joint positions: HumanML3D ``new_joints`` ``.npy`` files and BVH animations.

BVH stores a fixed skeleton (rest offsets) plus per-frame joint rotations, while RaMoS motions are
joint positions. :func:`to_bvh` therefore solves rotations from positions:

- Rest offsets: each bone keeps the motion's *mean* length, laid along a T-pose-like direction
  (:data:`REST_DIRECTIONS`; subject facing +z, left arm along +x, y up). A joint with several
  children (pelvis, spine3) keeps the children's mean relative layout (a Procrustes mean over the
  frames) turned as a whole towards those T-pose directions, so that a rigid cluster stays
  exactly representable.
- Rotations: a joint with one child gets the minimal-twist rotation (the shortest arc, relative
  to its parent) taking its rest bone onto the observed bone; a joint with several children gets
  the best rotation over all of them (Kabsch); leaves keep their parent's orientation.
- Channels: the root has ``Xposition Yposition Zposition Zrotation Xrotation Yrotation`` (its
  absolute position), every other joint ``Zrotation Xrotation Yrotation``, i.e. the local rotation
  is ``Rz @ Rx @ Ry``; angles are unwrapped over time so the curves have no 360-degree jumps.

Units are metres, y up (import into Blender with scale 1 and the default "Y up, -Z forward").
Rigid motions (captured ones; generated ones, whose decoder ends in :mod:`ramos.motion.rigid`)
come back exactly, to the written precision: the rotations solved are those of their forward
kinematics. A motion whose bones stretch (a decoder saved before the rigid skeleton, a hand-made
npy) is exported on its fixed mean-length skeleton: bone directions are kept, lengths become their
means.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from ramos.motion.rigid import children as _children_of
from ramos.motion.rigid import kabsch as _kabsch
from ramos.motion.rigid import procrustes_mean, solve_rotations
from ramos.motion.skeleton import HUMANML3D, Skeleton
from ramos.utils.atomic import atomic_path, write_text

REST_DIRECTIONS: dict[str, tuple[float, float, float]] = {
    # Direction of the bone *ending* at each joint, in a T-pose (approximate SMPL rest layout).
    "left_hip": (0.55, -0.83, 0.0), "right_hip": (-0.55, -0.83, 0.0), "spine1": (0.0, 1.0, 0.0),
    "left_knee": (0.0, -1.0, 0.0), "right_knee": (0.0, -1.0, 0.0), "spine2": (0.0, 1.0, 0.0),
    "left_ankle": (0.0, -1.0, 0.0), "right_ankle": (0.0, -1.0, 0.0), "spine3": (0.0, 1.0, 0.0),
    "left_foot": (0.0, -0.4, 0.92), "right_foot": (0.0, -0.4, 0.92), "neck": (0.0, 1.0, 0.0),
    "left_collar": (0.55, 0.83, 0.0), "right_collar": (-0.55, 0.83, 0.0), "head": (0.0, 0.9, 0.44),
    "left_shoulder": (1.0, 0.2, 0.0), "right_shoulder": (-1.0, 0.2, 0.0),
    "left_elbow": (1.0, 0.0, 0.0), "right_elbow": (-1.0, 0.0, 0.0),
    "left_wrist": (1.0, 0.0, 0.0), "right_wrist": (-1.0, 0.0, 0.0),
}
"""T-pose-like rest direction of the bone from each joint's parent to the joint (unit length)."""

EULER_ORDER = "ZXY"
"""Rotation channel order (intrinsic): the local rotation matrix is Rz @ Rx @ Ry."""

_EPS = 1e-9


def check_motion(positions: np.ndarray, skeleton: Skeleton, fps: float | None = None, min_frames: int = 1,
                 name: str | None = None) -> np.ndarray:
    """``positions`` as float64 (T, J, 3) after the checks every exporter makes: shape, at least
    ``min_frames`` frames, finite values, and a positive ``fps`` when given. A ValueError of one
    line (starting with ``name:`` when given) otherwise."""
    where = f"{name}: " if name else ""
    if fps is not None:
        try:
            fps_ok = math.isfinite(float(fps)) and float(fps) > 0
        except (TypeError, ValueError):
            fps_ok = False
        if not fps_ok:
            raise ValueError(f"{where}fps must be a positive number, got {fps!r}")
    pos = np.asarray(positions, dtype=np.float64)
    if pos.ndim != 3 or pos.shape[1:] != (skeleton.num_joints, 3) or pos.shape[0] < min_frames:
        raise ValueError(f"{where}positions must be (T, {skeleton.num_joints}, 3) with T >= {min_frames}, "
                         f"got {pos.shape}")
    if not np.isfinite(pos).all():
        bad = int((~np.isfinite(pos).reshape(len(pos), -1).all(1)).sum())
        raise ValueError(f"{where}positions contain NaN/inf ({bad} frame(s))")
    return pos


def save_npy(positions: np.ndarray, path: str | os.PathLike[str], skeleton: Skeleton = HUMANML3D) -> Path:
    """Write positions as a HumanML3D ``new_joints`` file: float32 (T, J, 3), metres, y up (atomic)."""
    pos = check_motion(positions, skeleton).astype(np.float32)
    path = Path(path)
    with atomic_path(path) as tmp:
        np.save(tmp, pos, allow_pickle=False)
    return path


# --- rotation helpers (batched over frames) -----------------------------------------------------------
# --- the rest pose and the rotations ---------------------------------------------------------------------
def rest_offsets(positions: np.ndarray, skeleton: Skeleton = HUMANML3D) -> np.ndarray:
    """(J, 3) rest offset of each joint from its parent (root: zeros); see the module docstring."""
    pos = check_motion(positions, skeleton)
    kids = _children_of(skeleton.parents)
    offsets = np.zeros((skeleton.num_joints, 3))
    lengths = np.zeros(skeleton.num_joints)
    for c, p in enumerate(skeleton.parents):
        if p >= 0:
            lengths[c] = np.linalg.norm(pos[:, c] - pos[:, p], axis=-1).mean()
    use_template = all(n in REST_DIRECTIONS for i, n in enumerate(skeleton.names) if i != skeleton.root)
    for j, cs in enumerate(kids):
        if not cs:
            continue
        observed = pos[:, cs] - pos[:, j : j + 1]  # (T, K, 3)
        if use_template:
            target = np.array([REST_DIRECTIONS[skeleton.names[c]] for c in cs], dtype=np.float64)
        else:
            target = observed[0]  # unknown joint names: the first frame is the rest pose
        target = target / np.maximum(np.linalg.norm(target, axis=-1, keepdims=True), _EPS)
        if len(cs) == 1:
            offsets[cs[0]] = target[0] * lengths[cs[0]]
            continue
        # Procrustes mean of the cluster: align every frame onto the first, average, restore lengths.
        aligned = procrustes_mean(observed)
        aligned *= (lengths[cs] / np.maximum(np.linalg.norm(aligned, axis=-1), _EPS))[:, None]
        turn = _kabsch(aligned, target * lengths[cs][:, None])
        offsets[cs] = aligned @ turn.T
    return offsets


# --- BVH text ----------------------------------------------------------------------------------------
def _fmt(values: np.ndarray) -> str:
    return " ".join(f"{v:.6f}" for v in values)


def to_bvh(positions: np.ndarray, skeleton: Skeleton = HUMANML3D, fps: float = 20.0) -> str:
    """BVH text of a motion (T, J, 3) in metres, y up; joints are named as in ``skeleton``.

    See the module docstring for the rest pose, the solved rotations and the channels.
    """
    if not np.isfinite(fps) or fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    pos = check_motion(positions, skeleton)
    offsets = rest_offsets(pos, skeleton)
    local = solve_rotations(pos, offsets, skeleton)
    t = pos.shape[0]
    kids = _children_of(skeleton.parents)
    lines = ["HIERARCHY"]
    order: list[int] = []  # depth-first joint order = channel order in the MOTION section

    def emit(j: int, depth: int) -> None:
        ind = "  " * depth
        head = "ROOT" if skeleton.parents[j] < 0 else "JOINT"
        lines.extend([f"{ind}{head} {skeleton.names[j]}", f"{ind}{{", f"{ind}  OFFSET {_fmt(offsets[j])}"])
        if skeleton.parents[j] < 0:
            lines.append(f"{ind}  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation")
        else:
            lines.append(f"{ind}  CHANNELS 3 Zrotation Xrotation Yrotation")
        order.append(j)
        for c in kids[j]:
            emit(c, depth + 1)
        if not kids[j]:
            # End Site: a short tip continuing the joint's own bone (cosmetic: gives the bone a length).
            length = float(np.linalg.norm(offsets[j]))
            tip = offsets[j] / max(length, _EPS) * max(0.5 * length, 0.03)
            lines.extend([f"{ind}  End Site", f"{ind}  {{", f"{ind}    OFFSET {_fmt(tip)}", f"{ind}  }}"])
        lines.append(f"{ind}}}")

    emit(skeleton.root, 0)
    euler = Rotation.from_matrix(local[:, order].reshape(-1, 3, 3)).as_euler(EULER_ORDER).reshape(t, len(order), 3)
    euler = np.degrees(np.unwrap(euler, axis=0))
    frames = np.concatenate([pos[:, skeleton.root], euler.reshape(t, -1)], axis=1)
    lines += ["MOTION", f"Frames: {t}", f"Frame Time: {1.0 / fps:.8f}"]
    lines += [_fmt(row) for row in frames]
    return "\n".join(lines) + "\n"


def save_bvh(positions: np.ndarray, path: str | os.PathLike[str], skeleton: Skeleton = HUMANML3D,
             fps: float = 20.0) -> Path:
    """Write :func:`to_bvh` of ``positions`` to ``path`` atomically; returns the path."""
    path = Path(path)
    write_text(path, to_bvh(positions, skeleton, fps))
    return path
