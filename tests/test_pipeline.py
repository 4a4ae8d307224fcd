"""`ramos pipeline` end to end on a tiny configuration, and its stage-by-stage resumption."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ramos.cli import main
from ramos.motion.io.bvh import read_bvh


def test_pipeline_runs_every_stage_and_resumes(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["pipeline", "--config", "tiny", "--out", str(out), "--no-progress"]
    assert main(args) == 0
    summary = capsys.readouterr().out
    assert "report:" in summary and "motions:" in summary

    record = json.loads((out / "pipeline.json").read_text())
    # The pose VAE trains in a second process beside the motion VAE and is recorded after it.
    assert list(record["stages"]) == ["data", "motion_vae", "pose_vae", "motion_diffusion", "generate", "evaluate"]
    assert all(Path(p).exists() for p in record["stages"]["pose_vae"]["outputs"])
    index = json.loads((out / "samples" / "index.json").read_text())
    assert [m["label"] for m in index["motions"]] == ["walk", "cartwheel"]
    for m in index["motions"]:
        motion = np.load(out / "samples" / m["files"]["npy"], allow_pickle=False)
        assert motion.shape == (m["frames"], 22, 3) and motion.dtype == np.float32
        assert (out / "samples" / m["files"]["video"]).stat().st_size > 0
        assert read_bvh(out / "samples" / m["files"]["bvh"]).positions().shape[0] == m["frames"]
    assert (out / "reports" / "generation.md").read_text().startswith("#")
    assert index["settings"]["plant_feet"] is True
    # The latent model is scored as decoded and with planted feet (what the written files hold).
    scored = json.loads((out / "reports" / "generation.json").read_text())["models"]
    assert {"latent", "latent, planted feet"} <= set(scored)
    assert record["stages"]["evaluate"]["overall_planted_feet"] == scored["latent, planted feet"]["overall"]

    # A second run finds every stage done and redoes none of them.
    stamp = (out / "diffusion" / "last.ckpt").stat().st_mtime_ns
    assert main(args) == 0
    assert (out / "diffusion" / "last.ckpt").stat().st_mtime_ns == stamp
    assert json.loads((out / "pipeline.json").read_text()) == record
