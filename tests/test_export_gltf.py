"""glTF 2.0 binary export: real clips written as .glb, read back with pygltflib (and Blender when installed)."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pygltflib
import pytest

from ramos.motion.export import read_glb_positions, rest_offsets, save_glb, to_glb
from ramos.motion.io.builtin import load_all
from ramos.motion.skeleton import HUMANML3D

BLENDER_READER = Path(__file__).resolve().parents[1] / "benchmarks" / "blender_read.py"


@pytest.fixture(scope="module")
def clips():
    return {c.source_id: c for c in load_all()}


def _accessor(gltf: pygltflib.GLTF2, index: int) -> np.ndarray:
    """Tightly packed accessor data (what our writer produces) as a (count, components) array."""
    acc = gltf.accessors[index]
    view = gltf.bufferViews[acc.bufferView]
    dtype = {pygltflib.FLOAT: "<f4", pygltflib.UNSIGNED_BYTE: "u1", pygltflib.UNSIGNED_SHORT: "<u2"}[acc.componentType]
    comps = {"SCALAR": 1, "VEC3": 3, "VEC4": 4, "MAT4": 16}[acc.type]
    assert view.byteStride in (None, 0)
    data = np.frombuffer(gltf.binary_blob(), dtype=dtype, count=acc.count * comps,
                         offset=(view.byteOffset or 0) + (acc.byteOffset or 0))
    return data.reshape(acc.count, comps)


@pytest.mark.parametrize("clip_id", ["humanoid3d_cartwheel", "humanoid3d_walk", "humanoid3d_backflip",
                                     "humanoid3d_spinkick", "walker_turn_left0"])
def test_glb_round_trip_of_a_real_clip_is_within_a_millimetre(tmp_path, clips, clip_id):
    clip = clips[clip_id]
    path = save_glb(clip.positions, tmp_path / "clip.glb", HUMANML3D, clip.fps)
    back, fps, names = read_glb_positions(path)
    assert back.shape == clip.positions.shape  # frame count exact
    assert fps == clip.fps
    assert names == list(HUMANML3D.names)
    assert np.abs(back - clip.positions).max() < 1e-3


def test_default_rate_is_20_fps_and_key_times_are_frame_over_fps(tmp_path, clips):
    clip = clips["humanoid3d_run"]
    path = save_glb(clip.positions, tmp_path / "run.glb")
    back, fps, _ = read_glb_positions(path)
    assert fps == 20.0 and back.shape == clip.positions.shape
    assert np.abs(back - clip.positions).max() < 1e-3
    gltf = pygltflib.GLTF2.load(str(path))
    for sampler in gltf.animations[0].samplers:
        times = _accessor(gltf, sampler.input)[:, 0]
        np.testing.assert_allclose(times, np.arange(len(clip.positions)) / 20.0, rtol=0, atol=1e-6)


def test_glb_structure(tmp_path, clips):
    clip = clips["humanoid3d_walk"]
    data = to_glb(clip.positions, HUMANML3D, clip.fps)
    magic, version, length = struct.unpack("<4sII", data[:12])
    assert (magic, version, length) == (b"glTF", 2, len(data))
    path = save_glb(clip.positions, tmp_path / "walk.glb", HUMANML3D, clip.fps)
    assert path.read_bytes() == data
    gltf = pygltflib.GLTF2.load(str(path))
    assert gltf.asset.version == "2.0" and gltf.asset.generator == "RaMoS"
    j = HUMANML3D.num_joints

    # One node per joint, named and nested like the skeleton; non-root translations are the rest offsets.
    (skin,) = gltf.skins
    assert [gltf.nodes[i].name for i in skin.joints] == list(HUMANML3D.names)
    parent = {c: p for p, node in enumerate(gltf.nodes) for c in node.children}
    assert [skin.joints.index(parent[i]) if i in parent else -1 for i in skin.joints] == list(HUMANML3D.parents)
    scene_roots = gltf.scenes[gltf.scene].nodes
    assert skin.joints[HUMANML3D.root] in scene_roots
    offsets = rest_offsets(clip.positions, HUMANML3D)
    rest = np.array([gltf.nodes[i].translation for i in skin.joints])
    np.testing.assert_allclose(np.delete(rest, HUMANML3D.root, 0), np.delete(offsets, HUMANML3D.root, 0), atol=1e-9)
    assert all(gltf.nodes[i].rotation is None for i in skin.joints)  # rest pose: no rotations

    # The inverse bind matrices undo each joint's rest world transform (a translation).
    rest_world = np.zeros((j, 3))
    for c, p in enumerate(HUMANML3D.parents):
        rest_world[c] = rest[c] + (rest_world[p] if p >= 0 else 0)
    ibm = _accessor(gltf, skin.inverseBindMatrices).reshape(j, 4, 4).transpose(0, 2, 1)  # column-major
    for k in range(j):
        world = np.eye(4)
        world[:3, 3] = rest_world[k]
        np.testing.assert_allclose(ibm[k] @ world, np.eye(4), atol=1e-6)

    # One animation: the root's translation and every joint's rotation, LINEAR, one key per frame.
    (anim,) = gltf.animations
    targets = sorted((gltf.nodes[c.target.node].name, c.target.path) for c in anim.channels)
    assert targets == sorted([("pelvis", "translation")] + [(n, "rotation") for n in HUMANML3D.names])
    for ch in anim.channels:
        sampler = anim.samplers[ch.sampler]
        assert sampler.interpolation == "LINEAR"
        values = _accessor(gltf, sampler.output)
        assert len(values) == len(clip.positions)
        if ch.target.path == "rotation":
            np.testing.assert_allclose(np.linalg.norm(values, axis=1), 1.0, atol=1e-6)
            assert ((values[1:] * values[:-1]).sum(1) >= 0).all()  # no sign flips between keys
        else:
            np.testing.assert_allclose(values, clip.positions[:, HUMANML3D.root], atol=1e-6)

    # A visible figure: skinned triangles, each vertex fully on one joint, with a material; bone tips at joints.
    mesh_nodes = [n for n in gltf.nodes if n.mesh is not None]
    assert len(mesh_nodes) == 1 and mesh_nodes[0].skin == 0 and gltf.nodes.index(mesh_nodes[0]) in scene_roots
    vertices = []
    for prim in gltf.meshes[mesh_nodes[0].mesh].primitives:
        assert prim.mode == pygltflib.TRIANGLES and prim.material is not None
        assert gltf.materials[prim.material].pbrMetallicRoughness.baseColorFactor is not None
        joints, weights = _accessor(gltf, prim.attributes.JOINTS_0), _accessor(gltf, prim.attributes.WEIGHTS_0)
        assert (weights[:, 0] == 1.0).all() and (weights[:, 1:] == 0).all() and (joints[:, 0] < j).all()
        vertices.append(_accessor(gltf, prim.attributes.POSITION))
    vertices = np.concatenate(vertices)
    for c, p in enumerate(HUMANML3D.parents):
        if p >= 0:  # every bone has a vertex on each of its joints in the bind pose
            assert np.linalg.norm(vertices - rest_world[p], axis=1).min() < 1e-6
            assert np.linalg.norm(vertices - rest_world[c], axis=1).min() < 1e-6


def test_a_200_frame_motion_is_small(tmp_path, clips):
    motion = clips["humanoid3d_getup_faceup"].positions[:200]
    path = save_glb(motion, tmp_path / "m.glb")
    assert path.stat().st_size < 300_000  # well under 1 MB
    back, _, _ = read_glb_positions(path)
    assert back.shape == motion.shape and np.abs(back - motion).max() < 1e-3


def test_writes_are_atomic(tmp_path, clips, monkeypatch):
    clip = clips["humanoid3d_kick"]
    path = save_glb(clip.positions, tmp_path / "out" / "kick.glb", fps=clip.fps)
    assert sorted(p.name for p in path.parent.iterdir()) == ["kick.glb"]
    before = path.read_bytes()

    # Bad input: nothing is written, the old file stays.
    with pytest.raises(ValueError):
        save_glb(clip.positions[:, :5], path)
    assert path.read_bytes() == before

    # A write that fails half-way leaves neither a file nor a temporary one.
    def broken(self, data):
        with open(self, "wb") as f:
            f.write(data[:100])
        raise OSError("disk full")

    monkeypatch.setattr(Path, "write_bytes", broken)
    with pytest.raises(OSError, match="disk full"):
        save_glb(clip.positions, tmp_path / "out" / "new.glb", fps=clip.fps)
    with pytest.raises(OSError, match="disk full"):
        save_glb(clip.positions[:10], path, fps=clip.fps)
    assert sorted(p.name for p in path.parent.iterdir()) == ["kick.glb"]
    assert path.read_bytes() == before


@pytest.mark.parametrize("positions, fps, message", [
    (np.zeros((10, 21, 3), np.float32), 20.0, r"positions must be \(T, 22, 3\)"),
    (np.zeros((10, 22), np.float32), 20.0, r"positions must be \(T, 22, 3\)"),
    (np.zeros((0, 22, 3), np.float32), 20.0, r"positions must be \(T, 22, 3\)"),
    (np.full((10, 22, 3), np.nan, np.float32), 20.0, "NaN"),
    (np.zeros((10, 22, 3), np.float32), 0.0, "fps must be a positive number"),
    (np.zeros((10, 22, 3), np.float32), -5.0, "fps must be a positive number"),
    (np.zeros((10, 22, 3), np.float32), float("nan"), "fps must be a positive number"),
])
def test_bad_input_is_a_one_line_error(tmp_path, positions, fps, message):
    with pytest.raises(ValueError, match=message) as err:
        save_glb(positions, tmp_path / "bad.glb", fps=fps)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "bad.glb").exists()


@pytest.mark.skipif(shutil.which("blender") is None,
                    reason="Blender is not installed (apt-get install blender python3-numpy)")
def test_blender_imports_the_animated_skeleton(tmp_path, clips):
    """Blender's own glTF importer plays the motion back: every joint within 1 mm, every frame."""
    chosen = [clips[c] for c in ("humanoid3d_cartwheel", "humanoid3d_walk", "humanoid3d_dance_a")]
    args = []
    for k, clip in enumerate(chosen):
        args.append(f"{save_glb(clip.positions, tmp_path / f'{k}.glb', fps=clip.fps)}@{int(clip.fps)}")
    out = tmp_path / "blender.npz"
    done = subprocess.run(["blender", "-b", "--factory-startup", "--python", str(BLENDER_READER), "--", str(out),
                           *args], check=False, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and out.exists(), done.stdout[-3000:] + done.stderr[-3000:]
    with np.load(out, allow_pickle=False) as d:
        for k, clip in enumerate(chosen):
            bones = [str(n) for n in d[f"names_{k}"]]
            assert sorted(bones) == sorted(HUMANML3D.names)
            got = d[f"positions_{k}"][:, [bones.index(n) for n in HUMANML3D.names]]
            assert got.shape == clip.positions.shape  # frames 0 .. T-1 at the clip's rate
            assert float(d[f"fps_{k}"]) == clip.fps
            assert np.abs(got - clip.positions).max() < 1e-3
