"""The motion VAE's networks: (B, W, J, 3) windows in metres <-> one latent vector per window.

Per length range ("bucket") its own encoder and decoder: a PCA-initialised linear map plus an MLP
residual (:class:`BucketedMotionEncoder`, :class:`BucketedMotionDecoder`; why, and the flattened
MLP, convolutional and transformer families it replaced with their numbers: docs/motion_vae.md).

Representation (:class:`MotionFeatures`). Per frame the networks see ``J * 3`` numbers: the root's
horizontal displacement since the previous frame (integrated back by a cumulative sum in the
decoder), the root height, and every other joint relative to the root. These are standardised with
a mean/std computed on the training split and passed as plain init args, so the networks take and
return **metres**, and a checkpoint alone rebuilds them (:meth:`ramos.vae.VAEModule.load`).

Length. Encoders take ``(x, mask)``; padded frames are zeroed and the mask is an input channel, so
changing padded frames changes nothing. Decoders return all ``W`` frames; the caller keeps the
first ``length`` of them (the diffusion stage conditions on the length, see docs/motion_vae.md).
"""

from __future__ import annotations

import copy
import functools
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ramos.motion.rigid import RigidSkeleton
from ramos.utils.spec import Buildable
from ramos.vae.nets import mlp

_LOGVAR_RANGE = (-12.0, 8.0)
# Initial log-variance of the posterior: at 0 the sampling noise (std 1 per dimension) swamps the
# small initial means and the decoder first learns the average window; exp(-6 / 2) = 0.05 lets the
# means through from the first step (the KL term, weighted 1e-4, widens what it needs later).
_LOGVAR_INIT = -6.0


class MotionFeatures(nn.Module):
    """Positions (B, T, J, 3) metres <-> standardised per-frame features (B, T, J * 3).

    Not Buildable on purpose: it is rebuilt by the encoder/decoder that owns it from their init args.
    """

    def __init__(self, num_joints: int, root: int = 0, up_axis: int = 1,
                 feature_mean: Sequence[float] | None = None, feature_std: Sequence[float] | None = None) -> None:
        super().__init__()
        dim = num_joints * 3
        mean = torch.zeros(dim) if feature_mean is None else torch.tensor(list(feature_mean), dtype=torch.float32)
        std = torch.ones(dim) if feature_std is None else torch.tensor(list(feature_std), dtype=torch.float32)
        if mean.shape != (dim,) or std.shape != (dim,):
            raise ValueError(f"feature_mean/std need {dim} values for {num_joints} joints")
        self.num_joints, self.root, self.up_axis = num_joints, root, up_axis
        # Persistent buffers: they travel in the state dict too, so a checkpoint is self-consistent.
        self.register_buffer("mean", mean)
        self.register_buffer("std", std.clamp_min(1e-4))
        self.horizontal = [a for a in range(3) if a != up_axis]

    @property
    def dim(self) -> int:
        return self.num_joints * 3

    def raw(self, x: Tensor) -> Tensor:
        """Unstandardised features (B, T, J, 3) of positions (B, T, J, 3)."""
        root = x[:, :, self.root : self.root + 1]
        feats = x - root  # every joint relative to the root; the root's own slot is refilled below
        root_slot = root[:, :, 0].clone()
        # The root's horizontal position as a per-frame displacement (HumanML3D, MDM): an absolute
        # position measured far worse (docs/motion_vae.md).
        h = root_slot[..., self.horizontal]
        root_slot[..., self.horizontal] = h - torch.cat([torch.zeros_like(h[:, :1]), h[:, :-1]], dim=1)
        feats[:, :, self.root] = root_slot
        return feats

    def normalize(self, x: Tensor) -> Tensor:
        """Standardised features (B, T, J * 3) of positions (B, T, J, 3)."""
        return (self.raw(x).flatten(2) - self.mean) / self.std

    def positions(self, f: Tensor) -> Tensor:
        """Positions (B, T, J, 3) metres of standardised features (B, T, J * 3)."""
        raw = torch.addcmul(self.mean, f, self.std).view(f.shape[0], f.shape[1], self.num_joints, 3)
        root = raw[:, :, self.root].clone()
        root[..., self.horizontal] = root[..., self.horizontal].cumsum(dim=1)
        # Relative joints get the root added back; the root slot becomes the root itself. (Two
        # passes over the batch, not four: decoding 256 motions of 10 s moves 13 MB per pass.)
        out = raw + root[:, :, None]
        out[:, :, self.root] = root
        return out

    def masked_input(self, x: Tensor, mask: Tensor | None) -> Tensor:
        """Encoder input (B, T, J * 3 + 1): features zeroed on padded frames, plus the mask channel."""
        f = self.normalize(x)
        if mask is None:
            mask = torch.ones(f.shape[:2], dtype=torch.bool, device=f.device)
        m = mask.to(f.dtype)[..., None]
        # Velocity features of the first padded frame would see the last valid pose: zero them all.
        return torch.cat([f * m, m], dim=-1)


def feature_stats(windows: Tensor, mask: Tensor, root: int = 0, up_axis: int = 1,
                  root_scale: float = 1.0) -> tuple[list[float], list[float]]:
    """Per-feature mean and std over the valid frames of ``windows`` (N, T, J, 3), as plain lists.
    ``root_scale`` divides the std of the root's horizontal displacement, so those features weigh
    ``root_scale**2`` more in the standardised space (the PCA start and the feature loss)."""
    feats = MotionFeatures(windows.shape[2], root, up_axis).raw(windows.float()).flatten(2)
    valid = feats[mask.bool()]
    if valid.shape[0] < 2:
        raise ValueError("feature_stats needs at least two valid frames")
    std = valid.std(0)
    std[[root * 3 + a for a in range(3) if a != up_axis]] /= root_scale
    return valid.mean(0).tolist(), std.tolist()


def _init_logvar(head: nn.Linear, latent_dim: int) -> None:
    """Start the log-variance half of a (mu, logvar) head at :data:`_LOGVAR_INIT`."""
    with torch.no_grad():
        head.bias[latent_dim:] = _LOGVAR_INIT


def _split_posterior(h: Tensor) -> tuple[Tensor, Tensor]:
    mu, logvar = h.chunk(2, dim=-1)
    return mu, logvar.clamp(*_LOGVAR_RANGE)


# --- the length-bucketed family: per length range, a PCA-initialised linear map plus an MLP -------------
def bucket_of(lengths: Tensor, buckets: Sequence[int]) -> Tensor:
    """Index of the first bucket whose longest length (frames) holds each of ``lengths``."""
    edges = torch.as_tensor(list(buckets)[:-1], dtype=lengths.dtype, device=lengths.device)
    return torch.bucketize(lengths, edges, right=False)


def _lengths(mask: Tensor | None, batch: int, window: int, device: torch.device) -> Tensor:
    if mask is None:
        return torch.full((batch,), window, dtype=torch.long, device=device)
    return mask.long().sum(1)


def _pick(outputs: list[Tensor], index: Tensor) -> Tensor:
    """Row ``i`` of ``outputs[index[i]]`` (every output computed for the whole batch: trace-friendly)."""
    stacked = torch.stack(outputs)  # (K, B, ...)
    gather = index.view(1, -1, *[1] * (stacked.dim() - 2)).expand(1, *stacked.shape[1:])
    return stacked.gather(0, gather)[0]


def _route(fns: Sequence[Callable[[Tensor], Tensor]], inputs: Sequence[Tensor], index: Tensor) -> Tensor:
    """Row ``i`` of ``fns[k](inputs[k])`` with ``k = index[i]``: each function sees only its own rows.

    Under ``torch.jit.trace`` every function runs on the whole batch and the rows are gathered
    (:func:`_pick`): a trace records one path, and that path must hold for any mix of buckets.
    """
    if torch.jit.is_tracing():
        return _pick([fn(x) for fn, x in zip(fns, inputs)], index)
    first = int(index[0])
    if bool((index == first).all()):  # one bucket (e.g. a batch of full windows): no row copies
        return fns[first](inputs[first])
    out: Tensor | None = None
    for k, (fn, x) in enumerate(zip(fns, inputs)):
        rows = (index == k).nonzero().squeeze(1)
        if rows.numel() == 0:
            continue
        y = fn(x[rows])
        if out is None:
            out = y.new_empty(index.shape[0], *y.shape[1:])
        out[rows] = y  # autograd records the row writes (CopySlices)
    assert out is not None, "empty batch"
    return out


class LinearResidual(nn.Module):
    """``linear(x) + mlp(x)``: the linear map is set to a PCA basis before training
    (:meth:`set_linear`) and the MLP's last layer starts at zero, so training starts from the PCA
    solution and learns only what a linear code misses."""

    def __init__(self, n_in: int, n_out: int, hidden: int) -> None:
        super().__init__()
        self.linear = nn.Linear(n_in, n_out)
        self.mlp = mlp([n_in, hidden, n_out]) if hidden > 0 else None
        if self.mlp is not None:
            nn.init.zeros_(self.mlp[-1].weight)
            nn.init.zeros_(self.mlp[-1].bias)

    def set_linear(self, weight: Tensor, bias: Tensor) -> None:
        with torch.no_grad():
            self.linear.weight.copy_(weight)
            self.linear.bias.copy_(bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x) if self.mlp is None else self.linear(x) + self.mlp(x)


def _check_buckets(buckets: Sequence[int] | None, window: int) -> list[int]:
    out = sorted(int(b) for b in (buckets or [window]))
    if out[-1] != window or out[0] < 1 or len(set(out)) != len(out):
        raise ValueError(f"buckets must be distinct lengths in 1..{window} ending at the window ({window}), got {buckets}")
    return out


class BucketedMotionEncoder(Buildable):
    """Per length range ("bucket", given by its longest length), its own encoder of the window's first
    ``bucket`` frames; a window goes through the encoder of the shortest bucket that holds it.

    Why: a 4-frame window and a 10 s one need different codes. One map for all lengths spends the
    latent on the long windows' variance (a PCA of 256 components fitted on a mix of lengths
    reconstructs 3-13-frame held-out windows to 149 mm; fitted on short windows alone, to 11 mm,
    docs/motion_vae.md). Each bucket's map is linear (PCA-initialised, generalises to unseen poses:
    the flattened MLP learns the training poses and misses new ones) plus an MLP residual.

    Args:
        window: frames per window (W).
        num_joints: joints of the skeleton (J).
        latent_dim: size of the latent vector.
        buckets: the longest length of each bucket, ascending; the last is the window.
        hidden: width of each bucket's MLP residual (0: linear only).
        root, up_axis, feature_mean, feature_std: see :class:`MotionFeatures`.
    """

    def __init__(self, window: int, num_joints: int, latent_dim: int = 256, buckets: list[int] | None = None,
                 hidden: int = 512, root: int = 0, up_axis: int = 1,
                 feature_mean: list[float] | None = None, feature_std: list[float] | None = None) -> None:
        super().__init__()
        self.window, self.latent_dim = window, latent_dim
        self.buckets = _check_buckets(buckets, window)
        self.features = MotionFeatures(num_joints, root, up_axis, feature_mean, feature_std)
        self.experts = nn.ModuleList(LinearResidual(b * (num_joints * 3 + 1), latent_dim, hidden) for b in self.buckets)
        # Per-bucket posterior log-variance, one value per dimension: the means carry the content.
        self.logvar = nn.Parameter(torch.full((len(self.buckets), latent_dim), _LOGVAR_INIT))

    def inputs(self, x: Tensor, mask: Tensor | None) -> Tensor:
        """Masked standardised features + mask channel (B, W, J * 3 + 1), as every bucket reads them."""
        return self.features.masked_input(x, mask)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        f = self.inputs(x, mask)
        index = bucket_of(_lengths(mask, x.shape[0], self.window, x.device), self.buckets)
        mu = _route(list(self.experts), [f[:, :b].flatten(1) for b in self.buckets], index)
        return mu, self.logvar[index].clamp(*_LOGVAR_RANGE)


class TemporalRefiner(nn.Module):
    """``f + conv(f)`` over time: three kernel-5 convolutions with frame-shared weights on features
    (B, T, C). The last convolution starts at zero, so a new refiner changes nothing.

    Why: a decoder whose weights belong to frame slots (a PCA basis plus an MLP) regresses a 10 s
    window towards the mean of its neighbours and blurs sharp events such as a foot touching down;
    a convolution learns such local patterns once for every frame.
    """

    def __init__(self, features: int, channels: int, kernel: int = 5) -> None:
        super().__init__()
        pad = kernel // 2
        self.body = nn.Sequential(nn.Conv1d(features, channels, kernel, padding=pad, padding_mode="replicate"), nn.SiLU(),
                                  nn.Conv1d(channels, channels, kernel, padding=pad, padding_mode="replicate"), nn.SiLU(),
                                  nn.Conv1d(channels, features, kernel, padding=pad, padding_mode="replicate"))
        nn.init.zeros_(self.body[-1].weight)
        nn.init.zeros_(self.body[-1].bias)

    def forward(self, f: Tensor) -> Tensor:
        return f + self.body(f.transpose(1, 2)).transpose(1, 2)


class _RefinedExpert(nn.Module):
    """A bucket's decoder followed by a :class:`TemporalRefiner` of its frames (features out, flat)."""

    def __init__(self, expert: nn.Module, refiner: TemporalRefiner, frames: int) -> None:
        super().__init__()
        self.expert, self.refiner, self.frames = expert, refiner, frames

    def forward(self, z: Tensor) -> Tensor:
        return self.refiner(self.expert(z).view(z.shape[0], self.frames, -1)).flatten(1)


class BucketedMotionDecoder(Buildable):
    """The decoders of :class:`BucketedMotionEncoder`'s buckets: a latent is decoded by its length's
    bucket (``mask``: the valid frames; without it, the longest bucket) into that bucket's frames;
    the rest of the window repeats the last decoded frame (padding: cut by the caller).

    ``refine`` > 0 adds a :class:`TemporalRefiner` of that many channels to the longest bucket (the
    short ranges are reconstructed to about 1 cm already).

    ``skeleton`` (``Skeleton.to_dict()``) and ``rest_offsets`` (J, 3) end the decoder in a
    :class:`~ramos.motion.rigid.RigidSkeleton`: every decoded motion is then forward kinematics of
    that rest pose, its bones never stretch (decoders saved before it have neither and decode free
    positions)."""

    def __init__(self, window: int, num_joints: int, latent_dim: int = 256, buckets: list[int] | None = None,
                 hidden: int = 512, root: int = 0, up_axis: int = 1,
                 feature_mean: list[float] | None = None, feature_std: list[float] | None = None,
                 refine: int = 0, skeleton: dict[str, Any] | None = None,
                 rest_offsets: list[list[float]] | None = None) -> None:
        super().__init__()
        self.window = window
        self.buckets = _check_buckets(buckets, window)
        self.features = MotionFeatures(num_joints, root, up_axis, feature_mean, feature_std)
        if (skeleton is None) != (rest_offsets is None):
            raise ValueError("a rigid decoder needs both skeleton and rest_offsets")
        self.rigid = RigidSkeleton(skeleton, rest_offsets) if skeleton is not None and rest_offsets is not None else None
        self.experts = nn.ModuleList(LinearResidual(latent_dim, b * num_joints * 3, hidden) for b in self.buckets)
        self.refiner = TemporalRefiner(num_joints * 3, refine) if refine > 0 else None
        self._frozen_experts: list[Callable[[Tensor], Tensor]] | None = None

    def with_refiner(self, channels: int) -> BucketedMotionDecoder:
        """This decoder with a new :class:`TemporalRefiner` of ``channels`` on its longest bucket (a new
        refiner is the identity: the copy decodes exactly as this one until it is trained). A
        decoder that has a refiner already, or ``channels`` 0, is returned as it is."""
        if self.refiner is not None or channels <= 0:
            return self
        spec = copy.deepcopy(self.spec)
        spec["init_args"]["refine"] = channels
        out = type(self)(**spec["init_args"])
        missing, unexpected = out.load_state_dict(self.state_dict(), strict=False)
        assert not unexpected and all(k.startswith("refiner.") for k in missing), (missing, unexpected)
        return out

    @property
    def longest_range_frames(self) -> tuple[int, int]:
        """The shortest and longest length (frames) decoded by the longest bucket."""
        return (self.buckets[-2] + 1 if len(self.buckets) > 1 else 1), self.buckets[-1]

    def longest_range_parameters(self) -> list[nn.Parameter]:
        """The parameters that decode the longest bucket: its expert and the refiner."""
        params = list(self.experts[-1].parameters())
        return params + (list(self.refiner.parameters()) if self.refiner is not None else [])

    def _expert(self, k: int) -> nn.Module:
        """Bucket ``k``'s latent -> flat features map, its refiner included."""
        if self.refiner is not None and k == len(self.buckets) - 1:
            return _RefinedExpert(self.experts[k], self.refiner, self.buckets[k])
        return self.experts[k]

    def freeze_for_inference(self) -> None:
        """Decode through TorchScript-frozen copies of the experts (``torch.jit.optimize_for_inference``:
        pre-packed oneDNN weights, about 2x faster at batch 1 on a CPU; any batch size). Only the
        experts are frozen: routing rows to their bucket stays eager, so a batch runs only the buckets
        it needs. The copies hold the weights of this moment and serve only without autograd."""
        self.eval()
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            self._frozen_experts = [
                torch.jit.optimize_for_inference(torch.jit.trace(self._expert(k), (torch.zeros(1, e.linear.in_features),)))
                for k, e in enumerate(self.experts)]

    def _decode_bucket(self, k: int, z: Tensor) -> Tensor:
        """Standardised features (B, W, J * 3) of bucket ``k``, its last frame repeated to the window."""
        frozen = self._frozen_experts is not None and not torch.is_grad_enabled() and not torch.jit.is_tracing()
        expert = self._frozen_experts[k] if frozen else self._expert(k)  # type: ignore[index]
        f = expert(z).view(z.shape[0], self.buckets[k], -1)
        if self.buckets[k] == self.window:
            return f
        return torch.cat([f, f[:, -1:].expand(-1, self.window - self.buckets[k], -1)], dim=1)

    def forward(self, z: Tensor, mask: Tensor | None = None) -> Tensor:
        """Positions (B, W, J, 3) metres of latents (B, latent_dim)."""
        index = bucket_of(_lengths(mask, z.shape[0], self.window, z.device), self.buckets)
        f = _route([functools.partial(self._decode_bucket, k) for k in range(len(self.buckets))],
                   [z] * len(self.buckets), index)
        positions = self.features.positions(f)
        return positions if self.rigid is None else self.rigid(positions)


@torch.no_grad()
def init_buckets_from_pca(encoder: BucketedMotionEncoder, decoder: BucketedMotionDecoder, x: Tensor,
                          mask: Tensor, oversample: int = 16) -> None:
    """Set every bucket's linear maps to the PCA of the windows ``x`` (N, W, J, 3) that fall in it.

    The encoder's map becomes the projection onto the top ``latent_dim`` principal components of the
    bucket's encoder inputs, the decoder's map the reconstruction from them (randomised SVD,
    :func:`torch.svd_lowrank`). A bucket with fewer windows than ``latent_dim`` keeps its random init.
    """
    f = encoder.inputs(x, mask)
    index = bucket_of(mask.long().sum(1), encoder.buckets)
    dim = encoder.features.dim
    for k, b in enumerate(encoder.buckets):
        rows = f[index == k, :b]
        z = encoder.latent_dim
        if rows.shape[0] <= z:
            continue
        flat = rows.flatten(1)
        mean = flat.mean(0)
        basis = torch.svd_lowrank(flat, q=min(z + oversample, *flat.shape), niter=3, M=mean[None])[2].T[:z]
        # Fewer input numbers than latent dimensions (e.g. 3 frames): the extra dimensions stay unused.
        basis = torch.cat([basis, basis.new_zeros(z - basis.shape[0], basis.shape[1])])
        encoder.experts[k].set_linear(basis, -basis @ mean)
        # The decoder writes features only: drop the mask channel from each frame of the basis.
        keep = (torch.arange(b * (dim + 1)) % (dim + 1)) < dim
        decoder.experts[k].set_linear(basis[:, keep].T, mean[keep])
