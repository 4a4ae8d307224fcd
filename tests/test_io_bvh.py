"""BVH reader: parsing, FK against an independent computation, joint maps, units, axes, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ramos.motion.clip import ClipError
from ramos.motion.io import READERS, bvh
from ramos.motion.skeleton import HUMANML3D as S

POS3 = ["Xposition", "Yposition", "Zposition"]


def _elementary(axis: str, deg: np.ndarray) -> np.ndarray:
    """Rotation matrices about one axis, written out (independent of scipy)."""
    a = np.radians(deg)
    c, s = np.cos(a), np.sin(a)
    one, zero = np.ones_like(a), np.zeros_like(a)
    rows = {"X": [[one, zero, zero], [zero, c, -s], [zero, s, c]],
            "Y": [[c, zero, s], [zero, one, zero], [-s, zero, c]],
            "Z": [[c, -s, zero], [s, c, zero], [zero, zero, one]]}[axis]
    return np.moveaxis(np.array(rows), (0, 1), (-2, -1))


def _write_bvh(path: Path, joints: list[tuple[str, int, tuple, list[str]]], motion: np.ndarray,
               frame_time: float = 1 / 30, end_sites: dict[int, tuple] | None = None) -> Path:
    """Write a BVH; joints are (name, parent, offset, channels) in depth-first order."""
    end_sites = end_sites or {}
    children: dict[int, list[int]] = {}
    for i, (_, p, _, _) in enumerate(joints):
        children.setdefault(p, []).append(i)
    lines = ["HIERARCHY"]

    def emit(i: int, depth: int) -> None:
        name, parent, off, chans = joints[i]
        pad = "  " * depth
        lines.append(f"{pad}{'ROOT' if parent < 0 else 'JOINT'} {name}")
        lines.append(pad + "{")
        lines.append(f"{pad}  OFFSET {off[0]} {off[1]} {off[2]}")
        lines.append(f"{pad}  CHANNELS {len(chans)} {' '.join(chans)}")
        for c in children.get(i, []):
            emit(c, depth + 1)
        if i in end_sites:
            e = end_sites[i]
            lines.append(f"{pad}  End Site\n{pad}  {{\n{pad}    OFFSET {e[0]} {e[1]} {e[2]}\n{pad}  }}")
        lines.append(pad + "}")

    emit(0, 0)
    lines += ["MOTION", f"Frames: {len(motion)}", f"Frame Time: {frame_time}"]
    lines += [" ".join(f"{v:.6f}" for v in row) for row in motion]
    path.write_text("\n".join(lines) + "\n")
    return path


def _reference_fk(joints, motion) -> np.ndarray:
    """Independent FK: position channels replace the offset, rotations compose in channel order."""
    t = len(motion)
    pos = np.zeros((t, len(joints), 3))
    rot = np.zeros((t, len(joints), 3, 3))
    col = 0
    for i, (_, parent, off, chans) in enumerate(joints):
        local_t = np.tile(np.asarray(off, float), (t, 1))
        local_r = np.tile(np.eye(3), (t, 1, 1))
        for c in chans:
            if c.endswith("position"):
                local_t[:, "XYZ".index(c[0])] = motion[:, col]
            else:
                local_r = local_r @ _elementary(c[0], motion[:, col])
            col += 1
        if parent < 0:
            pos[:, i], rot[:, i] = local_t, local_r
        else:
            pos[:, i] = pos[:, parent] + np.einsum("tab,tb->ta", rot[:, parent], local_t)
            rot[:, i] = rot[:, parent] @ local_r
    return pos


def _humanml3d_joints(rng: np.random.Generator) -> list[tuple[str, int, tuple, list[str]]]:
    """The 22 HumanML3D joints (metres, rough SMPL rest offsets) with varied rotation orders."""
    rest = {"pelvis": (0, 0.95, 0), "left_hip": (0.06, -0.09, 0), "right_hip": (-0.06, -0.09, 0),
            "spine1": (0, 0.11, 0), "left_knee": (0.04, -0.38, 0), "right_knee": (-0.04, -0.38, 0),
            "spine2": (0, 0.13, 0), "left_ankle": (0, -0.40, -0.03), "right_ankle": (0, -0.40, -0.03),
            "spine3": (0, 0.05, 0), "left_foot": (0, -0.05, 0.12), "right_foot": (0, -0.05, 0.12),
            "neck": (0, 0.21, 0), "left_collar": (0.07, 0.12, 0), "right_collar": (-0.07, 0.12, 0),
            "head": (0, 0.09, 0.05), "left_shoulder": (0.1, 0.03, 0), "right_shoulder": (-0.1, 0.03, 0),
            "left_elbow": (0.25, 0, 0), "right_elbow": (-0.25, 0, 0), "left_wrist": (0.25, 0, 0),
            "right_wrist": (-0.25, 0, 0)}
    orders = ["Zrotation Xrotation Yrotation", "Xrotation Yrotation Zrotation", "Yrotation Zrotation Xrotation"]
    out = []
    for i, n in enumerate(S.names):
        chans = orders[rng.integers(3)].split()
        out.append((n, S.parents[i], rest[n], (POS3 + chans) if i == 0 else chans))
    return out


def _dfs(joints):
    """Reorder joints depth-first (BVH order) and remap parents."""
    children: dict[int, list[int]] = {}
    for i, j in enumerate(joints):
        children.setdefault(j[1], []).append(i)
    order: list[int] = []

    def visit(i: int) -> None:
        order.append(i)
        for c in children.get(i, []):
            visit(c)

    visit(0)
    new_index = {old: new for new, old in enumerate(order)}
    return [(joints[o][0], new_index.get(joints[o][1], -1), joints[o][2], joints[o][3]) for o in order]


def test_simple_chain_known_answer(tmp_path: Path) -> None:
    joints = [("Hips", -1, (0, 0, 0), POS3 + ["Zrotation", "Xrotation", "Yrotation"]),
              ("Child", 0, (0, 10, 0), ["Zrotation", "Xrotation", "Yrotation"])]
    motion = np.array([[1, 2, 3, 90, 0, 0, 0, 0, 0], [1, 2, 3, 0, 90, 0, 0, 0, 0]], dtype=float)
    path = _write_bvh(tmp_path / "a.bvh", joints, motion, end_sites={1: (0, 5, 0)})
    parsed = bvh.read_bvh(path)
    assert parsed.names == ["Hips", "Child", "Child_end"]
    pos = parsed.positions()
    np.testing.assert_allclose(pos[0, 1], [1 - 10, 2, 3], atol=1e-9)  # +y rotated 90 deg about z -> -x
    np.testing.assert_allclose(pos[1, 1], [1, 2, 3 + 10], atol=1e-9)  # +y rotated 90 deg about x -> +z
    np.testing.assert_allclose(pos[0, 2], [1 - 15, 2, 3], atol=1e-9)


def test_fk_matches_independent_reference_and_round_trips(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    joints = _dfs(_humanml3d_joints(rng))
    t = 12
    n_channels = sum(len(j[3]) for j in joints)
    motion = rng.uniform(-60, 60, size=(t, n_channels))
    motion[:, :3] = rng.uniform(-1, 1, size=(t, 3)) + [0, 0.95, 0]
    path = _write_bvh(tmp_path / "h.bvh", joints, motion, frame_time=0.05)
    expected = _reference_fk(joints, np.round(motion, 6))
    (clip,) = READERS["bvh"].read_item(READERS["bvh"].list_items(path)[0])
    assert clip.meta["joint_map"] == "humanml3d" and clip.meta["unit_scale_m"] == 1.0
    assert clip.fps == pytest.approx(20.0)
    names = [j[0] for j in joints]
    reordered = expected[:, [names.index(n) for n in S.names]]
    np.testing.assert_allclose(clip.positions, reordered, atol=1e-5)  # well under 1 mm


def _cmu_joints(unit: float, prefix: str = "", spine_names=("LowerBack", "Spine", "Spine1")):
    j = [(f"{prefix}Hips", -1, (0, 0, 0), POS3 + ["Zrotation", "Yrotation", "Xrotation"])]

    def add(name, parent_name, off):
        parent = [k for k, x in enumerate(j) if x[0] == prefix + parent_name][0]
        j.append((prefix + name, parent, tuple(unit * np.asarray(off)), ["Zrotation", "Yrotation", "Xrotation"]))

    prev = "Hips"
    for n, off in zip(spine_names, [(0, 0.0, 0), (0, 0.12, 0), (0, 0.12, 0)], strict=True):
        add(n, prev, off)
        prev = n
    add("Neck", prev, (0, 0.2, 0))
    add("Head", "Neck", (0, 0.1, 0))
    for side, sx in (("Left", 1), ("Right", -1)):
        add(f"{side}Shoulder", prev, (sx * 0.05, 0.15, 0))
        add(f"{side}Arm", f"{side}Shoulder", (sx * 0.12, 0, 0))
        add(f"{side}ForeArm", f"{side}Arm", (sx * 0.26, 0, 0))
        add(f"{side}Hand", f"{side}ForeArm", (sx * 0.25, 0, 0))
    for side, sx in (("Left", 1), ("Right", -1)):
        add(f"{side}UpLeg", "Hips", (sx * 0.09, -0.05, 0))
        add(f"{side}Leg", f"{side}UpLeg", (0, -0.42, 0))
        add(f"{side}Foot", f"{side}Leg", (0, -0.42, 0))
        add(f"{side}ToeBase", f"{side}Foot", (0, -0.06, 0.12))
    return _dfs(j)


@pytest.mark.parametrize("unit, prefix, spine, expect_map", [
    (100.0, "", ("LowerBack", "Spine", "Spine1"), "cmu"),  # centimetres
    (1.0 / 0.0254, "mixamorig:", ("Spine", "Spine1", "Spine2"), "mixamo"),  # inches, namespaced
])
def test_named_rigs_units_and_interpolation(tmp_path: Path, unit, prefix, spine, expect_map) -> None:
    joints = _cmu_joints(unit, prefix, spine)
    motion = np.zeros((4, sum(len(j[3]) for j in joints)))
    motion[:, 1] = 0.95 * unit
    motion[:, 0] = np.arange(4) * 0.1 * unit
    path = _write_bvh(tmp_path / "rig.bvh", joints, motion)
    (clip,) = bvh.read_item(bvh.BvhItem(str(path), "rig"))
    assert clip.meta["joint_map"] == expect_map
    p = clip.positions
    np.testing.assert_allclose(p[:, 0, 0], np.arange(4) * 0.1, atol=1e-5)  # metres
    height = p[0, S.index("head"), 1] - p[0, S.index("left_foot"), 1]
    assert 1.0 < height < 1.8
    if expect_map == "cmu":  # spine2 interpolated halfway between Spine (spine1) and Spine1 (spine3)
        np.testing.assert_allclose(p[:, S.index("spine2")], (p[:, S.index("spine1")] + p[:, S.index("spine3")]) / 2,
                                   atol=1e-6)
    assert p[0, S.index("left_wrist"), 0] > 0.5 > -0.5 > p[0, S.index("right_wrist"), 0]


def test_missing_spine_joints_and_collars_are_interpolated(tmp_path: Path) -> None:
    # Drop the collars (LeftShoulder...) and Spine, re-parenting their children onto the nearest kept joint.
    full = _cmu_joints(1.0)
    names = [j[0] for j in full]
    kept = []
    for name, parent, off, ch in full:
        if "Shoulder" in name or name == "Spine":
            continue
        pname = names[parent] if parent >= 0 else None
        while pname is not None and ("Shoulder" in pname or pname == "Spine"):
            pname = names[full[names.index(pname)][1]]
        kept.append((name, pname, off, ch))
    kept_names = [k[0] for k in kept]
    joints = [(n, kept_names.index(p) if p else -1, o, c) for n, p, o, c in kept]
    motion = np.zeros((3, sum(len(j[3]) for j in joints)))
    path = _write_bvh(tmp_path / "lean.bvh", joints, motion)
    (clip,) = bvh.read_item(bvh.BvhItem(str(path), "lean"), joint_map="cmu", scale=1.0)
    p = clip.positions[0]
    # spine1, spine2 between pelvis and spine3 (Spine1); collars halfway spine3 -> shoulder.
    np.testing.assert_allclose(p[S.index("spine1")], p[0] + (p[S.index("spine3")] - p[0]) / 3, atol=1e-6)
    np.testing.assert_allclose(p[S.index("left_collar")], (p[S.index("spine3")] + p[S.index("left_shoulder")]) / 2,
                               atol=1e-6)
    assert np.isfinite(clip.positions).all()


def test_z_up_axes_is_a_rotation(tmp_path: Path) -> None:
    joints = _humanml3d_joints(np.random.default_rng(1))
    # Same figure with z up: file (x, y, z) = ours (-x, z, y) inverted, i.e. ours (x, y, z) -> file (-x, z, y).
    zj = [(n, p, (-o[0], o[2], o[1]), c) for n, p, o, c in _dfs(joints)]
    motion = np.zeros((3, sum(len(j[3]) for j in zj)))
    motion[:, 2] = 0.95
    (clip,) = bvh.read_item(bvh.BvhItem(str(_write_bvh(tmp_path / "z.bvh", zj, motion)), "z"), axes="z_up")
    p = clip.positions[0]
    assert p[S.index("head"), 1] > p[0, 1] > p[S.index("left_foot"), 1]
    assert p[S.index("left_hip"), 0] > 0 > p[S.index("right_hip"), 0]  # not mirrored
    np.testing.assert_allclose(p[0], [0, 0.95, 0], atol=1e-6)


def test_sidecar_labels_and_canonicalize(tmp_path: Path) -> None:
    joints = _cmu_joints(1.0)
    motion = np.zeros((3, sum(len(j[3]) for j in joints)))
    motion[:, 1] = 0.95
    motion[:, 0] = 2.0
    motion[:, 3] = 0.0
    motion[:, 4] = 90.0  # Yrotation of the root (channels Z Y X): faces +x
    path = _write_bvh(tmp_path / "turned.bvh", joints, motion)
    path.with_suffix(".json").write_text(json.dumps({"labels": ["stand"], "captions": ["a person stands"]}))
    (clip,) = bvh.read_item(bvh.BvhItem(str(path), "t"), canonicalize=True)
    assert clip.labels == ["stand"] and clip.captions == ["a person stands"]
    p = clip.positions[0]
    np.testing.assert_allclose(p[0, [0, 2]], 0, atol=1e-6)
    assert p[S.index("left_hip"), 0] > 0.05


GOOD = """HIERARCHY
ROOT Hips
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  End Site
  {
    OFFSET 0 1 0
  }
}
MOTION
Frames: 2
Frame Time: 0.033333
0 1 0 0 0 0
0 1 0 0 0 0
"""


@pytest.mark.parametrize("text, reason", [
    (GOOD[:-10], "MOTION has 7 values, expected 2 frames x 6"),
    (GOOD.replace("0 1 0 0 0 0\n", "0 1 0 zero 0 0\n", 1), "non-numeric values"),
    (GOOD.replace("0 1 0 0 0 0\n", "0 1 nan 0 0 0\n", 1), "NaN/inf"),
    (GOOD.replace("Frames: 2", "Frames: 1").rsplit("0 1 0 0 0 0\n", 1)[0], "1 frame"),
    (GOOD.replace("Xrotation", "Qrotation"), "unknown channel"),
    (GOOD.replace("OFFSET 0 0 0", "OFFSET 0 zero 0"), "non-numeric OFFSET"),
    (GOOD.split("MOTION")[0], "unexpected end of file"),
    (GOOD[:GOOD.index("End Site")], "unexpected end of file"),
    (GOOD.replace("MOTION", "MOTON"), "expected 'MOTION'"),
    (GOOD.replace("0.033333", "0"), "invalid frame rate"),
    (GOOD, "no source joint for"),
])
def test_bad_files_raise_clip_error(tmp_path: Path, text: str, reason: str) -> None:
    path = tmp_path / "bad.bvh"
    path.write_text(text)
    with pytest.raises(ClipError, match=reason) as err:
        bvh.read_item(bvh.BvhItem(str(path), "bad"))
    assert str(path) in str(err.value)


def test_undecodable_file(tmp_path: Path) -> None:
    path = tmp_path / "bin.bvh"
    path.write_bytes(b"HIERARCHY\n\xff\xfe\x00")
    with pytest.raises(ClipError, match="not valid utf-8"):
        bvh.read_item(bvh.BvhItem(str(path), "bin"))


def test_list_items_ids(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "x.bvh").write_text(GOOD)
    (tmp_path / "y.BVH.txt").write_text(GOOD)
    items = READERS["bvh"].list_items(tmp_path)
    assert [i.source_id for i in items] == ["a/b/x"]


def test_round_trip_with_ramos_export(tmp_path: Path) -> None:
    """Files written by ramos.motion.export read back to the same positions (well within 1 mm)."""
    from ramos.motion.export import save_bvh

    clips = [c for c in READERS["builtin"].read_all(None) if c.labels[0] in ("cartwheel", "walk")]
    for clip in clips:
        path = save_bvh(clip.positions, tmp_path / f"{clip.source_id}.bvh", S, fps=clip.fps)
        (back,) = bvh.read_item(bvh.BvhItem(str(path), clip.source_id))
        assert back.meta["joint_map"] == "humanml3d" and back.fps == clip.fps
        assert np.abs(back.positions - clip.positions).max() < 1e-3


CMU_UNIT_M = 0.0254 / 0.45


def _cmu_rig(scale: float = 1.0) -> list[tuple[str, int, tuple, list[str]]]:
    """The skeleton of the CMU BVH conversion (subject 01, offsets in its unit of 1/0.45 inch), times ``scale``.

    Its rest pose has the legs splayed ~20 degrees and no head-top end site: the standing height
    (~24 units) says little about the unit, the leg bones (femur 7.16, tibia 7.49 units) do.
    """
    rot = ["Zrotation", "Yrotation", "Xrotation"]
    spec = [
        ("Hips", None, (0, 0, 0)),
        ("LHipJoint", "Hips", (0, 0, 0)), ("LeftUpLeg", "LHipJoint", (1.36, -1.79, 0.84)),
        ("LeftLeg", "LeftUpLeg", (2.45, -6.73, 0)), ("LeftFoot", "LeftLeg", (2.56, -7.04, 0)),
        ("LeftToeBase", "LeftFoot", (0.16, -0.43, 2.32)),
        ("RHipJoint", "Hips", (0, 0, 0)), ("RightUpLeg", "RHipJoint", (-1.31, -1.79, 0.84)),
        ("RightLeg", "RightUpLeg", (-2.45, -6.73, 0)), ("RightFoot", "RightLeg", (-2.56, -7.04, 0)),
        ("RightToeBase", "RightFoot", (-0.16, -0.45, 2.36)),
        ("LowerBack", "Hips", (0, 0, 0)), ("Spine", "LowerBack", (0.03, 2.04, -0.19)),
        ("Spine1", "Spine", (0.06, 2.05, -0.04)), ("Neck", "Spine1", (0, 0, 0)),
        ("Neck1", "Neck", (-0.05, 1.75, 0.17)), ("Head", "Neck1", (0.1, 1.76, -0.12)),
        ("LeftShoulder", "Spine1", (0, 0, 0)), ("LeftArm", "LeftShoulder", (3.36, 1.2, -0.31)),
        ("LeftForeArm", "LeftArm", (4.98, 0, 0)), ("LeftHand", "LeftForeArm", (3.48, 0, 0)),
        ("RightShoulder", "Spine1", (0, 0, 0)), ("RightArm", "RightShoulder", (-3.14, 1.37, -0.40)),
        ("RightForeArm", "RightArm", (-5.24, 0, 0)), ("RightHand", "RightForeArm", (-3.44, 0, 0)),
    ]
    names = [n for n, _, _ in spec]
    return _dfs([(n, names.index(p) if p else -1, tuple(scale * np.asarray(o)), (POS3 + rot) if p is None else rot)
                 for n, p, o in spec])


def _leg_bones(p: np.ndarray) -> tuple[float, float]:
    femur = np.linalg.norm(p[:, S.index("left_knee")] - p[:, S.index("left_hip")], axis=-1).mean()
    tibia = np.linalg.norm(p[:, S.index("left_ankle")] - p[:, S.index("left_knee")], axis=-1).mean()
    return float(femur), float(tibia)


def test_cmu_unit_is_recognised(tmp_path: Path) -> None:
    """CMU's BVH unit (1/0.45 inch = 0.05644 m) gives CMU's own femur of ~0.40 m, not a 1.7 m rescale."""
    joints = _cmu_rig()
    motion = np.zeros((3, sum(len(j[3]) for j in joints)))
    motion[:, 1] = 16.0
    (clip,) = bvh.read_item(bvh.BvhItem(str(_write_bvh(tmp_path / "01_01.bvh", joints, motion)), "01_01"))
    assert clip.meta["joint_map"] == "cmu" and clip.meta["units"].startswith("cmu (0.05644 m per unit")
    assert clip.meta["unit_scale_m"] == pytest.approx(CMU_UNIT_M)
    femur, tibia = _leg_bones(clip.positions)
    assert femur == pytest.approx(np.hypot(2.45, 6.73) * CMU_UNIT_M, abs=1e-4)  # 0.404 m
    assert tibia == pytest.approx(np.hypot(2.56, 7.04) * CMU_UNIT_M, abs=1e-4)
    np.testing.assert_allclose(clip.positions[:, 0, 1], 16.0 * CMU_UNIT_M, atol=1e-5)


def test_unknown_unit_is_scaled_to_the_reference_leg(tmp_path: Path) -> None:
    """A unit in no table (here 5 mm) is scaled by leg length to the reference skeleton, and says so."""
    unit_m = 0.005
    joints = _cmu_rig(CMU_UNIT_M / unit_m)
    motion = np.zeros((3, sum(len(j[3]) for j in joints)))
    (clip,) = bvh.read_item(bvh.BvhItem(str(_write_bvh(tmp_path / "odd.bvh", joints, motion)), "odd"))
    femur, tibia = _leg_bones(clip.positions)
    assert femur + tibia == pytest.approx(bvh.REFERENCE_LEG_M, abs=1e-4)
    assert clip.meta["units"].startswith(f"unknown unit: scaled to the reference leg of {bvh.REFERENCE_LEG_M} m")


@pytest.mark.parametrize("unit, expected", [(1.0, "metres"), (0.01, "centimetres"), (0.001, "millimetres"),
                                            (0.0254, "inches"), (CMU_UNIT_M, "cmu")])
def test_known_units_by_leg_length(unit: float, expected: str) -> None:
    for leg_m in (0.55, 0.78, 1.0):  # a child's to a tall adult's leg
        scale, how = bvh.guess_unit_scale(leg_m / unit)
        assert how.startswith(expected) and scale == pytest.approx(unit)
