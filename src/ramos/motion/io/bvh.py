"""BVH motion files: parsing, forward kinematics, units, axes and a joint-name map to 22 joints.

Conventions (those of Biovision/MotionBuilder and most readers): a joint's rotation channels apply
in the listed order as intrinsic rotations (``Zrotation Xrotation Yrotation`` is Rz @ Rx @ Ry), in
degrees; position channels, when a joint has them, replace that joint's OFFSET component. The
local transform is translate-then-rotate: ``p_child = p_parent + R_parent @ offset_child``.
End sites become joints named ``<parent>_end``.

:func:`read_bvh` + :meth:`BvhMotion.positions` are the plain parser and FK (file units and axes),
usable to read back files written by ``ramos.motion.export``; :func:`read_item` maps them onto the
22 joints in metres, y up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from ramos.motion.clip import Clip, ClipError
from ramos.motion.io._common import (
    canonical_facing,
    check_fps,
    check_positions,
    forward_kinematics,
    read_sidecar,
    read_text,
    to_y_up,
)
from ramos.motion.io.bvh_maps import JOINT_MAPS, SIGNATURES, JointMap
from ramos.motion.skeleton import HUMANML3D, Skeleton

_ROT = {"xrotation": "X", "yrotation": "Y", "zrotation": "Z"}
_POS = {"xposition": 0, "yposition": 1, "zposition": 2}

REQUIRED_JOINTS: tuple[str, ...] = tuple(
    n for n in HUMANML3D.names
    if n in ("pelvis", "head") or n.split("_", 1)[-1] in ("hip", "knee", "ankle", "foot", "shoulder", "elbow", "wrist")
)
"""Targets that cannot be interpolated (chain ends and limbs): a joint map must find these."""

KNOWN_UNITS: dict[str, float] = {
    "metres": 1.0,
    "centimetres": 0.01,
    "millimetres": 0.001,
    "inches": 0.0254,
    # The CMU mocap BVH conversions (cgspeed's, and those derived from it) keep the ASF files'
    # unit, "length 0.45": one unit is 1/0.45 inch = 0.05644 m (a 1.7 m subject is 30 units tall).
    "cmu": 0.0254 / 0.45,
}
"""Metres per file unit of the length units BVH files are found in."""

LEG_RANGE_M: tuple[float, float] = (0.45, 1.2)
"""Leg lengths (hip to knee to ankle joint centres) that a unit may give: a child to a very tall
adult (SMPL's mean shape: about 0.78 m)."""

REFERENCE_LEG_M = 0.78
"""Leg length of the reference skeleton, HumanML3D's target skeleton (an SMPL body of mean shape:
femur ~0.37 m + tibia ~0.41 m). A file whose unit is none of :data:`KNOWN_UNITS` is scaled to it,
as HumanML3D's own processing scales every subject to its target skeleton by leg length."""


@dataclass
class BvhMotion:
    """A parsed BVH file (file units and axes)."""

    names: list[str]
    parents: list[int]
    offsets: np.ndarray  # (J, 3)
    channels: list[list[str]]  # per joint, lower-case channel names in file order
    frame_time: float
    motion: np.ndarray  # (T, C) channel values
    channel_start: list[int] = field(default_factory=list)

    @property
    def num_frames(self) -> int:
        return int(self.motion.shape[0])

    def local_transforms(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-frame local translations (T, J, 3) and rotations (T, J, 3, 3)."""
        from scipy.spatial.transform import Rotation  # deferred: scipy.spatial is slow to import

        t, j = self.num_frames, len(self.names)
        trans = np.broadcast_to(self.offsets, (t, j, 3)).copy()
        rot = np.tile(np.eye(3), (t, j, 1, 1))
        for i, chans in enumerate(self.channels):
            start = self.channel_start[i]
            order, cols = "", []
            for k, c in enumerate(chans):
                if c in _POS:
                    trans[:, i, _POS[c]] = self.motion[:, start + k]
                else:
                    order += _ROT[c]
                    cols.append(start + k)
            if order:
                rot[:, i] = Rotation.from_euler(order, self.motion[:, cols], degrees=True).as_matrix()
        return trans, rot

    def positions(self) -> np.ndarray:
        """(T, J, 3) global joint positions by forward kinematics (file units and axes)."""
        trans, rot = self.local_transforms()
        pos, _ = forward_kinematics(self.parents, trans, rot, np.zeros((self.num_frames, 3)))
        return pos

    def rest_positions(self) -> np.ndarray:
        """(J, 3) joint positions of the rest pose (OFFSETs only, no channels)."""
        j = len(self.names)
        pos, _ = forward_kinematics(self.parents, self.offsets, np.tile(np.eye(3), (1, j, 1, 1)), np.zeros((1, 3)))
        return pos[0]


def parse_bvh(text: str, name: str = "<bvh>") -> BvhMotion:
    """Parse BVH text; any malformation raises :class:`ClipError` naming ``name``."""
    tokens = text.split()
    pos = 0

    def take() -> str:
        nonlocal pos
        if pos >= len(tokens):
            raise ClipError(f"{name}: unexpected end of file in HIERARCHY")
        pos += 1
        return tokens[pos - 1]

    def expect(word: str) -> None:
        got = take()
        if got.upper() != word.upper():
            raise ClipError(f"{name}: expected {word!r}, got {got!r}")

    def number(what: str) -> float:
        tok = take()
        try:
            return float(tok)
        except ValueError:
            raise ClipError(f"{name}: non-numeric {what} {tok!r}") from None

    names: list[str] = []
    parents: list[int] = []
    offsets: list[list[float]] = []
    channels: list[list[str]] = []

    def joint(joint_name: str, parent: int, end_site: bool = False) -> None:
        index = len(names)
        names.append(joint_name)
        parents.append(parent)
        expect("{")
        expect("OFFSET")
        offsets.append([number("OFFSET") for _ in range(3)])
        chans: list[str] = []
        if not end_site:
            if tokens[pos:pos + 1] and tokens[pos].upper() == "CHANNELS":
                take()
                count = number("CHANNELS count")
                if count != int(count) or count < 0:
                    raise ClipError(f"{name}: bad CHANNELS count {count}")
                chans = [take().lower() for _ in range(int(count))]
                bad = [c for c in chans if c not in _ROT and c not in _POS]
                if bad:
                    raise ClipError(f"{name}: unknown channel(s) {bad} in joint {joint_name!r}")
        channels.append(chans)
        while True:
            tok = take()
            up = tok.upper()
            if up == "}":
                return
            if up == "JOINT":
                joint(take(), index)
            elif up == "END":
                expect("Site")
                joint(f"{joint_name}_end", index, end_site=True)
            else:
                raise ClipError(f"{name}: unexpected token {tok!r} in joint {joint_name!r}")

    expect("HIERARCHY")
    expect("ROOT")
    joint(take(), -1)
    expect("MOTION")
    expect("Frames:")
    num_frames = number("frame count")
    if tokens[pos:pos + 2] != ["Frame", "Time:"]:
        raise ClipError(f"{name}: expected 'Frame Time:'")
    pos += 2
    frame_time = number("frame time")
    num_channels = sum(len(c) for c in channels)
    try:
        values = np.array(tokens[pos:], dtype=np.float64)
    except ValueError:
        raise ClipError(f"{name}: non-numeric values in MOTION") from None
    if num_frames != int(num_frames) or num_frames < 0:
        raise ClipError(f"{name}: bad frame count {num_frames}")
    expected = int(num_frames) * num_channels
    if values.size != expected:
        raise ClipError(f"{name}: MOTION has {values.size} values, expected {int(num_frames)} frames x "
                        f"{num_channels} channels = {expected} (truncated or malformed)")
    starts = np.concatenate([[0], np.cumsum([len(c) for c in channels])[:-1]]).astype(int).tolist()
    return BvhMotion(names, parents, np.array(offsets, dtype=np.float64), channels, frame_time,
                     values.reshape(int(num_frames), num_channels), starts)


def read_bvh(path: str | Path) -> BvhMotion:
    """Parse a BVH file (see :func:`parse_bvh`)."""
    path = Path(path)
    return parse_bvh(read_text(path), str(path))


def _normalise(name: str) -> str:
    return name.rsplit(":", 1)[-1].lower()


def resolve_joint_map(names: list[str], joint_map: str | JointMap | None = None) -> tuple[str, dict[str, int]]:
    """Source joint index per target joint found; ``joint_map`` None/"auto" picks the best shipped map."""
    index: dict[str, int] = {}
    for i, n in enumerate(names):
        index.setdefault(_normalise(n), i)

    def apply(m: JointMap) -> dict[str, int]:
        found = {}
        for target, candidates in m.items():
            for cand in candidates:
                if _normalise(cand) in index:
                    found[target] = index[_normalise(cand)]
                    break
        return found

    if joint_map is None or joint_map == "auto":
        scored = [(len(apply(m)), sum(_normalise(n) in index for n in SIGNATURES[key]), key)
                  for key, m in JOINT_MAPS.items()]
        key = max(scored)[2]
        return key, apply(JOINT_MAPS[key])
    if isinstance(joint_map, str):
        if joint_map not in JOINT_MAPS:
            raise ValueError(f"unknown joint map {joint_map!r}; choose from {sorted(JOINT_MAPS)} or pass a dict")
        return joint_map, apply(JOINT_MAPS[joint_map])
    return "custom", apply({k: tuple(v) if not isinstance(v, str) else (v,) for k, v in joint_map.items()})


def map_to_skeleton(positions: np.ndarray, found: dict[str, int], name: str,
                    skeleton: Skeleton = HUMANML3D) -> np.ndarray:
    """Pick mapped joints and interpolate the others along the skeleton's chains (spine, collars...)."""
    missing = [n for n in REQUIRED_JOINTS if n in skeleton.names and n not in found]
    if missing:
        raise ClipError(f"{name}: no source joint for {missing} (pass joint_map=...)")
    out = np.full((positions.shape[0], skeleton.num_joints, 3), np.nan)
    have = np.zeros(skeleton.num_joints, dtype=bool)
    for target, src in found.items():
        if target in skeleton.names:
            out[:, skeleton.index(target)] = positions[:, src]
            have[skeleton.index(target)] = True
    for chain in skeleton.chains:  # chains are ordered so each starts at a placed joint
        known = [k for k, j in enumerate(chain) if have[j]]
        for k, j in enumerate(chain):
            if have[j]:
                continue
            before = max((a for a in known if a < k), default=None)
            after = min((b for b in known if b > k), default=None)
            if before is None or after is None:
                raise ClipError(f"{name}: cannot place joint {skeleton.names[j]!r} (no mapped joints around it)")
            w = (k - before) / (after - before)
            out[:, j] = (1 - w) * out[:, chain[before]] + w * out[:, chain[after]]
            have[j] = True
    return out


def leg_length(positions: np.ndarray, found: dict[str, int]) -> float:
    """Median over frames of hip-knee plus knee-ankle distance (file units), averaged over both legs.

    Leg bones, unlike the standing height, do not depend on the rest pose (arms up, a crouch, a
    z-up file read as y-up) nor on where end sites put the top of the head and the toes.
    """
    legs = []
    for side in ("left", "right"):
        hip, knee, ankle = (positions[:, found[f"{side}_{j}"]] for j in ("hip", "knee", "ankle"))
        legs.append(np.median(np.linalg.norm(knee - hip, axis=-1) + np.linalg.norm(ankle - knee, axis=-1)))
    return float(np.mean(legs))


def guess_unit_scale(leg: float, joint_map: str | None = None) -> tuple[float, str]:
    """Metres per file unit from the leg length in file units, and how it was decided.

    A known unit (:data:`KNOWN_UNITS`) is taken when it gives a leg within :data:`LEG_RANGE_M`;
    of several, the rig's own (CMU units for the ``cmu`` joint map), else the one closest to the
    reference leg. Otherwise the unit is unknown and the figure is scaled to the reference leg
    (:data:`REFERENCE_LEG_M`), not to a standing height.
    """
    if not np.isfinite(leg) or leg <= 0:
        raise ValueError(f"cannot tell the length unit: leg length {leg} in file units")
    lo, hi = LEG_RANGE_M
    fits = {unit: scale for unit, scale in KNOWN_UNITS.items() if lo <= leg * scale <= hi}
    if fits:
        unit = joint_map if joint_map in fits else min(fits, key=lambda u: abs(np.log(leg * fits[u] / REFERENCE_LEG_M)))
        return fits[unit], f"{unit} ({fits[unit]:.4g} m per unit; leg {leg:.4g} units = {leg * fits[unit]:.3f} m)"
    scale = REFERENCE_LEG_M / leg
    return scale, (f"unknown unit: scaled to the reference leg of {REFERENCE_LEG_M} m (leg {leg:.4g} units, "
                   f"no known unit gives {lo}-{hi} m)")


@dataclass(frozen=True)
class BvhItem:
    """One BVH file."""

    path: str
    source_id: str


def list_items(root: Path | str, pattern: str = "**/*.bvh") -> list[BvhItem]:
    """BVH files under ``root`` (or ``root`` itself if it is a file); ids are relative paths without suffix."""
    root = Path(root)
    if root.is_file():
        return [BvhItem(str(root), root.stem)]
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such file or folder")
    return [BvhItem(str(p), "/".join(p.relative_to(root).with_suffix("").parts))
            for p in sorted(root.glob(pattern)) if p.is_file()]


def read_item(item: BvhItem, joint_map: str | JointMap | None = "auto", scale: float | Literal["auto"] = "auto",
              axes: str | np.ndarray = "y_up", canonicalize: bool = False) -> list[Clip]:
    """Read one BVH file as a 22-joint :class:`Clip`.

    Args:
        item: from :func:`list_items`.
        joint_map: "auto" (best of ``bvh_maps.JOINT_MAPS``), a map name ("cmu", "mixamo", "humanml3d")
            or a dict target -> source name(s).
        scale: metres per file unit, or "auto": the known unit (m, cm, mm, inches, CMU's 1/0.45 inch)
            that gives a plausible leg length, else scaled to the reference leg (:func:`guess_unit_scale`);
            ``meta["units"]`` says how it was decided.
        axes: source convention, "y_up" (BVH's usual) or "z_up", or a 3x3 rotation to y-up.
        canonicalize: face +z in the first frame with the pelvis at x = z = 0 (off: positions kept).
    """
    path = Path(item.path)
    bvh = read_bvh(path)
    name = str(path)
    if bvh.num_frames < 2:
        raise ClipError(f"{name}: {bvh.num_frames} frame(s); at least 2 needed")
    fps = check_fps(1.0 / bvh.frame_time if bvh.frame_time > 0 else bvh.frame_time, name)
    if abs(fps - round(fps)) < 1e-4 * fps:  # "Frame Time: 0.016667" means 60 fps, not 59.9988
        fps = float(round(fps))
    if not np.isfinite(bvh.motion).all() or not np.isfinite(bvh.offsets).all():
        raise ClipError(f"{name}: NaN/inf values")
    map_name, found = resolve_joint_map(bvh.names, joint_map)
    raw = bvh.positions()
    positions = map_to_skeleton(raw, found, name)  # first: it names any missing leg joint
    if scale == "auto":
        try:
            unit, how = guess_unit_scale(leg_length(raw, found), map_name)
        except ValueError as err:
            raise ClipError(f"{name}: {err}") from None
    else:
        unit, how = float(scale), "given"
    positions = positions * unit
    positions = to_y_up(positions, axes)
    if canonicalize:
        positions = canonical_facing(positions, name)
    labels, captions = read_sidecar(path)
    return [Clip(positions=check_positions(positions, name, HUMANML3D.num_joints), fps=fps,
                 source_id=item.source_id, source="bvh", captions=captions, labels=labels,
                 meta={"file": path.name, "joint_map": map_name, "unit_scale_m": unit, "units": how})]


__all__ = ["KNOWN_UNITS", "REFERENCE_LEG_M", "BvhItem", "BvhMotion", "guess_unit_scale", "leg_length", "list_items",
           "map_to_skeleton", "parse_bvh", "read_bvh", "read_item", "resolve_joint_map"]
