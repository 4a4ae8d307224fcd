"""HumanML3D's 263-dimensional motion vectors (``new_joint_vecs``), computed from joint positions as
HumanML3D's ``motion_representation.py`` computes them, and the inverse back to joints.

The papers' text-to-motion numbers (Guo et al. 2022's evaluator: R-precision, FID, MM-Dist) are
measured on these vectors, normalised with the evaluator's mean and std, so a motion must be turned
into them exactly as HumanML3D's own processing does. Per frame pair (t, t+1), for T frames the
result has T - 1 rows:

====================  ====  ===========================================================================
root angular velocity    1  half the yaw change from t to t+1 (arcsin of the y part of the quaternion)
root linear velocity     2  xz step of the root from t to t+1, in the body's facing frame at t+1
root height              1  y of the root
local positions         63  joints 1..21 relative to the root's xz, turned to face +z (``ric``)
6D rotations           126  first two columns of each joint's local rotation matrix, joints 1..21
local velocities        66  every joint's step from t to t+1, turned by the facing at t
foot contacts            4  left ankle, left foot, right ankle, right foot: squared step < 0.002 m^2
====================  ====  ===========================================================================

Faithful details, kept on purpose because the published evaluator and statistics were made with them:

- the motion is first put on the floor (lowest joint at y = 0), its first root at the xz origin,
  turned so that its first frame faces +z (hips and shoulders, unsmoothed);
- the facing used for the rest comes from HumanML3D's inverse kinematics, whose hip vector is read
  with the hips swapped (its ``l_hip, r_hip = face_joint_idx[:2]`` on ``[2, 1, 17, 16]``): it is
  (shoulders - hips) across, smoothed over time by a Gaussian of sigma 20 frames, and the first
  frame's root rotation is set to identity;
- each joint's rotation is the shortest arc from its rest direction (``T2M_RAW_OFFSETS``) to its
  bone, relative to its parent's arc (the root's being the facing);
- the root rotation is a shortest arc to +z (w >= 0): when the facing turns past 180 degrees it
  changes sign, and that frame's angular velocity comes out with the opposite sign, so the
  integrated facing is off by twice that frame's turn from then on (HumanML3D's published vectors,
  and its ``new_joints`` recovered from them, carry the same);
- arithmetic in float32, as HumanML3D's numpy helpers convert to float32 torch tensors.

``joints`` inverts the vector (``recover_from_ric``): integrates the root's yaw and path and places
the local positions. HumanML3D's ``new_joints`` files are exactly this inverse of its vectors, so
``joints(features(x))`` gives ``x`` canonicalised (floor, origin, facing) without its last frame
(up to the first turn past 180 degrees, above).
HumanML3D first retargets every motion to one skeleton (``uniform_skeleton``: same bone lengths,
scaled by leg length); motions that come from HumanML3D (its ``new_joints``, or a model trained on
them) are on that skeleton already, which is what ``features`` expects. ``uniform_skeleton`` does
the retargeting for others, given the target skeleton's offsets (HumanML3D takes them from its
motion 000021, part of the licensed data: pass them from the user's copy).
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import torch
from scipy.ndimage import gaussian_filter1d
from torch import Tensor

from ramos.motion.skeleton import HUMANML3D

DIM = 263
NUM_JOINTS = 22
FPS = 20.0
FEET_THRESHOLD = 0.002
"""Squared per-frame step (m^2) under which a foot joint counts as in contact."""

T2M_RAW_OFFSETS = np.array([
    [0, 0, 0], [1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, -1, 0], [0, 1, 0], [0, -1, 0],
    [0, -1, 0], [0, 1, 0], [0, 0, 1], [0, 0, 1], [0, 1, 0], [1, 0, 0], [-1, 0, 0], [0, 0, 1],
    [0, -1, 0], [0, -1, 0], [0, -1, 0], [0, -1, 0], [0, -1, 0], [0, -1, 0]], dtype=np.float32)
"""Rest direction of the bone ending at each joint (HumanML3D's ``t2m_raw_offsets``)."""
T2M_CHAINS = [[0, 2, 5, 8, 11], [0, 1, 4, 7, 10], [0, 3, 6, 9, 12, 15], [9, 14, 17, 19, 21], [9, 13, 16, 18, 20]]
"""HumanML3D's ``t2m_kinematic_chain``: right leg, left leg, spine to head, right arm, left arm."""
FACE_JOINTS = (2, 1, 17, 16)
"""right hip, left hip, right shoulder, left shoulder (``face_joint_indx``)."""
FEET_LEFT, FEET_RIGHT = (7, 10), (8, 11)
LEG = (5, 8)
"""Joints whose offsets measure the leg (``l_idx1, l_idx2``) when ``uniform_skeleton`` scales."""

# Slices of the vector.
ROOT_ROT_VEL = slice(0, 1)
ROOT_LIN_VEL = slice(1, 3)
ROOT_Y = slice(3, 4)
RIC = slice(4, 4 + (NUM_JOINTS - 1) * 3)
ROT6D = slice(RIC.stop, RIC.stop + (NUM_JOINTS - 1) * 6)
LOCAL_VEL = slice(ROT6D.stop, ROT6D.stop + NUM_JOINTS * 3)
FOOT_CONTACT = slice(LOCAL_VEL.stop, LOCAL_VEL.stop + 4)
assert FOOT_CONTACT.stop == DIM


# --- quaternions (w, x, y, z), float32 --------------------------------------------------------------
def _qmul(q: Tensor, r: Tensor) -> Tensor:
    w1, x1, y1, z1 = q.unbind(-1)
    w2, x2, y2, z2 = r.unbind(-1)
    return torch.stack([w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2, w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
                        w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2, w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2], -1)


def _qinv(q: Tensor) -> Tensor:
    return q * q.new_tensor([1.0, -1.0, -1.0, -1.0])


def _qrot(q: Tensor, v: Tensor) -> Tensor:
    shape = torch.broadcast_shapes(q.shape[:-1], v.shape[:-1])
    q, v = q.expand(shape + (4,)), v.expand(shape + (3,))
    u = q[..., 1:]
    uv = torch.linalg.cross(u, v)
    return v + 2 * (q[..., :1] * uv + torch.linalg.cross(u, uv))


def _qbetween(a: Tensor, b: Tensor) -> Tensor:
    """The shortest-arc rotation taking direction ``a`` to ``b``."""
    a, b = torch.broadcast_tensors(a, b)
    w = torch.sqrt((a * a).sum(-1, keepdim=True) * (b * b).sum(-1, keepdim=True)) + (a * b).sum(-1, keepdim=True)
    q = torch.cat([w, torch.linalg.cross(a, b)], -1)
    return q / q.norm(dim=-1, keepdim=True)


def _matrix(q: Tensor) -> Tensor:
    w, x, y, z = q.unbind(-1)
    s = 2.0 / (q * q).sum(-1)
    m = torch.stack([1 - s * (y * y + z * z), s * (x * y - z * w), s * (x * z + y * w),
                     s * (x * y + z * w), 1 - s * (x * x + z * z), s * (y * z - x * w),
                     s * (x * z - y * w), s * (y * z + x * w), 1 - s * (x * x + y * y)], -1)
    return m.reshape(q.shape[:-1] + (3, 3))


def _t(x: np.ndarray) -> Tensor:
    return torch.as_tensor(np.asarray(x, dtype=np.float32))


# --- HumanML3D's inverse kinematics -------------------------------------------------------------------
def _facing_quats(joints: Tensor, smooth: bool) -> Tensor:
    """(T, 4) root rotations that turn the body's facing to +z, as HumanML3D's IK computes them
    (hip vector read with the hips swapped; first frame identity)."""
    r_hip, l_hip, r_sh, l_sh = FACE_JOINTS
    # HumanML3D's IK unpacks face_joint_idx as (l_hip, r_hip, ...): the hip term is left - right.
    across = (joints[:, l_hip] - joints[:, r_hip]) + (joints[:, r_sh] - joints[:, l_sh])
    across = across / across.norm(dim=-1, keepdim=True)
    forward = torch.linalg.cross(across.new_tensor([0.0, 1.0, 0.0]).expand_as(across), across)
    if smooth:
        forward = _t(gaussian_filter1d(forward.numpy(), 20, axis=0, mode="nearest"))
    forward = forward / forward.norm(dim=-1, keepdim=True)
    quats = _qbetween(forward, forward.new_tensor([0.0, 0.0, 1.0]).expand_as(forward)).clone()
    quats[0] = quats.new_tensor([1.0, 0.0, 0.0, 0.0])
    return quats


def _local_rotations(joints: Tensor, root: Tensor) -> Tensor:
    """(T, J, 4): the root's rotation, then per joint the arc from its rest direction to its bone
    relative to its parent's arc (HumanML3D's ``inverse_kinematics_np``)."""
    raw = _t(T2M_RAW_OFFSETS)
    quats = torch.zeros(joints.shape[:-1] + (4,))
    quats[:, 0] = root
    for chain in T2M_CHAINS:
        parent = root
        for a, b in pairwise(chain):
            bone = joints[:, b] - joints[:, a]
            arc = _qbetween(raw[b].expand_as(bone), bone / bone.norm(dim=-1, keepdim=True))
            local = _qmul(_qinv(parent), arc)
            quats[:, b] = local
            parent = _qmul(parent, local)
    return quats


def uniform_skeleton(positions: np.ndarray, target_offsets: np.ndarray) -> np.ndarray:
    """``positions`` (T, 22, 3) retargeted to the skeleton of ``target_offsets`` (22, 3), root path
    scaled by the ratio of leg lengths (HumanML3D's ``uniform_skeleton``)."""
    x = _t(positions)
    parents = HUMANML3D.parents  # T2M's kinematic chains give the same tree
    src = np.zeros_like(T2M_RAW_OFFSETS)
    for j in range(1, NUM_JOINTS):
        src[j] = T2M_RAW_OFFSETS[j] * np.linalg.norm(positions[0, j] - positions[0, parents[j]])
    tgt = np.asarray(target_offsets, np.float32)
    scale = (np.abs(tgt[LEG[0]]).max() + np.abs(tgt[LEG[1]]).max()) / (np.abs(src[LEG[0]]).max()
                                                                         + np.abs(src[LEG[1]]).max())
    quats = _local_rotations(x, _facing_quats(x, smooth=False))
    out = torch.zeros_like(x)
    out[:, 0] = x[:, 0] * float(scale)
    offsets = _t(tgt)
    for chain in T2M_CHAINS:
        rot = quats[:, 0]
        for a, b in pairwise(chain):
            rot = _qmul(rot, quats[:, b])
            out[:, b] = _qrot(rot, offsets[b].expand(len(x), 3)) + out[:, a]
    return out.numpy()


# --- the vector -----------------------------------------------------------------------------------------
def features(positions: np.ndarray, feet_threshold: float = FEET_THRESHOLD) -> np.ndarray:
    """float32 (T - 1, 263) HumanML3D vectors of joint positions (T, 22, 3) in metres, y up, 20 fps, on
    HumanML3D's skeleton (see the module doc; ``uniform_skeleton`` for other skeletons)."""
    pos = np.asarray(positions, dtype=np.float32)
    if pos.ndim != 3 or pos.shape[1:] != (NUM_JOINTS, 3):
        raise ValueError(f"expected joint positions (T, {NUM_JOINTS}, 3), got {pos.shape}")
    if len(pos) < 2:
        raise ValueError(f"a motion needs at least 2 frames for its velocities, got {len(pos)}")
    if not np.isfinite(pos).all():
        raise ValueError("joint positions hold NaN or inf")
    x = pos.copy()
    x[..., 1] -= x.min(axis=(0, 1))[1]
    first = x[0].copy()
    x = x - first[0] * np.array([1, 0, 1], np.float32)
    # Turned to face +z from the first frame's hips and shoulders (this one reads the hips right).
    r_hip, l_hip, r_sh, l_sh = FACE_JOINTS
    across = (first[r_hip] - first[l_hip]) + (first[r_sh] - first[l_sh])
    across = across / np.sqrt((across ** 2).sum())
    forward = np.cross(np.array([0.0, 1.0, 0.0]), across)
    forward = forward / np.sqrt((forward ** 2).sum())
    turn = _qbetween(_t(forward)[None], _t([[0.0, 0.0, 1.0]]))
    g = _qrot(turn.expand(len(x), NUM_JOINTS, 4), _t(x))  # global positions, canonical

    step = g[1:] - g[:-1]
    contact = ((step ** 2).sum(-1) < feet_threshold).float()
    feet_l, feet_r = contact[:, list(FEET_LEFT)], contact[:, list(FEET_RIGHT)]

    r_rot = _facing_quats(g, smooth=True)
    quats = _local_rotations(g, r_rot)
    mats = _matrix(quats)
    rot6d = torch.cat([mats[..., 0], mats[..., 1]], -1)  # (T, J, 6): the first two columns
    root_vel = _qrot(r_rot[1:], g[1:, 0] - g[:-1, 0])
    r_velocity = _qmul(r_rot[1:], _qinv(r_rot[:-1]))

    local = g.clone()
    local[..., [0, 2]] -= g[:, 0:1, [0, 2]]
    ric = _qrot(r_rot[:, None].expand(-1, NUM_JOINTS, 4), local)
    local_vel = _qrot(r_rot[:-1, None].expand(-1, NUM_JOINTS, 4), step)

    n = len(g) - 1
    out = torch.cat([torch.arcsin(r_velocity[:, 2:3]), root_vel[:, [0, 2]], ric[:-1, 0, 1:2],
                     ric[:-1, 1:].reshape(n, -1), rot6d[:-1, 1:].reshape(n, -1), local_vel.reshape(n, -1),
                     feet_l, feet_r], -1)
    return out.numpy().astype(np.float32)


def root_rotations(data: Tensor) -> Tensor:
    """(..., T, 4) root rotations (world to facing +z, identity at the first frame) integrated from
    the vectors' root angular velocities (HumanML3D's ``recover_root_rot_pos``)."""
    angle = torch.zeros_like(data[..., 0])
    angle[..., 1:] = data[..., :-1, 0]
    angle = torch.cumsum(angle, -1)
    r_rot = torch.zeros(data.shape[:-1] + (4,))
    r_rot[..., 0], r_rot[..., 2] = torch.cos(angle), torch.sin(angle)
    return r_rot


def joints(vectors: np.ndarray | Tensor) -> np.ndarray:
    """Joint positions (..., T, 22, 3) of HumanML3D vectors (..., T, 263): HumanML3D's ``recover_from_ric``."""
    data = torch.as_tensor(np.asarray(vectors, dtype=np.float32)) if not isinstance(vectors, Tensor) \
        else vectors.float()
    if data.shape[-1] != DIM:
        raise ValueError(f"expected HumanML3D vectors (..., T, {DIM}), got {tuple(data.shape)}")
    r_rot = root_rotations(data)
    root = torch.zeros(data.shape[:-1] + (3,))
    root[..., 1:, 0], root[..., 1:, 2] = data[..., :-1, 1], data[..., :-1, 2]
    root = torch.cumsum(_qrot(_qinv(r_rot), root), -2)
    root[..., 1] = data[..., 3]
    local = data[..., RIC].reshape(data.shape[:-1] + (NUM_JOINTS - 1, 3))
    local = _qrot(_qinv(r_rot)[..., None, :].expand(local.shape[:-1] + (4,)), local)
    local[..., 0] += root[..., None, 0]
    local[..., 2] += root[..., None, 2]
    return torch.cat([root[..., None, :], local], -2).numpy()
