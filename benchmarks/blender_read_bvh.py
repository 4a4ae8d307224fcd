"""Runs inside Blender: import BVH files with Blender's own importer and write every joint's world position.

    blender -b --factory-startup --python benchmarks/blender_read_bvh.py -- OUT.npz FILE.bvh [FILE.bvh ...]

For each file, in order, OUT.npz holds ``positions_<i>`` float64 (frames, joints, 3) in the BVH's own
frame (the import uses the identity axis conversion: forward Y, up Z), ``names_<i>`` the bone names
(the BVH joint names) and ``fps_<i>`` the frame rate Blender read. Used by
``benchmarks/bench_blender_bvh.py`` and ``tests/test_blender.py``; Blender (Debian's 3.4) runs its own
Python, so this file imports only bpy, builtins, sys and numpy.
"""

import builtins
import sys

import bpy
import numpy as np

_open = builtins.open


def _open_without_u(file, mode="r", *args, **kwargs):
    # Debian's Blender 3.4 BVH importer opens with mode "rU", which Python 3.11 rejects.
    return _open(file, mode.replace("U", "") if isinstance(mode, str) else mode, *args, **kwargs)


def read(path):
    """(positions (F, J, 3), bone names, fps) of one BVH as Blender imports it."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    builtins.open = _open_without_u
    try:
        bpy.ops.import_anim.bvh(filepath=path, axis_forward="Y", axis_up="Z", update_scene_fps=True,
                                update_scene_duration=True, use_fps_scale=False)
    finally:
        builtins.open = _open
    arm = next(o for o in bpy.context.scene.objects if o.type == "ARMATURE")
    scene = bpy.context.scene
    start, end = (round(v) for v in arm.animation_data.action.frame_range)
    names = [b.name for b in arm.pose.bones]
    out = np.empty((end - start + 1, len(names), 3))
    for k, frame in enumerate(range(start, end + 1)):
        scene.frame_set(frame)
        for j, bone in enumerate(arm.pose.bones):
            out[k, j] = tuple(arm.matrix_world @ bone.head)
    return out, names, scene.render.fps / scene.render.fps_base


def main():
    args = sys.argv[sys.argv.index("--") + 1:]
    target, files = args[0], args[1:]
    arrays = {}
    for i, path in enumerate(files):
        positions, names, fps = read(path)
        arrays[f"positions_{i}"] = positions
        arrays[f"names_{i}"] = np.array(names)
        arrays[f"fps_{i}"] = np.array(fps)
    np.savez(target, **arrays)


main()
