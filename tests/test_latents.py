"""Latent analysis: clustering, interpolation and the `ramos analyze latents` command on a toy set."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_motion_vae import LABELS, tiny_config, write_toy_dataset

from ramos.motion.nets.motion import feature_stats
from ramos.motion.skeleton import HUMANML3D
from ramos.stages.motion_vae.latents import EncodedSet, encode_dataset, interpolate, kmeans_clusters, pick_pair
from ramos.stages.motion_vae.train import build_motion_vae

pytestmark = pytest.mark.usefixtures("one_thread")


def _encoded(labels: list[str], centres: dict[str, float], seed: int = 0) -> EncodedSet:
    rng = np.random.default_rng(seed)
    mu = np.stack([centres[lab] + 0.05 * rng.standard_normal(4) for lab in labels]).astype(np.float32)
    n = len(labels)
    return EncodedSet(mu, np.zeros_like(mu), np.arange(n), labels, [""] * n, np.full(n, 40))


def test_kmeans_finds_separated_groups_sorted_by_size():
    labels = ["walk"] * 30 + ["jump"] * 20 + ["wave"] * 10
    enc = _encoded(labels, {"walk": 0.0, "jump": 5.0, "wave": -5.0})
    clusters, assign = kmeans_clusters(enc, 3)
    assert [c.size for c in clusters] == [30, 20, 10]
    assert [c.top_labels[0] for c in clusters] == [("walk", 30), ("jump", 20), ("wave", 10)]
    assert (assign[:30] == 0).all() and (assign[50:] == 2).all()
    assert labels[clusters[1].medoid] == "jump"


def test_pick_pair_takes_the_two_most_common_labels():
    enc = _encoded(["walk"] * 5 + ["jump"] * 3 + ["wave"], {"walk": 0.0, "jump": 1.0, "wave": 2.0})
    a, b = pick_pair(enc)
    assert (enc.labels[a], enc.labels[b]) == ("walk", "jump")


def test_interpolation_ends_at_the_decoded_endpoints():
    torch.manual_seed(0)
    vae = build_motion_vae(tiny_config(), HUMANML3D, 40).eval()
    z0, z1 = np.random.default_rng(0).standard_normal((2, 16)).astype(np.float32)
    path = interpolate(vae, z0, z1, steps=5)
    with torch.no_grad():
        ends = vae.decode(torch.as_tensor(np.stack([z0, z1]))).numpy()
    assert path.shape == (5, 40, 22, 3)
    np.testing.assert_allclose(path[0], ends[0], atol=1e-5)
    np.testing.assert_allclose(path[-1], ends[1], atol=1e-5)


def test_analyze_latents_command(tmp_path):
    """`ramos analyze latents` on a small set: report, PNGs, projector files and a sane summary."""
    import lightning as L

    from ramos.cli import main
    from ramos.motion.dataset import MotionDataset

    data_dir = write_toy_dataset(tmp_path / "toy", n=60)
    data = MotionDataset(data_dir)
    x = torch.as_tensor(np.array(data.windows))
    mask = torch.arange(40)[None] < torch.as_tensor(data.lengths)[:, None]
    mean, std = feature_stats(x, mask)
    vae = build_motion_vae(tiny_config(), HUMANML3D, 40, mean, std)
    ckpt = tmp_path / "vae.ckpt"
    trainer = L.Trainer(max_steps=1, logger=False, enable_progress_bar=False, enable_model_summary=False,
                        enable_checkpointing=False, default_root_dir=tmp_path)
    loader = torch.utils.data.DataLoader([{"motion": x[i], "mask": mask[i]} for i in range(len(x))], batch_size=16)
    trainer.fit(vae, loader)
    trainer.save_checkpoint(ckpt)

    out = tmp_path / "reports"
    rc = main(["analyze", "latents", "--vae", str(ckpt), "--dataset", str(data_dir), "--out", str(out),
               "--split", "all", "--clusters", "3", "--no-progress"])
    assert rc == 0
    report = (out / "latents.md").read_text()
    for png in ("pca.png", "tsne.png", "cluster_medoids.png", "cluster_lengths.png", "interpolation.png"):
        assert (out / "latents" / png).stat().st_size > 1000
        assert f"latents/{png}" in report
    assert list((out / "latents" / "projector").rglob("projector_config.pbtxt"))
    summary = json.loads((out / "latents" / "summary.json").read_text())
    assert summary["windows"] == 60 and sum(c["size"] for c in summary["clusters"]) == 60
    assert {lab for c in summary["clusters"] for lab, _ in c["top_labels"]} <= set(LABELS)
    assert encode_dataset(vae.eval(), data, "val").mu.shape == (len(data.split_indices("val")), 16)
