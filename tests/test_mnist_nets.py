"""MNIST networks, loss, evaluation helpers and pictures (no training beyond a few steps)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ramos.mnist.callbacks import class_grid_labels, image_grid, save_class_grid
from ramos.mnist.evaluate import FIDScorer, balanced_labels, conditional_accuracy
from ramos.mnist.nets import BernoulliImageLoss, ConvDecoder, ConvEncoder, LeNet, PixelUNet
from ramos.utils.spec import build, spec_of


def test_vae_nets_shapes_and_rebuild():
    enc, dec = ConvEncoder(latent_dim=8, channels=[8, 16], hidden=32), ConvDecoder(latent_dim=8, channels=[8, 16], hidden=32)
    x = torch.rand(5, 1, 28, 28)
    mu, logvar = enc(x)
    assert mu.shape == logvar.shape == (5, 8)
    x_hat = dec(mu)
    assert x_hat.shape == x.shape and 0 <= x_hat.min() and x_hat.max() <= 1
    rebuilt = build(spec_of(dec))
    rebuilt.load_state_dict(dec.state_dict())
    assert torch.equal(rebuilt(mu), x_hat)


def test_bernoulli_loss_is_per_image_bce_sum():
    x = (torch.rand(4, 1, 28, 28) > 0.5).float()
    p = torch.rand(4, 1, 28, 28).clamp(0.01, 0.99)
    terms = BernoulliImageLoss()(p, {"x": x})
    expected = -(x * p.log() + (1 - x) * (1 - p).log()).sum() / 4
    assert torch.allclose(terms["recon"], expected, rtol=1e-5)
    assert torch.allclose(terms["mse"], F.mse_loss(p, x))


def test_pixel_unet_shapes_and_conditioning():
    net = PixelUNet(channels=16, num_classes=10)
    x, t = torch.randn(3, 1, 28, 28), torch.tensor([0, 500, 999])
    # The last conv of each block starts at zero; perturb so that the label reaches the output.
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    out_a = net(x, t, torch.tensor([1, 2, 3]))
    out_b = net(x, t, torch.tensor([4, 5, 6]))
    assert out_a.shape == x.shape
    assert not torch.allclose(out_a, out_b)
    assert torch.equal(net(x, t, None), net(x, t, torch.full((3,), 10)))  # None = the null label


def test_lenet_features_and_logits():
    net = LeNet(channels=[4, 8], hidden=16)
    x = torch.rand(6, 1, 28, 28)
    assert net(x).shape == (6, 10) and net.features(x).shape == (6, 16)
    assert net.num_features == 16


@pytest.mark.filterwarnings("ignore::scipy.linalg.LinAlgWarning")  # dead ReLU features of an untrained net
def test_fid_scorer_is_zero_on_the_reference_and_grows_with_distortion():
    torch.manual_seed(0)
    lenet = LeNet(channels=[4, 8], hidden=8).eval()
    ref = torch.rand(400, 1, 28, 28)
    scorer = FIDScorer(lenet, ref, batch_size=128)
    same = scorer.score(ref)
    near = scorer.score((ref + 0.05 * torch.randn_like(ref)).clamp(0, 1))
    far_images = torch.rand_like(ref) ** 4
    far = scorer.score(far_images)
    assert abs(same) < 1e-3
    assert same < near < far
    # Cross-check against the closed form on the same features.
    with torch.no_grad():
        a, b = lenet.features(ref).double().numpy(), lenet.features(far_images).double().numpy()
    from scipy import linalg

    mu_a, mu_b = a.mean(0), b.mean(0)
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    expected = ((mu_a - mu_b) ** 2).sum() + np.trace(ca + cb - 2 * linalg.sqrtm(ca @ cb).real)
    assert far == pytest.approx(expected, rel=1e-3, abs=1e-4)


def test_conditional_accuracy_and_labels():
    labels = balanced_labels(25)
    assert torch.bincount(labels).tolist() == [3] * 5 + [2] * 5
    assert conditional_accuracy(lambda x: labels.clone(), torch.zeros(25), labels) == 1.0
    wrong = labels.clone()
    wrong[:5] = (wrong[:5] + 1) % 10
    assert conditional_accuracy(lambda x: wrong, torch.zeros(25), labels) == pytest.approx(0.8)


def test_image_grid_layout():
    images = torch.stack([torch.full((1, 2, 2), float(i)) for i in range(6)])
    grid = image_grid(images, ncol=3, pad=1)
    assert grid.shape == (1, 2 * 3 + 1, 3 * 3 + 1)
    assert grid[0, 1, 1] == 0 and grid[0, 1, 4] == 1 and grid[0, 4, 1] == 3 and grid[0, 4, 7] == 5
    assert class_grid_labels(3, 2).tolist() == [0, 0, 1, 1, 2, 2]


def test_save_class_grid_writes_a_png(tmp_path):
    import imageio.v3 as iio

    path = tmp_path / "grid.png"
    save_class_grid(torch.rand(20, 1, 28, 28), num_classes=10, path=path, title="t")
    img = iio.imread(path)
    assert img.ndim == 3 and img.shape[0] > img.shape[1] * 0.5
    assert list(tmp_path.iterdir()) == [path]  # no temporary left behind
