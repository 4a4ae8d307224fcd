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

from ramos.motion.nets.evaluator import ConvMotionEncoder


class TextMotionRetrieval(ConvMotionEncoder):
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
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        super().__init__(num_joints, channels, depth, stride, max_dilation, dropout, root, up_axis, feature_mean,
                         feature_std)
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
        return nn.functional.normalize(self.motion_head(self.pooled(x, mask)), dim=-1)

    def encode_text(self, emb: Tensor) -> Tensor:
        """Unit embeddings (B, embed_dim) of sentence embeddings (B, text_dim)."""
        return nn.functional.normalize(self.text_head(emb), dim=-1)

    def forward(self, x: Tensor, mask: Tensor | None, text: Tensor) -> tuple[Tensor, Tensor]:
        """(motion embeddings, text embeddings), each (B, embed_dim) and unit length."""
        return self.encode_motion(x, mask), self.encode_text(text)
