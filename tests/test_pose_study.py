"""The pose VAE study end to end on a handful of frames: report, figures, reusable encoder."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from ramos.cli import main
from ramos.motion.io import READERS
from ramos.motion.nets.pose import GraphPoseEncoder, PoseEncoder, canonical_poses, load_pose_encoder
from ramos.motion.preprocess import rotate_yaw
from ramos.motion.skeleton import HUMANML3D as SK
from ramos.utils.checkpoint import CheckpointError


def _write_prepared(folder: Path, n_clips: int = 4, frames: int = 12) -> None:
    """A minimal prepared data set folder (the ARCHITECTURE.md contract) of a few builtin frames.

    Every clip has windows in both the train and the val split (as a data set split in time would),
    so the study must hold out whole clips itself.
    """
    clips = READERS["builtin"].read_all(None)[1:1 + n_clips]
    wins, lengths, meta = [], [], []
    for clip in clips:
        for k, split in enumerate(("train", "val")):
            w = clip.positions[k * frames * 4:(k + 1) * frames * 4:4]
            wins.append(w)
            lengths.append(len(w))
            meta.append({"id": f"{clip.source_id}:{k}", "clip_id": clip.source_id, "split": split,
                         "mirrored": False, "copy": 0, "labels": clip.labels, "start": 0, "fps": 20.0})
    folder.mkdir()
    np.save(folder / "windows.npy", np.stack(wins).astype(np.float32))
    np.save(folder / "lengths.npy", np.array(lengths, np.int32))
    (folder / "meta.jsonl").write_text("".join(json.dumps(m) + "\n" for m in meta))
    np.savez(folder / "stats.npz", mean=np.zeros((SK.num_joints, 3), np.float32),
             std=np.ones((SK.num_joints, 3), np.float32))
    (folder / "skeleton.json").write_text(SK.to_json())
    (folder / "manifest.json").write_text(json.dumps({"config": {"fps": 20.0}, "labels": []}))


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pose_study")
    _write_prepared(tmp / "ds")
    argv = ["study", "pose-vae", "--dataset", str(tmp / "ds"), "--quick", "--latents", "2", "4", "--seeds", "2",
            "--steps", "12", "--workers", "1", "--out", str(tmp / "reports"), "--runs", str(tmp / "runs")]
    assert main(argv) == 0
    return tmp


def test_report_is_well_formed(study):
    report = (study / "reports" / "pose_vae.md").read_text()
    rows = [line for line in report.splitlines() if re.match(r"\| (graph|mlp) \| \d+ \|", line)]
    assert len(rows) == 4  # 2 families x 2 latent sizes
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert len(cells) == 11
        assert all(re.fullmatch(r"-?\d+(\.\d+)? ± \d+(\.\d+)?", c) for c in cells[3:])
    assert "## Which wins" in report and "MPJPE: **" in report and "## Targets" in report
    for png in re.findall(r"\]\((pose_vae/[\w.]+\.png)\)", report):
        path = study / "reports" / png
        assert path.is_file() and path.stat().st_size > 5000, png
    results = json.loads((study / "reports" / "pose_vae" / "results.json").read_text())
    assert len(results["runs"]) == 8
    assert {(r["family"], r["latent_dim"]) for r in results["runs"]} == {(f, d) for f in ("graph", "mlp") for d in (2, 4)}
    assert all(r["mpjpe_mm"] > 0 and r["params"] > 0 for r in results["runs"])
    # The two families were given the same budget.
    by = {(r["family"], r["latent_dim"]): r["params"] for r in results["runs"]}
    assert all(abs(by[("mlp", d)] - by[("graph", d)]) / by[("graph", d)] < 0.1 for d in (2, 4))


def test_tensorboard_has_curves_and_pose_pictures(study):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(next((study / "runs" / "graph_d4_s0").rglob("events.out.tfevents*")).parent))
    acc.Reload()
    assert {"poses/input_vs_reconstruction", "poses/prior_samples"} <= set(acc.Tags()["images"])
    assert "val/recon" in acc.Tags()["scalars"]


def test_best_encoder_is_reusable(study):
    best = study / "runs" / "best_graph_d4.ckpt"
    enc = load_pose_encoder(best)
    assert isinstance(enc, PoseEncoder) and isinstance(enc.encoder, GraphPoseEncoder) and enc.latent_dim == 4
    assert not any(p.requires_grad for p in enc.parameters())
    clip = READERS["builtin"].read_all(None)[3].positions[:10]
    windows = torch.from_numpy(np.stack([clip, rotate_yaw(clip, 120.0, SK) + 0.5]))  # (2, T, J, 3)
    z = enc(windows)
    assert z.shape == (2, 10, 4)
    # The encoder canonicalises its input: a turned and moved copy embeds to the same latents.
    torch.testing.assert_close(z[0], z[1], atol=1e-4, rtol=1e-4)
    direct = enc.encoder(torch.from_numpy(canonical_poses(clip, SK)))[0]
    torch.testing.assert_close(z[0], direct, atol=1e-5, rtol=1e-5)


def test_loading_a_non_pose_checkpoint_is_a_clear_error(tmp_path):
    bad = tmp_path / "x.ckpt"
    torch.save({"state_dict": {}}, bad)
    with pytest.raises(CheckpointError, match="x.ckpt"):
        load_pose_encoder(bad)


def test_quick_config_shortens_the_study():
    from ramos import configs
    from ramos.stages.pose_vae.study import PoseVAEStudyConfig

    quick, full = configs.load("pose_vae", "quick"), PoseVAEStudyConfig()
    assert quick.seeds == 1 and quick.train.steps < full.train.steps and quick.latents == [4, 32]
    assert quick.net == full.net and quick.data == full.data  # only the run length changes


def test_a_run_is_set_by_its_seed_alone(tmp_path):
    """The weights a run starts from come from its seed, not from whatever drew from the random
    generator before it in the process (they once did: the pipeline's pose VAE changed with imports)."""
    from ramos import configs
    from ramos.stages.pose_vae.data import PoseData
    from ramos.stages.pose_vae.study import _run_one

    _write_prepared(tmp_path / "ds")
    cfg = configs.load("pose_vae", "quick", {"train.steps": 3, "tensorboard": False})
    data = PoseData.from_dataset(tmp_path / "ds", cfg.data)
    results = []
    for before in (1, 2):
        torch.manual_seed(before)
        results.append(_run_one(cfg, data, "graph", 4, 0, tmp_path / f"runs{before}")[0])
    assert results[0].mpjpe_mm == results[1].mpjpe_mm and results[0].kl == results[1].kl
