"""Clip processing: resample, normalise, mirror, filter, augment and cut into windows.

Every function here is pure (arrays in, arrays out) and works on any :class:`Skeleton`: joints are
found by name, never by index. :func:`process_clip` chains them the way ``ramos data prepare``
does; its parameters live in :class:`PrepareConfig`, loaded from ``configs/data/<source>.yaml``.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from scipy.interpolate import PchipInterpolator

from ramos.motion.clip import Clip
from ramos.motion.skeleton import Skeleton

Split = Literal["train", "val", "test"]
SPLITS: tuple[Split, ...] = ("train", "val", "test")


# --- configuration ----------------------------------------------------------------------------
@dataclass
class FilterConfig:
    """Which clips (or parts of clips) are left out.

    Attributes:
        max_speed_mps: a frame transition where any joint moves faster than this (m/s, measured at
            the target fps) is treated as a capture error; ``None`` disables the filter.
        velocity_action: ``"cut"`` removes the offending transitions and keeps every remaining
            piece of at least ``min_frames``; ``"drop"`` rejects the whole clip.
        cut_margin_frames: frames removed on each side of a cut (glitches rarely last one frame).
        exclude: caption/label patterns whose clips are dropped (case-insensitive, whole-word start;
            spaces, '-' and '_' inside a pattern match each other).
        min_label_count: drop clips whose every label is seen in fewer than this many clips
            (0 disables; clips without labels are never dropped by this rule).
    """

    max_speed_mps: float | None = 15.0
    velocity_action: Literal["cut", "drop"] = "cut"
    cut_margin_frames: int = 2
    exclude: list[str] = field(default_factory=lambda: ["tapdance", "tap dance", "backflip", "back flip"])
    min_label_count: int = 0


@dataclass
class AugmentConfig:
    """Training-split augmentation (validation and test windows are never augmented).

    Attributes:
        mirror: add a left/right mirrored copy of every training clip.
        copies: extra randomly sped-up/slowed-down and yawed copies per training clip (and mirror).
        min_speed: slowest speed factor of a copy (0.8: plays 20 % slower).
        max_speed: fastest speed factor of a copy.
        yaw_deg: copies are turned about the vertical axis by a uniform angle in [-yaw_deg, yaw_deg]
            after normalisation (0 keeps every window facing +z).
        loop_seconds: clips whose ``meta["loop"] == "wrap"`` are looped up to this length (0: off).
        seed: seed of the copies' random draws (mixed with the clip id, so results do not depend
            on worker scheduling).
    """

    mirror: bool = True
    copies: int = 0
    min_speed: float = 0.8
    max_speed: float = 1.25
    yaw_deg: float = 0.0
    loop_seconds: float = 0.0
    seed: int = 0


@dataclass
class SplitConfig:
    """How clips are assigned to train/val/test.

    Attributes:
        method: ``"files"`` uses ``train.txt``/``val.txt``/``test.txt`` under the source root
            (HumanML3D); ``"hash"`` assigns whole clips by a hash of their id; ``"segment"`` holds
            out the end of every clip in time (last ``val_ratio`` for val, the ``test_ratio`` before
            it for test), so that no held-out frame is seen in training.
        val_ratio: share of clips (hash) or of each clip's frames (segment) for validation.
        test_ratio: same for test.
        gap_seconds: segment method: unused time between train/test and test/val segments.
        holdout_min_frames: segment method: shortest val/test segment kept (at the target fps).
    """

    method: Literal["files", "hash", "segment"] = "hash"
    val_ratio: float = 0.05
    test_ratio: float = 0.1
    gap_seconds: float = 0.1
    holdout_min_frames: int = 8


@dataclass
class PrepareConfig:
    """All parameters of ``ramos data prepare`` (see docs/data.md for the defaults and why).

    Attributes:
        fps: target frame rate.
        window: frames per window (W).
        stride: frames between the starts of consecutive windows of a long clip.
        min_frames: clips (and pieces left by the velocity filter) shorter than this are dropped.
        normalize: HumanML3D-style normalisation: floor at y = 0 per clip, then per window the
            first-frame root xz at the origin and the first-frame facing turned to +z.
        floor: ``"min_y"`` puts the lowest joint of the clip at y = 0 (HumanML3D), ``"min_feet"``
            the lowest foot joint.
        filters: see :class:`FilterConfig`.
        augment: see :class:`AugmentConfig`.
        split: see :class:`SplitConfig`.
        reader: keyword options passed to the reader's ``list_items`` and ``read_item``.
        label_map: renames labels before anything else (merges two names of one action).
    """

    fps: float = 20.0
    window: int = 200
    stride: int = 100
    min_frames: int = 40
    normalize: bool = True
    floor: Literal["min_y", "min_feet"] = "min_y"
    filters: FilterConfig = field(default_factory=FilterConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    reader: dict[str, Any] = field(default_factory=dict)
    label_map: dict[str, str] = field(default_factory=dict)


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


def clip_bone_lengths(positions: np.ndarray, skeleton: Skeleton) -> np.ndarray:
    """(J-1,) bone lengths of a captured clip (T, J, 3): the median over its frames."""
    return np.median(skeleton.bone_lengths(positions), axis=0)


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
    """The label or caption of ``clip`` that matches ``pattern`` (None when nothing matches)."""
    if pattern is None:
        return None
    for text in [*clip.labels, *clip.captions]:
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


# --- per-clip pipeline ----------------------------------------------------------------------------
@dataclass
class Rejection:
    """A clip, or a piece of one, left out of the data set."""

    item: str
    code: str  # read_error | too_short | high_velocity | excluded_motion | rare_label | no_split
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"item": self.item, "code": self.code, "reason": self.reason}


@dataclass
class ClipWindows:
    """The windows one clip contributes: (n, W, J, 3) float32 positions, (n,) lengths, n metadata dicts."""

    windows: np.ndarray
    lengths: np.ndarray
    meta: list[dict[str, Any]]

    @staticmethod
    def empty(window: int, num_joints: int) -> ClipWindows:
        return ClipWindows(np.zeros((0, window, num_joints, 3), np.float32), np.zeros(0, np.int32), [])


@dataclass
class ClipResult:
    """What processing one clip produced: its windows, its rejections and a few counters."""

    windows: ClipWindows
    rejections: list[Rejection] = field(default_factory=list)
    trimmed_frames: int = 0
    max_speed_mps: float = 0.0


def stable_fraction(key: str) -> float:
    """A number in [0, 1) from a string, identical on every machine and run (unlike hash())."""
    return int.from_bytes(hashlib.sha1(key.encode("utf-8")).digest()[:8], "big") / 2.0**64


def hash_split(clip_id: str, val_ratio: float, test_ratio: float) -> Split:
    """Assign a whole clip to a split by a hash of its id (mirrored copies follow the original)."""
    u = stable_fraction(clip_id)
    if u < val_ratio:
        return "val"
    if u < val_ratio + test_ratio:
        return "test"
    return "train"


def segment_bounds(num_frames: int, fps: float, cfg: SplitConfig) -> dict[Split, tuple[int, int]]:
    """Source-frame ranges of the train, test and val segments of one clip (segment method).

    The clip is cut in its own frame rate, before any resampling, so that interpolation never
    mixes frames of two splits. Layout: [train | gap | test | gap | val].
    """
    gap = int(math.ceil(cfg.gap_seconds * fps))
    n_val = int(round(num_frames * cfg.val_ratio))
    n_test = int(round(num_frames * cfg.test_ratio))
    val = (num_frames - n_val, num_frames)
    test = (val[0] - gap - n_test, val[0] - gap)
    train = (0, max(0, test[0] - gap))
    return {"train": train, "test": test, "val": val}


class ClipProcessor:
    """Turns one :class:`Clip` into windows with :class:`PrepareConfig`, recording what it drops."""

    def __init__(self, cfg: PrepareConfig, skeleton: Skeleton) -> None:
        self.cfg = cfg
        self.skeleton = skeleton
        self.exclude = compile_patterns(cfg.filters.exclude)

    # The one entry point used by the data set writer.
    def process(self, clip: Clip, split: Split | None = None, item: str | None = None) -> ClipResult:
        """Windows of ``clip``; ``split`` is required unless the split method is ``"segment"``."""
        cfg, name = self.cfg, item or clip.source_id
        result = ClipResult(ClipWindows.empty(cfg.window, self.skeleton.num_joints))
        if clip.positions.ndim != 3 or clip.positions.shape[1:] != (self.skeleton.num_joints, 3):
            result.rejections.append(Rejection(name, "read_error",
                                               f"{name}: positions of shape {clip.positions.shape} do not "
                                               f"match the {self.skeleton.num_joints}-joint skeleton"))
            return result
        if not np.isfinite(clip.positions).all():
            result.rejections.append(Rejection(name, "read_error", f"{name}: positions contain NaN or inf"))
            return result
        if cfg.label_map:
            clip.labels = [cfg.label_map.get(label, label) for label in clip.labels]
        hit = excluded_by(clip, self.exclude)
        if hit is not None:
            result.rejections.append(Rejection(name, "excluded_motion", f"{name}: matches exclusion list ({hit!r})"))
            return result
        if cfg.split.method == "segment":
            bounds = segment_bounds(clip.num_frames, clip.fps, cfg.split)
            train_src = clip.positions[slice(*bounds["train"])]
            floor_src = train_src if len(train_src) else clip.positions
            floor = floor_height(floor_src, self.skeleton, cfg.floor) if cfg.normalize else 0.0
            parts = []
            for s in SPLITS:
                a, b = bounds[s]
                if b - a >= 2:
                    parts.append((s, clip.positions[a:b], a))
                else:
                    result.rejections.append(Rejection(f"{name}[{s}]", "too_short",
                                                       f"{name}: {s} segment has {max(0, b - a)} source frames"))
        else:
            if split is None:
                raise ValueError("a split is required unless split.method is 'segment'")
            floor = floor_height(clip.positions, self.skeleton, cfg.floor) if cfg.normalize else 0.0
            parts = [(split, clip.positions, 0)]
        chunks = []
        for s, src, src_start in parts:
            positions = resample(src, clip.fps, cfg.fps)
            positions[..., self.skeleton.up_axis] -= floor
            chunks.append(self._split_part(clip, s, positions, src_start, name, result))
        result.windows = _concat(chunks, cfg.window, self.skeleton.num_joints)
        return result

    def _min_frames(self, split: Split) -> int:
        if self.cfg.split.method == "segment" and split != "train":
            return self.cfg.split.holdout_min_frames
        return self.cfg.min_frames

    def _split_part(self, clip: Clip, split: Split, positions: np.ndarray, src_start: int, name: str,
                    result: ClipResult) -> ClipWindows:
        cfg = self.cfg
        tag = name if cfg.split.method != "segment" else f"{name}[{split}]"
        min_frames = self._min_frames(split)
        if positions.shape[0] < min_frames:
            result.rejections.append(Rejection(tag, "too_short",
                                               f"{tag}: {positions.shape[0]} frames at {cfg.fps:g} fps "
                                               f"< min_frames {min_frames}"))
            return ClipWindows.empty(cfg.window, self.skeleton.num_joints)
        speeds = joint_speeds(positions, cfg.fps) if positions.shape[0] > 1 else np.zeros((1, 1))
        result.max_speed_mps = max(result.max_speed_mps, float(speeds.max()))
        pieces = [(0, positions.shape[0])]
        limit = cfg.filters.max_speed_mps
        if limit is not None and float(speeds.max()) > limit:
            worst_t, worst_j = np.unravel_index(int(np.argmax(speeds)), speeds.shape)
            what = (f"{tag}: joint {self.skeleton.names[worst_j]} moves at {speeds.max():.1f} m/s "
                    f"(frame {worst_t}) > {limit:g} m/s")
            if cfg.filters.velocity_action == "drop":
                result.rejections.append(Rejection(tag, "high_velocity", what))
                return ClipWindows.empty(cfg.window, self.skeleton.num_joints)
            cut = velocity_pieces(positions, cfg.fps, limit, cfg.filters.cut_margin_frames)
            pieces = [(a, b) for a, b in cut if b - a >= min_frames]
            result.trimmed_frames += positions.shape[0] - sum(b - a for a, b in pieces)
            if not pieces:
                result.rejections.append(Rejection(tag, "high_velocity", what + f"; no piece of {min_frames} frames left"))
                return ClipWindows.empty(cfg.window, self.skeleton.num_joints)
        out = []
        for a, b in pieces:
            out.append(self._windows_of(clip, split, positions[a:b], a, src_start, len(pieces) == 1))
        return _concat(out, cfg.window, self.skeleton.num_joints)

    def _variants(self, clip: Clip, split: Split, positions: np.ndarray,
                  whole: bool) -> Iterable[tuple[np.ndarray, dict[str, Any]]]:
        """The original piece, then (training only) its mirror and random speed/yaw/loop copies."""
        aug = self.cfg.augment
        looped = whole and split == "train" and aug.loop_seconds > 0 and clip.meta.get("loop") == "wrap"
        # Cycle length at the target rate. With a segment split only the training part of the cycle
        # is given and the held-out rest is bridged by interpolation (see loop_clip); the cycle is
        # then the clip's frame count, since checking whether its last pose repeats the first
        # would read a held-out frame.
        cycle = 0.0
        if looped:
            held_out = self.cfg.split.method == "segment"
            frames = clip.num_frames if held_out else cycle_frames(clip.positions, self.skeleton)
            cycle = frames * self.cfg.fps / clip.fps
        mirrors = (False, True) if split == "train" and aug.mirror else (False,)
        bones = clip_bone_lengths(positions, self.skeleton)  # median: robust to the few interpolated frames
        rng = np.random.default_rng([aug.seed, int(stable_fraction(clip.source_id) * 2**32)])
        for mirrored in mirrors:
            base = mirror(positions, self.skeleton) if mirrored else positions
            for copy in range(1 + (aug.copies if split == "train" else 0)):
                speed, yaw, phase = 1.0, 0.0, 0
                if copy > 0:
                    speed = float(math.exp(rng.uniform(math.log(aug.min_speed), math.log(aug.max_speed))))
                    yaw = float(rng.uniform(-aug.yaw_deg, aug.yaw_deg))
                p = base if speed == 1.0 else resample(base, self.cfg.fps * speed, self.cfg.fps)
                if looped and p.shape[0] >= 2:
                    cyc = max(cycle / speed, p.shape[0] - 1.0)
                    if copy > 0:
                        phase = int(rng.integers(0, max(1, int(cyc))))
                    p = loop_clip(p, self.cfg.fps, aug.loop_seconds, self.skeleton, cyc, phase)
                # Interpolated frames (resampling, speed copies, bridged loops) shorten the bones
                # along the chord between two poses; every window keeps the captured skeleton.
                # Keep the lowest point where it was, so the clip's floor stays at y = 0.
                up = self.skeleton.up_axis
                fixed = self.skeleton.set_bone_lengths(p, bones)
                fixed[..., up] += p[..., up].min() - fixed[..., up].min()
                p = fixed
                yield p, {"mirrored": mirrored, "speed": round(speed, 4), "yaw_deg": round(yaw, 2),
                          "looped": bool(looped), "copy": copy}

    def _windows_of(self, clip: Clip, split: Split, positions: np.ndarray, piece_start: int, src_start: int,
                    whole: bool) -> ClipWindows:
        cfg = self.cfg
        wins, lengths, metas = [], [], []
        captions_m = None
        for p, info in self._variants(clip, split, positions, whole):
            for start in window_starts(p.shape[0], cfg.window, cfg.stride):
                seg = p[start:start + cfg.window]
                if seg.shape[0] < self._min_frames(split):
                    continue
                if cfg.normalize:
                    seg = canonicalize(seg, self.skeleton)
                    if info["yaw_deg"]:
                        seg = rotate_yaw(seg, info["yaw_deg"], self.skeleton)
                w, length = pad_window(seg, cfg.window)
                wins.append(w)
                lengths.append(length)
                if info["mirrored"] and captions_m is None:
                    captions_m = [mirror_text(c) for c in clip.captions]
                metas.append({
                    "clip_id": clip.source_id, "source": clip.source, "split": split,
                    # A mirrored "turn_left" is a right turn: labels are mirrored like captions.
                    "labels": [mirror_text(x) for x in clip.labels] if info["mirrored"] else list(clip.labels),
                    "captions": captions_m if info["mirrored"] else list(clip.captions),
                    "start": int(start), "piece_start": int(piece_start),
                    "piece_frames": int(positions.shape[0]),
                    "source_start_s": round(src_start / clip.fps, 4) if src_start else 0.0,
                    "fps": cfg.fps, "trimmed": not whole, **info,
                })
        if not wins:
            return ClipWindows.empty(cfg.window, self.skeleton.num_joints)
        return ClipWindows(np.stack(wins), np.asarray(lengths, np.int32), metas)


def _concat(parts: Sequence[ClipWindows], window: int, num_joints: int) -> ClipWindows:
    parts = [p for p in parts if len(p.meta)]
    if not parts:
        return ClipWindows.empty(window, num_joints)
    if len(parts) == 1:
        return parts[0]
    return ClipWindows(np.concatenate([p.windows for p in parts]), np.concatenate([p.lengths for p in parts]),
                       [m for p in parts for m in p.meta])
