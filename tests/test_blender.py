"""Blender's own BVH importer reads RaMoS's BVH files (runs where Blender is installed, else skipped).

Install: ``apt-get install blender python3-numpy`` (../shared/reference/tools.md). The figures over all
embedded clips and a pipeline's generated motions: ``python benchmarks/bench_blender_bvh.py``.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from repo_scripts import load_script

from ramos.motion.export import save_bvh
from ramos.motion.io.builtin import load_all
from ramos.motion.io.bvh import BvhItem, read_item
from ramos.motion.skeleton import HUMANML3D

pytestmark = pytest.mark.skipif(shutil.which("blender") is None,
                                reason="Blender is not installed (apt-get install blender python3-numpy)")



def _bench():
    return load_script("benchmarks/bench_blender_bvh.py")


def test_blender_imports_a_real_clip_exactly(tmp_path):
    """A rigid motion (a real clip) comes back from Blender within a micrometre, every frame, at its rate."""
    clips = {c.labels[0]: c for c in load_all()}
    motions, files, rates = [], [], []
    for label in ("kick", "cartwheel"):  # 30 fps and 60 fps
        clip = clips[label]
        files.append(save_bvh(clip.positions, tmp_path / f"{label}.bvh", HUMANML3D, clip.fps))
        motions.append(clip.positions)
        rates.append(clip.fps)
    result = _bench().compare(motions, files, rates, list(HUMANML3D.names))
    assert result["frames_exact"] and result["fps_exact"]
    assert result["worst_max_mm"] < 0.01


def test_blender_reads_what_our_reader_reads(tmp_path):
    """Whatever the BVH holds (here a motion whose bones stretch, as generated ones do today), Blender and
    RaMoS's reader agree on it: a difference from the intended motion is the writer's, not the reader's."""
    clip = next(c for c in load_all() if c.labels[0] == "walk")
    rng = np.random.default_rng(0)
    stretched = clip.positions + rng.normal(0, 0.01, clip.positions.shape).astype(np.float32)
    path = save_bvh(stretched, tmp_path / "stretched.bvh", HUMANML3D, clip.fps)
    (ours,) = read_item(BvhItem(str(path), "x"), joint_map="humanml3d", scale=1.0)
    ((blender, fps),) = _bench().blender_positions([path], list(HUMANML3D.names))
    assert blender.shape == ours.positions.shape and fps == pytest.approx(clip.fps, abs=1e-3)
    assert np.abs(blender - ours.positions).max() < 1e-4  # 0.1 mm: float32 rounding in the file
