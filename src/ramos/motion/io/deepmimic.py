"""DeepMimic motion clips (as shipped by pybullet_data) retargeted onto the 22-joint skeleton.

A clip is JSON ``{"Loop": "wrap"|"none", "Frames": [[dt, root xyz, root quat, chest quat, neck quat,
right hip quat, right knee angle, right ankle quat, right shoulder quat, right elbow angle, left ...],
...]}`` (quaternions w, x, y, z; knees and elbows turn about their local z axis). Root positions
are metres; the joint offsets of ``humanoid/humanoid.urdf`` are in units of 0.25 m (pybullet loads
it with ``globalScaling=0.25``). The character faces +x with its right at +z, y up.

The 15 links are placed by forward kinematics, then the 22 joints are derived from them: spine
joints on the (rigid) pelvis-chest and chest-neck segments, collars between the upper spine and
the shoulders, the head above the neck, the feet at the front of the foot box at sole height. Every
derived joint is rigidly attached to one link, so bone lengths stay constant over time.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ramos.motion.clip import Clip, ClipError
from ramos.motion.io._common import (
    canonical_facing,
    check_fps,
    check_positions,
    forward_kinematics,
    quat_wxyz_to_matrix,
    read_text,
    to_y_up,
)
from ramos.motion.skeleton import HUMANML3D, Skeleton

URDF_SCALE = 0.25
"""Metres per URDF unit (pybullet's DeepMimic examples load the humanoid with globalScaling=0.25)."""

# Link order of the FK tree, with each link's slice of the 44-float frame (after dt, root pos).
_LINKS: tuple[str, ...] = (
    "root", "chest", "neck", "right_hip", "right_knee", "right_ankle", "right_shoulder", "right_elbow",
    "left_hip", "left_knee", "left_ankle", "left_shoulder", "left_elbow", "right_wrist", "left_wrist",
)
_PARENTS: dict[str, str | None] = {
    "root": None, "chest": "root", "neck": "chest",
    "right_hip": "root", "right_knee": "right_hip", "right_ankle": "right_knee",
    "right_shoulder": "chest", "right_elbow": "right_shoulder", "right_wrist": "right_elbow",
    "left_hip": "root", "left_knee": "left_hip", "left_ankle": "left_knee",
    "left_shoulder": "chest", "left_elbow": "left_shoulder", "left_wrist": "left_elbow",
}
# (link, number of floats) in frame order after dt and the root position; 1 float = revolute about z.
_FRAME_LAYOUT: tuple[tuple[str, int], ...] = (
    ("root", 4), ("chest", 4), ("neck", 4),
    ("right_hip", 4), ("right_knee", 1), ("right_ankle", 4), ("right_shoulder", 4), ("right_elbow", 1),
    ("left_hip", 4), ("left_knee", 1), ("left_ankle", 4), ("left_shoulder", 4), ("left_elbow", 1),
)
FRAME_SIZE = 1 + 3 + sum(n for _, n in _FRAME_LAYOUT)  # 44

# Retargeting constants (fractions along rigid segments, chosen to approximate SMPL proportions).
_SPINE1_ALONG_PELVIS_CHEST = 0.5
_SPINE3_ALONG_CHEST_NECK = 0.5
_COLLAR_ALONG_SPINE3_SHOULDER = 0.45
_HEAD_ALONG_NECK_SPHERE = 0.6
_FOOT_ALONG_FOOT_BOX = 0.35  # from the box centre towards its front (toe) end, in box lengths


@dataclass(frozen=True)
class DeepMimicItem:
    """One DeepMimic clip file and the URDF giving its skeleton offsets."""

    path: str
    urdf: str
    source_id: str
    label: str


@dataclass(frozen=True)
class HumanoidModel:
    """What the retargeting needs from ``humanoid.urdf``, in metres."""

    offsets: dict[str, np.ndarray]  # joint origin of each link in its parent link's frame
    neck_sphere: np.ndarray  # head sphere centre in the neck frame
    foot_box_center: np.ndarray  # foot box centre in the ankle frame
    foot_box_size: np.ndarray


def parse_urdf(path: str | Path) -> HumanoidModel:
    """Read joint origins and the head/foot collision shapes of the DeepMimic ``humanoid.urdf``."""
    path = Path(path)
    try:
        # pybullet's copy carries a stray non-UTF-8 byte (latin-1 decodes any byte) and ends in a NUL.
        root = ET.fromstring(path.read_bytes().decode("latin-1").replace("\x00", ""))
    except OSError as err:
        raise ClipError(f"{path}: cannot read ({err.strerror or err})") from None
    except ET.ParseError as err:
        raise ClipError(f"{path}: not valid URDF/XML ({err})") from None

    def xyz(el: ET.Element | None, what: str) -> np.ndarray:
        if el is None or el.get("xyz") is None:
            raise ClipError(f"{path}: missing origin for {what}")
        try:
            return np.array([float(v) for v in el.get("xyz", "").split()], dtype=np.float64) * URDF_SCALE
        except ValueError:
            raise ClipError(f"{path}: non-numeric origin for {what}") from None

    offsets: dict[str, np.ndarray] = {"root": np.zeros(3)}
    for joint in root.iter("joint"):
        child = joint.find("child")
        name = child.get("link") if child is not None else None
        if name in _PARENTS and name != "root":
            rpy = joint.find("origin").get("rpy", "0 0 0") if joint.find("origin") is not None else "0 0 0"
            if any(abs(float(v)) > 1e-9 for v in rpy.split()):
                raise ClipError(f"{path}: joint {name} has a rotated origin (rpy {rpy}); not supported")
            offsets[name] = xyz(joint.find("origin"), f"joint {name}")
    missing = [n for n in _LINKS if n not in offsets]
    if missing:
        raise ClipError(f"{path}: URDF lacks links {missing}")
    links = {lk.get("name"): lk for lk in root.iter("link")}

    def collision(link: str, shape: str) -> tuple[np.ndarray, ET.Element]:
        el = links.get(link)
        col = el.find("collision") if el is not None else None
        geom = col.find(f"geometry/{shape}") if col is not None else None
        if geom is None:
            raise ClipError(f"{path}: link {link} has no {shape} collision shape")
        return xyz(col.find("origin"), f"{link} collision"), geom

    neck_sphere, _ = collision("neck", "sphere")
    foot_center, box = collision("right_ankle", "box")
    foot_size = np.array([float(v) for v in box.get("size", "").split()]) * URDF_SCALE
    return HumanoidModel(offsets, neck_sphere, foot_center, foot_size)


def _label_of(stem: str) -> str:
    """Action label of a clip file name: humanoid3d_dance_a -> dance_a, 0walk_forward -> walk_forward."""
    name = stem.removeprefix("humanoid3d_")
    return re.sub(r"^\d+|\d+$", "", name).strip("_") or name


def list_items(root: Path | str, urdf: Path | str | None = None,
               patterns: tuple[str, ...] = ("humanoid3d_*.txt", "walker/*.txt")) -> list[DeepMimicItem]:
    """List DeepMimic clips under a pybullet_data-like folder.

    Args:
        root: folder holding ``data/motions/`` and ``humanoid/humanoid.urdf`` (``pybullet_data``), or
            a folder of clip files directly (then pass ``urdf``).
        urdf: the humanoid URDF; default ``<root>/humanoid/humanoid.urdf``.
        patterns: glob patterns (relative to the motions folder) of the clips to take.
    """
    root = Path(root)
    motions = root / "data" / "motions" if (root / "data" / "motions").is_dir() else root
    urdf_path = Path(urdf) if urdf is not None else root / "humanoid" / "humanoid.urdf"
    if not motions.is_dir():
        raise FileNotFoundError(f"{motions}: no such folder")
    if not urdf_path.is_file():
        raise FileNotFoundError(f"{urdf_path}: humanoid URDF not found (pass urdf=...)")
    items = []
    for pattern in patterns:
        for path in sorted(motions.glob(pattern)):
            rel = path.relative_to(motions).with_suffix("")
            items.append(DeepMimicItem(str(path), str(urdf_path), "_".join(rel.parts), _label_of(path.stem)))
    return items


def _parse_frames(path: Path) -> tuple[np.ndarray, str]:
    text = read_text(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ClipError(f"{path}: not valid JSON ({err.msg} at line {err.lineno})") from None
    if not isinstance(data, dict) or "Frames" not in data:
        raise ClipError(f"{path}: no 'Frames' list")
    try:
        frames = np.asarray(data["Frames"], dtype=np.float64)
    except (TypeError, ValueError):
        raise ClipError(f"{path}: frames are not rows of numbers") from None
    if frames.ndim != 2 or frames.shape[1] != FRAME_SIZE:
        raise ClipError(f"{path}: expected frames of {FRAME_SIZE} numbers, got shape {frames.shape}")
    if frames.shape[0] < 2:
        raise ClipError(f"{path}: {frames.shape[0]} frame(s); at least 2 needed")
    if not np.isfinite(frames).all():
        raise ClipError(f"{path}: NaN/inf values in frames")
    return frames, str(data.get("Loop", "none"))


def link_positions(frames: np.ndarray, model: HumanoidModel) -> tuple[np.ndarray, np.ndarray]:
    """FK of the 15 DeepMimic links in the source frame: positions (T, 15, 3), rotations (T, 15, 3, 3)."""
    t = frames.shape[0]
    local = np.tile(np.eye(3), (t, len(_LINKS), 1, 1))
    col = 4
    for link, n in _FRAME_LAYOUT:
        i = _LINKS.index(link)
        if n == 4:
            local[:, i] = quat_wxyz_to_matrix(frames[:, col:col + 4])
        else:
            a = frames[:, col]
            c, s = np.cos(a), np.sin(a)
            local[:, i, 0, 0], local[:, i, 0, 1], local[:, i, 1, 0], local[:, i, 1, 1] = c, -s, s, c
        col += n
    parents = [(-1 if _PARENTS[n] is None else _LINKS.index(_PARENTS[n])) for n in _LINKS]
    offsets = np.stack([model.offsets[n] for n in _LINKS])
    return forward_kinematics(parents, offsets, local, frames[:, 1:4])


def retarget(link_pos: np.ndarray, link_rot: np.ndarray, model: HumanoidModel,
             skeleton: Skeleton = HUMANML3D) -> np.ndarray:
    """Place the 22 HumanML3D joints from DeepMimic link positions/rotations (source frame)."""
    if skeleton.num_joints != HUMANML3D.num_joints or skeleton.names != HUMANML3D.names:
        raise ValueError("DeepMimic retargeting targets the HumanML3D 22-joint skeleton")

    def pos(link: str) -> np.ndarray:
        return link_pos[:, _LINKS.index(link)]

    def attached(link: str, offset: np.ndarray) -> np.ndarray:
        """A point fixed in ``link``'s frame (so its distance to the link origin never changes)."""
        return pos(link) + np.einsum("tab,b->ta", link_rot[:, _LINKS.index(link)], offset)

    def lerp(a: np.ndarray, b: np.ndarray, w: float) -> np.ndarray:
        return a + w * (b - a)

    out = {
        "pelvis": pos("root"),
        "spine1": lerp(pos("root"), pos("chest"), _SPINE1_ALONG_PELVIS_CHEST),
        "spine2": pos("chest"),
        "spine3": lerp(pos("chest"), pos("neck"), _SPINE3_ALONG_CHEST_NECK),
        "neck": pos("neck"),
        "head": attached("neck", _HEAD_ALONG_NECK_SPHERE * model.neck_sphere),
    }
    # The foot joint: forward of the ankle along the foot box, on its sole.
    toe = model.foot_box_center + np.array([_FOOT_ALONG_FOOT_BOX * model.foot_box_size[0],
                                            -0.5 * model.foot_box_size[1], 0.0])
    for side in ("left", "right"):
        for joint in ("hip", "knee", "ankle", "shoulder", "elbow", "wrist"):
            out[f"{side}_{joint}"] = pos(f"{side}_{joint}")
        out[f"{side}_foot"] = attached(f"{side}_ankle", toe)
        # spine3 and the shoulder are both fixed in the chest frame, so the collar is too.
        out[f"{side}_collar"] = lerp(out["spine3"], pos(f"{side}_shoulder"), _COLLAR_ALONG_SPINE3_SHOULDER)
    return np.stack([out[n] for n in skeleton.names], axis=1)


def read_item(item: DeepMimicItem, canonicalize: bool = True) -> list[Clip]:
    """Read one DeepMimic clip as a 22-joint :class:`Clip` (metres, y up, facing +z).

    Args:
        item: from :func:`list_items`.
        canonicalize: rotate about y so the first frame faces +z and move the first-frame pelvis to
            x = z = 0 (heights unchanged: the capture floor stays at y = 0).
    """
    path = Path(item.path)
    frames, loop = _parse_frames(path)
    dt = float(np.median(frames[:, 0]))
    fps = check_fps(round(1.0 / dt, 2) if dt > 0 else dt, str(path))
    model = parse_urdf(item.urdf)
    try:
        pos, rot = link_positions(frames, model)
    except ValueError as err:  # zero-length quaternions
        raise ClipError(f"{path}: {err}") from None
    joints = to_y_up(retarget(pos, rot, model), "y_up_facing_x")
    if canonicalize:
        joints = canonical_facing(joints, str(path))
    joints = check_positions(joints, str(path), HUMANML3D.num_joints)
    return [Clip(positions=joints, fps=fps, source_id=item.source_id, source="deepmimic",
                 captions=[], labels=[item.label],
                 meta={"loop": loop, "file": path.name, "skeleton": "humanml3d"})]
