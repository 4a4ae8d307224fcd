"""Runs inside Blender: import BVH and glTF files with Blender's own importers and write every joint's
world position.

    blender -b --factory-startup --python benchmarks/blender_read.py -- OUT.npz FILE.bvh FILE.glb@FPS ...

BVH files are imported with the identity axis conversion (forward Y, up Z), so positions are in the
BVH's own frame. glTF key times are seconds, which Blender's importer turns into frames at the scene's
rate, so a ``.glb`` comes with its frame rate (an integer, ``@FPS``) and the scene is set to it first;
the importer maps glTF (x, y, z) to Blender (x, -z, y), turned back here to glTF's y up. For each file,
in order, OUT.npz holds ``positions_<i>`` float64 (frames, joints, 3), ``names_<i>`` the bone names
(the joint names), ``fps_<i>`` the scene's frame rate and ``first_<i>`` the first frame of the
imported action. Joint positions are pose-bone heads in world space (importers choose their own bone
orientations; heads are what the files fix). Used by ``benchmarks/bench_blender_bvh.py``,
``benchmarks/bench_exports.py`` and the Blender tests; Blender (Debian's 3.4) runs its own Python, so
this file imports only bpy, builtins, sys and numpy.
"""

import builtins
import sys

import bpy
import numpy as np

_open = builtins.open


def _open_without_u(file, mode="r", *args, **kwargs):
    # Debian's Blender 3.4 BVH importer opens with mode "rU", which Python 3.11 rejects.
    return _open(file, mode.replace("U", "") if isinstance(mode, str) else mode, *args, **kwargs)


def import_bvh(path):
    builtins.open = _open_without_u
    try:
        bpy.ops.import_anim.bvh(filepath=path, axis_forward="Y", axis_up="Z", update_scene_fps=True,
                                update_scene_duration=True, use_fps_scale=False)
    finally:
        builtins.open = _open


def import_glb(path, fps):
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = fps, 1.0
    # FLAT: the figure is flat-shaded anyway, and the default ("NORMALS") fails in Debian's Blender 3.4 with
    # NumPy >= 1.24 (its importer still uses the removed alias np.bool).
    bpy.ops.import_scene.gltf(filepath=path, import_shading="FLAT")


def read(item):
    """(positions (F, J, 3), bone names, fps, first frame) of one file as Blender imports it."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    path, _, fps = item.rpartition("@") if item.lower().split("@")[0].endswith(".glb") else (item, "", "")
    if fps:
        import_glb(path, int(fps))
    else:
        import_bvh(path)
    scene = bpy.context.scene
    arm = next(o for o in scene.objects if o.type == "ARMATURE")
    start, end = (round(v) for v in arm.animation_data.action.frame_range)
    names = [b.name for b in arm.pose.bones]
    out = np.empty((end - start + 1, len(names), 3))
    for k, frame in enumerate(range(start, end + 1)):
        scene.frame_set(frame)
        for j, bone in enumerate(arm.pose.bones):
            x, y, z = arm.matrix_world @ bone.head
            out[k, j] = (x, z, -y) if fps else (x, y, z)  # glTF: Blender's z up back to y up
    return out, names, scene.render.fps / scene.render.fps_base, start


def main():
    args = sys.argv[sys.argv.index("--") + 1:]
    target, items = args[0], args[1:]
    arrays = {}
    for i, item in enumerate(items):
        positions, names, fps, start = read(item)
        arrays[f"positions_{i}"] = positions
        arrays[f"names_{i}"] = np.array(names)
        arrays[f"fps_{i}"] = np.array(fps)
        arrays[f"first_{i}"] = np.array(start)
    np.savez(target, **arrays)


main()
