"""`ramos pipeline` end to end on a tiny configuration: the embedded set, its stage-by-stage resumption, and
data sets without labels (HumanML3D: captions only; BVH: neither)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from repo_scripts import load_script

from ramos.cli import main
from ramos.motion.io.bvh import read_bvh
from ramos.stages.pipeline import STAGES


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
    md = (out / "reports" / "generation.md").read_text()
    assert md.startswith("#") and "## What is measured" not in md  # labels and captions: both protocols
    for needle in ("## All metrics", "## Per label", "## Text-to-motion metrics", "### Physics of the text-to-motion"):
        assert needle in md, needle
    assert index["settings"]["plant_feet"] is True
    # The latent model is scored as decoded and with planted feet (what the written files hold).
    scored = json.loads((out / "reports" / "generation.json").read_text())["models"]
    assert {"latent", "latent, planted feet"} <= set(scored)
    assert record["stages"]["evaluate"]["overall_planted_feet"] == scored["latent, planted feet"]["overall"]
    # FID on two draws of the reference (the tiny configuration), the headline on their means.
    assert len(record["stages"]["evaluate"]["fid_draws"]["seeds"]) == 2
    assert "means of 2 draws" in record["stages"]["evaluate"]["headline"]

    # A second run finds every stage done and redoes none of them.
    stamp = (out / "diffusion" / "last.ckpt").stat().st_mtime_ns
    assert main(args) == 0
    assert (out / "diffusion" / "last.ckpt").stat().st_mtime_ns == stamp
    assert json.loads((out / "pipeline.json").read_text()) == record


# --- data sets without labels ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def humanml3d_sample(tmp_path_factory) -> Path:
    """A small real HumanML3D-layout folder (captions, no labels) cut from the embedded clips."""
    return load_script("scripts/make_humanml3d_sample.py").build(tmp_path_factory.mktemp("h3d") / "HumanML3D", seed=0)


def _physics_columns(markdown: str) -> None:
    for needle in ("foot skating", "jitter (m/s^3)", "bone-length std (m)", "floor penetration (m)"):
        assert needle in markdown, needle


def test_pipeline_on_captions_without_labels(humanml3d_sample, tmp_path, capsys):
    """HumanML3D: a text model, no label protocol; the text table with physics; reruns keep to one source."""
    out = tmp_path / "run"
    assert main(["pipeline", "--config", "tiny", "--source", "humanml3d", "--root", str(humanml3d_sample),
                 "--out", str(out), "--no-progress", "--set", "generate.labels=null"]) == 0
    assert "report:" in capsys.readouterr().out
    record = json.loads((out / "pipeline.json").read_text())
    assert record["data_source"]["source"] == "humanml3d" and set(STAGES) == set(record["stages"])
    assert "text: R-precision top-3" in record["stages"]["evaluate"]["headline"]
    assert "latent" in record["stages"]["evaluate"]["text_physics"]
    index = json.loads((out / "samples" / "index.json").read_text())
    assert index["motions"] and all(m["prompt"] and m["label"] is None for m in index["motions"])
    results = json.loads((out / "reports" / "generation.json").read_text())
    assert "models" not in results and "labels" in results["skipped"] and "physics" not in results
    assert set(results["text"]["physics"]) == {"real", "latent", "latent, planted feet"}
    md = (out / "reports" / "generation.md").read_text()
    for needle in ("## What is measured", "Label metrics: **not computed**", "## Text-to-motion metrics",
                   "### Physics of the text-to-motion sets", "| latent, planted feet |", "text_samples_latent.png"):
        assert needle in md, needle
    _physics_columns(md)
    for absent in ("## All metrics", "## Targets", "## Per label", "recognition acc."):
        assert absent not in md, absent
    for fname in results["figures"].values():
        assert (out / "reports" / fname).stat().st_size > 1000, fname

    # `ramos evaluate` on the same captions-only data set.
    ev = tmp_path / "ev"
    assert main(["evaluate", "--diffusion", str(out / "diffusion" / "last.ckpt"), "--dataset", str(out / "data"),
                 "--config", "tiny", "--out", str(ev)]) == 0
    printed = capsys.readouterr().out
    assert "not computed: the data set has no labels" in printed and "latent (text): R-precision" in printed
    assert "latent (physics): foot skating" in printed
    assert "### Physics of the text-to-motion sets" in (ev / "generation.md").read_text()
    assert not (ev / "evaluator.ckpt").exists()  # no label classifier without labels

    # The same --out with another source: a one-line error, nothing run.
    bvh = _bvh_folder(humanml3d_sample, tmp_path / "bvh")
    assert main(["pipeline", "--config", "tiny", "--source", "bvh", "--root", str(bvh), "--out", str(out),
                 "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "holds a pipeline run on humanml3d at" in err and "use another --out" in err
    assert json.loads((out / "pipeline.json").read_text()) == record


def _bvh_folder(sample: Path, out: Path) -> Path:
    """BVH files of the sample's original (unmirrored) motions: 2-10 s each, no labels, no captions."""
    from ramos.motion.export import save_bvh

    out.mkdir(parents=True, exist_ok=True)
    for path in sorted((sample / "new_joints").glob("*.npy")):
        if not path.stem.startswith("M"):
            save_bvh(np.load(path, allow_pickle=False), out / f"{path.stem}.bvh", fps=20.0)
    return out


def test_pipeline_on_bvh_without_labels_or_captions(humanml3d_sample, tmp_path, capsys):
    """BVH files: an unconditional model, scored by physics only; the report says why."""
    out = tmp_path / "run"
    bvh = _bvh_folder(humanml3d_sample, tmp_path / "bvh")
    assert main(["pipeline", "--config", "tiny", "--source", "bvh", "--root", str(bvh), "--out", str(out),
                 "--no-progress", "--set", "generate.labels=null"]) == 0
    capsys.readouterr()
    record = json.loads((out / "pipeline.json").read_text())
    evaluated = record["stages"]["evaluate"]
    assert evaluated["headline"].startswith("physics only") and "overall" not in evaluated
    index = json.loads((out / "samples" / "index.json").read_text())
    assert index["motions"] and all(m["prompt"] is None and m["label"] is None for m in index["motions"])
    results = json.loads((out / "reports" / "generation.json").read_text())
    assert "models" not in results and "text" not in results and set(results["skipped"]) == {"labels", "text"}
    physics = results["physics"]
    assert set(physics["models"]) == {"real", "latent", "latent, planted feet"}
    n = physics["reference"]["windows_a"]
    assert n > 0 and all(m["n"] == n for m in physics["models"].values())
    md = (out / "reports" / "generation.md").read_text()
    for needle in ("## What is measured", "Label metrics: **not computed**", "Text-to-motion metrics: **not computed**",
                   "no feature-based metric exists", "## Physics of unconditional samples", "samples_latent.png"):
        assert needle in md, needle
    _physics_columns(md)
    for absent in ("## All metrics", "## Text-to-motion metrics", "## Per label", "R-precision top-1"):
        assert absent not in md, absent
    for fname in results["figures"].values():
        assert (out / "reports" / fname).stat().st_size > 1000, fname
