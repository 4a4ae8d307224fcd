"""Export joint positions as an animated glTF 2.0 binary (``.glb``): a skinned skeleton with one animation.

Blender, three.js, Godot and Unity import the file as an armature (one node per joint, named as in
the skeleton) that plays the motion, with a low-poly figure skinned to it so that there is
something to see.

- Axes and units: glTF is y up, metres, right-handed, with a model's front along +z: the same as
  RaMoS (subject facing +z, left side at +x), so positions are written as they are, with no axis
  conversion. (Importers into z-up programs such as Blender do their own conversion.)
- Skeleton: the rest pose is :func:`ramos.motion.export.bvh.rest_offsets` (T-pose-like, each bone
  at the motion's mean length); every joint node has the rest offset from its parent as its
  translation and no rotation, and the root node stands at the motion's first root position. The
  skin's inverse bind matrices are the inverses of those rest (translation-only) joint transforms.
- Animation: one, named ``motion``: the root's translation per frame and every joint's local
  rotation per frame (unit quaternions from :func:`ramos.motion.rigid.solve_rotations`, signs
  kept continuous over time), LINEAR interpolation, key times ``frame / fps``. glTF has no frame
  rate, so the rate is also stored in the animation's ``extras`` (``{"fps": ...}``) for
  :func:`read_glb_positions`.
- Mesh: an octahedron along every bone, weighted 1.0 to the bone's parent joint (which carries
  the bone rigidly), plus a short tip past each leaf joint (head, hands, feet) weighted to the
  leaf; one material per side (left blue, right red, centre grey), as in RaMoS's renders.

Motions with constant bone lengths come back exactly (to float32 precision); motions whose bone
lengths vary are exported on the fixed mean-length skeleton, as for BVH.
:func:`read_glb_positions` is the independent check: it reads a ``.glb`` back with ``pygltflib``
and evaluates its animation by forward kinematics over the node hierarchy.

Blender: glTF key times are seconds, converted at the scene's frame rate, so set the scene to the
motion's rate before importing for one key per frame. Debian's Blender 3.4 with NumPy >= 1.24 fails
to import any glTF mesh with the default "Shading: Use Normal Data" (its importer uses the removed
``np.bool``); "Shading: Flat" works (``benchmarks/blender_read.py`` uses it).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pygltflib
from scipy.spatial.transform import Rotation

from ramos.motion.export.bvh import check_motion, rest_offsets
from ramos.motion.rigid import solve_rotations
from ramos.motion.skeleton import HUMANML3D, Skeleton
from ramos.utils.atomic import atomic_path

GENERATOR = "RaMoS"
"""``asset.generator`` of the files written."""

ANIMATION_NAME = "motion"

_SIDE_COLOURS_SRGB = {1: (0x1F, 0x5F, 0xD6), -1: (0xD6, 0x27, 0x28), 0: (0x88, 0x88, 0x88)}
_SIDE_NAMES = {1: "left", -1: "right", 0: "centre"}
_EPS = 1e-9

_COMPONENTS = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT4": 16}
_DTYPES = {pygltflib.FLOAT: np.float32, pygltflib.UNSIGNED_BYTE: np.uint8, pygltflib.UNSIGNED_SHORT: np.uint16,
           pygltflib.UNSIGNED_INT: np.uint32, pygltflib.BYTE: np.int8, pygltflib.SHORT: np.int16}


def _srgb_to_linear(rgb: tuple[int, int, int]) -> list[float]:
    # baseColorFactor is linear; the colours above are the sRGB ones of ramos.motion.render.
    c = np.asarray(rgb, dtype=np.float64) / 255.0
    return [*np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4).tolist(), 1.0]


def _octahedron(a: np.ndarray, b: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Flat-shaded octahedron from ``a`` to ``b`` (its waist at 20% of the way): (24, 3) vertices, (24, 3) normals."""
    axis = b - a
    length = float(np.linalg.norm(axis))
    d = axis / max(length, _EPS)
    helper = np.array([1.0, 0.0, 0.0]) if abs(d[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    u = np.cross(d, helper)
    u /= np.linalg.norm(u)
    v = np.cross(d, u)
    waist = a + 0.2 * axis
    ring = [waist + radius * w for w in (u, v, -u, -v)]
    tris = []
    for k in range(4):
        r0, r1 = ring[k], ring[(k + 1) % 4]
        tris += [(a, r1, r0), (b, r0, r1)]  # counter-clockwise seen from outside
    verts = np.array([p for tri in tris for p in tri])
    normals = []
    for p0, p1, p2 in tris:
        n = np.cross(p1 - p0, p2 - p0)
        normals += [n / max(np.linalg.norm(n), _EPS)] * 3
    return verts, np.array(normals)


def _figure(rest_world: np.ndarray, skeleton: Skeleton) -> dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per side: (vertices, normals, joint index per vertex) of the figure in the bind pose."""
    parts: dict[int, list[tuple[np.ndarray, np.ndarray, int]]] = {s: [] for s in (1, -1, 0)}
    has_child = {p for p in skeleton.parents if p >= 0}
    for c, p in enumerate(skeleton.parents):
        if p < 0:
            continue
        a, b = rest_world[p], rest_world[c]
        length = float(np.linalg.norm(b - a))
        if length < 1e-6:
            continue  # a zero-length bone has no direction to draw along
        verts, normals = _octahedron(a, b, min(0.12 * length, 0.04))
        parts[int(skeleton.side[c])].append((verts, normals, p))
        if c not in has_child:
            # A leaf (head, hand, foot) gets a short tip continuing its bone, carried by the leaf itself.
            tip = b + (b - a) / length * max(0.5 * length, 0.05)
            verts, normals = _octahedron(b, tip, min(0.15 * length, 0.04))
            parts[int(skeleton.side[c])].append((verts, normals, c))
    out = {}
    for side, items in parts.items():
        if items:
            out[side] = (np.concatenate([v for v, _, _ in items]), np.concatenate([n for _, n, _ in items]),
                         np.concatenate([np.full(len(v), j) for v, _, j in items]))
    return out


class _Blob:
    """The binary buffer under construction: each array becomes a 4-byte aligned buffer view plus an accessor."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.views: list[pygltflib.BufferView] = []
        self.accessors: list[pygltflib.Accessor] = []

    def add(self, array: np.ndarray, kind: str, target: int | None = None, bounds: bool = False) -> int:
        comp = {np.dtype(np.float32): pygltflib.FLOAT, np.dtype(np.uint8): pygltflib.UNSIGNED_BYTE,
                np.dtype(np.uint16): pygltflib.UNSIGNED_SHORT}[array.dtype]
        self.data += b"\0" * (-len(self.data) % 4)
        raw = np.ascontiguousarray(array).tobytes()  # little endian on every platform numpy runs on here
        self.views.append(pygltflib.BufferView(buffer=0, byteOffset=len(self.data), byteLength=len(raw), target=target))
        self.data += raw
        flat = array.reshape(array.shape[0], -1)
        acc = pygltflib.Accessor(bufferView=len(self.views) - 1, componentType=comp, count=int(array.shape[0]),
                                 type=kind)
        if bounds:  # required for POSITION and animation inputs
            acc.min, acc.max = flat.min(0).tolist(), flat.max(0).tolist()
        self.accessors.append(acc)
        return len(self.accessors) - 1


def to_glb(positions: np.ndarray, skeleton: Skeleton = HUMANML3D, fps: float = 20.0) -> bytes:
    """The ``.glb`` bytes of a motion (T, J, 3) in metres, y up, facing +z; see the module docstring."""
    pos = check_motion(positions, skeleton, fps)
    fps = float(fps)
    offsets = rest_offsets(pos, skeleton)
    local = solve_rotations(pos, offsets, skeleton)
    t, j = pos.shape[:2]
    root = skeleton.root

    # Rest (= bind) pose: no joint rotations, root at the first frame's root position.
    translations = offsets.copy()
    translations[root] = pos[0, root]
    rest_world = np.zeros((j, 3))
    for c, p in enumerate(skeleton.parents):  # parents come first (topological order)
        rest_world[c] = translations[c] + (rest_world[p] if p >= 0 else 0.0)

    quats = Rotation.from_matrix(local.reshape(-1, 3, 3)).as_quat().reshape(t, j, 4)  # x, y, z, w as glTF
    # Keep consecutive keys in the same hemisphere so that interpolation turns the short way in every player.
    flips = np.cumprod(np.where((quats[1:] * quats[:-1]).sum(-1) < 0, -1.0, 1.0), axis=0)
    quats[1:] *= flips[..., None]

    blob = _Blob()
    nodes = [pygltflib.Node(name=skeleton.names[i], translation=translations[i].tolist()) for i in range(j)]
    for c, p in enumerate(skeleton.parents):
        if p >= 0:
            nodes[p].children.append(c)

    # Column-major 4x4 inverse bind matrices: the inverse of a pure translation is the opposite one.
    ibm = np.tile(np.eye(4), (j, 1, 1))
    ibm[:, :3, 3] = -rest_world
    ibm_acc = blob.add(np.swapaxes(ibm, 1, 2).reshape(j, 16).astype(np.float32), "MAT4")
    skin = pygltflib.Skin(name="skeleton", joints=list(range(j)), skeleton=root, inverseBindMatrices=ibm_acc)

    primitives, materials = [], []
    for side, (verts, normals, joints) in _figure(rest_world, skeleton).items():
        joints4 = np.zeros((len(joints), 4), dtype=np.uint8 if j <= 256 else np.uint16)
        joints4[:, 0] = joints
        weights4 = np.zeros((len(joints), 4), dtype=np.float32)
        weights4[:, 0] = 1.0
        attrs = pygltflib.Attributes(
            POSITION=blob.add(verts.astype(np.float32), "VEC3", pygltflib.ARRAY_BUFFER, bounds=True),
            NORMAL=blob.add(normals.astype(np.float32), "VEC3", pygltflib.ARRAY_BUFFER),
            JOINTS_0=blob.add(joints4, "VEC4", pygltflib.ARRAY_BUFFER),
            WEIGHTS_0=blob.add(weights4, "VEC4", pygltflib.ARRAY_BUFFER))
        materials.append(pygltflib.Material(
            name=_SIDE_NAMES[side], doubleSided=False,
            pbrMetallicRoughness=pygltflib.PbrMetallicRoughness(
                baseColorFactor=_srgb_to_linear(_SIDE_COLOURS_SRGB[side]), metallicFactor=0.0, roughnessFactor=0.7)))
        primitives.append(pygltflib.Primitive(attributes=attrs, material=len(materials) - 1, mode=pygltflib.TRIANGLES))
    mesh_node = len(nodes)
    nodes.append(pygltflib.Node(name="figure", mesh=0, skin=0))

    times = blob.add((np.arange(t) / fps).astype(np.float32), "SCALAR", bounds=True)
    samplers = [pygltflib.AnimationSampler(input=times, interpolation="LINEAR",
                                           output=blob.add(pos[:, root].astype(np.float32), "VEC3"))]
    channels = [pygltflib.AnimationChannel(sampler=0, target=pygltflib.AnimationChannelTarget(node=root,
                                                                                              path="translation"))]
    for i in range(j):
        samplers.append(pygltflib.AnimationSampler(input=times, interpolation="LINEAR",
                                                   output=blob.add(quats[:, i].astype(np.float32), "VEC4")))
        channels.append(pygltflib.AnimationChannel(
            sampler=len(samplers) - 1, target=pygltflib.AnimationChannelTarget(node=i, path="rotation")))

    gltf = pygltflib.GLTF2(
        asset=pygltflib.Asset(version="2.0", generator=GENERATOR),
        scene=0, scenes=[pygltflib.Scene(name="RaMoS motion", nodes=[root, mesh_node])],
        nodes=nodes, skins=[skin], meshes=[pygltflib.Mesh(name="figure", primitives=primitives)],
        materials=materials, accessors=blob.accessors, bufferViews=blob.views,
        buffers=[pygltflib.Buffer(byteLength=0)],
        animations=[pygltflib.Animation(name=ANIMATION_NAME, samplers=samplers, channels=channels,
                                        extras={"fps": fps, "frames": int(t)})],
    )
    blob.data += b"\0" * (-len(blob.data) % 4)
    gltf.buffers[0].byteLength = len(blob.data)
    gltf.set_binary_blob(bytes(blob.data))
    return b"".join(gltf.save_to_bytes())


def save_glb(positions: np.ndarray, path: str | os.PathLike[str], skeleton: Skeleton = HUMANML3D,
             fps: float = 20.0) -> Path:
    """Write :func:`to_glb` of ``positions`` to ``path`` atomically; returns the path."""
    data = to_glb(positions, skeleton, fps)  # errors come before anything touches the disk
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path


# --- reading back (the independent check) -------------------------------------------------------------
def _accessor(gltf: pygltflib.GLTF2, blob: bytes, index: int) -> np.ndarray:
    """An accessor's data as a (count, components) array (float, normalized integers unscaled)."""
    acc = gltf.accessors[index]
    view = gltf.bufferViews[acc.bufferView]
    dtype = np.dtype(_DTYPES[acc.componentType]).newbyteorder("<")
    comps = _COMPONENTS[acc.type]
    start = (view.byteOffset or 0) + (acc.byteOffset or 0)
    stride = view.byteStride or dtype.itemsize * comps
    rows = np.frombuffer(blob, dtype=np.uint8, count=stride * (acc.count - 1) + dtype.itemsize * comps, offset=start)
    rows = np.lib.stride_tricks.as_strided(rows, shape=(acc.count, dtype.itemsize * comps), strides=(stride, 1))
    return np.ascontiguousarray(rows).view(dtype).reshape(acc.count, comps).astype(np.float64)


def _sample(times: np.ndarray, values: np.ndarray, t: float, interpolation: str, rotation: bool) -> np.ndarray:
    """A LINEAR (slerp for rotations) or STEP sampler's value at time ``t`` (clamped to its range)."""
    if t <= times[0]:
        return values[0]
    if t >= times[-1]:
        return values[-1]
    k = int(np.searchsorted(times, t, side="right")) - 1
    if interpolation == "STEP":
        return values[k]
    if interpolation != "LINEAR":
        raise ValueError(f"unsupported interpolation {interpolation}")
    s = (t - times[k]) / (times[k + 1] - times[k])
    a, b = values[k], values[k + 1]
    if not rotation:
        return (1 - s) * a + s * b
    if np.dot(a, b) < 0:
        b = -b
    cos = min(float(np.dot(a, b)), 1.0)
    angle = math.acos(cos)
    if angle < 1e-6:
        q = (1 - s) * a + s * b
    else:
        q = (math.sin((1 - s) * angle) * a + math.sin(s * angle) * b) / math.sin(angle)
    return q / np.linalg.norm(q)


def _local_matrix(translation: np.ndarray, rotation: np.ndarray, scale: np.ndarray) -> np.ndarray:
    m = np.eye(4)
    m[:3, :3] = Rotation.from_quat(rotation).as_matrix() * scale[None, :]
    m[:3, 3] = translation
    return m


def read_glb_positions(path: str | os.PathLike[str]) -> tuple[np.ndarray, float, list[str]]:
    """World joint positions (T, J, 3), fps and joint names of a ``.glb`` written by :func:`save_glb`.

    Reads the file with ``pygltflib`` and evaluates its first animation at ``frame / fps`` for every
    frame, composing node transforms down the scene's hierarchy (forward kinematics). Joints are
    the first skin's joints, in its order. The rate is the animation's ``extras.fps`` when present,
    else inferred from the key times.
    """
    gltf = pygltflib.GLTF2.load(str(path))
    blob = gltf.binary_blob()
    if not gltf.skins or not gltf.animations:
        raise ValueError(f"{path}: no skin or no animation")
    anim = gltf.animations[0]
    extras = anim.extras or {}
    keys = [_accessor(gltf, blob, s.input)[:, 0] for s in anim.samplers]
    duration = max(float(k[-1]) for k in keys)
    if "fps" in extras:
        fps = float(extras["fps"])
    else:
        longest = max(keys, key=len)
        fps = (len(longest) - 1) / duration if duration > 0 else 20.0
    frames = int(extras.get("frames", round(duration * fps) + 1))

    n = len(gltf.nodes)
    base_t = [np.array(node.translation if node.translation is not None else [0.0, 0.0, 0.0]) for node in gltf.nodes]
    base_r = [np.array(node.rotation if node.rotation is not None else [0.0, 0.0, 0.0, 1.0]) for node in gltf.nodes]
    base_s = [np.array(node.scale if node.scale is not None else [1.0, 1.0, 1.0]) for node in gltf.nodes]
    for i, node in enumerate(gltf.nodes):
        if node.matrix is not None and node.matrix != [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]:
            raise ValueError(f"{path}: node {node.name!r} has a matrix; only TRS nodes are supported")
    channels = []
    for ch in anim.channels:
        sampler = anim.samplers[ch.sampler]
        if ch.target.path not in ("translation", "rotation", "scale"):
            continue  # morph weights move no joint
        channels.append((ch.target.node, ch.target.path, keys[ch.sampler], _accessor(gltf, blob, sampler.output),
                         sampler.interpolation or "LINEAR"))

    parent = [-1] * n
    for i, node in enumerate(gltf.nodes):
        for c in node.children or []:
            parent[c] = i
    order: list[int] = []  # parents before children
    stack = [i for i in range(n) if parent[i] < 0]
    while stack:
        i = stack.pop()
        order.append(i)
        stack.extend(gltf.nodes[i].children or [])

    joints = gltf.skins[0].joints
    out = np.empty((frames, len(joints), 3))
    for f in range(frames):
        trs = {"translation": list(base_t), "rotation": list(base_r), "scale": list(base_s)}
        for node, what, times, values, interp in channels:
            trs[what][node] = _sample(times, values, f / fps, interp, what == "rotation")
        world = [np.eye(4)] * n
        for i in order:
            m = _local_matrix(trs["translation"][i], trs["rotation"][i], trs["scale"][i])
            world[i] = world[parent[i]] @ m if parent[i] >= 0 else m
        out[f] = [world[i][:3, 3] for i in joints]
    return out, fps, [gltf.nodes[i].name for i in joints]
