"""benchmarks/standin_humanml3d.py (the HumanML3D-sized stand-in) and the big-data pipeline config on it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from repo_scripts import load_script

from ramos.motion.io import READERS
from ramos.motion.skeleton import HUMANML3D

LINE = re.compile(r"^[^#]+#[^\s#/]+/[A-Z]+( [^\s#/]+/[A-Z]+)*#0\.0#0\.0$")


def _script():
    return load_script("benchmarks/standin_humanml3d.py")


@pytest.fixture(scope="module")
def standin(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("standin") / "HumanML3D"
    _script().build(path, clips=40, workers=1)
    return path


def test_layout_of_the_standin(standin: Path) -> None:
    about = json.loads((standin / "STANDIN.json").read_text())
    assert about["motions"] == 40 and about["files"] == 80 and len(about["motions_index"]) == 40
    ids = {p.stem for p in (standin / "new_joints").glob("*.npy")}
    assert len(ids) == 80 and {f"M{i}" for i in ids if not i.startswith("M")} <= ids
    listed = [line for s in ("train", "val", "test") for line in (standin / f"{s}.txt").read_text().split()]
    assert sorted(listed) == sorted(ids)
    parents = [max(p, 0) for p in HUMANML3D.parents]
    for sid in sorted(ids):
        x = np.load(standin / "new_joints" / f"{sid}.npy")
        assert x.dtype == np.float32 and x.shape[1:] == (22, 3) and 40 <= len(x) <= 200, sid
        bones = np.linalg.norm(x - x[:, parents], axis=-1)[:, 1:]
        assert bones.std(0).max() < 1e-4, sid  # one rigid skeleton per motion
        assert abs(x[..., 1].min()) < 1e-5 and np.allclose(x[0, 0, [0, 2]], 0, atol=1e-5)  # floor, origin
        lines = (standin / "texts" / f"{sid}.txt").read_text().splitlines()
        assert len(lines) == 3 and all(LINE.match(line) for line in lines), sid
    two = [m for m in about["motions_index"] if len(m["parts"]) > 1]
    assert two, "no motion joins two clips"
    (clip,) = READERS["humanml3d"].read_item(READERS["humanml3d"].list_items(standin)[0])
    assert len(clip.captions) == 3 and clip.fps == 20.0


def test_the_same_seed_builds_the_same_motions(tmp_path: Path) -> None:
    m = _script()
    a, cap_a, _ = m.motion(5, seed=3)
    b, cap_b, _ = m.motion(5, seed=3)
    assert np.array_equal(a, b) and cap_a == cap_b
    assert not np.array_equal(a[:10], m.motion(6, seed=3)[0][:10])


@pytest.mark.slow
def test_big_data_pipeline_config_runs_end_to_end_on_the_standin(standin: Path, tmp_path: Path) -> None:
    """`ramos pipeline --source humanml3d --config humanml3d` on the stand-in, every stage's budget cut
    to the tiny config's (the full run is benchmarks/bench_standin_training.py's)."""
    from ramos import configs
    from ramos.stages.pipeline import STAGES, run_pipeline

    cfg = configs.load("pipeline", "humanml3d", {})
    tiny = configs.load("pipeline", "tiny", {})
    for stage in ("pose_vae", "motion_vae", "motion_diffusion"):
        getattr(cfg, stage).overrides.update(getattr(tiny, stage).overrides)
    cfg.evaluation = tiny.evaluation
    cfg.data.overrides.update({"augment.min_train_windows": 0})
    cfg.source, cfg.root = "humanml3d", str(standin)
    assert cfg.trainer.accelerator == "auto" and cfg.parallel is False
    result = run_pipeline(cfg, tmp_path / "run", progress=False)
    record = json.loads((tmp_path / "run" / "pipeline.json").read_text())
    assert set(STAGES) == set(record["stages"]) == set(result.stages)
    assert "text: R-precision top-3" in record["stages"]["evaluate"]["headline"]
    vae = json.loads((tmp_path / "run" / "motion_vae" / "metrics.json").read_text())
    # the big-data settings the tiny budget leaves alone reached the stage
    assert vae["config"]["optim"]["max_minutes"] is None and vae["config"]["optim"]["threads"] == 0
    assert vae["config"]["trainer"]["accelerator"] == "auto"
