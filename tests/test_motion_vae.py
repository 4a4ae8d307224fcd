"""Motion VAE: representation, masked losses, networks, training, checkpoint reuse and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch

from ramos.motion.losses import MaskedMotionLoss
from ramos.motion.nets.motion import MotionFeatures, feature_stats, init_buckets_from_pca
from ramos.motion.skeleton import HUMANML3D
from ramos.stages.motion_vae.train import (
    MotionVAEConfig,
    RandomLengthCrop,
    build_motion_vae,
    reconstruction_metrics,
)
from ramos.utils.config import load_config
from ramos.vae import VAEModule

LABELS = ["walk", "wave", "jump"]


def toy_motions(n: int, window: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``n`` labelled windows (N, W, 22, 3) metres: a T-pose swinging its limbs at a per-label
    frequency while walking forward at a per-label speed; lengths between W/4 and W."""
    rng = np.random.default_rng(seed)
    rest = np.zeros((22, 3), np.float32)
    for c, p in enumerate(HUMANML3D.parents):  # a crude rest pose: each bone 0.15 m along its chain
        if p >= 0:
            side = HUMANML3D.side[c]
            rest[c] = rest[p] + (np.array([0.15 * side, 0.0, 0.0]) if c in (13, 14, 16, 17, 18, 19, 20, 21)
                                 else np.array([0.05 * side, -0.15 if c in (1, 2, 4, 5, 7, 8, 10, 11) else 0.15, 0.0]))
    rest[:, 1] += 1.0 - rest[:, 1].min() + 0.02
    t = np.arange(window) / 20.0
    out, lengths, labels = [], [], []
    for i in range(n):
        k = i % len(LABELS)
        phase = rng.uniform(0, 2 * np.pi)
        pos = np.repeat(rest[None], window, 0)
        swing = 0.1 * np.sin(2 * np.pi * (0.5 + k) * t + phase)[:, None]
        pos[:, [16, 18, 20], 1] += swing
        pos[:, [17, 19, 21], 1] -= swing
        pos[:, :, 2] += (0.3 + 0.4 * k) * t[:, None] * (k != 1)
        pos[:, :, 1] += 0.05 * (k == 2) * np.abs(np.sin(2 * np.pi * t))[:, None]
        out.append(pos)
        lengths.append(int(rng.integers(window // 4, window + 1)))
        labels.append(LABELS[k])
    return np.stack(out).astype(np.float32), np.array(lengths, np.int32), labels


def write_toy_dataset(path: Path, n: int = 48, window: int = 40, seed: int = 0) -> Path:
    """A prepared data set folder (the documented layout) of :func:`toy_motions`."""
    windows, lengths, labels = toy_motions(n, window, seed)
    path.mkdir(parents=True)
    for i in range(n):  # padding repeats the last valid pose, as the real writer does
        windows[i, lengths[i]:] = windows[i, lengths[i] - 1]
    np.save(path / "windows.npy", windows)
    np.save(path / "lengths.npy", lengths)
    splits = ["val" if i % 8 == 0 else "test" if i % 8 == 1 else "train" for i in range(n)]
    with open(path / "meta.jsonl", "w") as f:
        for i in range(n):
            f.write(json.dumps({"id": f"toy{i}:0", "clip_id": f"toy{i}", "source": "toy", "labels": [labels[i]],
                                "captions": [f"a person does {labels[i]}"], "split": splits[i], "start": 0,
                                "fps": 20.0, "mirrored": False}) + "\n")
    np.savez(path / "stats.npz", mean=windows.mean((0, 1)), std=windows.std((0, 1)) + 1e-3)
    (path / "skeleton.json").write_text(HUMANML3D.to_json())
    (path / "manifest.json").write_text(json.dumps({"config": {"fps": 20.0, "window": window},
                                                    "labels": sorted(set(labels))}))
    return path


def tiny_config(**optim: object) -> MotionVAEConfig:
    overrides = {"net.latent_dim": 16, "net.buckets": [8, 40], "net.residual": 16, "optim.batch_size": 16,
                 "optim.render_every_n_steps": 0, "optim.val_every_n_steps": 1, "optim.kl_warmup_steps": 0}
    overrides.update({f"optim.{k}": v for k, v in optim.items()})
    return load_config(MotionVAEConfig, None, overrides)


pytestmark = pytest.mark.usefixtures("one_thread")


def _batch(n: int = 6, window: int = 40) -> dict[str, torch.Tensor]:
    x, lengths, _ = toy_motions(n, window)
    lengths = torch.as_tensor(lengths)
    return {"motion": torch.as_tensor(x), "mask": torch.arange(window)[None] < lengths[:, None], "length": lengths}


# --- representation ------------------------------------------------------------------------------------
def test_features_round_trip_to_metres():
    x = torch.as_tensor(toy_motions(4)[0])
    mean, std = feature_stats(x, torch.ones(x.shape[:2], dtype=torch.bool))
    f = MotionFeatures(22, feature_mean=mean, feature_std=std)
    z = f.normalize(x)
    assert z.shape == (4, 40, 66)
    assert torch.allclose(f.positions(z), x, atol=1e-5)
    # Standardised features of the data they were fitted on: mean ~0, std ~1 (bar constant ones).
    assert z.flatten(0, 1).mean(0).abs().max() < 1e-2


def test_root_scale_weighs_the_root_path_more_and_still_round_trips():
    """``root_scale`` divides the std of the root's horizontal displacement only: those standardised
    features are ``root_scale`` times larger, every other one is unchanged, and positions come back."""
    x = torch.as_tensor(toy_motions(4)[0])
    valid = torch.ones(x.shape[:2], dtype=torch.bool)
    (m1, s1), (m4, s4) = feature_stats(x, valid), feature_stats(x, valid, root_scale=4.0)
    assert m1 == m4
    s1, s4 = torch.tensor(s1), torch.tensor(s4)
    assert s1[2] > 0.01  # the toy walks along z
    assert torch.allclose(s4[[0, 2]], s1[[0, 2]] / 4) and torch.equal(s4[[1, *range(3, 66)]], s1[[1, *range(3, 66)]])
    f1, f4 = MotionFeatures(22, feature_mean=m1, feature_std=s1), MotionFeatures(22, feature_mean=m4, feature_std=s4)
    assert torch.allclose(f4.normalize(x)[..., 2], 4 * f1.normalize(x)[..., 2], atol=1e-4)
    assert torch.allclose(f4.positions(f4.normalize(x)), x, atol=1e-5)


# --- losses -------------------------------------------------------------------------------------------------
def test_loss_hand_computed():
    x = torch.zeros(1, 4, 2, 3)
    x_hat = torch.zeros(1, 4, 2, 3)
    x_hat[0, 1, 1, 0] = 0.1  # the non-root joint off by 10 cm in frame 1
    x_hat[0, 3] = 5.0  # frame 3 is padding: must not count
    mask = torch.tensor([[True, True, True, False]])
    loss = MaskedMotionLoss(position_weight=1.0, velocity_weight=2.0)
    t = loss(x_hat, {"motion": x, "mask": mask})
    assert t["pos"].item() == pytest.approx(0.01)
    # Displacements 0->1 (+0.1) and 1->2 (-0.1) are wrong; 2->3 touches padding.
    assert t["vel"].item() == pytest.approx(0.02)
    assert t["recon"].item() == pytest.approx(0.01 + 2 * 0.02)
    # 10 cm on 1 of 2 joints in 1 of 3 valid frames.
    assert t["mpjpe_mm"].item() == pytest.approx(100 / 6, rel=1e-5)
    # A rigid shift of the whole pose costs what it costs in plain positions: J * |e|^2 per frame.
    shifted = x.clone()
    shifted[0, :3] += torch.tensor([0.0, 0.0, 0.2])
    assert loss(shifted, {"motion": x, "mask": mask})["pos"].item() == pytest.approx(3 * 2 * 0.04)


def test_per_window_weighting_and_feature_term():
    """per_window rescales each item's sums to T frames; the feature term is zero only at the target
    and is measured in standardised units (a root shift of one std costs 1 per frame)."""
    x = torch.zeros(2, 4, 2, 3)
    x_hat = x.clone()
    x_hat[:, :, 1, 0] = 0.1  # the non-root joint off by 10 cm in every frame of both items
    mask = torch.tensor([[True, True, True, True], [True, False, False, False]])
    batch = {"motion": x, "mask": mask}
    plain = MaskedMotionLoss(velocity_weight=0.0)(x_hat, batch)["pos"].item()
    per_window = MaskedMotionLoss(velocity_weight=0.0, per_window=True)(x_hat, batch)["pos"].item()
    assert plain == pytest.approx((4 + 1) * 0.01 / 2)
    assert per_window == pytest.approx((4 + 4) * 0.01 / 2)  # the 1-frame item now counts as 4 frames
    std = [0.5] * 6
    loss = MaskedMotionLoss(velocity_weight=0.0, position_weight=0.0, feature_weight=1.0,
                            feature_mean=[0.0] * 6, feature_std=std)
    assert loss(x, batch)["feat"].item() == 0.0
    shifted = x.clone()
    shifted[0, 2:, :, 0] += 0.5  # the body moves by one std along x at frame 2: one root displacement feature
    assert loss(shifted, batch)["feat"].item() == pytest.approx(1.0 / 2)
    with pytest.raises(ValueError, match="statistics"):
        MaskedMotionLoss(feature_weight=1.0)


def test_foot_contact_term_only_on_contact_frames():
    skel = HUMANML3D
    x = torch.zeros(1, 3, 22, 3)
    x[..., 1] = 1.0
    x[:, :, list(skel.feet), 1] = 0.0  # feet on the floor, not moving: contact
    x_hat = x.clone()
    x_hat[0, 2, skel.feet[0], 0] = 0.2  # the left foot slides 20 cm in the last transition
    loss = MaskedMotionLoss(foot_contact_weight=1.0, feet=list(skel.feet), velocity_weight=0.0)
    assert loss(x_hat, {"motion": x})["foot"].item() == pytest.approx(0.04)
    x_air = x.clone()
    x_air[:, :, list(skel.feet), 1] = 0.5  # feet in the air: no contact, no foot term
    assert loss(x_hat + x_air - x, {"motion": x_air})["foot"].item() == 0.0


def test_padded_frames_change_no_loss():
    """The masking contract: whatever the padded frames hold, every loss term is the same."""
    torch.manual_seed(0)
    batch = _batch()
    x = batch["motion"]
    mean, std = feature_stats(x, batch["mask"])
    vae = build_motion_vae(tiny_config(), HUMANML3D, 40, mean, std).eval()
    ref = vae.compute_losses(batch)
    noisy = dict(batch)
    noisy["motion"] = torch.where(batch["mask"][..., None, None], x, 10 * torch.randn_like(x))
    assert not torch.equal(noisy["motion"], x)
    other = vae.compute_losses(noisy)
    for key in ref:
        assert torch.allclose(ref[key], other[key], atol=1e-6), key
    # ... while a change inside the valid frames does change the loss.
    moved = dict(batch)
    moved["motion"] = x + 0.05
    assert not torch.allclose(vae.compute_losses(moved)["pos"], ref["pos"])


def test_random_length_crop_shortens_masks():
    items = [{"motion": torch.zeros(40, 22, 3), "mask": torch.ones(40, dtype=torch.bool),
              "length": torch.tensor(40), "label": torch.tensor(0)} for _ in range(200)]
    crop = RandomLengthCrop(items, prob=0.5, min_frames=3, seed=0)
    lengths = np.array([int(crop[i]["length"]) for i in range(200)])
    masks = [crop[i] for i in range(5)]
    assert 0.3 < (lengths < 40).mean() < 0.7 and lengths.min() >= 3
    for m in masks:
        assert int(m["mask"].sum()) == int(m["length"])


def test_crops_anywhere_are_normalised_at_their_first_frame():
    from ramos.motion.preprocess import facing_direction

    motions, lengths, _ = toy_motions(20, seed=3)
    items = [{"motion": torch.from_numpy(m), "mask": torch.arange(40) < n, "length": torch.tensor(int(n)),
              "label": torch.tensor(0)} for m, n in zip(motions, lengths)]
    crop = RandomLengthCrop(items, prob=1.0, min_frames=3, seed=0, skeleton=HUMANML3D)
    moved = 0
    for i in range(20):
        item = crop[i]
        w, n = item["motion"].numpy(), int(item["length"])
        assert 3 <= n <= lengths[i] and int(item["mask"].sum()) == n
        np.testing.assert_allclose(w[0, 0, [0, 2]], 0.0, atol=1e-5)
        np.testing.assert_allclose(facing_direction(w[0], HUMANML3D), [0, 0, 1], atol=1e-5)
        np.testing.assert_array_equal(w[n:], np.broadcast_to(w[n - 1], w[n:].shape))  # padding: last pose
        # The crop is a rigidly moved piece of the window (bone lengths and heights kept).
        np.testing.assert_allclose(HUMANML3D.bone_lengths(w[:n]).mean(0),
                                   HUMANML3D.bone_lengths(motions[i][:lengths[i]]).mean(0), atol=0.02)
        moved += not np.allclose(w[0, :, 1], motions[i][0, :, 1])  # a later first frame (heights differ)
    assert moved > 10


def test_reconstruction_metrics_in_millimetres():
    gt = toy_motions(3)[0]
    lengths = np.array([40, 20, 10])
    pred = gt.copy()
    pred[..., 0] += 0.01
    pred[1, 20:] += 3.0  # padding of the second window: ignored
    m = reconstruction_metrics(pred, gt, lengths, HUMANML3D, 20.0)
    assert m["mpjpe_mm"] == pytest.approx(10.0, rel=1e-4)
    assert m["pa_mpjpe_mm"] == pytest.approx(0.0, abs=1e-3)  # a pure translation
    assert m["accel_error_mps2"] == pytest.approx(0.0, abs=1e-3)
    assert m["frames"] == 70


# --- networks and training ----------------------------------------------------------------------------------------
def test_shapes_and_default_sizes():
    vae = build_motion_vae(MotionVAEConfig(), HUMANML3D, 200)
    x = torch.randn(3, 200, 22, 3)
    mu, logvar = vae.encode(x, torch.ones(3, 200, dtype=torch.bool))
    assert mu.shape == logvar.shape == (3, 256)
    assert vae.decode(mu).shape == (3, 200, 22, 3)


def test_bucketed_vae_routes_by_length_and_starts_from_pca():
    """A window is encoded and decoded by its length's bucket only, and after the PCA init a set of
    windows spanning fewer dimensions than the latent is reconstructed exactly."""
    torch.manual_seed(0)
    vae = build_motion_vae(tiny_config(), HUMANML3D, 40).eval()
    enc, dec = vae.encoder, vae.decoder
    base = torch.as_tensor(toy_motions(1, 40)[0])[0]
    # 60 windows of 6 frames (bucket 0) in a 5-dimensional affine family of motions.
    x = base + torch.einsum("nk,kfjc->nfjc", torch.randn(60, 5), 0.05 * torch.randn(5, 40, 22, 3))
    mask = torch.arange(40)[None] < torch.full((60, 1), 6)
    init_buckets_from_pca(enc, dec, x, mask)
    with torch.no_grad():
        rec = vae.decode(vae.encode(x, mask)[0], mask)
        assert (rec - x)[:, :6].abs().max() < 1e-3
        # Bucket 1 (longer windows) plays no part in a 6-frame window's code or decoding.
        mu = vae.encode(x[:4], mask[:4])[0]
        for p in [*enc.experts[1].parameters(), *dec.experts[1].parameters()]:
            p.add_(1.0)
        assert torch.equal(vae.encode(x[:4], mask[:4])[0], mu)
        assert torch.allclose(vae.decode(mu, mask[:4]), rec[:4])
        assert not torch.allclose(vae.decode(mu), rec[:4])  # no mask: the longest bucket decodes


def test_bucketed_routing_traced_and_frozen_paths_agree():
    """Eager decoding runs each bucket on its own rows; a trace runs every bucket on every row and
    gathers; frozen experts replace the eager ones. All three give the same windows for a mixed batch."""
    torch.manual_seed(0)
    vae = build_motion_vae(tiny_config(), HUMANML3D, 40).eval()
    dec = vae.decoder
    for p in dec.parameters():  # the residuals start at zero: make every part count
        p.data.normal_(0, 0.05)
    z = torch.randn(5, dec.experts[0].linear.in_features)
    mask = torch.arange(40)[None] < torch.tensor([3, 40, 6, 25, 40])[:, None]
    with torch.no_grad():
        eager = dec(z, mask)
        traced = torch.jit.trace(dec, (z, mask), check_trace=False)(z, mask)
        one_bucket = dec(z[[1, 4]], mask[[1, 4]])
        dec.freeze_for_inference()
        frozen = dec(z, mask)
    torch.testing.assert_close(traced, eager, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(frozen, eager, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(one_bucket, eager[[1, 4]], rtol=1e-5, atol=1e-5)
    z.requires_grad_(True)
    dec(z, mask).sum().backward()  # with autograd the eager experts (not the frozen copies) serve
    assert z.grad is not None and bool((z.grad != 0).any())


def test_temporal_refiner_starts_as_identity_and_refines_only_the_longest_range():
    """A new refiner (:meth:`with_refiner`, as decoder tuning adds it) changes nothing (its last convolution is
    zero); trained weights change the longest range's windows only, and the frames of a window depend on
    its neighbours (a convolution over time, not per frame)."""
    from ramos.utils.spec import build

    torch.manual_seed(0)
    plain = build_motion_vae(tiny_config(), HUMANML3D, 40).decoder.eval()
    for p in plain.experts.parameters():
        p.data.normal_(0, 0.05)
    refined = plain.with_refiner(8).eval()
    assert refined.refiner is not None and refined.spec["init_args"]["refine"] == 8
    assert build(refined.spec).refiner is not None  # a checkpoint rebuilds it
    assert refined.with_refiner(16) is refined and plain.with_refiner(0) is plain
    assert plain.longest_range_frames == (9, 40)  # buckets [8, 40]
    tuned = {id(p) for p in refined.longest_range_parameters()}
    assert tuned == {id(p) for m in (refined.experts[-1], refined.refiner) for p in m.parameters()}
    z = torch.randn(4, 16)
    mask = torch.arange(40)[None] < torch.tensor([5, 40, 8, 30])[:, None]
    with torch.no_grad():
        torch.testing.assert_close(refined(z, mask), plain(z, mask))
        for p in refined.refiner.parameters():
            p.data.normal_(0, 0.1)
        before = refined(z, mask)
        changed = (before - plain(z, mask)).abs().flatten(1).amax(1)
        assert changed[[0, 2]].max() == 0 and changed[[1, 3]].min() > 1e-3  # buckets [8, 40]: rows 1, 3 are long
        f = torch.randn(1, 40, 66)
        g = f.clone()
        g[:, 20] += 1.0
        d = (refined.refiner(g) - refined.refiner(f)).abs().sum(-1)[0]
        assert d[14:27].min() > 0 and d[:13].max() == 0 and d[28:].max() == 0  # three kernel-5 layers: +-6 frames
        refined.freeze_for_inference()  # the frozen copy of the longest range includes its refiner
        torch.testing.assert_close(refined(z, mask), before, rtol=1e-5, atol=1e-5)



def test_decoder_tuning_is_skipped_when_no_window_reaches_the_longest_range(caplog):
    """A data set of short windows only (none in the 9-40-frame range of buckets [8, 40]) skips
    decoder tuning with a warning, and the decoder keeps its build (no refiner added)."""
    from types import SimpleNamespace

    from ramos.stages.motion_diffusion import MotionDiffusionConfig, _tune_decoder

    decoder = build_motion_vae(tiny_config(), HUMANML3D, 40).decoder
    module = SimpleNamespace(autoencoder=SimpleNamespace(decoder=decoder))
    data = SimpleNamespace(lengths=np.array([5, 8, 3, 40]), split_indices=lambda split: np.array([0, 1, 2]))
    with caplog.at_level("WARNING"):
        result = _tune_decoder(module, SimpleNamespace(dataset=data), Path("unused"), MotionDiffusionConfig(), False, {},
                               {})
    assert result is False and module.autoencoder.decoder is decoder and decoder.refiner is None
    assert "decoder tuning skipped: no training window of 9 frames or more" in caplog.text

def test_tiny_training_lowers_the_loss(tmp_path):
    L.seed_everything(0, verbose=False)
    batch = _batch(16)
    mean, std = feature_stats(batch["motion"], batch["mask"])
    cfg = tiny_config(lr=3e-3)
    vae = build_motion_vae(cfg, HUMANML3D, 40, mean, std)
    before = vae.eval().compute_losses(batch)["recon"].item()
    loader = torch.utils.data.DataLoader([{k: v[i] for k, v in batch.items()} for i in range(16)], batch_size=8)
    trainer = L.Trainer(max_steps=40, accelerator="cpu", logger=False, enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=False, default_root_dir=tmp_path)
    trainer.fit(vae.train(), loader)
    after = vae.eval().compute_losses(batch)["recon"].item()
    assert after < 0.5 * before


def test_train_command_writes_a_reusable_checkpoint(tmp_path):
    """`ramos train motion-vae` end to end; the checkpoint alone rebuilds an encoder/decoder in metres."""
    from ramos.cli import main
    from ramos.motion.dataset import MotionDataset

    data_dir = write_toy_dataset(tmp_path / "toy")
    out = tmp_path / "run"
    rc = main(["train", "motion-vae", "--dataset", str(data_dir), "--out", str(out), "--no-progress",
               "--set", "optim.max_steps=4", "--set", "net.latent_dim=16", "--set", "net.residual=16",
               "--set", "optim.batch_size=16", "--set", "optim.render_every_n_steps=2",
               "--set", "optim.val_every_n_steps=2"])
    assert rc == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["val"]["windows"] == 6 and np.isfinite(metrics["val"]["mpjpe_mm"])
    assert list((out / "renders").glob("*.png")), "no TensorBoard render written"
    assert list((out / "tb").rglob("events.out.tfevents.*"))

    vae = VAEModule.load(out / "motion_vae.ckpt")
    data = MotionDataset(data_dir)
    x = torch.as_tensor(np.asarray(data.windows[:4]))
    mask = torch.arange(40)[None] < torch.as_tensor(data.lengths[:4])[:, None]
    mu, _ = vae.encode(x, mask)
    rec = vae.decode(mu)
    assert rec.shape == x.shape
    # Decoded windows are metres (the statistics live inside the networks): errors are of the
    # order of the motion, not of standardised units.
    assert (rec - x).abs()[mask].mean() < 1.0
    # ... and a rigid skeleton, the training data's: every bone keeps its rest length in every frame
    # (the toy data's own arm bones stretch as the joints swing; the decoder's cannot).
    rest = vae.decoder.rigid.offsets.norm(dim=-1)[torch.from_numpy(HUMANML3D.bones[:, 1])]
    lengths = HUMANML3D.bone_lengths(rec.detach().numpy())
    assert np.abs(lengths - rest.numpy()).max() < 1e-5
    assert HUMANML3D.bone_lengths(x.numpy()).std(1).max() > 1e-3


def test_step_budget_whatever_the_data_size(tmp_path):
    """optim.max_steps is the run's length on a set of 12 training windows (one batch) and on one of 96;
    the run report gives steps, passes and data size, and warns that 4 steps are far from convergence."""
    from ramos.stages.motion_vae.train import train_motion_vae

    cfg = tiny_config(max_steps=4, val_every_n_steps=2)
    runs = {n: train_motion_vae(cfg, write_toy_dataset(tmp_path / f"toy{n}", n=n), tmp_path / f"run{n}", progress=False)
            for n in (16, 128)}
    for n, result in runs.items():
        run = result["run"]
        assert result["steps"] == run["steps"] == 4 and run["stopped_by"] == "max_steps"
        assert run["train_windows"] == n * 6 // 8 and run["batch_size"] == 16
        assert run["passes"] == pytest.approx(4 * 16 / run["train_windows"], abs=0.01)
        assert any("only 4 optimiser steps" in w for w in run["warnings"])
        assert json.loads((tmp_path / f"run{n}" / "metrics.json").read_text())["run"]["warnings"] == run["warnings"]
    assert runs[16]["epochs"] > runs[128]["epochs"]


def test_epoch_options_of_earlier_configs_are_one_line_errors(tmp_path):
    from ramos.utils.config import ConfigError

    old = tmp_path / "old.yaml"
    old.write_text("optim:\n  max_epochs: 32\n")
    with pytest.raises(ConfigError, match=r"old.yaml: optim.max_epochs is no longer an option: .*max_steps") as err:
        load_config(MotionVAEConfig, old)
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="optim.val_every_n_epochs is no longer an option: use optim.val_every_n"):
        load_config(MotionVAEConfig, None, {"optim.val_every_n_epochs": 5})


def test_train_command_errors_are_one_line(tmp_path, capsys):
    from ramos.cli import main

    rc = main(["train", "motion-vae", "--dataset", str(tmp_path / "missing"), "--out", str(tmp_path / "o")])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing" in err[0]
    rc = main(["train", "motion-vae", "--out", str(tmp_path / "o"), "--set", "optim.nonsense=1"])
    assert rc == 2


def test_default_config_builds():
    cfg = MotionVAEConfig()
    vae = build_motion_vae(cfg, HUMANML3D, 200)
    assert vae.encoder.spec["init_args"]["latent_dim"] == cfg.net.latent_dim
