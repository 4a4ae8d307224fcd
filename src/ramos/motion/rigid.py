"""A rigid skeleton as the last layer of a motion decoder: joint positions in, the same motion on
fixed bones out.

A decoder that writes joint positions freely lets the bones stretch as they move (the motion VAE
did: 16 mm mean bone-length std over time, 85 mm for the worst bone of a generated cartwheel).
Such a motion is no skeleton: a BVH, glTF or SMPL file, which all store one rest pose plus
rotations, cannot hold it, and every export then shows another motion than the npy and the video.
:class:`RigidSkeleton` makes the decoder's output a real skeleton by construction:

- the root is where the decoder put it; then, parents first, every joint is placed from its
  parent's *placed* position:
- a joint with one child aims its bone at where the decoder put the child, at the bone's rest
  length (a rotation of the joint, twist left free), so the child lands as near its decoded place
  as the bone allows and misses do not add up down a chain;
- a joint with several children (pelvis: hips and spine; spine3: neck and collars) turns its rest
  cluster as one rigid body onto the decoded children, with the rotation of the frame spanned by
  the two children farthest apart and the direction from their middle towards the others (a
  closed form: a batched 3x3 SVD, as Kabsch would need, costs ~20x more at generation batch sizes).

So every output is forward kinematics of one rest pose (:attr:`offsets`, the training data's
bone lengths and cluster layouts, :func:`rest_skeleton`) with per-frame joint rotations: its bone
lengths never change, and the BVH writer's rotation solve reproduces it exactly. The layer has no
weights; trained through, the decoder learns to aim the bones where the data has them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ramos.motion.skeleton import Skeleton

_EPS = 1e-8


def _children(parents: list[int] | tuple[int, ...]) -> list[list[int]]:
    kids: list[list[int]] = [[] for _ in parents]
    for c, p in enumerate(parents):
        if p >= 0:
            kids[p].append(c)
    return kids


def _frame(a: Tensor, b: Tensor) -> Tensor:
    """Orthonormal frames (..., 3, 3), columns ``a``, ``b`` orthogonalised, and their cross product."""
    e1 = a / torch.linalg.vector_norm(a, dim=-1, keepdim=True).clamp_min(_EPS)
    b = b - (b * e1).sum(-1, keepdim=True) * e1
    e2 = b / torch.linalg.vector_norm(b, dim=-1, keepdim=True).clamp_min(_EPS)
    return torch.stack([e1, e2, torch.linalg.cross(e1, e2)], dim=-1)


def _cluster_axes(vectors: Tensor, pair: tuple[int, int], rest_k: int) -> tuple[Tensor, Tensor]:
    """The two vectors a cluster's frame is built from: across its widest pair, and from the pair's
    middle to the other children (or to the joint itself when there are only two)."""
    i, j = pair
    across = vectors[..., i, :] - vectors[..., j, :]
    middle = 0.5 * (vectors[..., i, :] + vectors[..., j, :])
    if rest_k > 2:
        others = [k for k in range(rest_k) if k not in pair]
        return across, vectors[..., others, :].mean(-2) - middle
    return across, middle


class RigidSkeleton(nn.Module):
    """Positions (..., J, 3) -> the same motion on one rigid skeleton (see the module doc).

    Args:
        skeleton: ``Skeleton.to_dict()`` of the joints.
        offsets: (J, 3) rest offset of every joint from its parent, metres (the root's is ignored);
            :func:`rest_skeleton` computes them from data.
    """

    def __init__(self, skeleton: dict[str, Any], offsets: list[list[float]]) -> None:
        super().__init__()
        sk = Skeleton.from_dict(skeleton)
        off = torch.tensor(offsets, dtype=torch.float32)
        if off.shape != (sk.num_joints, 3):
            raise ValueError(f"offsets must be ({sk.num_joints}, 3), got {tuple(off.shape)}")
        lengths = off.norm(dim=-1)
        bad = [sk.names[c] for c in sk.bones[:, 1] if lengths[c] < 1e-4]
        if bad:
            raise ValueError(f"zero-length bones in the rest skeleton: {', '.join(bad)}")
        lengths[sk.root] = 0.0
        self.parents = list(sk.parents)
        self.root = sk.root
        kids = _children(self.parents)
        # Joints with children, parents before their children (each is placed before it aims).
        self.order_parents = list(dict.fromkeys(int(p) for p in sk.topological_bones[:, 0]))
        self.child_of = {p: cs[0] for p, cs in enumerate(kids) if len(cs) == 1}
        self.clusters: list[tuple[int, list[int], tuple[int, int]]] = []
        rest_frames = []
        for p, cs in enumerate(kids):
            if len(cs) > 1:
                dist = torch.cdist(off[cs], off[cs])
                pair = divmod(int(dist.argmax()), len(cs))
                self.clusters.append((p, cs, pair))
                rest_frames.append(_frame(*_cluster_axes(off[cs], pair, len(cs))).T)
        self.register_buffer("offsets", off)
        self.register_buffer("lengths", lengths[:, None], persistent=False)
        self.register_buffer("rest_frames_t", torch.stack(rest_frames) if rest_frames else torch.zeros(0, 3, 3),
                             persistent=False)

    def forward(self, positions: Tensor) -> Tensor:
        """Rigid positions (..., J, 3), the root where ``positions`` has it."""
        out = torch.empty_like(positions)
        out[..., self.root, :] = positions[..., self.root, :]
        clusters = {p: (k, cs, pair) for k, (p, cs, pair) in enumerate(self.clusters)}
        # Parents first; each bone aims from its parent's *placed* position at its child's decoded one,
        # so a joint lands as near its decoded place as its bone allows and the misses do not add up
        # down a chain (aiming along the decoded bone instead carried the hip's miss to the foot:
        # feet skated 1.9x the data's instead of 1.5x).
        for p in self.order_parents:
            if p in clusters:
                k, cs, pair = clusters[p]
                aim = positions[..., cs, :] - out[..., p : p + 1, :]
                turn = _frame(*_cluster_axes(aim, pair, len(cs))) @ self.rest_frames_t[k]
                out[..., cs, :] = out[..., p : p + 1, :] + (turn[..., None, :, :] @ self.offsets[cs, :, None])[..., 0]
            else:
                c = self.child_of[p]
                d = positions[..., c, :] - out[..., p, :]
                out[..., c, :] = out[..., p, :] + d * (self.lengths[c] / torch.linalg.vector_norm(
                    d, dim=-1, keepdim=True).clamp_min(_EPS))
        return out


def kabsch(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Rotations R (..., 3, 3) minimising sum_k |R a_k - b_k|^2 for point sets a, b (..., K, 3)."""
    m = np.swapaxes(b, -1, -2) @ a  # sum_k b_k a_k^T
    u, _, vt = np.linalg.svd(m)
    d = np.sign(np.linalg.det(u @ vt))
    d = np.where(d == 0, 1.0, d)
    fix = np.ones(u.shape[:-1])
    fix[..., -1] = d
    return (u * fix[..., None, :]) @ vt


def rest_skeleton(frames: np.ndarray, skeleton: Skeleton) -> np.ndarray:
    """(J, 3) rest offsets of the poses ``frames`` (N, J, 3): every bone at its median length, every
    cluster (a joint with several children) at its mean layout (Procrustes), single bones along the
    first frame's directions (which they take does not matter: :class:`RigidSkeleton` re-aims them)."""
    pos = np.asarray(frames, dtype=np.float64)
    offsets = np.zeros((skeleton.num_joints, 3))
    for p, cs in enumerate(_children(skeleton.parents)):
        if not cs:
            continue
        observed = pos[:, cs] - pos[:, p : p + 1]  # (N, K, 3)
        lengths = np.median(np.linalg.norm(observed, axis=-1), axis=0)
        if len(cs) == 1:
            layout = observed[0]
        else:
            layout = np.einsum("tab,tkb->tka", kabsch(observed, observed[:1]), observed).mean(0)
        offsets[cs] = layout / np.maximum(np.linalg.norm(layout, axis=-1, keepdims=True), 1e-9) * lengths[:, None]
    return offsets


def make_rigid(positions: np.ndarray, skeleton: Skeleton, offsets: np.ndarray | None = None) -> np.ndarray:
    """``positions`` (..., J, 3) on the rigid skeleton ``offsets`` (default: their own
    :func:`rest_skeleton`), the lowest point kept at its height (so a clip's floor stays where it was).

    Interpolated frames (resampling, speed copies, bridged loops) shorten bones along the chord
    between two poses and bend rigid parts (hips and spine, shoulders and neck); this puts a
    clip back on its captured skeleton.
    """
    pos = np.asarray(positions)
    flat = pos.reshape(-1, skeleton.num_joints, 3)
    if offsets is None:
        offsets = rest_skeleton(flat, skeleton)
    layer = RigidSkeleton(skeleton.to_dict(), np.asarray(offsets).tolist())
    with torch.no_grad():
        out = layer(torch.as_tensor(flat, dtype=torch.float32)).numpy()
    up = skeleton.up_axis
    out[..., up] += flat[..., up].min() - out[..., up].min()
    return out.reshape(pos.shape).astype(pos.dtype, copy=False)
