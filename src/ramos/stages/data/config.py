"""The configuration of ``ramos data prepare`` (see docs/data.md for the defaults and why)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


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
        copies: extra randomly sped-up/slowed-down and yawed copies per training clip (and mirror);
            None: as many as ``min_train_windows`` asks for.
        min_train_windows: with ``copies: None``, a training split of fewer windows than this gets
            enough copies to reach about this many (0: none). 3,000: the embedded set's size, on which the
            training budgets (optimiser steps) were tuned; a 60-clip set otherwise trains on ~50 windows,
            which its motion VAE learns by heart (docs/motion_vae.md, "Training budgets"). HumanML3D-sized
            sets (23,000 training windows) get none. The manifest's ``augmentation`` says what was done.
        min_speed: slowest speed factor of a copy (0.8: plays 20 % slower).
        max_speed: fastest speed factor of a copy.
        yaw_deg: copies are turned about the vertical axis by a uniform angle in [-yaw_deg, yaw_deg]
            after normalisation (0 keeps every window facing +z); the original windows are never turned.
        loop_seconds: clips whose ``meta["loop"] == "wrap"`` are looped up to this length (0: off).
        seed: seed of the copies' random draws (mixed with the clip id, so results do not depend
            on worker scheduling).
    """

    mirror: bool = True
    copies: int | None = None
    min_train_windows: int = 3000
    min_speed: float = 0.8
    max_speed: float = 1.25
    yaw_deg: float = 15.0
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

