"""MNIST networks: conv VAE encoder/decoder and its loss, a small pixel UNet denoiser, LeNet.

All are :class:`~ramos.utils.spec.Buildable`, so every later stage rebuilds them from a
checkpoint alone. Images are (B, 1, 28, 28) floats in [0, 1].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ramos.diffusion.nets import timestep_embedding
from ramos.utils.spec import Buildable


# --- VAE ------------------------------------------------------------------------------------
class ConvEncoder(Buildable):
    """28x28 digit -> (mu, logvar) of a ``latent_dim`` vector: two stride-2 convs and an MLP head."""

    def __init__(self, latent_dim: int = 16, channels: list[int] | None = None, hidden: int = 256) -> None:
        super().__init__()
        c1, c2 = channels or [32, 64]
        self.convs = nn.Sequential(
            nn.Conv2d(1, c1, 4, stride=2, padding=1), nn.SiLU(),   # 14x14
            nn.Conv2d(c1, c2, 4, stride=2, padding=1), nn.SiLU(),  # 7x7
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(c2 * 49, hidden), nn.SiLU(), nn.Linear(hidden, 2 * latent_dim))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mu, logvar = self.head(self.convs(x)).chunk(2, dim=-1)
        # A bounded log-variance keeps exp() finite early in training.
        return mu, logvar.clamp(-12.0, 6.0)


class ConvDecoder(Buildable):
    """``latent_dim`` vector -> 28x28 pixel probabilities (mirror of :class:`ConvEncoder`)."""

    def __init__(self, latent_dim: int = 16, channels: list[int] | None = None, hidden: int = 256) -> None:
        super().__init__()
        c1, c2 = channels or [32, 64]
        self.c2 = c2
        self.head = nn.Sequential(nn.Linear(latent_dim, hidden), nn.SiLU(), nn.Linear(hidden, c2 * 49), nn.SiLU())
        self.deconvs = nn.Sequential(
            nn.ConvTranspose2d(c2, c1, 4, stride=2, padding=1), nn.SiLU(),  # 14x14
            nn.ConvTranspose2d(c1, 1, 4, stride=2, padding=1),              # 28x28
        )

    def logits(self, z: Tensor) -> Tensor:
        """Per-pixel Bernoulli logits (B, 1, 28, 28)."""
        return self.deconvs(self.head(z).view(-1, self.c2, 7, 7))

    def forward(self, z: Tensor) -> Tensor:
        return torch.sigmoid(self.logits(z))


class BernoulliImageLoss(Buildable):
    """Reconstruction term of the VAE: binary cross-entropy summed over pixels, mean over images.

    Summing over pixels makes ``kl_weight = 1`` the true ELBO. The mean squared error is
    returned as a diagnostic.
    """

    def __init__(self, input_key: str = "x") -> None:
        super().__init__()
        self.input_key = input_key

    def forward(self, x_hat: Tensor, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        x = batch[self.input_key]
        # Written out rather than F.binary_cross_entropy, which raises on NaN inputs: a diverging
        # run must reach the finite-loss check and stop with its clear message.
        p = x_hat.clamp(1e-6, 1 - 1e-6)
        bce = -(x * p.log() + (1 - x) * (1 - p).log()).flatten(1).sum(1).mean()
        return {"recon": bce, "mse": F.mse_loss(x_hat, x)}


# --- pixel-space denoiser (the baseline) ----------------------------------------------------
class _ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, emb_dim: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(8, c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, c_out)
        self.norm2 = nn.GroupNorm(8, c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x))) + self.emb(emb)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class PixelUNet(Buildable):
    """A small two-level UNet on 28x28 images: signature ``(x_t, t, y)`` like every RaMoS denoiser.

    Args:
        channels: base width (doubled at 14x14 and 7x7).
        num_classes: labels; index ``num_classes`` is the null label for classifier-free guidance.
        in_channels: image channels.
    """

    def __init__(self, channels: int = 32, num_classes: int = 10, in_channels: int = 1) -> None:
        super().__init__()
        c, emb = channels, 4 * channels
        self.channels = c
        self.num_classes = num_classes
        self.t_mlp = nn.Sequential(nn.Linear(c, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.y_embed = nn.Embedding(num_classes + 1, emb) if num_classes > 0 else None
        self.inp = nn.Conv2d(in_channels, c, 3, padding=1)
        self.down1 = _ResBlock(c, c, emb)                       # 28x28
        self.pool1 = nn.Conv2d(c, 2 * c, 3, stride=2, padding=1)  # -> 14x14
        self.down2 = _ResBlock(2 * c, 2 * c, emb)
        self.pool2 = nn.Conv2d(2 * c, 2 * c, 3, stride=2, padding=1)  # -> 7x7
        self.mid = _ResBlock(2 * c, 2 * c, emb)
        self.up2 = _ResBlock(4 * c, 2 * c, emb)                 # 14x14, with skip
        self.up1 = _ResBlock(3 * c, c, emb)                     # 28x28, with skip
        self.out = nn.Sequential(nn.GroupNorm(8, c), nn.SiLU(), nn.Conv2d(c, in_channels, 3, padding=1))

    def forward(self, x: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        emb = self.t_mlp(timestep_embedding(t, self.channels))
        if self.y_embed is not None:
            if y is None:
                y = torch.full((x.shape[0],), self.num_classes, dtype=torch.long, device=x.device)
            emb = emb + self.y_embed(y)
        emb = F.silu(emb)
        h1 = self.down1(self.inp(x), emb)
        h2 = self.down2(self.pool1(h1), emb)
        h = self.mid(self.pool2(h2), emb)
        h = self.up2(torch.cat([F.interpolate(h, size=h2.shape[-2:], mode="nearest"), h2], 1), emb)
        h = self.up1(torch.cat([F.interpolate(h, size=h1.shape[-2:], mode="nearest"), h1], 1), emb)
        return self.out(h)


# --- evaluator ------------------------------------------------------------------------------------
class LeNet(Buildable):
    """LeNet-style digit classifier; ``features`` (penultimate layer) feed the FID.

    Args:
        channels: widths of the two 5x5 conv layers.
        hidden: width of the penultimate (feature) layer.
        dropout: dropout before the last layer.
    """

    def __init__(self, channels: list[int] | None = None, hidden: int = 128, dropout: float = 0.25,
                 num_classes: int = 10) -> None:
        super().__init__()
        c1, c2 = channels or [32, 64]
        self.num_features = hidden
        self.body = nn.Sequential(
            nn.Conv2d(1, c1, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),   # 14x14
            nn.Conv2d(c1, c2, 5), nn.ReLU(), nn.MaxPool2d(2),             # 5x5
            nn.Flatten(), nn.Linear(c2 * 25, hidden), nn.ReLU(),
        )
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, num_classes))

    def features(self, x: Tensor) -> Tensor:
        """Penultimate activations (B, hidden) of images in [0, 1]."""
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.body(x))
