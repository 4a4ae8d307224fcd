"""One clip in, its windows out: the per-clip part of ``ramos data prepare``.

:class:`ClipProcessor` chains the pure functions of :mod:`ramos.motion.preprocess` (resample,
normalise, filter, loop, mirror, augment, cut into windows) with the settings of a
:class:`~ramos.stages.data.config.PrepareConfig`, and records what it leaves out and why.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ramos.motion.clip import Clip
from ramos.motion.dataset import SPLITS, Split
from ramos.motion.preprocess import (
    canonicalize,
    compile_patterns,
    cycle_frames,
    excluded_by,
    floor_height,
    joint_speeds,
    loop_clip,
    mirror,
    mirror_text,
    pad_window,
    resample,
    rotate_yaw,
    stable_fraction,
    velocity_pieces,
    window_starts,
)
from ramos.motion.rigid import make_rigid, rest_skeleton
from ramos.motion.skeleton import Skeleton
from ramos.stages.data.config import AugmentConfig, PrepareConfig, SplitConfig


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
    annotation: dict[str, Any] | None = None  # the clip's meta["annotation"]: which label set matched it


def hash_split(clip_id: str, val_ratio: float, test_ratio: float) -> Split:
    """Assign a whole clip to a split by a hash of its id (mirrored copies follow the original)."""
    u = stable_fraction(clip_id)
    if u < val_ratio:
        return "val"
    if u < val_ratio + test_ratio:
        return "test"
    return "train"


def copies_for(train_windows: int, aug: AugmentConfig, counted_with: int = 0) -> int:
    """Speed/yaw copies per training clip (and mirror): ``aug.copies`` when set; else enough to bring a
    training split of ``train_windows`` windows, counted with ``counted_with`` copies, up to about
    ``aug.min_train_windows``, and none for a split already that large without copies. Copies multiply
    the windows of every clip about alike, so a count is enough to scale them."""
    if aug.copies is not None:
        return aug.copies
    if aug.min_train_windows <= 0 or train_windows <= 0:
        return counted_with
    if counted_with == 0 and train_windows >= aug.min_train_windows:
        return 0
    return max(counted_with, math.ceil((1 + counted_with) * aug.min_train_windows / train_windows) - 1)


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
            if clip.meta.get("segments"):
                clip.meta["segments"] = [{**seg, "labels": [cfg.label_map.get(x, x) for x in seg["labels"]]}
                                         for seg in clip.meta["segments"]]
        hit = excluded_by(clip, self.exclude)
        if hit is not None:
            result.rejections.append(Rejection(name, "excluded_motion", f"{name}: matches exclusion list ({hit!r})"))
            return result
        keep = self._cut_excluded_segments(clip, name, result)
        cut = keep != [(0, clip.num_frames)]
        if cfg.split.method == "segment":
            bounds = segment_bounds(clip.num_frames, clip.fps, cfg.split)
            train_src = clip.positions[slice(*bounds["train"])]
            floor_src = train_src if len(train_src) else clip.positions
            floor = floor_height(floor_src, self.skeleton, cfg.floor) if cfg.normalize else 0.0
            parts = []
            for s in SPLITS:
                a, b = bounds[s]
                pieces = [(max(a, x), min(b, y)) for x, y in keep if min(b, y) - max(a, x) >= 2]
                if pieces:
                    parts += [(s, clip.positions[x:y], x) for x, y in pieces]
                else:
                    frames = sum(max(0, min(b, y) - max(a, x)) for x, y in keep)
                    result.rejections.append(Rejection(f"{name}[{s}]", "too_short",
                                                       f"{name}: {s} segment has {frames} source frames"))
        else:
            if split is None:
                raise ValueError("a split is required unless split.method is 'segment'")
            floor = floor_height(clip.positions, self.skeleton, cfg.floor) if cfg.normalize else 0.0
            parts = [(split, clip.positions[a:b], a) for a, b in keep]
        chunks = []
        for s, src, src_start in parts:
            positions = resample(src, clip.fps, cfg.fps)
            positions[..., self.skeleton.up_axis] -= floor
            chunks.append(self._split_part(clip, s, positions, src_start, name, result, cut))
        result.windows = _concat(chunks, cfg.window, self.skeleton.num_joints)
        return result

    def _min_frames(self, split: Split) -> int:
        if self.cfg.split.method == "segment" and split != "train":
            return self.cfg.split.holdout_min_frames
        return self.cfg.min_frames

    def _cut_excluded_segments(self, clip: Clip, name: str, result: ClipResult) -> list[tuple[int, int]]:
        """Source-frame ranges [start, end) left after cutting out every frame segment of the clip
        (``meta["segments"]``) whose label or raw label matches the exclusion list.

        A labelled segment is a few seconds of a long sequence (a backflip in a gymnastics take):
        cutting it keeps the rest of the take, while dropping the take would lose minutes of
        ordinary motion for seconds of a rare one. Segment bounds are rounded outwards.
        """
        n = clip.num_frames
        segments = clip.meta.get("segments") or []
        if self.exclude is None or not segments:
            return [(0, n)]
        excluded = np.zeros(n, bool)
        for seg in segments:
            hit = next((t for t in [*seg["labels"], seg.get("raw_label", "")] if t and self.exclude.search(t)), None)
            if hit is None:
                continue
            a = max(0, math.floor(seg["start_s"] * clip.fps))
            b = min(n, math.ceil(seg["end_s"] * clip.fps) + 1)
            if a >= b:
                continue
            excluded[a:b] = True
            result.rejections.append(Rejection(f"{name}@{seg['start_s']:g}-{seg['end_s']:g}s", "excluded_motion",
                                               f"{name}: {seg['start_s']:g}-{seg['end_s']:g} s labelled {hit!r} "
                                               "(exclusion list) cut out"))
        edges = np.flatnonzero(np.diff(np.concatenate([[True], excluded, [True]]).astype(np.int8)))
        return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2])]

    def _split_part(self, clip: Clip, split: Split, positions: np.ndarray, src_start: int, name: str,
                    result: ClipResult, cut: bool = False) -> ClipWindows:
        cfg = self.cfg
        tag = name if cfg.split.method != "segment" else f"{name}[{split}]"
        if cut:  # one of several pieces left by the exclusion of labelled segments
            tag += f"@{src_start / clip.fps:g}s"
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
            out.append(self._windows_of(clip, split, positions[a:b], a, src_start, len(pieces) == 1 and not cut))
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
        rng = np.random.default_rng([aug.seed, int(stable_fraction(clip.source_id) * 2**32)])
        for mirrored in mirrors:
            base = mirror(positions, self.skeleton) if mirrored else positions
            rest = rest_skeleton(base, self.skeleton)  # medians: robust to the few interpolated frames
            for copy in range(1 + ((aug.copies or 0) if split == "train" else 0)):
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
                # and bend rigid parts; every window keeps the captured skeleton, floor at y = 0.
                p = make_rigid(p, self.skeleton, rest)
                yield p, {"mirrored": mirrored, "speed": round(speed, 4), "yaw_deg": round(yaw, 2),
                          "looped": bool(looped), "copy": copy}

    def _windows_of(self, clip: Clip, split: Split, positions: np.ndarray, piece_start: int, src_start: int,
                    whole: bool) -> ClipWindows:
        cfg = self.cfg
        wins, lengths, metas = [], [], []
        captions_m = tokens_m = None
        # HumanML3D's word/POS tokens, one string per caption: what Guo et al.'s text encoder reads.
        tokens = list(clip.meta.get("caption_tokens") or [])
        segments = clip.meta.get("segments") or []
        annotated = bool(segments) or "raw_labels" in clip.meta
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
                    tokens_m = [mirror_text(t) for t in tokens]
                labels, raw = list(clip.labels), list(clip.meta.get("raw_labels", []))
                if segments:
                    # Source time (s) of each valid frame of the window: through the part's offset,
                    # the piece's start, the copy's speed and (looped copies) the cycle.
                    frames = (start + np.arange(length)) * info["speed"]
                    if info["looped"]:
                        frames = frames % positions.shape[0]
                    times = src_start / clip.fps + (piece_start + frames) / cfg.fps
                    seg_labels, seg_raw = segment_labels(segments, times)
                    labels = [*seg_labels, *(x for x in labels if x not in seg_labels)]
                    raw = [*seg_raw, *(x for x in raw if x not in seg_raw)]
                if info["mirrored"]:
                    # A mirrored "turn_left" is a right turn: labels are mirrored like captions.
                    labels, raw = [mirror_text(x) for x in labels], [mirror_text(x) for x in raw]
                metas.append({
                    "clip_id": clip.source_id, "source": clip.source, "split": split,
                    "labels": labels,
                    **({"raw_labels": raw} if annotated else {}),
                    "captions": captions_m if info["mirrored"] else list(clip.captions),
                    **({"caption_tokens": tokens_m if info["mirrored"] else tokens} if any(tokens) else {}),
                    "start": int(start), "piece_start": int(piece_start),
                    "piece_frames": int(positions.shape[0]),
                    "source_start_s": round(src_start / clip.fps, 4) if src_start else 0.0,
                    "fps": cfg.fps, "trimmed": not whole, **info,
                })
        if not wins:
            return ClipWindows.empty(cfg.window, self.skeleton.num_joints)
        return ClipWindows(np.stack(wins), np.asarray(lengths, np.int32), metas)


def segment_labels(segments: Sequence[dict[str, Any]], times: np.ndarray) -> tuple[list[str], list[str]]:
    """Labels and raw labels of the frame segments covering ``times`` (seconds), most frames first.

    ``segments`` are ``{"start_s", "end_s", "labels", "raw_label"}`` (a clip's ``meta["segments"]``);
    a frame at ``t`` is covered when ``start_s <= t < end_s``. A label's count is the number of
    frames any of its segments covers, so overlapping segments (several annotators) are not
    counted twice; ties keep the order of the segments. The first label is the window's class
    (``MotionDataset.label_id``).
    """
    cover: dict[str, np.ndarray] = {}
    raw_cover: dict[str, np.ndarray] = {}
    for seg in segments:
        inside = (times >= seg["start_s"]) & (times < seg["end_s"])
        if not inside.any():
            continue
        for lab in seg["labels"]:
            cover[lab] = cover[lab] | inside if lab in cover else inside
        raw = seg.get("raw_label", "")
        if raw:
            raw_cover[raw] = raw_cover[raw] | inside if raw in raw_cover else inside

    def ranked(c: dict[str, np.ndarray]) -> list[str]:
        return [k for k, _ in sorted(c.items(), key=lambda kv: -int(kv[1].sum()))]  # stable: ties keep order

    return ranked(cover), ranked(raw_cover)


def _concat(parts: Sequence[ClipWindows], window: int, num_joints: int) -> ClipWindows:
    parts = [p for p in parts if len(p.meta)]
    if not parts:
        return ClipWindows.empty(window, num_joints)
    if len(parts) == 1:
        return parts[0]
    return ClipWindows(np.concatenate([p.windows for p in parts]), np.concatenate([p.lengths for p in parts]),
                       [m for p in parts for m in p.meta])
