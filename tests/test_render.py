"""Stick-figure rendering: files written atomically, right frame counts, left/right colours on the right side."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ramos.motion import render
from ramos.motion.io import READERS
from ramos.motion.skeleton import HUMANML3D as S


@pytest.fixture(scope="module")
def walk() -> np.ndarray:
    clip = next(c for c in READERS["builtin"].read_all(None) if c.labels == ["walk"])
    return clip.positions


def _colour_mask(rgb: np.ndarray, hex_colour: str, tol: int = 40) -> np.ndarray:
    target = np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)])
    return (np.abs(rgb.astype(int) - target).sum(-1) < tol)


def test_render_frames_left_is_screen_right_from_the_front(walk: np.ndarray) -> None:
    # Camera in front of a subject facing +z: its left side (+x) appears on the right of the picture.
    frames = render.render_frames(walk[:3], S, camera=render.Camera(azim=0.0, elev=10.0))
    assert frames.shape[0] == 3 and frames.dtype == np.uint8
    left = np.nonzero(_colour_mask(frames[0], render.SIDE_COLOURS[1]))[1]
    right = np.nonzero(_colour_mask(frames[0], render.SIDE_COLOURS[-1]))[1]
    assert left.size > 50 and right.size > 50
    assert left.mean() > right.mean() + 10
    assert not np.array_equal(frames[0], frames[2])  # the figure moves


def test_gif_frames(walk: np.ndarray, tmp_path: Path) -> None:
    """(Speed is measured by benchmarks/render_speed.py, not here.)"""
    motion = np.concatenate([walk] * 2)[:60]
    path = render.render_gif(motion, S, tmp_path / "walk.gif", fps=20, title="walk")
    with Image.open(path) as im:
        assert im.n_frames == 60
        assert im.info["loop"] == 0 and im.info["duration"] == 50
        im.seek(30)
        rgb = np.asarray(im.convert("RGB"))
    assert _colour_mask(rgb, render.SIDE_COLOURS[1]).sum() > 50  # palette keeps the side colours
    assert [p.name for p in tmp_path.iterdir()] == ["walk.gif"]  # no temporary files left


def test_strip_and_grid(walk: np.ndarray, tmp_path: Path) -> None:
    strip = render.render_strip(walk, S, tmp_path / "strip.png", n_frames=8, title="walk", fps=30)
    with Image.open(strip) as im:
        w, h = im.size
    assert w > 4 * h  # eight panels side by side
    grid = render.render_grid([walk, walk[::-1], walk[:5]], S, tmp_path / "grid.png", titles=["a", "b", "c"])
    with Image.open(grid) as im:
        gw, gh = im.size
        rgb = np.asarray(im.convert("RGB"))
    assert gh > gw / 3  # three rows of six panels
    assert _colour_mask(rgb, render.SIDE_COLOURS[1]).sum() > 100
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.png", "strip.png"]


def test_single_frame_and_bad_shapes(walk: np.ndarray, tmp_path: Path) -> None:
    render.render_strip(walk[0], S, tmp_path / "one.png", n_frames=4)  # (J, 3) is one frame
    with pytest.raises(ValueError, match=r"\(T, 22, 3\)"):
        render.render_gif(np.zeros((5, 21, 3)), S, tmp_path / "x.gif", fps=20)
    with pytest.raises(ValueError, match="titles"):
        render.render_grid([walk], S, tmp_path / "g.png", titles=["a", "b"])
    assert not (tmp_path / "x.gif").exists()


def test_mp4_plays_every_frame_at_the_motion_rate(walk: np.ndarray, tmp_path: Path) -> None:
    """imageio-ffmpeg is a dependency, so MP4 works on a fresh install; ffmpeg itself reads the file back."""
    import imageio_ffmpeg

    assert render.mp4_available()
    target = render.render_mp4(walk, S, tmp_path / "walk.mp4", fps=30)
    frames, seconds = imageio_ffmpeg.count_frames_and_secs(str(target))
    assert frames == len(walk) and seconds == pytest.approx(len(walk) / 30, abs=1 / 30)


def test_mp4_without_ffmpeg_is_a_clear_error(walk: np.ndarray, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(render, "mp4_available", lambda: False)
    target = tmp_path / "walk.mp4"
    with pytest.raises(RuntimeError, match="imageio-ffmpeg"):
        render.render_mp4(walk, S, target, fps=30)
    assert not target.exists()
