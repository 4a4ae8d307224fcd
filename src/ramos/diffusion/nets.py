"""Denoisers for vector latents. Signature shared by every RaMoS denoiser:

    denoiser(x_t, t, y, **cond) -> prediction with the shape of x_t

``t`` are integer timesteps (B,); ``y`` is the condition: class indices (B,) where ``num_classes`` is
the "no label" class, or text embeddings (B, text_dim) where the zero vector is "no text" (both used
for classifier-free guidance); optional extra conditions are keyword tensors.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ramos.utils.spec import Buildable


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal embedding (B, dim) of integer or real timesteps (B,)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return torch.nn.functional.pad(emb, (0, dim % 2))


_DEDUP_MIN_BATCH = 8
"""Batches up to this size skip the search for distinct conditions (it costs more than it saves there)."""


class ResBlock(nn.Module):
    """Pre-norm residual MLP block modulated by the conditioning vector (adaLN-style shift/scale)."""

    def __init__(self, width: int, cond_dim: int, dropout: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width, elementwise_affine=False)
        self.film = nn.Linear(cond_dim, 2 * width)
        self.mlp = nn.Sequential(nn.Linear(width, 2 * width), nn.SiLU(), nn.Dropout(dropout), nn.Linear(2 * width, width))
        # Start as identity so deep stacks train stably from the first step.
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, h: Tensor, c: Tensor, index: Tensor | None = None) -> Tensor:
        """``h`` (B, width); ``c`` (B, cond_dim), or (U, cond_dim) distinct rows with ``index`` (B,) into them."""
        film = self.film(c)
        shift, scale = (film if index is None else film[index]).chunk(2, dim=-1)
        return h + self.mlp(self.norm(h) * (1 + scale) + shift)


class ResidualMLPDenoiser(Buildable):
    """Residual MLP over a flat latent vector, conditioned on timestep and a class or a text embedding.

    Args:
        dim: latent dimension (input and output size).
        width: hidden width.
        depth: number of residual blocks.
        num_classes: number of labels; index ``num_classes`` is the null label. 0 = unconditional.
        cond_scalars: names of extra scalar conditions (e.g. ``["length"]``) passed as keywords.
        dropout: dropout inside the blocks.
        text_dim: size of a text embedding condition (0: none; not together with ``num_classes``).
        cond_vectors: names and sizes of extra vector conditions passed as keywords (B, size), e.g.
            known frames of the motion; the zero vector means "not given", and so does leaving the
            keyword out (which keeps them out of the search for distinct rows: sampling without them
            costs what it did before they existed).
    """

    def __init__(self, dim: int, width: int = 512, depth: int = 4, num_classes: int = 0,
                 cond_scalars: list[str] | None = None, dropout: float = 0.0, text_dim: int = 0,
                 cond_vectors: dict[str, int] | None = None) -> None:
        super().__init__()
        if text_dim > 0 and num_classes > 0:
            raise ValueError("condition on labels or on text, not both")
        self.dim = dim
        self.num_classes = num_classes
        self.text_dim = text_dim
        self.cond_scalars = list(cond_scalars or [])
        self.t_embed = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        self.y_embed = nn.Embedding(num_classes + 1, width) if num_classes > 0 else None
        self.text_embed = (nn.Sequential(nn.Linear(text_dim, width), nn.SiLU(), nn.Linear(width, width))
                           if text_dim > 0 else None)
        self.s_embed = nn.ModuleDict({k: nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
                                      for k in self.cond_scalars})
        self.cond_vectors = {k: int(v) for k, v in (cond_vectors or {}).items()}
        self.v_embed = nn.ModuleDict({k: nn.Sequential(nn.Linear(n, width), nn.SiLU(), nn.Linear(width, width))
                                      for k, n in self.cond_vectors.items()})
        self.inp = nn.Linear(dim, width)
        self.blocks = nn.ModuleList(ResBlock(width, width, dropout) for _ in range(depth))
        self.out_norm = nn.LayerNorm(width)
        self.out = nn.Linear(width, dim)
        self.width = width

    def forward(self, x: Tensor, t: Tensor, y: Tensor | None = None, **cond: Tensor) -> Tensor:
        shape = x.shape
        h = self.inp(x.flatten(1))
        if y is None and self.y_embed is not None:
            y = torch.full((x.shape[0],), self.num_classes, device=x.device, dtype=torch.long)
        elif y is None and self.text_embed is not None:
            y = torch.zeros(x.shape[0], self.text_dim, device=x.device)
        # The conditioning (and every block's shift/scale of it) is computed once per distinct
        # (timestep, condition, scalars): in a sampling step all items share the timestep, and labels,
        # prompts and lengths repeat, so a batch of 256 motions has a handful of distinct rows, not 512.
        y_columns = [] if y is None else [y.float().reshape(x.shape[0], -1)]
        width_y = y_columns[0].shape[1] if y_columns else 0
        columns = [t.float()[:, None], *y_columns] + [cond[k].float()[:, None] for k in self.cond_scalars]
        given = [k for k in self.cond_vectors if k in cond]
        columns += [cond[k].float().reshape(x.shape[0], -1) for k in given]
        distinct, index = torch.cat(columns, dim=1), None
        if x.shape[0] > _DEDUP_MIN_BATCH:
            distinct, index = torch.unique(distinct, dim=0, return_inverse=True)
        c = self.t_embed(timestep_embedding(distinct[:, 0], self.width))
        if self.y_embed is not None:
            c = c + self.y_embed(distinct[:, 1].long())
        elif self.text_embed is not None:
            c = c + self.text_embed(distinct[:, 1:1 + width_y])
        first = 1 + width_y
        for j, k in enumerate(self.cond_scalars):
            # Scalars (e.g. a length in seconds) reuse the sinusoidal embedding at a finer scale.
            c = c + self.s_embed[k](timestep_embedding(distinct[:, first + j] * 100.0, self.width))
        first += len(self.cond_scalars)
        for k, n in self.cond_vectors.items():
            if k in given:
                c = c + self.v_embed[k](distinct[:, first:first + n])
                first += n
            else:
                c = c + self.v_embed[k](c.new_zeros(1, n))
        c = torch.nn.functional.silu(c)
        for block in self.blocks:
            h = block(h, c, index)
        return self.out(self.out_norm(h)).view(shape)
