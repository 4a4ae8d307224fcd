"""Runs inside Blender: import glTF binaries with Blender's own importer and write every joint's world position.

    blender -b --factory-startup --python benchmarks/blender_read_gltf.py -- OUT.npz FILE.glb FPS [FILE.glb FPS ...]

glTF key times are seconds and Blender's importer turns them into frames at the scene's rate, so the
scene is set to each file's FPS (an integer) before importing it. For each file, in order, OUT.npz
holds ``positions_<i>`` float64 (frames, joints, 3) converted back to glTF's y-up axes (the importer
maps glTF (x, y, z) to Blender (x, -z, y)), ``names_<i>`` the bone names, ``fps_<i>`` the scene rate
and ``first_<i>`` the first frame of the imported action. Joint positions are pose-bone heads in
world space (the importer chooses its own bone orientations; heads are what the file fixes). Used by
``tests/test_export_gltf.py``; Blender (Debian's 3.4) runs its own Python, so this file imports only
bpy, sys and numpy.
"""

import sys

import bpy
import numpy as np


def read(path, fps):
    """(positions (F, J, 3) y up, bone names, fps, first frame) of one .glb as Blender imports it."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = fps, 1.0
    # FLAT: the figure is flat-shaded anyway, and the default ("NORMALS") fails in Debian's Blender 3.4 with
    # NumPy >= 1.24 (its importer still uses the removed alias np.bool).
    bpy.ops.import_scene.gltf(filepath=path, import_shading="FLAT")
    arm = next(o for o in scene.objects if o.type == "ARMATURE")
    start, end = (round(v) for v in arm.animation_data.action.frame_range)
    names = [b.name for b in arm.pose.bones]
    out = np.empty((end - start + 1, len(names), 3))
    for k, frame in enumerate(range(start, end + 1)):
        scene.frame_set(frame)
        for j, bone in enumerate(arm.pose.bones):
            x, y, z = arm.matrix_world @ bone.head
            out[k, j] = (x, z, -y)  # Blender z up back to glTF y up
    return out, names, scene.render.fps / scene.render.fps_base, start


def main():
    args = sys.argv[sys.argv.index("--") + 1:]
    target, pairs = args[0], args[1:]
    arrays = {}
    for i in range(len(pairs) // 2):
        positions, names, fps, start = read(pairs[2 * i], int(pairs[2 * i + 1]))
        arrays[f"positions_{i}"] = positions
        arrays[f"names_{i}"] = np.array(names)
        arrays[f"fps_{i}"] = np.array(fps)
        arrays[f"first_{i}"] = np.array(start)
    np.savez(target, **arrays)


main()
