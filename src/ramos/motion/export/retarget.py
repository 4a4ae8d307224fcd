"""Retargeting: a motion (joint positions) played on the user's own character, given as a BVH skeleton.

The character's BVH file (``--skeleton character.bvh``) supplies a hierarchy of any proportions,
joint names, rest pose (a T-pose as Mixamo's, CMU's legs-apart pose, anything), length unit and up
axis; only its HIERARCHY is read (a MOTION section, with or without frames, is ignored).
:func:`retarget` writes the motion on that skeleton, unchanged:

- Joints: mapped onto ours by the BVH reader's joint maps (``ramos.motion.io.bvh_maps``,
  auto-detected: CMU, Mixamo, our own names); the output keeps every joint of the file (fingers,
  extra spine and neck joints, end sites), its names, its OFFSETs and its channel order.
- Rotations: a mapped joint aims each *mapped bone* (from it to its next mapped descendant, across
  unmapped joints in between, which keep their rest rotation) the way the same bone of the motion
  points: the shortest arc from its rest direction (relative to its parent) for one bone, the best
  fit (Kabsch) for several (hips, chest); this is :func:`ramos.motion.rigid.solve_rotations`
  with the rest pose of the file. A mapped joint sitting on its mapped parent (CMU's Neck and
  LeftShoulder have zero OFFSETs) is looked through by its parent, which aims at the bones beyond.
  Unmapped joints and mapped leaves (hands, head, toes) keep their rest local rotation.
- Root: the motion's trajectory scaled by the ratio of the character's leg length to the motion's
  (so the root height fits its legs), in the file's unit and axes (the motion's +y becomes the
  file's up axis and its +z the way the rest pose faces, both read off the rest pose). What follows
  the scaled trajectory is the midpoint of the hips, not the pelvis joint, whose height above the
  hips differs between skeletons; then the whole motion is raised or lowered so the character's
  feet touch the floor where the motion's do (a character's toe joint height differs from ours).
- Feet: foot skating (:func:`ramos.motion.metrics.foot_skating_ratio`, on the result scaled back to
  the motion's size) is measured; where it is worse than the motion's, the whole body gets the
  planting shift of :func:`ramos.motion.postprocess.planting_shift` (a horizontal root correction).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from ramos.motion.clip import ClipError
from ramos.motion.export.bvh import _fmt, check_motion
from ramos.motion.io.bvh import (
    REQUIRED_JOINTS,
    BvhMotion,
    guess_unit_scale,
    leg_length,
    map_to_skeleton,
    parse_bvh,
    resolve_joint_map,
)
from ramos.motion.io.bvh_maps import JOINT_MAPS, JointMap
from ramos.motion.metrics import foot_skating_ratio
from ramos.motion.postprocess import planting_shift
from ramos.motion.rigid import children, solve_rotations
from ramos.motion.skeleton import HUMANML3D, Skeleton
from ramos.utils.atomic import write_text

_POS_AXES = ("xposition", "yposition", "zposition")
_ROT_AXES = ("xrotation", "yrotation", "zrotation")
_CHANNEL_NAMES = {c: c[0].upper() + c[1:] for c in _POS_AXES + _ROT_AXES}
_STANDARD_ROTATION = ["zrotation", "xrotation", "yrotation"]
_LEG_JOINTS = tuple(f"{s}_{j}" for s in ("left", "right") for j in ("hip", "knee", "ankle"))
_COINCIDENT = 1e-3
"""Two joints closer than this share of the leg length sit on each other (a zero-length bone)."""
_CONTACT_HEIGHT_M = 0.05
"""A source foot lower than this touches the floor (the foot skating metric's contact height)."""
_FLOOR_PERCENTILE = 5.0
"""For a source whose feet never touch the floor: its floor level is this percentile of its lowest foot height."""


class RetargetError(ValueError):
    """A character skeleton that cannot take a motion; the message is one line naming the file."""


@dataclass(frozen=True)
class TargetRig:
    """A character's skeleton read from a BVH file (file units and axes).

    Attributes:
        path: the file.
        bvh: its hierarchy (names, parents, OFFSETs, channels; no frames).
        joint_map: the name of the joint map that matched (``bvh_maps.JOINT_MAPS``) or "custom".
        found: target joint index per joint of ours that the map found.
        rest: (J, 3) rest-pose joint positions (OFFSETs only).
        unit_m: metres per file unit, guessed from the leg length as the BVH reader does.
        units: how the unit was decided.
        axes: (3, 3) rotation from our axes (y up, facing +z, left +x) to the file's.
        axes_text: the file's up axis and rest facing, e.g. "+y up, facing +z".
        leg: leg length (hip-knee-ankle) in file units.
    """

    path: Path
    bvh: BvhMotion
    joint_map: str
    found: dict[str, int]
    rest: np.ndarray
    unit_m: float
    units: str
    axes: np.ndarray
    axes_text: str
    leg: float

    @property
    def names(self) -> list[str]:
        return self.bvh.names

    @property
    def parents(self) -> list[int]:
        return self.bvh.parents

    @property
    def leg_m(self) -> float:
        """Leg length in metres."""
        return self.leg * self.unit_m

    def is_end_site(self, j: int) -> bool:
        """True for an ``End Site`` (named ``<parent>_end`` by the parser, no channels, no children)."""
        p = self.parents[j]
        return (p >= 0 and not self.bvh.channels[j] and j not in self.parents
                and self.names[j] == f"{self.names[p]}_end")


@dataclass(frozen=True)
class Retargeted:
    """A motion retargeted onto a :class:`TargetRig`, with the figures that check it.

    Attributes:
        target: the character.
        channels: per target joint, the lower-case channel names written (the file's own, except
            where a driven joint lacked three rotation channels or the root lacked a position).
        motion: (T, C) channel values in that layout (file units, degrees).
        fps: frame rate.
        positions: (T, J, 3) target joint positions by the BVH reader's forward kinematics (file units).
        mapped: (T, 22, 3) the same motion on our 22 joints, in metres at the source motion's size
            (file axes turned back to ours, divided by the leg ratio): what the checks compare.
        scale: file units per metre of the source motion (the leg ratio, in file units).
        floor_offset_m: vertical shift given to the whole motion (metres at the source's size).
        skating_source / skating_retargeted: foot skating ratios of the source and of ``mapped``.
        planted: whether the planting shift was applied.
        direction_error_deg: mean angle between each mapped bone and the source's, over bones and frames.
        worst_bone_error_deg: the largest per-bone mean of those angles.
    """

    target: TargetRig
    channels: list[list[str]]
    motion: np.ndarray
    fps: float
    positions: np.ndarray
    mapped: np.ndarray
    scale: float
    floor_offset_m: float
    skating_source: float
    skating_retargeted: float
    planted: bool
    direction_error_deg: float
    worst_bone_error_deg: float

    def to_bvh(self) -> str:
        """The BVH text: the target's hierarchy and OFFSETs as in its file, then the frames."""
        rig = self.target
        kids = children(rig.parents)
        lines = ["HIERARCHY"]

        def emit(j: int, depth: int) -> None:
            ind = "  " * depth
            offset = " ".join(_exact(v) for v in rig.bvh.offsets[j])
            if rig.is_end_site(j):
                lines.extend([f"{ind}End Site", f"{ind}{{", f"{ind}  OFFSET {offset}", f"{ind}}}"])
                return
            head = "ROOT" if rig.parents[j] < 0 else "JOINT"
            lines.extend([f"{ind}{head} {rig.names[j]}", f"{ind}{{", f"{ind}  OFFSET {offset}"])
            if self.channels[j]:
                names = " ".join(_CHANNEL_NAMES[c] for c in self.channels[j])
                lines.append(f"{ind}  CHANNELS {len(self.channels[j])} {names}")
            for c in kids[j]:
                emit(c, depth + 1)
            lines.append(f"{ind}}}")

        emit(rig.parents.index(-1), 0)
        lines += ["MOTION", f"Frames: {self.motion.shape[0]}", f"Frame Time: {1.0 / self.fps:.8f}"]
        lines += [_fmt(row) for row in self.motion]
        return "\n".join(lines) + "\n"


# --- the character ---------------------------------------------------------------------------------------
def _exact(value: float) -> str:
    # OFFSETs are written back digit for digit (shortest round-trip form, no exponent).
    return np.format_float_positional(float(value), trim="-")


def _hierarchy_only(text: str) -> str:
    """The HIERARCHY section of BVH text with an empty MOTION section (a character's frames are not read)."""
    lines = text.splitlines()
    cut = next((i for i, ln in enumerate(lines) if ln.strip().upper() == "MOTION"), len(lines))
    return "\n".join(lines[:cut] + ["MOTION", "Frames: 0", "Frame Time: 1"]) + "\n"


def _snap(v: np.ndarray) -> np.ndarray:
    """The signed coordinate axis closest to direction ``v``."""
    out = np.zeros(3)
    i = int(np.argmax(np.abs(v)))
    out[i] = np.sign(v[i])
    return out


def _axis_name(v: np.ndarray) -> str:
    i = int(np.argmax(np.abs(v)))
    return ("+" if v[i] > 0 else "-") + "xyz"[i]


def _mapped_ancestor(parents: list[int], mapped: set[int], j: int) -> int | None:
    p = parents[j]
    while p >= 0 and p not in mapped:
        p = parents[p]
    return p if p >= 0 else None


def load_target(path: str | os.PathLike[str], joint_map: str | JointMap | None = "auto") -> TargetRig:
    """Read a character's BVH skeleton: its joints mapped onto ours, its unit and its axes.

    Args:
        path: the BVH file; only the HIERARCHY is read (MOTION may be absent, empty or anything).
        joint_map: "auto" (best of the reader's maps), a map name or a dict ours -> target name(s).

    Raises :class:`RetargetError` (one line naming the file) for a file that does not parse,
    joints the map cannot find (those the BVH reader requires: pelvis, hips, knees, ankles, feet,
    shoulders, elbows, wrists, head), a zero-length bone on a mapped limb, or a rest pose whose
    left and right or up cannot be told.
    """
    path = Path(path)
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise RetargetError(f"{name}: cannot read the character skeleton ({type(err).__name__}: "
                            f"{' '.join(str(err).split())})") from None
    try:
        bvh = parse_bvh(_hierarchy_only(text), name)
    except ClipError as err:
        reason = " ".join(str(err).split()).removeprefix(f"{name}: ")
        raise RetargetError(f"{name}: not a BVH skeleton ({reason})") from None
    if not np.isfinite(bvh.offsets).all():
        raise RetargetError(f"{name}: NaN/inf OFFSET values")
    try:
        map_name, found = resolve_joint_map(bvh.names, joint_map)
    except ValueError as err:
        raise RetargetError(f"{name}: {err}") from None
    missing = [n for n in REQUIRED_JOINTS if n not in found]
    if missing:
        table = JOINT_MAPS.get(map_name, {})
        expect = ", ".join(f"{n} ({'/'.join(table[n]) if table.get(n) else 'no candidate'})" for n in missing)
        raise RetargetError(f"{name}: cannot map joints of ours onto the character (joint map {map_name!r}): "
                            f"missing {expect}")
    rest = bvh.rest_positions()
    leg = leg_length(rest[None], found)
    if not np.isfinite(leg) or leg <= 0:
        raise RetargetError(f"{name}: zero-length legs (hip-knee-ankle length {leg})")
    tol = _COINCIDENT * leg
    mapped = set(found.values())
    pelvis = found["pelvis"]
    for ours, k in found.items():
        if k == pelvis:
            continue
        p = k
        while p >= 0 and p != pelvis:
            p = bvh.parents[p]
        if p < 0:
            raise RetargetError(f"{name}: joint {bvh.names[k]!r} ({ours}) is not below the pelvis joint "
                                f"{bvh.names[pelvis]!r}")
    for ours in REQUIRED_JOINTS:
        k = found[ours]
        a = _mapped_ancestor(bvh.parents, mapped, k)
        if a is not None and np.linalg.norm(rest[k] - rest[a]) <= tol:
            raise RetargetError(f"{name}: zero-length bone {bvh.names[a]} -> {bvh.names[k]} (the {ours} sits on "
                                "its parent joint: the bone's direction cannot be set)")
    try:
        unit_m, units = guess_unit_scale(leg, map_name)
    except ValueError as err:
        raise RetargetError(f"{name}: {err}") from None
    up_vec = rest[found["head"]] - 0.5 * (rest[found["left_ankle"]] + rest[found["right_ankle"]])
    left_vec = (rest[found["left_hip"]] - rest[found["right_hip"]]
                + rest[found["left_shoulder"]] - rest[found["right_shoulder"]])
    if np.linalg.norm(up_vec) <= tol:
        raise RetargetError(f"{name}: the rest pose's head is level with its ankles: cannot tell its up axis")
    up = _snap(up_vec)
    left_vec = left_vec - (left_vec @ up) * up
    if np.linalg.norm(left_vec) <= tol:
        raise RetargetError(f"{name}: the rest pose's left and right joints coincide: cannot tell its facing")
    left = _snap(left_vec)
    forward = np.cross(left, up)
    axes = np.stack([left, up, forward], axis=1)  # columns: where our x (left), y (up), z (forward) go
    return TargetRig(path=path, bvh=bvh, joint_map=map_name, found=dict(found), rest=rest, unit_m=unit_m,
                     units=units, axes=axes, axes_text=f"{_axis_name(up)} up, facing {_axis_name(forward)}",
                     leg=leg)


# --- the motion ----------------------------------------------------------------------------------------------
def _aims(parents: list[int], rest: np.ndarray, mapped: set[int], tol: float) -> list[list[int]]:
    """Per joint, the mapped descendants whose directions set its rotation (see the module docstring)."""
    kids = children(parents)
    aims: list[list[int]] = [[] for _ in parents]
    for j in mapped:
        stack = list(reversed(kids[j]))
        while stack:
            k = stack.pop()
            if k in mapped and np.linalg.norm(rest[k] - rest[j]) > tol:
                aims[j].append(k)
            else:  # unmapped, or a mapped joint on top of j: look through it
                stack.extend(reversed(kids[k]))
    return aims


def _layout(channels: list[str], is_root: bool, driven: bool) -> list[str]:
    """The channels written for a joint: its own, plus what driving it needs."""
    chans = list(channels)
    if is_root and not all(c in chans for c in _POS_AXES):
        chans = list(_POS_AXES) + [c for c in chans if c not in _POS_AXES]
    if driven and sorted(c for c in chans if c in _ROT_AXES) != list(_ROT_AXES):
        chans = [c for c in chans if c not in _ROT_AXES] + _STANDARD_ROTATION
    return chans


def _channel_values(rig: TargetRig, channels: list[list[str]], local: np.ndarray, root_pos: np.ndarray) -> np.ndarray:
    """(T, C) channel values: root position, Euler angles in each joint's order, OFFSETs elsewhere."""
    t = local.shape[0]
    columns: list[np.ndarray] = []
    for j, chans in enumerate(channels):
        rot = [c for c in chans if c in _ROT_AXES]
        euler = None
        if len(rot) == 3:
            order = "".join(c[0].upper() for c in rot)
            euler = np.degrees(np.unwrap(Rotation.from_matrix(local[:, j]).as_euler(order), axis=0))
        for c in chans:
            if c in _POS_AXES:
                axis = _POS_AXES.index(c)
                columns.append(root_pos[:, axis] if rig.parents[j] < 0 else np.full(t, rig.bvh.offsets[j, axis]))
            else:
                # fewer than three rotation channels only on joints we do not drive: they stay at rest
                columns.append(euler[:, rot.index(c)] if euler is not None else np.zeros(t))
    return np.stack(columns, axis=1) if columns else np.zeros((t, 0))


def _floor_level(feet_heights: np.ndarray) -> float:
    return float(np.percentile(feet_heights.min(axis=1), _FLOOR_PERCENTILE))


def retarget(positions: np.ndarray, target: TargetRig | str | os.PathLike[str], skeleton: Skeleton = HUMANML3D,
             fps: float = 20.0) -> Retargeted:
    """Play a motion (T, J, 3) in metres, y up, facing +z, on a character (see the module docstring).

    Args:
        positions: joint positions of ``skeleton``; its joints are matched to the character's by name
            (the joint maps name ours), so it must name hips, knees and ankles.
        target: a :class:`TargetRig` or the path of the character's BVH file.
        skeleton: the motion's skeleton (default: the 22 HumanML3D joints).
        fps: frame rate.
    """
    rig = target if isinstance(target, TargetRig) else load_target(target)
    src = check_motion(positions, skeleton, fps)
    if any(n not in skeleton.names for n in _LEG_JOINTS):
        raise ValueError(f"the motion's skeleton must name {list(_LEG_JOINTS)} (its leg length sets the scale)")
    t, nj = src.shape[0], len(rig.names)
    ours = {n: k for n, k in rig.found.items() if n in skeleton.names}
    source_of = {k: skeleton.index(n) for n, k in ours.items()}
    src_leg = leg_length(src, {n: skeleton.index(n) for n in _LEG_JOINTS})
    if not np.isfinite(src_leg) or src_leg <= 0:
        raise ValueError(f"the motion has zero-length legs ({src_leg} m)")
    scale = rig.leg / src_leg  # file units per metre of the source
    axes = rig.axes

    # The motion in the file's axes at the character's size, at the mapped joints.
    placed = np.zeros((t, nj, 3))
    for k, s in source_of.items():
        placed[:, k] = src[:, s] @ axes.T * scale
    tol = _COINCIDENT * rig.leg
    aims = _aims(rig.parents, rig.rest, set(source_of), tol)
    target_skeleton = Skeleton(tuple(rig.names), tuple(rig.parents), ())
    local = solve_rotations(placed, rig.bvh.offsets, target_skeleton, aims)
    for j in range(nj):
        if not aims[j]:
            local[:, j] = np.eye(3)  # unmapped joints and mapped leaves keep their rest rotation
    channels = [_layout(c, rig.parents[j] < 0, bool(aims[j])) for j, c in enumerate(rig.bvh.channels)]
    starts = np.concatenate([[0], np.cumsum([len(c) for c in channels])[:-1]]).astype(int).tolist()

    def evaluate(root_pos: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Channel values, the reader's FK of them (file units) and that on our joints (source size)."""
        motion = _channel_values(rig, channels, local, root_pos)
        fk = BvhMotion(rig.names, rig.parents, rig.bvh.offsets, channels, 1.0 / fps, motion, starts).positions()
        back = map_to_skeleton(fk @ axes / scale, rig.found, str(rig.path), HUMANML3D)
        return motion, fk, back

    def to_file(shift_m: np.ndarray) -> np.ndarray:
        return shift_m @ axes.T * scale

    # Root: the hips' midpoint follows the source's, scaled. This is the source's root trajectory
    # scaled, corrected per frame for the pelvis layouts, which differ (SMPL's pelvis joint sits
    # ~9 cm above its hips, DeepMimic's level with them, Mixamo's Hips 7 cm above its UpLegs): a
    # character's legs then stand where the source's stood, which anchoring the pelvis joint
    # itself does not give (its feet sank by that height difference and slid as the pelvis turned).
    _, fk, _ = evaluate(np.zeros((t, 3)))  # root at the origin: the hips relative to it
    hips = [rig.found["left_hip"], rig.found["right_hip"]]
    root_pos = to_file(src[:, [skeleton.index("left_hip"), skeleton.index("right_hip")]].mean(1)) - fk[:, hips].mean(1)
    motion, fk, back = evaluate(root_pos)

    # Floor: the toe joints' height above the sole differs between characters; one vertical shift
    # puts the character's feet at the source's feet heights where those touch the floor.
    feet = list(HUMANML3D.feet)
    src_feet = ([skeleton.index(HUMANML3D.names[f]) for f in feet]
                if all(HUMANML3D.names[f] in skeleton.names for f in feet) else list(skeleton.feet))
    src_h, back_h = src[:, src_feet, 1], back[:, feet, 1]
    low = src_h < _CONTACT_HEIGHT_M
    floor = (float(np.median((src_h - back_h)[low])) if low.any()
             else _floor_level(src_h) - _floor_level(back_h))
    root_pos = root_pos + to_file(np.array([0.0, floor, 0.0]))
    motion, fk, back = evaluate(root_pos)

    # Feet: where the character's feet skate more than the source's, plant them as the clean-up does.
    skating_source = foot_skating_ratio(src.astype(np.float32), skeleton, fps) if skeleton.feet else float("nan")
    skating = foot_skating_ratio(back.astype(np.float32), HUMANML3D, fps)
    planted = False
    if skating > skating_source:
        shift = planting_shift(back.astype(np.float32), HUMANML3D, fps).astype(np.float64)
        candidate = evaluate(root_pos + to_file(shift))
        better = foot_skating_ratio(candidate[2].astype(np.float32), HUMANML3D, fps)
        if better < skating:
            motion, fk, back = candidate
            skating, planted = better, True

    bones = [(a, k) for k in source_of
             if (a := _mapped_ancestor(rig.parents, set(source_of), k)) is not None
             and np.linalg.norm(rig.rest[k] - rig.rest[a]) > tol]
    errors = []
    for a, k in bones:
        got = (fk[:, k] - fk[:, a]) @ axes
        want = src[:, source_of[k]] - src[:, source_of[a]]
        cos = (got * want).sum(-1) / np.maximum(np.linalg.norm(got, axis=-1) * np.linalg.norm(want, axis=-1), 1e-12)
        errors.append(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))
    per_bone = np.array([e.mean() for e in errors]) if errors else np.zeros(1)
    return Retargeted(target=rig, channels=channels, motion=motion, fps=float(fps), positions=fk,
                      mapped=back.astype(np.float32), scale=float(scale), floor_offset_m=float(floor),
                      skating_source=float(skating_source), skating_retargeted=float(skating), planted=planted,
                      direction_error_deg=float(np.mean(errors)) if errors else 0.0,
                      worst_bone_error_deg=float(per_bone.max()))


def save_retargeted_bvh(positions: np.ndarray, path: str | os.PathLike[str], target: TargetRig | str | os.PathLike[str],
                        fps: float = 20.0, skeleton: Skeleton = HUMANML3D) -> Path:
    """Write :func:`retarget` of ``positions`` onto ``target`` as a BVH file (atomically); returns the path."""
    path = Path(path)
    write_text(path, retarget(positions, target, skeleton, fps).to_bvh())
    return path


__all__ = ["RetargetError", "Retargeted", "TargetRig", "load_target", "retarget", "save_retargeted_bvh"]
