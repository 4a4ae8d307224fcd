"""Text-motion retrieval: a motion encoder and a text head that meet in one embedding space.

The text-to-motion metrics of the field (R-precision, MM-Dist, and FID, diversity and
multimodality in the same feature space) need motion and text features that are close when the
text describes the motion. Guo et al.'s pretrained evaluator fits only HumanML3D's own
representation, so RaMoS trains this model on the user's data (``ramos.stages.evaluation.retrieval``).

- Motion side: the backbone of :class:`ramos.motion.nets.evaluator.MotionEvaluator` (per-frame
  :class:`~ramos.motion.nets.motion.MotionFeatures` after moving the motion to start at the origin,
  a strided input convolution, masked dilated residual convolutions, masked mean + max pooling over
  the valid frames), then an MLP to the shared space. Any length from a few frames to the window
  gives an embedding, and padding changes nothing. Heading invariance comes from training on
  randomly turned motions, as for the label evaluator.
- Text side: a small MLP on the frozen 384-d sentence embeddings of :mod:`ramos.motion.text`.
- Both outputs are L2-normalised, so distances are Euclidean between unit vectors (in [0, 2]).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ramos.motion.nets.evaluator import _MaskedConvBlock
from ramos.motion.nets.motion import MotionFeatures
from ramos.utils.spec import Buildable


class TextMotionRetrieval(Buildable):
    """Motion and text encoders into a shared, L2-normalised embedding space.

    Args:
        num_joints: joints of the skeleton (J).
        text_dim: size of the sentence embeddings (384 for all-MiniLM-L6-v2).
        embed_dim: size of the shared space.
        channels, depth, stride, max_dilation: the motion backbone (as in ``MotionEvaluator``).
        text_hidden: hidden width of the text MLP.
        dropout: dropout in both encoders.
        temperature: initial softmax temperature of the contrastive loss (learned, as in CLIP; stored
            as a log scale so it stays positive).
        root, up_axis: root joint index and vertical axis.
        feature_mean, feature_std: per-feature standardisation (J * 3 values each), from
            :func:`ramos.motion.nets.motion.feature_stats` on turned training windows.
    """

    def __init__(self, num_joints: int, text_dim: int = 384, embed_dim: int = 64, channels: int = 64, depth: int = 3,
                 stride: int = 4, max_dilation: int = 4, text_hidden: int = 256, dropout: float = 0.1,
                 temperature: float = 0.1, root: int = 0, up_axis: int = 1, feature_mean: list[float] | None = None,
                 feature_std: list[float] | None = None) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.features_in = MotionFeatures(num_joints, root, up_axis, feature_mean, feature_std)
        # Kernel 2 * stride - 1 with padding stride - 1 gives ceil(T / stride) outputs, aligned with mask[::stride].
        self.inp = nn.Conv1d(num_joints * 3 + 1, channels, 2 * stride - 1, stride=stride, padding=stride - 1)
        self.stride = stride
        dilations = [2 ** (i % (max_dilation.bit_length())) for i in range(depth)]
        self.blocks = nn.ModuleList(_MaskedConvBlock(channels, min(d, max_dilation), dropout) for d in dilations)
        self.motion_head = nn.Sequential(nn.Linear(2 * channels, 2 * channels), nn.SiLU(), nn.Dropout(dropout),
                                         nn.Linear(2 * channels, embed_dim))
        self.text_head = nn.Sequential(nn.Linear(text_dim, text_hidden), nn.SiLU(), nn.Dropout(dropout),
                                       nn.Linear(text_hidden, embed_dim))
        self.log_scale = nn.Parameter(torch.tensor(math.log(1.0 / temperature)))
        self.text_dim, self.embed_dim = text_dim, embed_dim

    @property
    def scale(self) -> Tensor:
        """Inverse temperature of the contrastive logits, clamped to [1, 100] (CLIP's bound) so it cannot run away."""
        return self.log_scale.exp().clamp(1.0, 100.0)

    def encode_motion(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """Unit embeddings (B, embed_dim) of motions ``x`` (B, T, J, 3) metres over their valid frames (B, T)."""
        if mask is None:
            mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        # Start every motion at the horizontal origin: the first frame's root "velocity" is its position.
        f = self.features_in
        start = x[:, :1, f.root : f.root + 1].clone()
        start[..., f.up_axis] = 0.0
        h = self.inp(f.masked_input(x - start, mask).transpose(1, 2))
        m = mask[:, :: self.stride].to(x.dtype)[:, None, :]  # (B, 1, ceil(T / stride))
        h = h * m
        for block in self.blocks:
            h = block(h, m)
        mean = h.sum(-1) / m.sum(-1).clamp_min(1.0)
        peak = h.masked_fill(m == 0, float("-inf")).amax(-1)
        peak = torch.where(torch.isfinite(peak), peak, torch.zeros_like(peak))  # an all-padding row
        return nn.functional.normalize(self.motion_head(torch.cat([mean, peak], dim=-1)), dim=-1)

    def encode_text(self, emb: Tensor) -> Tensor:
        """Unit embeddings (B, embed_dim) of sentence embeddings (B, text_dim)."""
        return nn.functional.normalize(self.text_head(emb), dim=-1)

    def forward(self, x: Tensor, mask: Tensor | None, text: Tensor) -> tuple[Tensor, Tensor]:
        """(motion embeddings, text embeddings), each (B, embed_dim) and unit length."""
        return self.encode_motion(x, mask), self.encode_text(text)
