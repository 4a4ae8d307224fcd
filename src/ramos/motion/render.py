"""Stick-figure renders of joint positions: GIF/MP4 animations, PNG filmstrips and contact sheets.

One orthographic camera (azimuth/elevation about the vertical axis, y up in the picture) is used
everywhere; bones and joints are coloured by side (left blue, right red, centre grey) and the floor
(y = 0) is drawn as a grid with the root trajectory on it. Figures are drawn with matplotlib's Agg
canvas (no pyplot, no global state) by updating line data frame to frame, which keeps a 200-frame GIF to a few seconds.
All files are written atomically.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

from ramos.motion.skeleton import HUMANML3D, Skeleton
from ramos.utils.atomic import atomic_path

SIDE_COLOURS = {1: "#1f5fd6", -1: "#d62728", 0: "#555555"}
"""Left (+1) blue, right (-1) red, centre (0) grey."""
_FLOOR_COLOUR = "#c8c8c8"
_TRAJ_COLOUR = "#9a9a9a"


class Camera:
    """Orthographic camera: ``azim`` (degrees, 0 = in front of a subject facing +z), ``elev`` above the floor."""

    def __init__(self, azim: float = 35.0, elev: float = 15.0, up_axis: int = 1) -> None:
        if up_axis != 1:
            raise ValueError("render expects y-up positions (up_axis=1)")
        a, e = np.radians(azim), np.radians(elev)
        view = np.array([np.sin(a) * np.cos(e), np.sin(e), np.cos(a) * np.cos(e)])  # towards the camera
        right = np.cross([0.0, 1.0, 0.0], view)
        right /= np.linalg.norm(right)
        self.basis = np.stack([right, np.cross(view, right)], axis=1)  # (3, 2): world -> screen (u, v)

    def project(self, points: np.ndarray) -> np.ndarray:
        """(..., 3) world points to (..., 2) screen coordinates."""
        return np.asarray(points, dtype=np.float64) @ self.basis


def _check(positions: np.ndarray, skeleton: Skeleton) -> np.ndarray:
    pos = np.asarray(positions, dtype=np.float64)
    if pos.ndim == 2:
        pos = pos[None]
    if pos.ndim != 3 or pos.shape[1:] != (skeleton.num_joints, 3):
        raise ValueError(f"positions must be (T, {skeleton.num_joints}, 3) for this skeleton, got {pos.shape}")
    if pos.shape[0] == 0:
        raise ValueError("no frames to render")
    return pos


class _Panel:
    """One axes showing a stick figure; ``show(t)`` updates it to frame ``t`` without redrawing the floor."""

    def __init__(self, ax: Axes, positions: np.ndarray, skeleton: Skeleton, camera: Camera,
                 title: str | None = None, trajectory: bool = True, limits: tuple | None = None,
                 animated: bool = False) -> None:
        self.ax, self.pos, self.skeleton = ax, positions, skeleton
        self.screen = camera.project(positions)  # (T, J, 2)
        root_xz = positions[:, skeleton.root, [0, 2]]
        lo = np.minimum(root_xz.min(0), 0.0) - 0.8
        hi = np.maximum(root_xz.max(0), 0.0) + 0.8
        step = max(0.5, float((hi - lo).max()) / 40)  # long trajectories: coarser grid, bounded line count
        segments = [[[gx, 0.0, lo[1]], [gx, 0.0, hi[1]]]
                    for gx in np.arange(np.floor(lo[0] / step) * step, hi[0] + 1e-9, step)]
        segments += [[[lo[0], 0.0, gz], [hi[0], 0.0, gz]]
                     for gz in np.arange(np.floor(lo[1] / step) * step, hi[1] + 1e-9, step)]
        # One collection for the whole floor: far cheaper to draw than one Line2D per grid line.
        ax.add_collection(LineCollection(camera.project(np.array(segments)), colors=_FLOOR_COLOUR,
                                         linewidths=0.6, zorder=0))
        if trajectory and len(positions) > 1:
            ground = positions[:, skeleton.root].copy()
            ground[:, 1] = 0.0
            g = camera.project(ground)
            ax.plot(g[:, 0], g[:, 1], color=_TRAJ_COLOUR, lw=1.0, ls="--", zorder=1)
        side = skeleton.side
        self.lines = []
        for parent, child in skeleton.bones:
            s = side[child] if side[child] != 0 else side[parent]
            (line,) = ax.plot([], [], color=SIDE_COLOURS[int(s)], lw=2.5 if s == 0 else 2.2,
                              solid_capstyle="round", zorder=3 if s == 0 else 2, animated=animated)
            self.lines.append((line, parent, child))
        self.joints = ax.scatter(np.zeros(skeleton.num_joints), np.zeros(skeleton.num_joints), s=9, zorder=4,
                                 c=[SIDE_COLOURS[int(s)] for s in side], animated=animated)
        if limits is None:
            limits = _limits([self.screen], camera, positions)
        ax.set_xlim(*limits[0])
        ax.set_ylim(*limits[1])
        ax.set_aspect("equal")
        ax.set_axis_off()
        self.title = ax.set_title(title or "", fontsize=9)

    def show(self, t: int) -> None:
        s = self.screen[t]
        for line, parent, child in self.lines:
            line.set_data(s[[parent, child], 0], s[[parent, child], 1])
        self.joints.set_offsets(s)

    def draw_dynamic(self) -> None:
        """Draw the figure's moving artists onto the canvas (blitting: the background is restored first)."""
        for line, _, _ in self.lines:
            self.ax.draw_artist(line)
        self.ax.draw_artist(self.joints)


def _limits(screens: Sequence[np.ndarray], camera: Camera, positions: np.ndarray | None = None) -> tuple:
    pts = [s.reshape(-1, 2) for s in screens]
    if positions is not None:  # include the floor under the figure
        ground = positions.reshape(-1, 3).copy()
        ground[:, 1] = 0.0
        pts.append(camera.project(ground))
    allp = np.concatenate(pts)
    lo, hi = allp.min(0), allp.max(0)
    centre, half = (lo + hi) / 2, max((hi - lo).max() / 2, 0.6) + 0.1
    return (centre[0] - half, centre[0] + half), (centre[1] - half, centre[1] + half)


def render_frames(positions: np.ndarray, skeleton: Skeleton = HUMANML3D, title: str | None = None,
                  size_px: int = 320, camera: Camera | None = None) -> np.ndarray:
    """Render every frame: (T, H, W, 3) uint8 RGB (for GIF/MP4 writers or TensorBoard videos)."""
    pos = _check(positions, skeleton)
    camera = camera or Camera()
    dpi = 80
    fig = Figure(figsize=(size_px / dpi, size_px / dpi), dpi=dpi)
    fig.subplots_adjust(0, 0, 1, 0.93 if title else 1)
    canvas = FigureCanvasAgg(fig)
    panel = _Panel(fig.add_subplot(1, 1, 1), pos, skeleton, camera, title, animated=True)
    # Blitting: the floor, trajectory and title are drawn once; each frame redraws only the figure.
    canvas.draw()
    background = canvas.copy_from_bbox(fig.bbox)
    frames = np.empty((len(pos),) + np.asarray(canvas.buffer_rgba()).shape[:2] + (3,), dtype=np.uint8)
    for t in range(len(pos)):
        canvas.restore_region(background)
        panel.show(t)
        panel.draw_dynamic()
        frames[t] = np.asarray(canvas.buffer_rgba())[..., :3]
    return frames


def render_gif(positions: np.ndarray, skeleton: Skeleton, path: str | Path, fps: float,
               title: str | None = None, size_px: int = 320, camera: Camera | None = None) -> Path:
    """Write an animated GIF (looping) of the stick figure; returns the path."""
    frames = render_frames(positions, skeleton, title, size_px, camera)
    path = Path(path)
    with atomic_path(path) as tmp:
        write_gif(tmp, frames, fps)
    return path


def write_gif(path: str | Path, frames: np.ndarray, fps: float) -> None:
    """Write (T, H, W, 3) uint8 frames as a looping GIF (not atomic: callers pass a temporary path).

    All frames share one palette taken from the frame with the most colours, without dithering:
    stick figures have few colours, and per-frame adaptive palettes would cost most of the time.
    """
    from PIL import Image

    images = [Image.fromarray(f) for f in frames]
    richest = max(range(0, len(frames), max(1, len(frames) // 8)),
                  key=lambda i: len(np.unique(frames[i].reshape(-1, 3)[::7], axis=0)))
    palette = images[richest].quantize(colors=96, method=Image.Quantize.MEDIANCUT)
    quantised = [im.quantize(palette=palette, dither=Image.Dither.NONE) for im in images]
    # GIF frame durations are whole centiseconds; pillow takes milliseconds.
    quantised[0].save(path, format="GIF", save_all=True, append_images=quantised[1:],
                      duration=max(20, round(1000.0 / float(fps))), loop=0, optimize=False)


def mp4_available() -> bool:
    """True when an ffmpeg binary is reachable (imageio-ffmpeg's bundled one or ffmpeg on PATH)."""
    try:
        import imageio_ffmpeg  # noqa: F401

        return True
    except ImportError:
        return shutil.which("ffmpeg") is not None


def render_mp4(positions: np.ndarray, skeleton: Skeleton, path: str | Path, fps: float,
               title: str | None = None, size_px: int = 320, camera: Camera | None = None) -> Path:
    """Write an H.264 MP4; needs ffmpeg (``pip install imageio-ffmpeg``), otherwise use :func:`render_gif`."""
    if not mp4_available():
        raise RuntimeError(f"{path}: MP4 needs ffmpeg (pip install imageio-ffmpeg); use render_gif instead")
    import imageio.v2 as iio2

    frames = render_frames(positions, skeleton, title, size_px, camera)
    path = Path(path)
    with atomic_path(path) as tmp:
        with iio2.get_writer(tmp, format="FFMPEG", fps=float(fps), codec="libx264", macro_block_size=16) as w:
            for f in frames:
                w.append_data(f)
    return path


def _frame_indices(num_frames: int, n: int) -> np.ndarray:
    return np.unique(np.linspace(0, num_frames - 1, min(n, num_frames)).round().astype(int))


def _legend(fig: Figure) -> None:
    fig.text(0.995, 0.005, "left", color=SIDE_COLOURS[1], ha="right", va="bottom", fontsize=8)
    fig.text(0.955, 0.005, "right", color=SIDE_COLOURS[-1], ha="right", va="bottom", fontsize=8)


def render_strip(positions: np.ndarray, skeleton: Skeleton, path: str | Path, n_frames: int = 8,
                 title: str | None = None, fps: float | None = None, panel_px: int = 200,
                 camera: Camera | None = None) -> Path:
    """Write a PNG filmstrip of ``n_frames`` evenly spaced frames (shared scale); returns the path."""
    pos = _check(positions, skeleton)
    idx = _frame_indices(len(pos), n_frames)
    camera = camera or Camera()
    dpi = 80
    fig = Figure(figsize=(len(idx) * panel_px / dpi, panel_px / dpi + 0.35), dpi=dpi)
    limits = _limits([camera.project(pos)], camera, pos)
    for k, t in enumerate(idx):
        label = f"t={t / fps:.2f}s" if fps else f"frame {t}"
        panel = _Panel(fig.add_subplot(1, len(idx), k + 1), pos, skeleton, camera, label, limits=limits)
        panel.show(int(t))
    if title:
        fig.suptitle(title, fontsize=10)
    fig.subplots_adjust(0, 0.02, 1, 0.82 if title else 0.9, wspace=0.02)
    _legend(fig)
    return _save_png(fig, path)


def render_grid(motions: Sequence[np.ndarray], skeleton: Skeleton, path: str | Path,
                titles: Sequence[str] | None = None, n_frames: int = 6, panel_px: int = 150,
                camera: Camera | None = None) -> Path:
    """Write a PNG contact sheet: one row (a short filmstrip) per motion; returns the path."""
    if len(motions) == 0:
        raise ValueError("no motions to render")
    if titles is not None and len(titles) != len(motions):
        raise ValueError(f"{len(titles)} titles for {len(motions)} motions")
    camera = camera or Camera()
    dpi = 80
    fig = Figure(figsize=(n_frames * panel_px / dpi, len(motions) * panel_px / dpi + 0.2), dpi=dpi)
    for row, m in enumerate(motions):
        pos = _check(m, skeleton)
        limits = _limits([camera.project(pos)], camera, pos)
        for k, t in enumerate(_frame_indices(len(pos), n_frames)):
            ax = fig.add_subplot(len(motions), n_frames, row * n_frames + k + 1)
            panel = _Panel(ax, pos, skeleton, camera, None, limits=limits)
            panel.show(int(t))
            if k == 0 and titles is not None:
                ax.text(0.02, 0.98, titles[row], transform=ax.transAxes, fontsize=9, va="top")
    fig.subplots_adjust(0, 0.02, 1, 1, wspace=0.02, hspace=0.04)
    _legend(fig)
    return _save_png(fig, path)


def _save_png(fig: Figure, path: str | Path) -> Path:
    FigureCanvasAgg(fig)
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=fig.dpi, facecolor="white")
    return path
