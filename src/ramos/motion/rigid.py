"""A rigid skeleton as the last layer of a motion decoder: joint positions in, the same motion on
fixed bones out.

A decoder that writes joint positions freely lets the bones stretch as they move (the motion VAE
did: 16 mm mean bone-length std over time, 85 mm for the worst bone of a generated cartwheel).
Such a motion is no skeleton: a BVH, glTF or SMPL file, which all store one rest pose plus
rotations, cannot hold it, and every export then shows another motion than the npy and the video.
:class:`RigidSkeleton` makes the decoder's output a real skeleton by construction:

- the root is where the decoder put it;
- the tree is cut into chains: from a joint placed by its parent (the root, or a child of a joint
  with several children) down single children to a leaf or to the next joint with several
  children. Each chain keeps its first joint and brings its last to where the decoder put it,
  as far as its bones reach, with FABRIK (Aristidou & Lasenby 2011: the chain aimed from the start,
  then :data:`FABRIK_ITERATIONS` backward-forward passes). Feet and hands end chains, so a planted
  decoded foot stays planted (placing each bone only from its parent lets the misses of hip, knee
  and ankle add up at the foot; docs/motion_vae.md has the measurements);
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

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from scipy.spatial.transform import Rotation
from torch import Tensor, nn

from ramos.motion.skeleton import HUMANML3D, Skeleton

_EPS = 1e-8
_EPS_NP = 1e-9
FABRIK_ITERATIONS = 2
"""Backward-forward passes that bring each chain's end to its decoded place (legs end at the feet)."""
MIN_WIDTH = 0.5
"""A cluster's decoded across vector (hip to hip, collar to collar) shorter than this share of the rest
skeleton's says too little about where it points (:func:`_steady`)."""
MAX_SPIKE_DEG = 45.0
"""A cluster's across direction this far off its neighbours' is a decoder spike (:func:`_despike`): real
motion turns the hips by at most 45 degrees from one frame to the next (benchmarks/diag_pops.py)."""


def children(parents: list[int] | tuple[int, ...]) -> list[list[int]]:
    """Per joint the indices of its children."""
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


def _steady(across: Tensor, width: float, up: int) -> Tensor:
    """``across`` (..., T, 3), a cluster's across vector over time, with the frames where it is shorter
    than :data:`MIN_WIDTH` of the rest ``width`` given a direction turned, about the ``up`` axis, from
    the nearest longer frame before to the one after (the shorter way round), its tilt interpolated.

    Why: a decoder that writes positions may take the body through a quick half turn by shrinking the
    hips (or shoulders) to a point and growing them back mirrored, not by turning them. The rigid
    cluster would follow that vector's direction and flip the pelvis in one frame (a "pop", up to 170
    degrees where real motion turns at most 45 degrees per frame); turned through the frames where
    the decoded vector is too short to say where it points, the pelvis turns instead."""
    t_len = across.shape[-2]
    ok = torch.linalg.vector_norm(across, dim=-1) >= MIN_WIDTH * width
    t = torch.arange(t_len, device=across.device).expand_as(ok)
    prev = torch.cummax(torch.where(ok, t, -1), dim=-1).values
    nxt = torch.cummin(torch.where(ok, t, t_len).flip(-1), dim=-1).values.flip(-1)
    fix = ~ok & ((prev >= 0) | (nxt < t_len))
    if not bool(fix.any()):
        return across
    a_i = torch.where(prev >= 0, prev, nxt).clamp(0, t_len - 1)
    b_i = torch.where(nxt < t_len, nxt, prev).clamp(0, t_len - 1)
    unit = across / torch.linalg.vector_norm(across, dim=-1, keepdim=True).clamp_min(_EPS)
    a = unit.gather(-2, a_i[..., None].expand(*a_i.shape, 3))
    b = unit.gather(-2, b_i[..., None].expand(*b_i.shape, 3))
    w = torch.where(b_i > a_i, (t - a_i) / (b_i - a_i).clamp_min(1), torch.zeros_like(a_i)).to(across)[..., None]
    h1, h2 = [k for k in range(3) if k != up]

    def yaw(v: Tensor) -> tuple[Tensor, Tensor]:
        flat = torch.linalg.vector_norm(v[..., [h1, h2]], dim=-1)
        safe = flat > 1e-6  # atan2(0, 0) has no gradient
        return torch.atan2(torch.where(safe, v[..., h1], 0.0), torch.where(safe, v[..., h2], 1.0)), flat

    (ya, fa), (yb, fb) = yaw(a), yaw(b)
    turn = torch.remainder(yb - ya + math.pi, 2 * math.pi) - math.pi
    angle = ya + w[..., 0] * turn
    flat = fa + w[..., 0] * (fb - fa)
    out = torch.empty_like(across)
    out[..., h1], out[..., h2] = flat * torch.sin(angle), flat * torch.cos(angle)
    out[..., up] = a[..., up] + w[..., 0] * (b[..., up] - a[..., up])
    return torch.where(fix[..., None], out, across)


def _despike(across: Tensor, width: float) -> Tensor:
    """``across`` (..., T, 3) with each frame whose direction is more than :data:`MAX_SPIKE_DEG` off what its
    two neighbours on each side say (their directions, weighted 1-4-4-1 and by their length, up to the
    rest ``width``) given theirs: a decoder writes the odd frame of a quick turn pointing elsewhere,
    at full width."""
    if across.shape[-2] < 3:
        return across
    length = torch.linalg.vector_norm(across, dim=-1, keepdim=True)
    u = across / length.clamp_min(_EPS) * (length / width).clamp(max=1.0)
    p = torch.cat([u[..., :1, :], u[..., :1, :], u, u[..., -1:, :], u[..., -1:, :]], dim=-2)
    n = p[..., :-4, :] + 4 * p[..., 1:-3, :] + 4 * p[..., 3:-1, :] + p[..., 4:, :]
    n_len = torch.linalg.vector_norm(n, dim=-1, keepdim=True)
    cos = (across * n).sum(-1, keepdim=True) / (length * n_len).clamp_min(_EPS)
    spike = (cos < math.cos(math.radians(MAX_SPIKE_DEG))) & (n_len > 2.0)
    return torch.where(spike, n / n_len.clamp_min(_EPS) * width, across)


class RigidSkeleton(nn.Module):
    """Positions (..., J, 3) -> the same motion on one rigid skeleton (see the module doc).

    Args:
        skeleton: ``Skeleton.to_dict()`` of the joints.
        offsets: (J, 3) rest offset of every joint from its parent, metres (the root's is ignored);
            :func:`rest_skeleton` computes them from data.

    Called with frames in time order on the third axis from the end ((..., T, J, 3), as a decoder's
    output is), ``steady=True`` turns clusters through frames where the decoded children collapse
    (:func:`_steady`) and past single frames that point elsewhere (:func:`_despike`).
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
            more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
            raise ValueError(f"zero-length bones in the rest skeleton: {', '.join(bad[:3])}{more}")
        self.parents = list(sk.parents)
        self.root = sk.root
        kids = children(self.parents)
        self.clusters: dict[int, tuple[int, list[int], tuple[int, int]]] = {}
        rest_frames = []
        for p, cs in enumerate(kids):
            if len(cs) > 1:
                dist = torch.cdist(off[cs], off[cs])
                pair = divmod(int(dist.argmax()), len(cs))
                self.clusters[p] = (len(rest_frames), cs, pair)
                rest_frames.append(_frame(*_cluster_axes(off[cs], pair, len(cs))).T)
        # The tree cut into chains: each starts at a joint placed by its parent's cluster (or at the
        # root) and runs down single children to a leaf or a cluster joint. Chains are placed in waves
        # (a cluster's chains after the chain that ends at it); those of one wave and length together.
        self.waves: list[list[tuple[Tensor, Tensor]]] = []
        starts, seen = [sk.root], 0
        while starts:
            chains = []
            for s in starts:
                chain = [s]
                while len(kids[chain[-1]]) == 1:
                    chain.append(kids[chain[-1]][0])
                chains.append(chain)
            groups: dict[int, list[list[int]]] = {}
            for chain in chains:
                groups.setdefault(len(chain), []).append(chain)
            self.waves.append([(torch.tensor(g), lengths[torch.tensor(g)]) for g in groups.values()])
            seen += sum(len(c) for c in chains)
            starts = [c for chain in chains for c in (kids[chain[-1]] if len(kids[chain[-1]]) > 1 else [])]
        assert seen == sk.num_joints
        self.up = sk.up_axis
        self.widths = {p: float(torch.linalg.vector_norm(off[cs[i]] - off[cs[j]])) for p, (_, cs, (i, j)) in self.clusters.items()}
        self.register_buffer("offsets", off)
        self.register_buffer("rest_frames_t", torch.stack(rest_frames) if rest_frames else torch.zeros(0, 3, 3),
                             persistent=False)

    def forward(self, positions: Tensor, steady: bool = True) -> Tensor:
        """Rigid positions (..., J, 3), the root where ``positions`` has it (``steady``: see the class doc)."""
        steady = steady and positions.dim() >= 3 and positions.shape[-3] > 1
        out = torch.empty_like(positions)
        out[..., self.root, :] = positions[..., self.root, :]
        for wave in self.waves:
            for chain, lengths in wave:
                if chain.shape[1] > 1:
                    out[..., chain[:, 1:], :] = _reach(out[..., chain[:, 0], :], positions[..., chain, :],
                                                        lengths.to(positions), FABRIK_ITERATIONS)
                for end in chain[:, -1].tolist():
                    if end in self.clusters:
                        k, cs, pair = self.clusters[end]
                        aim = positions[..., cs, :] - out[..., end : end + 1, :]
                        across, other = _cluster_axes(aim, pair, len(cs))
                        if steady:
                            across = _despike(_steady(across, self.widths[end], self.up), self.widths[end])
                        turn = _frame(across, other) @ self.rest_frames_t[k]
                        out[..., cs, :] = out[..., end : end + 1, :] + (
                            turn[..., None, :, :] @ self.offsets[cs, :, None])[..., 0]
        return out


def _unit(v: Tensor) -> Tensor:
    return v / torch.linalg.vector_norm(v, dim=-1, keepdim=True).clamp_min(_EPS)


def _reach(start: Tensor, decoded: Tensor, lengths: Tensor, iterations: int) -> Tensor:
    """Chains (..., G, n, 3) of decoded joints -> the joints after the start (..., G, n - 1, 3) on bones
    of ``lengths`` (G, n; entry 0 unused), the start fixed at ``start`` (..., G, 3), the end as near
    its decoded place as the chain reaches (FABRIK, Aristidou & Lasenby 2011)."""
    n = decoded.shape[-2]
    length = [lengths[:, i, None] for i in range(n)]
    q = [start]
    for i in range(1, n):  # follow the leader: each joint aimed at from its placed parent
        q.append(q[i - 1] + length[i] * _unit(decoded[..., i, :] - q[i - 1]))
    for _ in range(iterations):
        back = [None] * n
        back[n - 1] = decoded[..., n - 1, :]
        for i in range(n - 2, 0, -1):
            back[i] = back[i + 1] + length[i + 1] * _unit(q[i] - back[i + 1])
        for i in range(1, n):
            q[i] = q[i - 1] + length[i] * _unit(back[i] - q[i - 1])  # type: ignore[operator]
    return torch.stack(q[1:], dim=-2)


def _shortest_arc(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Rotations (..., 3, 3) turning direction a onto direction b (..., 3) about their common normal."""
    a = a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), _EPS_NP)
    nb = np.linalg.norm(b, axis=-1, keepdims=True)
    b = np.where(nb > _EPS_NP, b / np.maximum(nb, _EPS_NP), a)  # a zero-length bone keeps its rest direction
    axis = np.cross(a, b)
    sin, cos = np.linalg.norm(axis, axis=-1), (a * b).sum(-1)
    angle = np.arctan2(sin, cos)
    # Antiparallel directions: any axis perpendicular to a gives the half turn.
    perp = np.cross(a, np.where(np.abs(a[..., :1]) < 0.9, [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]))
    axis = np.where((sin < 1e-12)[..., None], perp, axis)
    axis = axis / np.maximum(np.linalg.norm(axis, axis=-1, keepdims=True), _EPS_NP)
    shape = a.shape[:-1]
    return Rotation.from_rotvec((axis * angle[..., None]).reshape(-1, 3)).as_matrix().reshape(*shape, 3, 3)


def solve_rotations(positions: np.ndarray, offsets: np.ndarray, skeleton: Skeleton = HUMANML3D,
                    aims: Sequence[Sequence[int]] | None = None) -> np.ndarray:
    """Local joint rotations (T, J, 3, 3) that pose the rest ``offsets`` like ``positions``.

    Global rotation of joint j: G_j = G_parent @ L_j; a child c sits at p_j + G_j @ offsets[c].
    ``aims`` (default: each joint's children) lists per joint the joints whose directions from it
    set its rotation; a descendant's rest vector is the sum of the offsets down to it (the rest
    pose has no rotations). Only the positions of joints that aim or are aimed at are read.
    """
    pos = np.asarray(positions, dtype=np.float64)
    t = pos.shape[0]
    if aims is None:
        aims = children(skeleton.parents)
        rest_vectors = [offsets[cs] for cs in aims]
    else:
        rest = np.zeros((skeleton.num_joints, 3))
        for j, p in enumerate(skeleton.parents):
            rest[j] = (rest[p] if p >= 0 else 0.0) + offsets[j]
        rest_vectors = [rest[list(cs)] - rest[j] for j, cs in enumerate(aims)]
    glob = np.tile(np.eye(3), (t, skeleton.num_joints, 1, 1))
    local = glob.copy()
    for j, p in enumerate(skeleton.parents):
        g_parent = glob[:, p] if p >= 0 else np.tile(np.eye(3), (t, 1, 1))
        cs = list(aims[j])
        if len(cs) == 1:
            observed_in_parent = np.einsum("tba,tb->ta", g_parent, pos[:, cs[0]] - pos[:, j])
            local[:, j] = _shortest_arc(np.broadcast_to(rest_vectors[j][0], (t, 3)), observed_in_parent)
            glob[:, j] = g_parent @ local[:, j]
        elif len(cs) > 1:
            glob[:, j] = kabsch(np.broadcast_to(rest_vectors[j], (t, len(cs), 3)), pos[:, cs] - pos[:, j : j + 1])
            local[:, j] = np.swapaxes(g_parent, -1, -2) @ glob[:, j]
        else:
            glob[:, j] = g_parent  # a leaf: nothing to aim, keep the parent's orientation
    return local


def kabsch(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Rotations R (..., 3, 3) minimising sum_k |R a_k - b_k|^2 for point sets a, b (..., K, 3)."""
    m = np.swapaxes(b, -1, -2) @ a  # sum_k b_k a_k^T
    u, _, vt = np.linalg.svd(m)
    d = np.sign(np.linalg.det(u @ vt))
    d = np.where(d == 0, 1.0, d)
    fix = np.ones(u.shape[:-1])
    fix[..., -1] = d
    return (u * fix[..., None, :]) @ vt


def procrustes_mean(points: np.ndarray) -> np.ndarray:
    """The mean shape (K, 3) of point sets (T, K, 3) once every frame is turned onto the first (Kabsch):
    the rest layout of a joint's children that move as one body."""
    return np.einsum("tab,tkb->tka", kabsch(points, points[:1]), points).mean(0)


def rest_skeleton(frames: np.ndarray, skeleton: Skeleton) -> np.ndarray:
    """(J, 3) rest offsets of the poses ``frames`` (N, J, 3): every bone at its median length, every
    cluster (a joint with several children) at its mean layout (Procrustes), single bones along the
    first frame's directions (which they take does not matter: :class:`RigidSkeleton` re-aims them)."""
    pos = np.asarray(frames, dtype=np.float64)
    offsets = np.zeros((skeleton.num_joints, 3))
    for p, cs in enumerate(children(skeleton.parents)):
        if not cs:
            continue
        observed = pos[:, cs] - pos[:, p : p + 1]  # (N, K, 3)
        lengths = np.median(np.linalg.norm(observed, axis=-1), axis=0)
        if len(cs) == 1:
            layout = observed[0]
        else:
            layout = procrustes_mean(observed)
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
        # steady=False: captured clips do not collapse, and ``flat`` may join several clips' frames.
        out = layer(torch.as_tensor(flat, dtype=torch.float32), steady=False).numpy()
    up = skeleton.up_axis
    out[..., up] += flat[..., up].min() - out[..., up].min()
    return out.reshape(pos.shape).astype(pos.dtype, copy=False)
