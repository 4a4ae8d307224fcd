"""The raw-space (MDM-style) baseline: denoiser, training on a wall-clock budget, sampling."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from ramos import configs
from ramos.motion.dataset import MotionDataset
from ramos.motion.nets.raw_denoiser import RawMotionDenoiser
from ramos.stages.data.config import AugmentConfig, PrepareConfig, SplitConfig
from ramos.stages.data.prepare import prepare_dataset
from ramos.stages.raw_baseline import (
    RawBaselineConfig,
    RawDenoiserConfig,
    is_raw_baseline,
    load_raw_baseline,
    sample_raw_baseline,
    train_raw_baseline,
)
from ramos.utils.checkpoint import CheckpointError
from ramos.utils.spec import build, spec_of


def _net(**kw) -> RawMotionDenoiser:
    torch.manual_seed(0)
    args = dict(window=16, num_joints=22, num_classes=3, d_model=32, num_layers=2, num_heads=2, ff_dim=64,
                dropout=0.0, cond_scalars=["length"])
    return RawMotionDenoiser(**{**args, **kw}).eval()


def test_denoiser_shape_and_rebuild_from_spec():
    net = _net()
    x = torch.randn(4, 16, 66)
    t = torch.tensor([0, 10, 500, 999])
    y = torch.tensor([0, 1, 2, 3])  # 3 is the "no label" class
    cond = {"length": torch.tensor([16, 8, 3, 16])}
    out = net(x, t, y, **cond)
    assert out.shape == x.shape
    again = build(spec_of(net))
    again.load_state_dict(net.state_dict())
    assert torch.allclose(again.eval()(x, t, y, **cond), out, atol=1e-6)


def test_valid_frames_never_read_padding():
    net = _net()
    x = torch.randn(2, 16, 66)
    other = x.clone()
    other[:, 10:] = torch.randn(2, 6, 66) * 50
    args = (torch.tensor([3, 700]), torch.tensor([1, 2]))
    length = {"length": torch.tensor([10, 10])}
    with torch.no_grad():
        a, b = net(x, *args, **length), net(other, *args, **length)
        assert torch.allclose(a[:, :10], b[:, :10], atol=1e-5)
        # Without the length, padding is read (the mask is what protects valid frames).
        assert not torch.allclose(net(x, *args)[:, :10], net(other, *args)[:, :10], atol=1e-3)


def test_label_changes_prediction():
    net = _net()
    x, t = torch.randn(1, 16, 66), torch.tensor([500])
    with torch.no_grad():
        assert not torch.allclose(net(x, t, torch.tensor([0])), net(x, t, torch.tensor([1])))


def test_feature_round_trip_and_padding():
    mean = np.linspace(-1, 1, 66).tolist()
    std = np.linspace(0.5, 2, 66).tolist()
    net = _net(feature_mean=mean, feature_std=std)
    pos = torch.randn(2, 16, 22, 3)
    z = net.normalize(pos)
    assert z.shape == (2, 16, 66)
    # Frame 1, a non-root joint: its position relative to the root, standardised.
    rel = pos[0, 1, 5] - pos[0, 1, 0]
    assert torch.allclose(z[0, 1, 15:18], (rel - torch.tensor(mean[15:18])) / torch.tensor(std[15:18]), atol=1e-5)
    assert torch.allclose(net.to_positions(z), pos, atol=1e-4)
    mask = torch.arange(16)[None] < torch.tensor([[10], [16]])
    assert (net.normalize(pos, mask)[0, 10:] == 0).all()
    with pytest.raises(ValueError, match="66 values"):
        _net(feature_mean=[0.0] * 5)


@pytest.fixture(scope="module")
def small_builtin(tmp_path_factory) -> MotionDataset:
    """The embedded clips without augmentation: about 40 short real windows, in a second or two."""
    cfg = PrepareConfig(min_frames=10, augment=AugmentConfig(mirror=True, copies=0, loop_seconds=0.0),
                        split=SplitConfig(method="segment", val_ratio=0.15, test_ratio=0.15, gap_seconds=0.05,
                                          holdout_min_frames=3))
    out = tmp_path_factory.mktemp("builtin") / "data"
    prepare_dataset("builtin", out, cfg, workers=1, progress=False)
    return MotionDataset(out)


def test_tiny_config_loads():
    cfg = configs.load("raw_baseline", "tiny")
    assert cfg.denoiser.d_model == 32 and cfg.noise.prediction_type == "sample"


def test_baseline_trains_and_samples_with_the_right_shape(small_builtin, tmp_path):
    data = small_builtin
    cfg = RawBaselineConfig(denoiser=RawDenoiserConfig(d_model=32, num_layers=1, num_heads=2, ff_dim=64),
                            batch_size=8, max_steps=4, max_time_s=None, lr=1e-3)
    ckpt = train_raw_baseline(data.path, tmp_path, cfg, progress=False)
    assert ckpt.is_file() and is_raw_baseline(ckpt)
    module = load_raw_baseline(ckpt)
    assert module.hparams.class_names == data.labels
    assert module.hparams.data_info["window"] == data.window
    assert tuple(module.latent_shape.tolist()) == (data.window, 66)
    # The stored feature statistics turn a real window into features and back.
    w = torch.from_numpy(np.array(data.windows[:2]))
    assert torch.allclose(module.denoiser.to_positions(module.denoiser.normalize(w)), w, atol=1e-3)
    motions = sample_raw_baseline(module, [0, 3, 1], [200, 37, 5], steps=3, guidance=2.0, seed=1)
    assert [m.shape for m in motions] == [(200, 22, 3), (37, 22, 3), (5, 22, 3)]
    assert all(np.isfinite(m).all() for m in motions)
    again = sample_raw_baseline(module, [0, 3, 1], [200, 37, 5], steps=3, guidance=2.0, seed=1)
    assert all(np.array_equal(a, b) for a, b in zip(motions, again))  # seeded DDIM is deterministic
    with pytest.raises(ValueError, match="between 1 and 200"):
        sample_raw_baseline(module, [0], [201])


def test_training_loss_goes_down(small_builtin):
    from ramos.motion.datamodule import MotionDataModule
    from ramos.stages.raw_baseline import build_baseline

    torch.manual_seed(0)
    cfg = RawBaselineConfig(denoiser=RawDenoiserConfig(d_model=32, num_layers=1, num_heads=2, ff_dim=64, dropout=0.0))
    module = build_baseline(small_builtin, cfg)
    # The features are already standardised: fix the scalar statistics by hand (the module sets
    # them from its first batch only inside a Trainer).
    module.latent_shift.fill_(0.0)
    module.latent_scale.fill_(1.0)
    batch = next(iter(MotionDataModule(small_builtin.path, batch_size=16, normalized=False).train_dataloader()))
    batch["motion"] = module.denoiser.normalize(batch["motion"], batch["mask"])
    opt = torch.optim.Adam(module.denoiser.parameters(), lr=2e-3)
    losses = []
    for _ in range(40):
        torch.manual_seed(1)  # same timesteps and noise every step: the loss must fall on this batch
        loss = module.diffusion_loss(batch, drop=False)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]


def test_wall_clock_budget_stops_training(small_builtin, tmp_path):
    cfg = configs.load("raw_baseline", "tiny", {"max_steps": 100_000, "max_time_s": 2.0})
    start = time.perf_counter()
    train_raw_baseline(small_builtin.path, tmp_path, cfg, progress=False)
    assert time.perf_counter() - start < 30.0
    steps = int((tmp_path / "train_seconds.txt").read_text().split(",")[1].split()[0])
    assert 0 < steps < 100_000


def test_loading_a_non_baseline_is_a_clear_error(tmp_path):
    torch.save({"ramos_specs": {"denoiser": {"class_path": "ramos.diffusion.nets.ResidualMLPDenoiser"}},
                "state_dict": {}}, tmp_path / "latent.ckpt")
    assert not is_raw_baseline(tmp_path / "latent.ckpt")
    with pytest.raises(CheckpointError):
        load_raw_baseline(tmp_path / "missing.ckpt")


def test_train_command_trains_a_checkpoint(small_builtin, tmp_path, capsys):
    from ramos.cli import main

    code = main(["train", "raw-baseline", "--dataset", str(small_builtin.path), "--out", str(tmp_path),
                 "--config", "tiny", "--seconds", "1", "--no-progress"])
    assert code == 0 and is_raw_baseline(tmp_path / "raw_baseline.ckpt")
    assert "raw_baseline.ckpt" in capsys.readouterr().out
