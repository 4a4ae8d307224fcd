"""Retargeting onto a user's character skeleton (BVH): Mixamo-like and CMU-like rigs, real motions.

The rigs are written here as BVH text with a real human's proportions: a Mixamo-style character
in centimetres, in a T-pose, with fingers and end joints; the CMU mocap skeleton (cgspeed's BVH
conversion of subject 01, in CMU's 1/0.45 inch unit) with its legs-apart rest pose, zero-length
LHipJoint, LowerBack, Neck and LeftShoulder joints; and the Mixamo character again in an A-pose,
z up, facing -y, six channels on every joint in XYZ order.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from ramos.motion.export import RetargetError, load_target, retarget, save_retargeted_bvh
from ramos.motion.io.builtin import load_all
from ramos.motion.io.bvh import map_to_skeleton, read_bvh, resolve_joint_map
from ramos.motion.metrics import foot_skating_ratio
from ramos.motion.preprocess import resample
from ramos.motion.skeleton import HUMANML3D

# --- rigs ----------------------------------------------------------------------------------------------------
# A node: (name, offset, children); a name of None is an End Site.
_FINGERS = {  # Mixamo left hand, centimetres: first-joint offset from the hand, then phalanx lengths
    "Thumb": ((2.9, -1.2, 2.7), (3.0, 2.6, 2.2)),
    "Index": ((9.4, 0.2, 2.3), (3.7, 2.6, 2.2)),
    "Middle": ((9.6, 0.2, 0.3), (3.9, 2.8, 2.3)),
    "Ring": ((9.1, 0.0, -1.8), (3.6, 2.6, 2.2)),
    "Pinky": ((8.2, -0.3, -3.6), (2.9, 2.0, 1.9)),
}


def _chain(names_offsets, leaf_end=(0.0, 0.0, 0.0)):
    """Nested nodes from a list of (name, offset), the last one closed by an End Site."""
    node = None
    for name, offset in reversed(names_offsets):
        node = (name, offset, [node] if node is not None else [(None, leaf_end, [])])
    return node


def _mixamo_side(side: str, sign: float, arm_drop_deg: float = 0.0):
    p = f"mixamorig:{side}"
    # The arms lowered by arm_drop_deg about the forward axis (0: the T-pose).
    a = -sign * np.radians(arm_drop_deg)
    turn = np.array([[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0], [0.0, 0.0, 1.0]])

    def arm(v):
        return tuple(float(x) for x in turn @ np.asarray(v, dtype=float))

    fingers = []
    for finger, (first, lengths) in _FINGERS.items():
        direction = np.array(first) / np.linalg.norm(first) if finger == "Thumb" else np.array([1.0, 0.0, 0.0])
        seq = [(f"{p}Hand{finger}1", arm((sign * first[0], first[1], first[2])))]
        seq += [(f"{p}Hand{finger}{k + 2}", arm(tuple(float(v) for v in direction * length * [sign, 1, 1])))
                for k, length in enumerate(lengths)]
        fingers.append(_chain(seq, arm((sign * 1.5, 0.0, 0.0))))
    hand = (f"{p}Hand", arm((sign * 26.5, 0.0, 0.0)), fingers)
    forearm = (f"{p}ForeArm", arm((sign * 27.0, 0.0, 0.0)), [hand])
    upper = (f"{p}Arm", arm((sign * 12.3, 0.0, 0.0)), [forearm])
    shoulder = (f"{p}Shoulder", (sign * 6.1, 9.1, -0.3), [upper])
    leg = _chain([(f"{p}UpLeg", (sign * 8.9, -6.6, -0.6)), (f"{p}Leg", (0.0, -42.5, 0.4)),
                  (f"{p}Foot", (0.0, -41.9, -2.6)), (f"{p}ToeBase", (0.0, -6.3, 12.8)),
                  (f"{p}Toe_End", (0.0, 0.0, 8.4))], (0.0, 0.0, 2.0))
    return shoulder, leg


def mixamo_rig(arm_drop_deg: float = 0.0):
    left_shoulder, left_leg = _mixamo_side("Left", 1.0, arm_drop_deg)
    right_shoulder, right_leg = _mixamo_side("Right", -1.0, arm_drop_deg)
    head = _chain([("mixamorig:Neck", (0.0, 15.0, 1.0)), ("mixamorig:Head", (0.0, 10.2, 3.1)),
                   ("mixamorig:HeadTop_End", (0.0, 18.0, 6.5))], (0.0, 4.0, 1.0))
    spine2 = ("mixamorig:Spine2", (0.0, 13.3, 0.0), [head, left_shoulder, right_shoulder])
    spine = ("mixamorig:Spine", (0.0, 9.9, -1.2), [("mixamorig:Spine1", (0.0, 11.6, 0.0), [spine2])])
    return ("mixamorig:Hips", (0.0, 97.3, 0.0), [spine, left_leg, right_leg])


def cmu_rig():
    # cgspeed's CMU conversion (subject 01), CMU units (1/0.45 inch).
    def side(s, x_sign, hip, femur, tibia, foot, toe, clav, humerus, radius, index, index_end, thumb):
        p, short = ("Left", "L") if x_sign > 0 else ("Right", "R")
        leg = (f"{short}HipJoint", (0.0, 0.0, 0.0), [_chain([(f"{p}UpLeg", hip), (f"{p}Leg", femur),
                                                            (f"{p}Foot", tibia), (f"{p}ToeBase", foot)], toe)])
        hand = (f"{p}Hand", radius, [
            (f"{p}FingerBase", (0.0, 0.0, 0.0), [_chain([(f"{p}HandIndex1", index)], index_end)]),
            (f"{short}Thumb", (0.0, 0.0, 0.0), [(None, thumb, [])]),
        ])
        arm = (f"{p}Shoulder", (0.0, 0.0, 0.0), [(f"{p}Arm", clav, [(f"{p}ForeArm", humerus, [hand])])])
        return leg, arm

    left_leg, left_arm = side("l", 1, (1.85590, -1.73949, 0.84976), (2.36836, -6.50702, 0.0),
                              (2.53268, -6.95849, 0.0), (0.15935, -0.43781, 1.94506), (0.0, 0.0, 1.00661),
                              (3.27650, 0.85634, 0.05396), (4.96755, 0.0, 0.0), (3.35751, 0.0, 0.0),
                              (0.79697, 0.0, 0.0), (0.64254, 0.0, 0.0), (0.65235, 0.0, 0.65235))
    right_leg, right_arm = side("r", -1, (-1.68297, -1.73949, 0.84976), (-2.44709, -6.72334, 0.0),
                                (-2.43843, -6.69953, 0.0), (-0.20854, -0.57295, 2.02172), (0.0, 0.0, 1.05594),
                                (-3.24434, 1.02034, 0.34688), (-5.21859, 0.0, 0.0), (-3.36504, 0.0, 0.0),
                                (-0.62044, 0.0, 0.0), (-0.50022, 0.0, 0.0), (-0.50786, 0.0, 0.50786))
    neck = ("Neck", (0.0, 0.0, 0.0), [_chain([("Neck1", (-0.12403, 1.43168, 0.27585)),
                                              ("Head", (0.17855, 1.46173, -0.32578))], (0.07217, 1.51590, -0.14537))])
    spine1 = ("Spine1", (0.05490, 2.19225, -0.19086), [neck, left_arm, right_arm])
    back = ("LowerBack", (0.0, 0.0, 0.0), [("Spine", (-0.01560, 2.23971, -0.03712), [spine1])])
    return ("Hips", (0.0, 0.0, 0.0), [left_leg, right_leg, back])


def _rotate(node, m):
    name, offset, kids = node
    return name, tuple(np.asarray(m) @ np.asarray(offset, dtype=float)), [_rotate(k, m) for k in kids]


def bvh_text(root, root_channels: str, joint_channels: str, frames: int = 0) -> str:
    lines = ["HIERARCHY"]
    count = 0

    def emit(node, depth, is_root=False):
        nonlocal count
        name, offset, kids = node
        ind = "\t" * depth
        off = " ".join(f"{v:.5f}" for v in offset)
        if name is None:
            lines.extend([f"{ind}End Site", f"{ind}{{", f"{ind}\tOFFSET {off}", f"{ind}}}"])
            return
        chans = root_channels if is_root else joint_channels
        count += len(chans.split())
        lines.extend([f"{ind}{'ROOT' if is_root else 'JOINT'} {name}", f"{ind}{{", f"{ind}\tOFFSET {off}",
                      f"{ind}\tCHANNELS {len(chans.split())} {chans}"])
        for k in kids:
            emit(k, depth + 1)
        lines.append(f"{ind}}}")

    emit(root, 0, is_root=True)
    lines += ["MOTION", f"Frames: {frames}", "Frame Time: 0.0333333"]
    lines += [" ".join(["0.0"] * count)] * frames
    return "\n".join(lines) + "\n"


_Z_UP_FACING_MINUS_Y = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])  # y -> z, z -> -y

RIGS = {
    "mixamo": lambda: bvh_text(mixamo_rig(), "Xposition Yposition Zposition Zrotation Xrotation Yrotation",
                               "Zrotation Xrotation Yrotation", frames=2),
    "cmu": lambda: bvh_text(cmu_rig(), "Xposition Yposition Zposition Zrotation Yrotation Xrotation",
                            "Zrotation Yrotation Xrotation", frames=0),
    "mixamo_apose_zup": lambda: bvh_text(_rotate(mixamo_rig(arm_drop_deg=45.0), _Z_UP_FACING_MINUS_Y),
                                         "Xposition Yposition Zposition Xrotation Yrotation Zrotation",
                                         "Xposition Yposition Zposition Xrotation Yrotation Zrotation").split("MOTION")[0],
}


@pytest.fixture(scope="module")
def motions():
    """Real clips of the embedded set at 20 fps: (T, 22, 3) metres."""
    clips = {c.source_id: c for c in load_all()}
    return {cid: resample(clips[cid].positions, clips[cid].fps, 20.0)
            for cid in ("humanoid3d_walk", "humanoid3d_run", "humanoid3d_jump", "humanoid3d_dance_a",
                        "walker_turn_left0")}


@pytest.fixture(scope="module")
def rig_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("rigs")
    out = {}
    for key, make in RIGS.items():
        out[key] = folder / f"{key}.bvh"
        out[key].write_text(make())
    return out


# --- loading the character --------------------------------------------------------------------------------
@pytest.mark.parametrize("key, joint_map, unit, axes", [
    ("mixamo", "mixamo", 0.01, "+y up, facing +z"),
    ("cmu", "cmu", 0.0254 / 0.45, "+y up, facing +z"),
    ("mixamo_apose_zup", "mixamo", 0.01, "+z up, facing -y"),
])
def test_load_target_finds_map_unit_and_axes(rig_files, key, joint_map, unit, axes):
    rig = load_target(rig_files[key])
    assert rig.joint_map == joint_map
    assert rig.unit_m == pytest.approx(unit)
    assert rig.axes_text == axes
    assert 0.75 < rig.leg_m < 0.9  # an adult's leg
    assert np.isclose(np.linalg.det(rig.axes), 1.0)


# --- the targets -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("key", list(RIGS))
@pytest.mark.parametrize("clip_id", ["humanoid3d_walk", "humanoid3d_run", "humanoid3d_jump", "humanoid3d_dance_a",
                                     "walker_turn_left0"])
def test_retargeted_bvh_meets_the_targets(tmp_path, rig_files, motions, key, clip_id):
    source = motions[clip_id]
    rig = load_target(rig_files[key])
    path = save_retargeted_bvh(source, tmp_path / "out.bvh", rig, fps=20.0)
    back = read_bvh(path)

    # Same hierarchy, names and OFFSETs as the character file; the frames and rate of the motion.
    assert back.names == rig.names and back.parents == rig.parents
    assert np.array_equal(back.offsets, rig.bvh.offsets)
    assert back.num_frames == len(source) and 1.0 / back.frame_time == pytest.approx(20.0, rel=1e-6)
    if key != "mixamo_apose_zup":  # its own channel order is kept
        assert back.channels == rig.bvh.channels

    # Bone lengths: the OFFSET lengths on every frame, within 0.1 mm.
    pos = back.positions()
    child = [j for j, p in enumerate(back.parents) if p >= 0]
    lengths = np.linalg.norm(pos[:, child] - pos[:, [back.parents[j] for j in child]], axis=-1)
    assert np.abs(lengths - np.linalg.norm(back.offsets[child], axis=-1)).max() * rig.unit_m < 1e-4

    # Skating of the read-back motion at the source's size: no worse than 1.1x the source's.
    result = retarget(source, rig, fps=20.0)
    _, found = resolve_joint_map(back.names)
    mapped = (map_to_skeleton(pos, found, str(path)) @ rig.axes / result.scale).astype(np.float32)
    assert np.abs(mapped - result.mapped).max() < 1e-4
    # One frame of slack: the metric's 5 cm contact height is crossed by a swinging toe a few mm
    # lower or higher on a character whose feet are shaped differently (one frame = 4% of a walk).
    src_skating = foot_skating_ratio(source, HUMANML3D, 20.0)
    assert result.skating_source == pytest.approx(src_skating)
    assert foot_skating_ratio(mapped, HUMANML3D, 20.0) <= 1.1 * src_skating + 1.0 / (len(source) - 1) + 1e-9

    # Bone directions: a one-bone joint's exactly; the best fits of the hips and chest (whose bones
    # are laid out differently on every skeleton) leave a few degrees on average.
    assert result.direction_error_deg < 8.0
    for ours, parent in (("left_elbow", "left_shoulder"), ("right_knee", "right_hip"), ("left_ankle", "left_knee")):
        got = mapped[:, HUMANML3D.index(ours)] - mapped[:, HUMANML3D.index(parent)]
        want = source[:, HUMANML3D.index(ours)] - source[:, HUMANML3D.index(parent)]
        cos = (got * want).sum(-1) / np.linalg.norm(got, axis=-1) / np.linalg.norm(want, axis=-1)
        assert np.degrees(np.arccos(np.clip(cos, -1, 1))).max() < 0.1

    # Up is up, left is left, feet on the floor.
    up, left = 1, 0
    assert (mapped[:, HUMANML3D.index("head"), up] > mapped[:, HUMANML3D.index("left_ankle"), up]).all()
    side = mapped[:, HUMANML3D.index("left_hip"), left] - mapped[:, HUMANML3D.index("right_hip"), left]
    src_side = source[:, HUMANML3D.index("left_hip"), left] - source[:, HUMANML3D.index("right_hip"), left]
    assert (np.sign(side) == np.sign(src_side)).mean() > 0.95
    feet = mapped[:, list(HUMANML3D.feet), up]
    src_feet = source[:, list(HUMANML3D.feet), up]
    low = src_feet < 0.05
    assert abs(np.median((feet - src_feet)[low])) < 1e-3
    assert abs(np.percentile(feet.min(-1), 5) - np.percentile(src_feet.min(-1), 5)) < 0.015


def test_unmapped_joints_keep_their_rest_rotation(tmp_path, rig_files, motions):
    """Fingers, the head's end joint and the zero-offset CMU joints below mapped ones stay at rest."""
    for key in ("mixamo", "cmu"):
        rig = load_target(rig_files[key])
        back = read_bvh(save_retargeted_bvh(motions["humanoid3d_dance_a"], tmp_path / f"{key}.bvh", rig))
        _, rot = back.local_transforms()
        mapped = set(rig.found.values())
        for j, name in enumerate(back.names):
            if j not in mapped and back.channels[j]:
                assert np.allclose(rot[:, j], np.eye(3), atol=1e-6), name


def test_a_file_with_frames_or_none_or_no_motion_section(tmp_path, motions):
    text = RIGS["mixamo"]()
    for label, variant in (("frames", text), ("zero", text.split("MOTION")[0] + "MOTION\nFrames: 0\nFrame Time: 0.1\n"),
                           ("none", text.split("MOTION")[0])):
        path = tmp_path / f"{label}.bvh"
        path.write_text(variant)
        rig = load_target(path)
        assert rig.bvh.num_frames == 0 and len(rig.names) == len(read_bvh(tmp_path / "frames.bvh").names)


# --- bad characters ------------------------------------------------------------------------------------------
def _error(path) -> str:
    with pytest.raises(RetargetError) as info:
        load_target(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    return message


def test_bad_characters_are_one_line_errors(tmp_path):
    garbage = tmp_path / "garbage.bvh"
    garbage.write_text("this is not a BVH file\n")
    assert "not a BVH skeleton" in _error(garbage)

    truncated = tmp_path / "truncated.bvh"
    truncated.write_text(RIGS["cmu"]()[:900])
    assert "not a BVH skeleton" in _error(truncated)

    missing = tmp_path / "no_hands_no_feet.bvh"
    missing.write_text(RIGS["mixamo"]().replace("mixamorig:LeftHand", "mixamorig:LeftPaw")
                       .replace("RightFoot", "RightHoof"))
    message = _error(missing)
    assert "left_wrist" in message and "right_ankle" in message and "LeftHand" in message

    zero = tmp_path / "zero_shin.bvh"
    zero.write_text(RIGS["cmu"]().replace("2.53268 -6.95849 0.00000", "0.00000 0.00000 0.00000"))
    message = _error(zero)
    assert "zero-length bone LeftLeg -> LeftFoot" in message

    absent = tmp_path / "absent.bvh"
    assert "cannot read" in _error(absent)


def test_retarget_rejects_bad_motions(rig_files):
    rig = load_target(rig_files["mixamo"])
    with pytest.raises(ValueError, match="positions must be"):
        retarget(np.zeros((5, 21, 3)), rig)
    bad = np.zeros((5, 22, 3))
    bad[2, 3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        retarget(bad, rig)


# --- Blender -----------------------------------------------------------------------------------------------
@pytest.mark.skipif(shutil.which("blender") is None, reason="Blender is not installed")
def test_blender_reads_the_retargeted_file_as_our_reader_does(tmp_path, rig_files, motions):
    from repo_scripts import load_script

    module = load_script("benchmarks/bench_blender_bvh.py")
    for key in RIGS:
        rig = load_target(rig_files[key])
        path = save_retargeted_bvh(motions["humanoid3d_walk"], tmp_path / f"{key}.bvh", rig)
        back = read_bvh(path)
        joints = [j for j in range(len(back.names)) if not rig.is_end_site(j)]
        names = [back.names[j] for j in joints]
        ((blender, fps),) = module.blender_positions([path], names)
        expect = back.positions()[:, joints]
        assert blender.shape == expect.shape and fps == pytest.approx(20.0, abs=1e-3)
        assert np.abs(blender - expect).max() * rig.unit_m < 1e-3, key
