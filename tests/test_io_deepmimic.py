"""DeepMimic reader: URDF parsing, FK, retargeting, orientation, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ramos.motion.clip import ClipError
from ramos.motion.io import READERS, deepmimic
from ramos.motion.skeleton import HUMANML3D as S

# Offsets (URDF units, 0.25 m each) of pybullet's humanoid.urdf; the test writes its own small URDF.
_JOINTS = {
    "chest": ("root", "spherical", (0, 0.944604, 0)), "neck": ("chest", "spherical", (0, 0.895576, 0)),
    "right_hip": ("root", "spherical", (0, 0, 0.339548)), "right_knee": ("right_hip", "revolute", (0, -1.686184, 0)),
    "right_ankle": ("right_knee", "spherical", (0, -1.63948, 0)),
    "right_shoulder": ("chest", "spherical", (-0.0962, 0.974, 0.73244)),
    "right_elbow": ("right_shoulder", "revolute", (0, -1.099152, 0)),
    "right_wrist": ("right_elbow", "fixed", (0, -1.035788, 0)),
    "left_hip": ("root", "spherical", (0, 0, -0.339548)), "left_knee": ("left_hip", "revolute", (0, -1.686184, 0)),
    "left_ankle": ("left_knee", "spherical", (0, -1.63948, 0)),
    "left_shoulder": ("chest", "spherical", (-0.0962, 0.974, -0.73244)),
    "left_elbow": ("left_shoulder", "revolute", (0, -1.099152, 0)),
    "left_wrist": ("left_elbow", "fixed", (0, -1.035788, 0)),
}


def _urdf() -> bytes:
    links = ['<link name="root"/>']
    joints = []
    for name, (parent, kind, xyz) in _JOINTS.items():
        shape = ""
        if name == "neck":
            shape = ('<collision><origin rpy="0 0 0" xyz="0 0.7 0"/><geometry><sphere radius="0.41"/>'
                     '</geometry></collision>')
        if name == "right_ankle":
            shape = ('<collision><origin rpy="0 0 0" xyz="0.18 -0.09 0"/><geometry>'
                     '<box size="0.708 0.22 0.36"/></geometry></collision>')
        links.append(f'<link name="{name}">{shape}</link>')
        joints.append(f'<joint name="{name}" type="{kind}"><parent link="{parent}"/><child link="{name}"/>'
                      f'<origin rpy="0 0 0" xyz="{xyz[0]} {xyz[1]} {xyz[2]}"/></joint>')
    # A stray latin-1 byte and a trailing NUL, as in pybullet's copy.
    return ("<robot name='h'>" + "".join(links + joints) + "<!-- \xb0 --></robot>\n").encode("latin-1") + b"\0"


def _frames(t: int = 10, knee: float = 0.0, yaw: float = 0.0) -> list[list[float]]:
    """Rest-pose frames moving along +x (the DeepMimic forward direction) at 1 m/s, 30 fps."""
    ident = [1.0, 0.0, 0.0, 0.0]
    root_q = [np.cos(yaw / 2), 0.0, np.sin(yaw / 2), 0.0]
    rows = []
    for i in range(t):
        row = [1 / 30, i / 30, 0.88, 0.0] + root_q + ident + ident
        for _ in range(2):  # right, then left: hip, knee, ankle, shoulder, elbow
            row += ident + [knee] + ident + ident + [0.0]
        rows.append(row)
    return rows


@pytest.fixture()
def pb_root(tmp_path: Path) -> Path:
    (tmp_path / "humanoid").mkdir()
    (tmp_path / "humanoid" / "humanoid.urdf").write_bytes(_urdf())
    motions = tmp_path / "data" / "motions"
    (motions / "walker").mkdir(parents=True)
    (motions / "humanoid3d_walk.txt").write_text(json.dumps({"Loop": "wrap", "Frames": _frames()}))
    (motions / "walker" / "turn_left0.txt").write_text(json.dumps({"Loop": "none", "Frames": _frames(knee=-1.0)}))
    (motions / "laikago_walk.txt").write_text("{}")  # not a humanoid clip: not listed
    return tmp_path


def test_list_items_labels_and_ids(pb_root: Path) -> None:
    items = READERS["deepmimic"].list_items(pb_root)
    assert [(i.source_id, i.label) for i in items] == [("humanoid3d_walk", "walk"), ("walker_turn_left0", "turn_left")]


def test_rest_pose_geometry_and_orientation(pb_root: Path) -> None:
    (clip,) = deepmimic.read_item(deepmimic.list_items(pb_root)[0])
    p = clip.positions
    assert p.shape == (10, 22, 3) and p.dtype == np.float32
    assert clip.fps == pytest.approx(30.0) and clip.labels == ["walk"] and clip.meta["loop"] == "wrap"
    # First-frame pelvis at the origin (xz), walking towards +z at 1 m/s.
    np.testing.assert_allclose(p[0, 0, [0, 2]], 0.0, atol=1e-6)
    np.testing.assert_allclose(p[-1, 0] - p[0, 0], [0.0, 0.0, 9 / 30], atol=1e-5)
    # Left joints at +x, right at -x; hips 0.085 m from the pelvis (0.339548 * 0.25).
    for name in ("hip", "knee", "ankle", "foot", "collar", "shoulder", "elbow", "wrist"):
        assert p[0, S.index(f"left_{name}"), 0] > 0.01 > -0.01 > p[0, S.index(f"right_{name}"), 0]
    np.testing.assert_allclose(p[0, S.index("left_hip")] - p[0, 0], [0.339548 * 0.25, 0, 0], atol=1e-6)
    # Leg lengths from the URDF offsets, feet on the floor (sole at 0.88 - leg - 0.2*0.25 = 0.0).
    leg = (1.686184 + 1.63948) * 0.25
    assert p[0, S.index("left_ankle"), 1] == pytest.approx(0.88 - leg, abs=1e-5)
    assert p[0, S.index("left_foot"), 1] == pytest.approx(0.88 - leg - 0.05, abs=1e-5)
    assert p[0, S.index("left_foot"), 2] > p[0, S.index("left_ankle"), 2] + 0.05  # toes point forward
    # Head above neck above spine3 above spine2 above spine1 above pelvis.
    ys = p[0, [S.index(n) for n in ("pelvis", "spine1", "spine2", "spine3", "neck", "head")], 1]
    assert (np.diff(ys) > 0).all()


def test_knee_bends_backwards(pb_root: Path) -> None:
    (clip,) = deepmimic.read_item(deepmimic.list_items(pb_root)[1])
    p = clip.positions[0]
    knee, ankle = p[S.index("left_knee")], p[S.index("left_ankle")]
    assert ankle[2] < knee[2] - 0.2  # shin swings behind (-z) when the knee angle is negative


def test_root_yaw_is_undone_by_canonicalisation(pb_root: Path, tmp_path: Path) -> None:
    path = pb_root / "data" / "motions" / "humanoid3d_walk.txt"
    path.write_text(json.dumps({"Loop": "wrap", "Frames": _frames(yaw=0.7)}))
    item = deepmimic.list_items(pb_root)[0]
    (clip,) = deepmimic.read_item(item)
    assert clip.positions[0, S.index("left_hip"), 0] > 0.08
    (raw,) = deepmimic.read_item(item, canonicalize=False)
    bones = S.bone_lengths(raw.positions)
    np.testing.assert_allclose(bones, S.bone_lengths(clip.positions), atol=1e-5)


@pytest.mark.parametrize("content, reason", [
    ('{"Loop": "wrap", "Frames": [[0.03, 1, 2', "not valid JSON"),
    (json.dumps({"Loop": "none", "Frames": [["a"] * 44] * 3}), "not rows of numbers"),
    (json.dumps({"Frames": [[0.1] * 43] * 3}), "expected frames of 44"),
    (json.dumps({"Frames": _frames(1)}), "at least 2"),
    (json.dumps({"Frames": []}), "expected frames of 44"),
    (json.dumps({"Loop": "wrap"}), "no 'Frames'"),
    (json.dumps({"Frames": [r[:5] + [float("nan")] + r[6:] for r in _frames(3)]}), "NaN"),
    (json.dumps({"Frames": [r[:4] + [0.0] * 4 + r[8:] for r in _frames(3)]}), "zero-length quaternion"),
])
def test_bad_clips_raise_clip_error(pb_root: Path, content: str, reason: str) -> None:
    path = pb_root / "data" / "motions" / "humanoid3d_walk.txt"
    path.write_text(content)
    with pytest.raises(ClipError, match=reason) as err:
        deepmimic.read_item(deepmimic.list_items(pb_root)[0])
    assert str(path) in str(err.value)


def test_undecodable_and_bad_urdf(pb_root: Path) -> None:
    path = pb_root / "data" / "motions" / "humanoid3d_walk.txt"
    path.write_bytes(b'{"Frames": [[\xff\xfe]]}')
    with pytest.raises(ClipError, match="not valid utf-8"):
        deepmimic.read_item(deepmimic.list_items(pb_root)[0])
    (pb_root / "humanoid" / "humanoid.urdf").write_text("<robot><joint name='x'>")
    with pytest.raises(ClipError, match="not valid URDF"):
        deepmimic.read_item(deepmimic.list_items(pb_root)[1])


def test_real_pybullet_data_matches_builtin_asset() -> None:
    """When pybullet is installed (extra 'rebuild-asset'), converting afresh reproduces the shipped asset."""
    pybullet_data = pytest.importorskip("pybullet_data")
    items = deepmimic.list_items(pybullet_data.getDataPath())
    shipped = {c.source_id: c for c in READERS["builtin"].read_all(None)}
    for item in items:
        (clip,) = deepmimic.read_item(item)
        np.testing.assert_allclose(clip.positions, shipped[clip.source_id].positions, atol=1e-4)
