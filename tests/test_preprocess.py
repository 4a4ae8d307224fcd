"""Processing: resampling, normalisation, mirroring, filters, windows, looping, the segment split."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ramos.motion.clip import Clip
from ramos.motion.preprocess import (
    canonicalize,
    compile_patterns,
    excluded_by,
    facing_direction,
    joint_speeds,
    loop_clip,
    mirror,
    mirror_text,
    normalize,
    pad_window,
    resample,
    velocity_pieces,
    window_starts,
)
from ramos.motion.skeleton import HUMANML3D, Skeleton
from ramos.stages.data.config import PrepareConfig
from ramos.stages.data.process import ClipProcessor, segment_bounds

# Rest pose of the 22-joint skeleton facing +z (left at +x), pelvis at the origin.
_REST = {
    "pelvis": (0, 0, 0), "left_hip": (0.1, -0.05, 0), "right_hip": (-0.1, -0.05, 0), "spine1": (0, 0.1, 0),
    "left_knee": (0.1, -0.47, 0), "right_knee": (-0.1, -0.47, 0), "spine2": (0, 0.22, 0),
    "left_ankle": (0.1, -0.88, -0.02), "right_ankle": (-0.1, -0.88, -0.02), "spine3": (0, 0.32, 0),
    "left_foot": (0.1, -0.93, 0.1), "right_foot": (-0.1, -0.93, 0.1), "neck": (0, 0.52, 0),
    "left_collar": (0.07, 0.47, 0), "right_collar": (-0.07, 0.47, 0), "head": (0, 0.65, 0.03),
    "left_shoulder": (0.18, 0.46, 0), "right_shoulder": (-0.18, 0.46, 0), "left_elbow": (0.2, 0.2, 0),
    "right_elbow": (-0.2, 0.2, 0), "left_wrist": (0.21, -0.05, 0.03), "right_wrist": (-0.21, -0.05, 0.03),
}


def walking_positions(seconds: float = 4.0, fps: float = 30.0, speed_mps: float = 1.2, yaw_deg: float = 0.0,
                      offset: tuple[float, float, float] = (0.0, 0.0, 0.0), seed: int = 0) -> np.ndarray:
    """A synthetic walk (T, 22, 3): legs and arms swing in opposition at ~1 Hz, pelvis at 0.95 m."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * fps))
    t = np.arange(n) / fps
    rest = np.array([_REST[name] for name in HUMANML3D.names], dtype=np.float64)
    pos = np.repeat(rest[None], n, axis=0)
    phase = 2 * math.pi * 0.9 * t + rng.uniform(0, 2 * math.pi)
    for side, sign in (("left", 1.0), ("right", -1.0)):
        swing = sign * np.sin(phase)
        for joint, depth in (("knee", 0.42), ("ankle", 0.83), ("foot", 0.88)):
            pos[:, HUMANML3D.index(f"{side}_{joint}"), 2] += 0.45 * depth * swing
        for joint, depth in (("elbow", 0.26), ("wrist", 0.5)):
            pos[:, HUMANML3D.index(f"{side}_{joint}"), 2] -= 0.3 * depth * swing
    pos[:, :, 1] += 0.95 + 0.02 * np.sin(2 * phase)[:, None]
    pos[:, :, 2] += (speed_mps * t)[:, None]
    a = math.radians(yaw_deg)
    rot = np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
    return (pos @ rot.T + np.asarray(offset)).astype(np.float32)


def make_clip(clip_id: str = "c0", seconds: float = 4.0, fps: float = 30.0, labels: list[str] | None = None,
              captions: list[str] | None = None, **kw: object) -> Clip:
    return Clip(walking_positions(seconds, fps, **kw), fps, clip_id, "test", captions or [], labels or ["walk"])


def test_resample_keeps_timing_and_linear_motion() -> None:
    t = np.arange(61) / 60.0
    pos = np.zeros((61, 2, 3), np.float32)
    pos[:, :, 0] = (2.0 * t)[:, None]  # 2 m/s along x
    pos[:, 1, 1] = np.sin(2 * math.pi * t)
    out = resample(pos, 60.0, 20.0)
    assert out.shape == (21, 2, 3)
    np.testing.assert_allclose(out[:, 0, 0], 2.0 * np.arange(21) / 20.0, atol=1e-6)
    np.testing.assert_allclose(out[:, 1, 1], np.sin(2 * math.pi * np.arange(21) / 20.0), atol=2e-3)
    up = resample(pos, 16.0, 20.0)  # the backflip's rate: 60 frames at 16 fps = 3.6875 s
    assert up.shape[0] == math.floor(60 / 16 * 20) + 1


def test_resample_never_overshoots() -> None:
    step = np.zeros((10, 1, 3), np.float32)
    step[5:, 0, 1] = 1.0
    out = resample(step, 10.0, 37.0)
    assert out.min() >= 0.0 and out.max() <= 1.0


@pytest.mark.parametrize("yaw", [0.0, 37.0, 160.0, -95.0])
def test_normalize_floor_origin_facing(yaw: float) -> None:
    pos = walking_positions(yaw_deg=yaw, offset=(3.0, 0.4, -2.0))
    out = normalize(pos, HUMANML3D)
    assert out[..., 1].min() == pytest.approx(0.0, abs=1e-5)
    np.testing.assert_allclose(out[0, HUMANML3D.root, [0, 2]], 0.0, atol=1e-5)
    np.testing.assert_allclose(facing_direction(out[0], HUMANML3D), [0, 0, 1], atol=1e-5)
    # The walk goes forward, i.e. along +z, and the left hip is at +x.
    assert out[-1, HUMANML3D.root, 2] > 3.0
    assert out[0, HUMANML3D.index("left_hip"), 0] > 0
    # A rigid motion: bone lengths unchanged.
    np.testing.assert_allclose(HUMANML3D.bone_lengths(out), HUMANML3D.bone_lengths(pos), atol=1e-5)


def test_normalize_uses_joint_names_not_indices() -> None:
    # Store the joints in another order (left and right index blocks swapped), same names.
    order = HUMANML3D.mirror_map
    inv = np.argsort(order)
    names = tuple(HUMANML3D.names[i] for i in order)
    parents = tuple(-1 if HUMANML3D.parents[i] < 0 else int(inv[HUMANML3D.parents[i]]) for i in order)
    skel = Skeleton(names, parents, ())
    pos = walking_positions(yaw_deg=70.0)
    out = normalize(pos[:, order], skel)
    np.testing.assert_allclose(out[:, inv], normalize(pos, HUMANML3D), atol=1e-5)


def test_mirror_twice_is_identity_and_swaps_sides() -> None:
    pos = walking_positions(yaw_deg=20.0)
    m = mirror(pos, HUMANML3D)
    np.testing.assert_array_equal(mirror(m, HUMANML3D), pos)
    lh, rh = HUMANML3D.index("left_hip"), HUMANML3D.index("right_hip")
    np.testing.assert_allclose(m[:, lh, 0], -pos[:, rh, 0])
    # Mirroring keeps a valid body: left stays at +x when facing +z, bones keep their lengths.
    n = normalize(m, HUMANML3D)
    assert n[0, lh, 0] > 0
    np.testing.assert_allclose(HUMANML3D.bone_lengths(m), HUMANML3D.bone_lengths(pos)[:, _mirror_bones()], atol=1e-6)
    assert mirror_text("Turns Left then right, leftover") == "Turns Right then left, leftover"


def _mirror_bones() -> np.ndarray:
    bones = [tuple(b) for b in HUMANML3D.bones.tolist()]
    mm = HUMANML3D.mirror_map
    return np.array([bones.index((int(mm[p]), int(mm[c]))) for p, c in bones])


def test_windows_and_padding() -> None:
    assert window_starts(150, 200, 100) == [0]
    assert window_starts(450, 200, 100) == [0, 100, 200, 250]
    pos = walking_positions(seconds=2.0)
    w, length = pad_window(pos, 200)
    assert w.shape == (200, 22, 3) and length == 60
    np.testing.assert_array_equal(w[60:], np.repeat(pos[-1:], 140, axis=0))


def test_velocity_pieces_cut_out_glitches() -> None:
    pos = walking_positions(seconds=10.0, fps=20.0)
    pos[80:83, 5] += 2.0  # a 3-frame marker swap: the knee jumps 2 m
    speeds = joint_speeds(pos, 20.0)
    assert speeds.max() > 30.0
    pieces = velocity_pieces(pos, 20.0, 12.0, margin=2)
    assert pieces == [(0, 78), (85, 200)]
    for a, b in pieces:
        assert joint_speeds(pos[a:b], 20.0).max() < 12.0


def test_processor_rejects_with_reasons() -> None:
    cfg = PrepareConfig()
    proc = ClipProcessor(cfg, HUMANML3D)
    short = proc.process(make_clip("short", seconds=1.5), "train")
    assert not short.windows.meta and short.rejections[0].code == "too_short"
    flip = proc.process(make_clip("flip", captions=["a person does a Back-Flip"]), "train")
    assert flip.rejections[0].code == "excluded_motion" and "Back-Flip" in flip.rejections[0].reason
    tap = proc.process(make_clip("tap", labels=["tapdance"]), "train")
    assert tap.rejections[0].code == "excluded_motion"
    ok = proc.process(make_clip("ok", captions=["a person walks back and flips a coin"]), "train")
    assert not ok.rejections and len(ok.windows.meta) == 2  # original + mirror
    glitch = make_clip("glitch", seconds=12.0)
    glitch.positions[100:102, 20] += 3.0
    cfg_drop = PrepareConfig()
    cfg_drop.filters.velocity_action = "drop"
    dropped = ClipProcessor(cfg_drop, HUMANML3D).process(glitch, "val")
    assert dropped.rejections[0].code == "high_velocity" and "left_wrist" in dropped.rejections[0].reason
    cut = proc.process(glitch, "val")
    assert not cut.rejections and cut.trimmed_frames > 0
    assert {m["trimmed"] for m in cut.windows.meta} == {True}
    assert max(joint_speeds(w[:n], cfg.fps).max() for w, n in zip(cut.windows.windows, cut.windows.lengths)) < 15.0


def test_exclusion_patterns() -> None:
    pat = compile_patterns(["tap dance", "backflip"])
    assert excluded_by(make_clip(captions=["someone does a tap-dance"]), pat)
    assert excluded_by(make_clip(labels=["Tap_Dance"]), pat)
    assert excluded_by(make_clip(captions=["two backflips in a row"]), pat)
    assert excluded_by(make_clip(captions=["he taps the dance floor"]), pat) is None
    assert compile_patterns([]) is None


def test_processed_windows_are_normalised_and_padded() -> None:
    cfg = PrepareConfig()
    cfg.augment.mirror = False
    res = ClipProcessor(cfg, HUMANML3D).process(make_clip(seconds=16.0, yaw_deg=60.0, offset=(1, 0.3, 1)), "train")
    w, lengths = res.windows.windows, res.windows.lengths
    assert w.shape == (3, 200, 22, 3) and lengths.tolist() == [200, 200, 200]  # starts 0, 100, 120
    for win in w:
        np.testing.assert_allclose(win[0, 0, [0, 2]], 0.0, atol=1e-5)
        np.testing.assert_allclose(facing_direction(win[0], HUMANML3D), [0, 0, 1], atol=1e-4)
    assert w[..., 1].min() >= -1e-5  # the clip's floor is at 0
    short = ClipProcessor(cfg, HUMANML3D).process(make_clip(seconds=5.0), "train")
    assert short.windows.lengths.tolist() == [100]


def test_loop_clip_continues_path() -> None:
    pos = walking_positions(seconds=1.0 / 0.9, fps=20.0, seed=3)  # exactly one gait cycle (~22 frames)
    out = loop_clip(pos, 20.0, 10.0, HUMANML3D)
    assert out.shape == (200, 22, 3)
    assert joint_speeds(out, 20.0).max() < 1.5 * joint_speeds(pos, 20.0).max() + 0.5
    assert out[-1, 0, 2] > 10.0  # kept walking forward at ~1.2 m/s
    # Only the first 70 % of the cycle is known: the rest is bridged, still smoothly.
    part = pos[: int(0.7 * len(pos))]
    bridged = loop_clip(part, 20.0, 10.0, HUMANML3D, cycle_frames=len(pos))
    assert bridged.shape == (200, 22, 3) and np.isfinite(bridged).all()
    assert joint_speeds(bridged, 20.0).max() < 3 * joint_speeds(pos, 20.0).max()


def test_segment_split_holds_out_time() -> None:
    cfg = PrepareConfig()
    cfg.split.method = "segment"
    cfg.split.val_ratio = cfg.split.test_ratio = 0.15
    cfg.split.gap_seconds = 0.1
    b = segment_bounds(300, 60.0, cfg.split)
    assert b == {"train": (0, 198), "test": (204, 249), "val": (255, 300)}
    cfg.min_frames = 10
    cfg.augment.copies = 3
    cfg.augment.yaw_deg = 10.0
    cfg.augment.loop_seconds = 10.0
    clip = make_clip("loop", seconds=3.0, fps=60.0)
    clip.meta["loop"] = "wrap"
    res = ClipProcessor(cfg, HUMANML3D).process(clip)
    splits = [m["split"] for m in res.windows.meta]
    assert splits.count("val") == 1 and splits.count("test") == 1  # never augmented
    assert splits.count("train") >= 8  # 2 mirrors x 4 copies, looped to 10 s
    val = res.windows.windows[splits.index("val")]
    assert res.windows.lengths[splits.index("val")] == math.floor((27 - 1) / 60 * 20) + 1  # 180 frames: 27 held out
    train_windows = res.windows.windows[np.array(splits) == "train"]
    assert (res.windows.lengths[np.array(splits) == "train"] == 200).all()
    assert np.isfinite(train_windows).all() and np.isfinite(val).all()


def test_canonicalize_rejects_degenerate_pose() -> None:
    pos = np.zeros((3, 22, 3), np.float32)
    with pytest.raises(ValueError, match="facing"):
        canonicalize(pos, HUMANML3D)


def test_resample_integer_ratio_matches_interpolation() -> None:
    pos = walking_positions(seconds=3.0, fps=60.0)
    fast = resample(pos, 60.0, 20.0)
    ref = resample(pos, 60.0, 20.000001)  # same grid up to 1e-6, through the interpolator
    assert fast.shape == ref.shape == (60, 22, 3)
    np.testing.assert_allclose(fast, ref, atol=1e-4)


def test_mirror_text_swaps_sides_inside_labels():
    assert mirror_text("turn_left") == "turn_right"
    assert mirror_text("right_kick leftover") == "left_kick leftover"
