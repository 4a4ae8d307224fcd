"""MDM-style transformer denoiser over the raw motion window: the raw-space baseline's network.

The diffusion runs directly on the per-frame motion features of a window, (W, J * 3): the root's
horizontal velocity and height and every other joint relative to the root, standardised per feature
(:class:`ramos.motion.nets.motion.MotionFeatures`, the representation the motion VAE reads; MDM
likewise diffuses root-relative HumanML3D features, not absolute positions, whose per-joint
statistics would drown the body's shape in the trajectory's spread). The statistics are init args
of the network, so a checkpoint alone turns samples back into metres
(:meth:`RawMotionDenoiser.to_positions`).

As in MDM (Tevet et al. 2023): one token per frame (linear input projection), one extra token
carrying timestep + label (+ length), learned positional embeddings, a transformer encoder, and a
linear output projection per frame. Frames past the requested length are masked out as attention
keys, so valid frames never read padding.

Signature shared by every RaMoS denoiser: ``denoiser(x_t, t, y, **cond)``; ``cond["length"]``
(B,) is the number of valid frames.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ramos.diffusion.nets import timestep_embedding
from ramos.motion.nets.motion import MotionFeatures
from ramos.utils.spec import Buildable


class RawMotionDenoiser(Buildable):
    """Transformer denoiser of standardised motion features (B, W, J * 3).

    Args:
        window: frames per window (W).
        num_joints: joints of the skeleton (J).
        num_classes: labels; index ``num_classes`` is the null label (0 = unconditional).
        d_model, num_layers, num_heads, ff_dim, dropout: transformer encoder sizes.
        cond_scalars: names of extra conditions; ``"length"`` (valid frames, default the whole window)
            also masks attention.
        root, up_axis, feature_mean, feature_std: the feature representation (see
            :class:`MotionFeatures`), used only by :meth:`normalize` / :meth:`to_positions`.
    """

    def __init__(self, window: int, num_joints: int, num_classes: int = 0, d_model: int = 256,
                 num_layers: int = 4, num_heads: int = 4, ff_dim: int = 512, dropout: float = 0.1,
                 cond_scalars: list[str] | None = None, root: int = 0, up_axis: int = 1,
                 feature_mean: list[float] | None = None, feature_std: list[float] | None = None) -> None:
        super().__init__()
        dim = num_joints * 3
        self.window, self.num_joints, self.num_classes, self.d_model = window, num_joints, num_classes, d_model
        self.cond_scalars = list(cond_scalars or [])
        self.features = MotionFeatures(num_joints, root, up_axis, feature_mean, feature_std)
        self.inp = nn.Linear(dim, d_model)
        self.pos = nn.Parameter(torch.randn(window + 1, d_model) * 0.02)
        self.t_embed = nn.Sequential(nn.Linear(d_model, d_model), nn.SiLU(), nn.Linear(d_model, d_model))
        self.y_embed = nn.Embedding(num_classes + 1, d_model) if num_classes > 0 else None
        self.s_embed = nn.ModuleDict({k: nn.Sequential(nn.Linear(d_model, d_model), nn.SiLU(),
                                                       nn.Linear(d_model, d_model)) for k in self.cond_scalars})
        layer = nn.TransformerEncoderLayer(d_model, num_heads, ff_dim, dropout, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.out_norm = nn.LayerNorm(d_model)
        self.out = nn.Linear(d_model, dim)

    def forward(self, x: Tensor, t: Tensor, y: Tensor | None = None, **cond: Tensor) -> Tensor:
        b, w = x.shape[:2]
        h = self.inp(x)
        c = self.t_embed(timestep_embedding(t, self.d_model))
        if self.y_embed is not None:
            if y is None:
                y = torch.full((b,), self.num_classes, device=x.device, dtype=torch.long)
            c = c + self.y_embed(y)
        if "length" in self.cond_scalars and "length" not in cond:
            cond = {**cond, "length": torch.full((b,), w, device=x.device)}  # no length asked: the whole window
        for k in self.cond_scalars:
            # Lengths in frames, spread over the timestep embedding's range (0..1000).
            c = c + self.s_embed[k](timestep_embedding(cond[k].float() * (1000.0 / self.window), self.d_model))
        tokens = torch.cat([c[:, None], h], dim=1) + self.pos[: w + 1]
        pad = None
        if "length" in cond:
            frames = torch.arange(w, device=x.device)[None]
            pad = torch.cat([torch.zeros(b, 1, dtype=torch.bool, device=x.device),
                             frames >= cond["length"].to(x.device)[:, None]], dim=1)
        out = self.encoder(tokens, src_key_padding_mask=pad)
        return self.out(self.out_norm(out[:, 1:]))

    def normalize(self, positions: Tensor, mask: Tensor | None = None) -> Tensor:
        """Standardised features (B, W, J * 3) of positions (B, W, J, 3) metres (the diffusion's data
        space); frames where ``mask`` is False are zero."""
        f = self.features.normalize(positions)
        return f if mask is None else f * mask[..., None].to(f.dtype)

    def to_positions(self, x: Tensor) -> Tensor:
        """Positions (B, W, J, 3) metres of standardised features (inverse of :meth:`normalize`)."""
        return self.features.positions(x)
