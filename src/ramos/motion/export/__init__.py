"""Export of generated (or read) motions into the files other programs open.

One module per format, each taking joint positions (T, J, 3) in metres, y up, and writing
atomically:

- :mod:`ramos.motion.export.bvh`: HumanML3D ``new_joints`` ``.npy`` and BVH (rest offsets plus
  per-frame joint rotations), which Blender, Maya and MotionBuilder import.
"""

from ramos.motion.export.bvh import (
    EULER_ORDER,
    REST_DIRECTIONS,
    rest_offsets,
    save_bvh,
    save_npy,
    solve_rotations,
    to_bvh,
)

__all__ = ["EULER_ORDER", "REST_DIRECTIONS", "rest_offsets", "save_bvh", "save_npy", "solve_rotations", "to_bvh"]
