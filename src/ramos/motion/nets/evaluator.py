"""The motion feature extractor behind FID, diversity, multimodality and recognition accuracy.

The standard HumanML3D evaluator needs pretrained weights that cannot be had here, so RaMoS
trains its own: a label classifier on real windows (random crops, random yaw). Its penultimate
layer gives one feature vector per motion.

Input representation: :class:`ramos.motion.nets.motion.MotionFeatures` with the root as a
horizontal velocity (the motion is first moved to start at the origin, so features do not depend
on where it happens), every other joint relative to the root, standardised
with training statistics, plus the validity mask as a channel. The body is a stack of dilated
temporal convolutions with per-frame LayerNorm (no statistic across time, so padding never leaks
in), then masked mean and max pooling over the valid frames: any length from a few frames to the
whole window gives a feature.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ramos.motion.nets.motion import MotionFeatures
from ramos.utils.spec import Buildable


class _MaskedConvBlock(nn.Module):
    """Pre-norm residual block of two kernel-3 convolutions; padded frames are zeroed on the way out."""

    def __init__(self, channels: int, dilation: int, dropout: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels)
        self.conv1 = nn.Conv1d(channels, channels, 3, padding=dilation, dilation=dilation)
        self.conv2 = nn.Conv1d(channels, channels, 3, padding=1)
        self.drop = nn.Dropout(dropout)

    def forward(self, h: Tensor, m: Tensor) -> Tensor:
        # Masking every convolution input makes padded frames read exactly like the zero padding
        # past the end: a motion gives the same features padded or not.
        x = nn.functional.silu(self.norm(h.transpose(1, 2)).transpose(1, 2)) * m
        x = self.conv2(self.drop(nn.functional.silu(self.conv1(x))) * m)
        return (h + x) * m


class ConvMotionEncoder(Buildable):
    """The temporal-convolution backbone shared by the label evaluator and the text-motion retrieval
    model: motions (B, T, J, 3) metres with a validity mask (B, T) -> masked mean and max of the last
    block's channels over the valid frames, (B, 2 * channels). Subclasses add their heads."""

    def __init__(self, num_joints: int, channels: int, depth: int, stride: int, max_dilation: int, dropout: float,
                 root: int, up_axis: int, feature_mean: list[float] | None, feature_std: list[float] | None) -> None:
        super().__init__()
        self.features_in = MotionFeatures(num_joints, root, up_axis, feature_mean, feature_std)
        # Kernel 2 * stride - 1 with padding stride - 1 gives ceil(T / stride) outputs, aligned with mask[::stride].
        self.inp = nn.Conv1d(num_joints * 3 + 1, channels, 2 * stride - 1, stride=stride, padding=stride - 1)
        self.stride = stride
        dilations = [2 ** (i % (max_dilation.bit_length())) for i in range(depth)]
        self.blocks = nn.ModuleList(_MaskedConvBlock(channels, min(d, max_dilation), dropout) for d in dilations)

    def pooled(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """Masked mean and max pooling (B, 2 * channels) of the blocks' output over the valid frames."""
        if mask is None:
            mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        # Start every motion at the horizontal origin: the first frame's root "velocity" is its position.
        start = x[:, :1, self.features_in.root : self.features_in.root + 1].clone()
        start[..., self.features_in.up_axis] = 0.0
        h = self.inp(self.features_in.masked_input(x - start, mask).transpose(1, 2))
        m = mask[:, :: self.stride].to(x.dtype)[:, None, :]  # (B, 1, ceil(T / stride))
        h = h * m
        for block in self.blocks:
            h = block(h, m)
        mean = h.sum(-1) / m.sum(-1).clamp_min(1.0)
        peak = h.masked_fill(m == 0, float("-inf")).amax(-1)
        peak = torch.where(torch.isfinite(peak), peak, torch.zeros_like(peak))  # an all-padding row
        return torch.cat([mean, peak], dim=-1)


class MotionEvaluator(ConvMotionEncoder):
    """Label classifier over motions (B, T, J, 3) metres with a validity mask (B, T).

    Args:
        num_joints: joints of the skeleton (J).
        num_classes: labels to recognise.
        channels: width of the temporal convolutions.
        depth: number of residual blocks (dilations 1, 2, 4, ... cycle up to ``max_dilation``).
        feature_dim: size of the feature vector (penultimate layer) used by FID and diversity.
        stride: frame-rate reduction of the input convolution (20 fps / 4 = 5 features per second
            are plenty to tell actions apart, at a quarter of the cost).
        max_dilation: largest dilation of the cycle.
        dropout: dropout inside the blocks and before the classifier head.
        root, up_axis: root joint index and vertical axis.
        feature_mean, feature_std: per-feature standardisation (J * 3 values each), from
            :func:`ramos.motion.nets.motion.feature_stats` on the training windows.
    """

    def __init__(self, num_joints: int, num_classes: int, channels: int = 48, depth: int = 3,
                 feature_dim: int = 32, stride: int = 4, max_dilation: int = 4, dropout: float = 0.1, root: int = 0,
                 up_axis: int = 1, feature_mean: list[float] | None = None,
                 feature_std: list[float] | None = None) -> None:
        if num_classes < 2:
            raise ValueError(f"a classifier needs at least 2 classes, got {num_classes}")
        super().__init__(num_joints, channels, depth, stride, max_dilation, dropout, root, up_axis, feature_mean,
                         feature_std)
        self.embed = nn.Sequential(nn.Linear(2 * channels, 2 * channels), nn.SiLU(), nn.Linear(2 * channels, feature_dim))
        self.head = nn.Sequential(nn.SiLU(), nn.Dropout(dropout), nn.Linear(feature_dim, num_classes))
        self.num_classes = num_classes
        self.feature_dim = feature_dim

    def features(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """Feature vectors (B, feature_dim) of motions ``x`` (B, T, J, 3) over their valid frames."""
        return self.embed(self.pooled(x, mask))

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """Class logits (B, num_classes)."""
        return self.head(self.features(x, mask))
