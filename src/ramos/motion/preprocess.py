"""Motion geometry for data preparation: resample, normalise, mirror, filter, loop and cut into windows.

Every function here is pure (arrays in, arrays out) and works on any :class:`Skeleton`: joints are
found by name, never by index. :class:`ramos.stages.data.process.ClipProcessor` chains them the way
``ramos data prepare`` does.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Sequence

import numpy as np
from scipy.interpolate import PchipInterpolator

from ramos.motion.clip import Clip
from ramos.motion.skeleton import Skeleton


# --- geometry --------------------------------------------------------------------------------
def resample(positions: np.ndarray, fps_in: float, fps_out: float) -> np.ndarray:
    """Resample (T, ...) positions from ``fps_in`` to ``fps_out`` over the same time span.

    Monotone cubic (PCHIP) interpolation: C1-smooth like a spline, but it never overshoots
    between samples, so feet do not dip below the floor and no speed spikes are invented.
    Frame 0 is kept; the last output frame is the last one that falls inside the clip.
    """
    if fps_in <= 0 or fps_out <= 0:
        raise ValueError(f"frame rates must be positive, got {fps_in} -> {fps_out}")
    t_in = positions.shape[0]
    if t_in < 2 or math.isclose(fps_in, fps_out, rel_tol=1e-9):
        return np.array(positions, dtype=np.float32, copy=True)
    duration = (t_in - 1) / fps_in
    t_out = int(math.floor(duration * fps_out + 1e-6)) + 1
    step = fps_in / fps_out
    if step > 1 and abs(step - round(step)) < 1e-9:
        # Output times fall on input frames (60 or 120 -> 20 fps): the interpolant passes through
        # them, so taking every k-th frame is the same result, ~50x faster.
        return np.array(positions[:: int(round(step))][:t_out], dtype=np.float32)
    times_in = np.arange(t_in) / fps_in
    times_out = np.arange(t_out) / fps_out
    flat = positions.reshape(t_in, -1).astype(np.float64)
    out = PchipInterpolator(times_in, flat, axis=0)(times_out)
    return out.reshape((t_out,) + positions.shape[1:]).astype(np.float32)


def _rotation_y(angle: float) -> np.ndarray:
    """Matrix turning a horizontal direction by ``angle`` radians about +y (z towards x)."""
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]], dtype=np.float64)


def facing_direction(pose: np.ndarray, skeleton: Skeleton) -> np.ndarray:
    """Unit horizontal facing (3,) of one (J, 3) pose, as HumanML3D computes it.

    ``across`` = (right_hip - left_hip) + (right_shoulder - left_shoulder); facing = up x across.
    """
    idx = skeleton.index
    across = (pose[idx("right_hip")] - pose[idx("left_hip")]) + (
        pose[idx("right_shoulder")] - pose[idx("left_shoulder")])
    forward = np.cross(np.array([0.0, 1.0, 0.0]), across.astype(np.float64))
    forward[1] = 0.0
    norm = np.linalg.norm(forward)
    if norm < 1e-8:
        raise ValueError("cannot tell the facing direction: hips and shoulders are vertical")
    return forward / norm


def floor_height(positions: np.ndarray, skeleton: Skeleton, mode: str = "min_y") -> float:
    """Height of the floor under a clip: its lowest joint (``min_y``) or lowest foot (``min_feet``)."""
    joints = list(skeleton.feet) if mode == "min_feet" and skeleton.feet else slice(None)
    return float(positions[:, joints, skeleton.up_axis].min())


def canonicalize(positions: np.ndarray, skeleton: Skeleton) -> np.ndarray:
    """Root xz of frame 0 to the origin and its facing turned to +z (heights unchanged)."""
    root = skeleton.root
    out = positions.astype(np.float64, copy=True)
    out[..., [0, 2]] -= out[0, root, [0, 2]]
    forward = facing_direction(out[0], skeleton)
    # Turning by -atan2(x, z) brings (x, 0, z) onto +z.
    rot = _rotation_y(-math.atan2(forward[0], forward[2]))
    return (out @ rot.T).astype(np.float32)


def normalize(positions: np.ndarray, skeleton: Skeleton, floor: str = "min_y") -> np.ndarray:
    """HumanML3D normalisation: floor at y = 0, first-frame root xz at the origin, facing +z."""
    out = positions.astype(np.float32, copy=True)
    out[..., skeleton.up_axis] -= floor_height(positions, skeleton, floor)
    return canonicalize(out, skeleton)


def rotate_yaw(positions: np.ndarray, degrees: float, skeleton: Skeleton) -> np.ndarray:
    """Turn positions about the vertical axis through the first-frame root."""
    pivot = positions[0, skeleton.root].astype(np.float64).copy()
    pivot[1] = 0.0
    rot = _rotation_y(math.radians(degrees))
    return ((positions - pivot) @ rot.T + pivot).astype(np.float32)


def mirror(positions: np.ndarray, skeleton: Skeleton) -> np.ndarray:
    """Left/right mirror image: x negated and left_*/right_* joints swapped (an involution)."""
    out = positions[..., skeleton.mirror_map, :].copy()
    out[..., 0] *= -1.0
    return out


# Letters must not touch the word, but underscores may: labels such as "turn_left" swap too.
_SIDE_WORDS = re.compile(r"(?<![a-z])(left|right)(?![a-z])", flags=re.IGNORECASE)


def mirror_text(text: str) -> str:
    """Swap the words left and right (keeping their case) in a mirrored clip's caption or label."""
    def swap(m: re.Match[str]) -> str:
        word = m.group(0)
        new = "right" if word.lower() == "left" else "left"
        return new.capitalize() if word[0].isupper() else new
    return _SIDE_WORDS.sub(swap, text)


def joint_speeds(positions: np.ndarray, fps: float) -> np.ndarray:
    """(T-1, J) speed of every joint between consecutive frames, in m/s."""
    return np.linalg.norm(np.diff(positions, axis=0), axis=-1) * fps


# --- filters ----------------------------------------------------------------------------------
def compile_patterns(patterns: Iterable[str]) -> re.Pattern[str] | None:
    """One regular expression matching any of the plain-text exclusion patterns."""
    parts = []
    for p in patterns:
        words = [re.escape(w) for w in re.split(r"[\s_\-]+", p.strip().lower()) if w]
        if words:
            parts.append(r"\b" + r"[\s_\-]*".join(words))
    return re.compile("|".join(parts), flags=re.IGNORECASE) if parts else None


def excluded_by(clip: Clip, pattern: re.Pattern[str] | None) -> str | None:
    """The label, caption or raw label (``meta["raw_labels"]``: free text as annotated, e.g. BABEL's)
    of ``clip`` that matches ``pattern`` (None when nothing matches)."""
    if pattern is None:
        return None
    for text in [*clip.labels, *clip.captions, *clip.meta.get("raw_labels", [])]:
        if pattern.search(text):
            return text
    return None


def velocity_pieces(positions: np.ndarray, fps: float, max_speed_mps: float,
                    margin: int = 0) -> list[tuple[int, int]]:
    """Frame ranges [start, end) left after cutting out every transition faster than the limit.

    A transition t (frame t to t+1) is bad when any joint moves faster than ``max_speed_mps``;
    the clip is split there and ``margin`` more frames are removed on each side of the cut.
    """
    n = positions.shape[0]
    if n < 2:
        return [(0, n)]
    bad = np.flatnonzero((joint_speeds(positions, fps) > max_speed_mps).any(axis=1))
    if bad.size == 0:
        return [(0, n)]
    pieces, start = [], 0
    for t in bad:
        end = t + 1 - margin  # frames up to t belong to the piece before the cut
        if end > start:
            pieces.append((start, end))
        start = max(start, t + 1 + margin)
    if start < n:
        pieces.append((start, n))
    return pieces


# --- windows ------------------------------------------------------------------------------------
def window_starts(num_frames: int, window: int, stride: int) -> list[int]:
    """Start frames of the windows covering a clip: every ``stride`` frames, plus one ending at the
    last frame so that the tail is not lost. A clip shorter than ``window`` gives one window."""
    if num_frames <= window:
        return [0]
    starts = list(range(0, num_frames - window + 1, max(1, stride)))
    if starts[-1] != num_frames - window:
        starts.append(num_frames - window)
    return starts


def pad_window(positions: np.ndarray, window: int) -> tuple[np.ndarray, int]:
    """Cut or pad (repeating the last pose) to exactly ``window`` frames; returns (array, valid length)."""
    length = min(positions.shape[0], window)
    out = np.empty((window,) + positions.shape[1:], dtype=np.float32)
    out[:length] = positions[:length]
    out[length:] = positions[length - 1]
    return out, length


# --- looping --------------------------------------------------------------------------------------


def crop_window(motion: np.ndarray, start: int, n: int, skeleton: Skeleton) -> np.ndarray:
    """Frames ``start .. start + n`` of a window (W, J, 3), normalised at their own first frame (as every
    prepared window is) and padded back to the window's length W."""
    return pad_window(canonicalize(np.asarray(motion[start:start + n]), skeleton), motion.shape[0])[0]


def loop_clip(positions: np.ndarray, fps: float, seconds: float, skeleton: Skeleton,
              cycle_frames: float | None = None, phase: int = 0) -> np.ndarray:
    """Repeat a cyclic motion until it lasts ``seconds``, continuing the root path and heading.

    ``cycle_frames`` is the length of one cycle in frames (default: the clip's length). It may be
    shorter than the clip by one frame (files whose last frame repeats the first pose one cycle
    on) or longer (the training segment of a cyclic clip whose end is held out): the frames of the
    missing part are then filled by PCHIP interpolation between the end of one repetition and the
    start of the next, so no held-out frame is used. Per cycle the root advances by its
    displacement over the known frames scaled to the full cycle, and the heading turns likewise.
    ``phase`` starts the output that many frames into the loop (a random phase per copy).
    """
    n = positions.shape[0]
    cycle = float(cycle_frames if cycle_frames is not None else n)
    if n < 2 or cycle < n - 1:
        raise ValueError(f"cannot loop {n} frames over a cycle of {cycle:g} frames")
    n_out = int(round(seconds * fps))
    reps = int(math.ceil((phase + n_out) / cycle)) + 1
    root = skeleton.root
    scale = cycle / (n - 1)
    start_xz, end_xz = positions[0, root, [0, 2]], positions[-1, root, [0, 2]]
    heading0, heading1 = (facing_direction(positions[i], skeleton) for i in (0, -1))
    dyaw = math.atan2(heading1[0], heading1[2]) - math.atan2(heading0[0], heading0[2])
    step_yaw = ((dyaw + math.pi) % (2 * math.pi) - math.pi) * scale
    step_xz = (end_xz - start_xz) * scale
    pivot = np.array([start_xz[0], 0.0, start_xz[1]])
    keep = np.arange(n) < cycle - 1e-6  # a last frame that starts the next cycle is not repeated
    times, frames, offset = [], [], np.zeros(3)
    for k in range(reps):
        rot = _rotation_y(k * step_yaw)
        frames.append(((positions[keep] - pivot) @ rot.T + pivot + offset))
        times.append(k * cycle + np.arange(n)[keep])
        offset = offset + rot @ np.array([step_xz[0], 0.0, step_xz[1]])
    t_all, p_all = np.concatenate(times), np.concatenate(frames)
    grid = np.arange(phase, phase + n_out, dtype=np.float64)
    out = PchipInterpolator(t_all, p_all.reshape(len(t_all), -1), axis=0)(grid)
    return out.reshape((n_out,) + positions.shape[1:]).astype(np.float32)


def cycle_frames(positions: np.ndarray, skeleton: Skeleton) -> int:
    """Frames per cycle of a looping clip: ``n - 1`` when the last pose repeats the first one
    (the DeepMimic convention), else ``n``. Poses are compared root-relative."""
    n = positions.shape[0]
    if n < 3:
        return n
    rel = positions - positions[:, skeleton.root:skeleton.root + 1]
    seam = float(np.linalg.norm(rel[-1] - rel[0], axis=-1).mean())
    step = float(np.linalg.norm(np.diff(rel, axis=0), axis=-1).mean())
    return n - 1 if seam < 0.5 * step else n


# --- helpers ------------------------------------------------------------------------------------
def stable_fraction(key: str) -> float:
    """A number in [0, 1) from a string, identical on every machine and run (unlike hash())."""
    return int.from_bytes(hashlib.sha1(key.encode("utf-8")).digest()[:8], "big") / 2.0**64


def pad_motions(motions: Sequence[np.ndarray], frames: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Stack motions of different lengths (T_i, J, 3) into (N, T, J, 3) (last pose repeated) and a mask (N, T)."""
    if not motions:
        raise ValueError("no motions")
    t_max = frames or max(len(m) for m in motions)
    out = np.zeros((len(motions), t_max, *motions[0].shape[1:]), np.float32)
    mask = np.zeros((len(motions), t_max), bool)
    for i, m in enumerate(motions):
        n = min(len(m), t_max)
        out[i, :n] = m[:n]
        out[i, n:] = m[n - 1]
        mask[i, :n] = True
    return out, mask
