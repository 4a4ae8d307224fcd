"""Generic fully connected encoder/decoder for fixed-shape inputs (flattened)."""

from __future__ import annotations

import math

from torch import Tensor, nn

from ramos.utils.spec import Buildable


def mlp(sizes: list[int], act: type[nn.Module] = nn.SiLU, norm: bool = True) -> nn.Sequential:
    """Linear layers with activation (and LayerNorm) between them, none after the last."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            if norm:
                layers.append(nn.LayerNorm(b))
            layers.append(act())
    return nn.Sequential(*layers)


class MLPEncoder(Buildable):
    """Flatten ``input_shape`` and map it to (mu, logvar) of a ``latent_dim`` Gaussian."""

    def __init__(self, input_shape: list[int], latent_dim: int, hidden: list[int] | None = None) -> None:
        super().__init__()
        self.net = mlp([math.prod(input_shape), *(hidden or [256, 256]), 2 * latent_dim])

    def forward(self, x: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        mu, logvar = self.net(x.flatten(1)).chunk(2, dim=-1)
        return mu, logvar.clamp(-12.0, 8.0)


class MLPDecoder(Buildable):
    """Map a ``latent_dim`` vector back to a tensor of ``output_shape``."""

    def __init__(self, output_shape: list[int], latent_dim: int, hidden: list[int] | None = None) -> None:
        super().__init__()
        self.output_shape = list(output_shape)
        self.net = mlp([latent_dim, *(hidden or [256, 256]), math.prod(output_shape)])

    def forward(self, z: Tensor, mask: Tensor | None = None) -> Tensor:
        """``mask`` (valid frames of variable-length data) is accepted, like the encoder's, and not needed."""
        return self.net(z).view(z.shape[0], *self.output_shape)
