"""Single-pose encoders and decoders: a skeleton graph network and its matched-budget MLP rival.

A pose is a (J, 3) array of root-relative, facing-normalised joint positions in metres (see
:func:`canonical_poses`). The graph networks are told how the joints connect: every layer
is an ST-GCN spatial graph convolution over the skeleton's bones, with separate weights for a
joint itself, its parent (towards the root) and its children (away from the root). The MLP
networks see the same pose as ``J * 3`` loose numbers (the generic
:class:`ramos.vae.nets.MLPEncoder` / :class:`~ramos.vae.nets.MLPDecoder`, widened to the graph
pair's parameter count). Either decoder can end in :class:`SkeletonFK`, which reads its output
as bone directions and keeps every bone at the skeleton's length.

All networks are :class:`ramos.utils.spec.Buildable` with plain init arguments; the skeleton is
passed as ``Skeleton.to_dict()``, so a checkpoint rebuilds them without unpickling code.
Use :func:`load_pose_encoder` to reuse a trained encoder in a later stage.
"""

from __future__ import annotations

import os
from typing import Any, Literal, TypeVar

import numpy as np
import torch
from torch import Tensor, nn

from ramos.motion.skeleton import Skeleton
from ramos.utils.spec import Buildable
from ramos.vae.nets import MLPDecoder, MLPEncoder

PoseFamily = Literal["graph", "mlp"]
POSE_FAMILIES: tuple[PoseFamily, ...] = ("graph", "mlp")
ArrayT = TypeVar("ArrayT", np.ndarray, Tensor)


def skeleton_partitions(skeleton: Skeleton) -> Tensor:
    """(3, J, J) ST-GCN "spatial configuration" split of the normalised adjacency.

    Partition 0 keeps the self loops, 1 the edges towards the parent (centripetal), 2 the edges
    towards the children (centrifugal). Their sum is ``skeleton.normalized_adjacency()``.
    """
    a = torch.from_numpy(skeleton.normalized_adjacency())
    j = skeleton.num_joints
    parent = torch.zeros(j, j)
    for p, c in skeleton.bones:
        parent[c, p] = 1.0  # row c gathers from its parent p
    eye = torch.eye(j)
    return torch.stack([a * eye, a * parent, a * parent.T])


class SkeletonGraphConv(nn.Module):
    """One graph convolution on a fixed skeleton: ``out_i = sum_k sum_j A_k[i, j] M_k[i, j] W_k x_j + b``.

    ``A_k`` are the (fixed) partitions of :func:`skeleton_partitions`; ``M_k`` are learnable edge
    weights (SemGCN-style, initialised at 1) that can only rescale existing edges, so a joint's
    output depends on itself and its direct neighbours only. Batched as two dense products.

    Args:
        partitions: (K, J, J) adjacency partitions.
        in_channels: features per joint in.
        out_channels: features per joint out.
    """

    def __init__(self, partitions: Tensor, in_channels: int, out_channels: int) -> None:
        super().__init__()
        k, j, _ = partitions.shape
        self.k, self.out_channels = k, out_channels
        self.register_buffer("partitions", partitions.clone(), persistent=False)
        self.edge_weight = nn.Parameter(torch.ones(k, j, j))
        self.linear = nn.Linear(in_channels, k * out_channels, bias=False)
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def forward(self, x: Tensor) -> Tensor:
        """(B, J, C_in) -> (B, J, C_out)."""
        b, j, _ = x.shape
        h = self.linear(x).view(b, j, self.k, self.out_channels)
        # One contraction over (partition, neighbour): einsum makes it a single matrix product, about
        # 2x faster (forward + backward) than broadcasting the (J, K*J) adjacency over the batch.
        return torch.einsum("kij,bjkc->bic", self.partitions * self.edge_weight, h) + self.bias


class _GraphBlock(nn.Module):
    """Residual graph convolution block: x + SiLU(LayerNorm(GraphConv(x)))."""

    def __init__(self, partitions: Tensor, channels: int) -> None:
        super().__init__()
        self.conv = SkeletonGraphConv(partitions, channels, channels)
        self.norm = nn.LayerNorm(channels)
        self.act = nn.SiLU()

    def forward(self, x: Tensor) -> Tensor:
        return x + self.act(self.norm(self.conv(x)))


class SkeletonFK(nn.Module):
    """Forward kinematics: one vector per joint -> root-relative positions with fixed bone lengths.

    The vector of each non-root joint is read as the direction of the bone from its parent; it is
    normalised and scaled to that bone's length, and positions are summed down the tree (one
    product with the (J, J) root-to-joint path matrix). Whatever the network outputs, every bone
    keeps its length: a decoder with this head cannot stretch the skeleton.

    Args:
        skeleton: the tree.
        bone_lengths: (J-1,) lengths in metres, in ``skeleton.bones`` order.
    """

    def __init__(self, skeleton: Skeleton, bone_lengths: list[float]) -> None:
        super().__init__()
        j = skeleton.num_joints
        if len(bone_lengths) != len(skeleton.bones):
            raise ValueError(f"{len(bone_lengths)} bone lengths for a skeleton with {len(skeleton.bones)} bones")
        lengths = torch.zeros(j)
        lengths[torch.from_numpy(skeleton.bones[:, 1])] = torch.tensor(bone_lengths, dtype=torch.float32)
        path = torch.zeros(j, j)
        for joint in range(j):
            k = joint
            while k != skeleton.root:  # every bone on the way from the root to ``joint``
                path[joint, k] = 1.0
                k = skeleton.parents[k]
        self.register_buffer("lengths", lengths, persistent=False)
        self.register_buffer("path", path, persistent=False)

    def forward(self, vectors: Tensor) -> Tensor:
        """(B, J, 3) bone direction vectors (the root's is ignored) -> (B, J, 3) positions, root at 0."""
        unit = vectors * torch.rsqrt(vectors.pow(2).sum(-1, keepdim=True) + 1e-8)
        return self.path @ (unit * self.lengths[:, None])


class GraphPoseEncoder(Buildable):
    """Pose (B, J, 3) -> (mu, logvar) of a ``latent_dim`` Gaussian, through skeleton graph convolutions.

    Each joint's position is lifted to ``channels`` features (plus a learned joint embedding, so
    that joints with the same neighbourhood shape stay distinguishable), passed through ``depth``
    residual graph convolutions, reduced to ``readout_channels`` per joint and pooled by one
    linear map over all joints (a learned readout: mean pooling would forget which joint is where).

    Args:
        skeleton: ``Skeleton.to_dict()`` of the poses' skeleton.
        latent_dim: size d of the latent.
        channels: features per joint inside the network.
        depth: number of graph convolution blocks.
        readout_channels: features per joint entering the pooling map.
    """

    def __init__(self, skeleton: dict[str, Any], latent_dim: int, channels: int = 48, depth: int = 3,
                 readout_channels: int = 8) -> None:
        super().__init__()
        sk = Skeleton.from_dict(skeleton)
        j = sk.num_joints
        parts = skeleton_partitions(sk)
        self.lift = nn.Linear(3, channels)
        self.joint_embedding = nn.Parameter(torch.randn(j, channels) * 0.02)
        self.blocks = nn.Sequential(*[_GraphBlock(parts, channels) for _ in range(depth)])
        self.reduce = nn.Linear(channels, readout_channels)
        self.pool = nn.Linear(j * readout_channels, 2 * latent_dim)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        h = self.blocks(self.lift(x) + self.joint_embedding)
        mu, logvar = self.pool(self.reduce(h).flatten(1)).chunk(2, dim=-1)
        return mu, logvar.clamp(-12.0, 8.0)


class GraphPoseDecoder(Buildable):
    """Latent (B, d) -> pose (B, J, 3): the mirror image of :class:`GraphPoseEncoder`.

    The latent is spread to ``readout_channels`` features per joint by one linear map, lifted to
    ``channels`` (plus the joint embedding), refined by ``depth`` graph convolutions and read out
    per joint as a 3-D vector: the joint's position, or with ``bone_lengths`` the direction of its
    bone, turned into positions by :class:`SkeletonFK`.
    """

    def __init__(self, skeleton: dict[str, Any], latent_dim: int, channels: int = 48, depth: int = 3,
                 readout_channels: int = 8, bone_lengths: list[float] | None = None) -> None:
        super().__init__()
        sk = Skeleton.from_dict(skeleton)
        self.num_joints, self.readout_channels = sk.num_joints, readout_channels
        parts = skeleton_partitions(sk)
        self.expand = nn.Linear(latent_dim, sk.num_joints * readout_channels)
        self.lift = nn.Linear(readout_channels, channels)
        self.joint_embedding = nn.Parameter(torch.randn(sk.num_joints, channels) * 0.02)
        self.blocks = nn.Sequential(*[_GraphBlock(parts, channels) for _ in range(depth)])
        self.head = nn.Linear(channels, 3)
        self.fk = SkeletonFK(sk, bone_lengths) if bone_lengths is not None else None

    def forward(self, z: Tensor) -> Tensor:
        h = self.expand(z).view(z.shape[0], self.num_joints, self.readout_channels)
        out = self.head(self.blocks(self.lift(h) + self.joint_embedding))
        return out if self.fk is None else self.fk(out)


class MLPPoseDecoder(Buildable):
    """Latent (B, d) -> pose (B, J, 3) by an MLP that sees the pose as ``J * 3`` loose numbers.

    The generic :class:`ramos.vae.nets.MLPDecoder`, optionally followed by the same
    :class:`SkeletonFK` head as the graph decoder (``bone_lengths``), so that both families differ
    only in the network between latent and output.
    """

    def __init__(self, skeleton: dict[str, Any], latent_dim: int, hidden: list[int],
                 bone_lengths: list[float] | None = None) -> None:
        super().__init__()
        sk = Skeleton.from_dict(skeleton)
        self.net = MLPDecoder([sk.num_joints, 3], latent_dim, hidden)
        self.fk = SkeletonFK(sk, bone_lengths) if bone_lengths is not None else None

    def forward(self, z: Tensor) -> Tensor:
        out = self.net(z)
        return out if self.fk is None else self.fk(out)


# --- the MLP rival and budget matching -------------------------------------------------------------
def count_parameters(*nets: nn.Module) -> int:
    """Number of trainable parameters of ``nets`` together."""
    return sum(p.numel() for net in nets for p in net.parameters() if p.requires_grad)


def _mlp_params(width: int, num_joints: int, latent_dim: int, depth: int) -> int:
    enc = MLPEncoder([num_joints, 3], latent_dim, [width] * depth)
    dec = MLPDecoder([num_joints, 3], latent_dim, [width] * depth)
    return count_parameters(enc, dec)


def matched_mlp_width(target_params: int, num_joints: int, latent_dim: int, depth: int = 2) -> int:
    """Hidden width of an MLP encoder+decoder pair (``depth`` hidden layers each) closest to ``target_params``."""
    lo, hi = 1, 8
    while _mlp_params(hi, num_joints, latent_dim, depth) < target_params:
        lo, hi = hi, hi * 2
    while hi - lo > 1:  # parameters grow monotonically with width: bisect
        mid = (lo + hi) // 2
        if _mlp_params(mid, num_joints, latent_dim, depth) < target_params:
            lo = mid
        else:
            hi = mid
    return min((lo, hi), key=lambda w: abs(_mlp_params(w, num_joints, latent_dim, depth) - target_params))


def build_pose_nets(family: PoseFamily, skeleton: Skeleton, latent_dim: int, channels: int = 48, depth: int = 3,
                    readout_channels: int = 8, mlp_depth: int = 2,
                    bone_lengths: list[float] | None = None) -> tuple[nn.Module, nn.Module]:
    """Encoder and decoder of one family; the MLP pair gets the graph pair's parameter budget.

    The graph hyper-parameters (``channels``, ``depth``, ``readout_channels``) fix the budget for
    both families, so that a study compares architectures, not sizes. With ``bone_lengths`` both
    decoders output bone directions through :class:`SkeletonFK` (no extra parameters).
    """
    sk = skeleton.to_dict()
    graph = (GraphPoseEncoder(sk, latent_dim, channels, depth, readout_channels),
             GraphPoseDecoder(sk, latent_dim, channels, depth, readout_channels, bone_lengths))
    if family == "graph":
        return graph
    if family != "mlp":
        raise ValueError(f"unknown pose network family {family!r} (expected one of {POSE_FAMILIES})")
    width = matched_mlp_width(count_parameters(*graph), skeleton.num_joints, latent_dim, mlp_depth)
    return (MLPEncoder([skeleton.num_joints, 3], latent_dim, [width] * mlp_depth),
            MLPPoseDecoder(sk, latent_dim, [width] * mlp_depth, bone_lengths))


def canonical_poses(positions: ArrayT, skeleton: Skeleton) -> ArrayT:
    """Root-relative, facing-normalised poses: (..., J, 3) -> (..., J, 3), same type as the input.

    Each pose is moved so that its root is at the origin and turned about the vertical axis so
    that its facing direction (as :func:`ramos.motion.preprocess.facing_direction`, per pose) is
    +z. Heights are kept relative to the root. Degenerate poses (hips and shoulders vertical)
    are left unturned.
    """
    x = torch.as_tensor(positions)
    x = x - x[..., skeleton.root:skeleton.root + 1, :]
    idx = skeleton.index
    across = (x[..., idx("right_hip"), :] - x[..., idx("left_hip"), :]
              + x[..., idx("right_shoulder"), :] - x[..., idx("left_shoulder"), :])
    # forward = up x across = (across_z, 0, -across_x); turning by -atan2(fx, fz) puts it on +z.
    angle = -torch.atan2(across[..., 2], -across[..., 0])
    c, s = torch.cos(angle)[..., None], torch.sin(angle)[..., None]
    px, py, pz = x[..., 0], x[..., 1], x[..., 2]
    out = torch.stack([c * px + s * pz, py, -s * px + c * pz], dim=-1)
    return out.numpy() if isinstance(positions, np.ndarray) else out


# --- reuse in later stages -----------------------------------------------------------------------
class PoseEncoder(nn.Module):
    """A trained pose encoder ready for reuse: poses (..., J, 3) in any frame -> latent means (..., d).

    It applies the pose VAE's input convention itself (root-relative, facing turned to +z; see
    :func:`canonical_poses`), so a motion stage can pass raw windows
    (B, T, J, 3) and get per-frame embeddings (B, T, d).

    Attributes:
        encoder: the trained encoder network (frozen).
        skeleton: the skeleton it was trained on.
        latent_dim: d.
    """

    def __init__(self, encoder: nn.Module, skeleton: Skeleton, latent_dim: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.skeleton = skeleton
        self.latent_dim = latent_dim

    def forward(self, positions: Tensor, return_logvar: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """Latent means (..., d) of ``positions`` (..., J, 3) in metres (and log-variances if asked)."""
        lead = positions.shape[:-2]
        poses = canonical_poses(positions.reshape(-1, *positions.shape[-2:]), self.skeleton)
        mu, logvar = self.encoder(poses)
        mu, logvar = mu.reshape(*lead, -1), logvar.reshape(*lead, -1)
        return (mu, logvar) if return_logvar else mu


def load_pose_encoder(path: str | os.PathLike[str], freeze: bool = True) -> PoseEncoder:
    """Load the encoder of a trained pose VAE checkpoint (written by ``ramos study pose-vae``).

    Only the checkpoint is needed: the network is rebuilt from its stored spec with
    ``weights_only=True`` loading. Example::

        enc = load_pose_encoder("runs/pose_vae/best_graph_d32.ckpt")
        z = enc(windows)          # (B, T, J, 3) metres -> (B, T, 32)

    Args:
        path: a checkpoint saved by the pose VAE stage (a :class:`ramos.vae.VAEModule` checkpoint).
        freeze: put the encoder in eval mode with gradients off (set False to fine-tune it).
    """
    from ramos.utils.checkpoint import CheckpointError
    from ramos.vae import VAEModule

    vae = VAEModule.load(path, freeze=freeze)
    # Every pose VAE's loss (PoseReconstruction) records the skeleton, whichever the encoder family.
    skeleton = vae.loss.spec["init_args"].get("skeleton")
    latent = vae.encoder.spec["init_args"].get("latent_dim")
    if skeleton is None or latent is None:
        raise CheckpointError(f"{path}: not a pose VAE checkpoint (no skeleton or latent size in its specs)")
    enc = PoseEncoder(vae.encoder, Skeleton.from_dict(skeleton), int(latent))
    return enc.eval() if freeze else enc


__all__ = [
    "GraphPoseDecoder", "GraphPoseEncoder", "MLPPoseDecoder", "POSE_FAMILIES", "PoseEncoder", "PoseFamily",
    "SkeletonFK", "SkeletonGraphConv", "build_pose_nets", "canonical_poses", "count_parameters", "load_pose_encoder", "matched_mlp_width", "skeleton_partitions",
]
