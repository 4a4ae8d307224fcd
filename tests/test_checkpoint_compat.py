"""Checkpoints written by an earlier RaMoS keep loading, and compute what they computed then.

``tests/fixtures/checkpoints_11ef2e2/`` holds tiny checkpoints of every kind a user keeps (motion
VAE, motion diffusion with its guidance student and tuned decoder, evaluator, pose VAE, raw-space
baseline), written by commit 11ef2e2 (before the package was reorganised), and ``expected.npz``:
what that commit computed with them (``make.py`` in the folder, run at that commit).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

OLD = Path(__file__).parent / "fixtures" / "checkpoints_11ef2e2"


@pytest.fixture(scope="module")
def expected() -> dict[str, np.ndarray]:
    with np.load(OLD / "expected.npz", allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def _inputs(expected: dict[str, np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.from_numpy(expected["windows"])
    mask = torch.arange(x.shape[1])[None] < torch.from_numpy(expected["lengths"])[:, None]
    return x, mask


def test_motion_vae(expected: dict[str, np.ndarray]) -> None:
    from ramos.vae import VAEModule

    vae = VAEModule.load(OLD / "motion_vae.ckpt")
    x, mask = _inputs(expected)
    with torch.no_grad():
        mu, _ = vae.encode(x, mask)
        recon = vae.decode(mu, mask)
    np.testing.assert_allclose(mu.numpy(), expected["vae_mu"], atol=1e-5)
    np.testing.assert_allclose(recon.numpy(), expected["vae_recon"], atol=1e-5)


def test_motion_diffusion_samples_as_before(expected: dict[str, np.ndarray]) -> None:
    from ramos.motion.generate import MotionGenerator

    gen = MotionGenerator.load(OLD / "motion_diffusion.ckpt")
    assert gen.module.student is not None  # the guidance-distilled student came along
    labels = ["walk", None, "run"]
    for name, kw in {"default": {}, "ddim_teacher": {"steps": 4, "sampler": "ddim", "guidance": 3.0},
                     "ddpm": {"steps": 5, "sampler": "ddpm", "guidance": 2.0}}.items():
        got = np.stack(gen.sample(labels, seconds=1.5, seed=3, **kw).motions)
        np.testing.assert_allclose(got, expected[f"gen_{name}"], atol=1e-4, err_msg=name)
    res = gen.sample(["walk", "jump"], seed=5, plant_feet=False)
    np.testing.assert_array_equal(res.frames, expected["gen_drawn_lengths"])
    np.testing.assert_allclose(res.motions[0], expected["gen_drawn_0"], atol=1e-4)


def test_evaluator(expected: dict[str, np.ndarray]) -> None:
    from ramos.stages.evaluation import load_evaluator, motion_features

    net, names, _ = load_evaluator(OLD / "evaluator.ckpt")
    assert "walk" in names
    motions = [w[:n] for w, n in zip(expected["windows"], expected["lengths"])]
    np.testing.assert_allclose(motion_features(net, motions), expected["evaluator_features"], atol=1e-5)


def test_pose_encoder(expected: dict[str, np.ndarray]) -> None:
    from ramos.motion.nets.pose import load_pose_encoder

    x, _ = _inputs(expected)
    with torch.no_grad():
        z = load_pose_encoder(OLD / "pose_vae_graph.ckpt")(x[:2, :5])
    np.testing.assert_allclose(z.numpy(), expected["pose_latents"], atol=1e-5)


def test_raw_baseline(expected: dict[str, np.ndarray]) -> None:
    from ramos.stages.raw_baseline import load_raw_baseline, sample_raw_baseline

    module = load_raw_baseline(OLD / "raw_baseline.ckpt")
    got = np.stack(sample_raw_baseline(module, [0, 1], [20, 20], steps=3, sampler="ddim", guidance=2.0, seed=0))
    np.testing.assert_allclose(got, expected["raw_samples"], atol=1e-4)


def test_retired_options_and_networks_are_clear_errors() -> None:
    from ramos.utils.spec import build

    args = {"window": 8, "num_joints": 22, "latent_dim": 4, "buckets": [8], "hidden": 0}
    path = "ramos.motion.nets.motion.BucketedMotionDecoder"
    build({"class_path": path, "init_args": {**args, "root_mode": "velocity", "smooth": False}})  # what stayed
    with pytest.raises(ValueError, match="root_mode='absolute' is no longer supported"):
        build({"class_path": path, "init_args": {**args, "root_mode": "absolute"}})
    with pytest.raises(ValueError, match="MLPMotionDecoder does not exist in this version"):
        build({"class_path": "ramos.motion.nets.motion.MLPMotionDecoder", "init_args": {}})
