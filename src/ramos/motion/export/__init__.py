"""Export of generated (or read) motions into the files other programs open.

One module per format, each taking joint positions (T, J, 3) in metres, y up, and writing
atomically. Generated motions are rigid (:mod:`ramos.motion.rigid`), so every format holds exactly
the motion of the ``.npy`` (a motion whose bones stretch is put on its mean skeleton first):

- :mod:`ramos.motion.export.bvh`: HumanML3D ``new_joints`` ``.npy`` and BVH (rest offsets plus
  per-frame joint rotations), which Blender, Maya and MotionBuilder import.
- :mod:`ramos.motion.export.retarget`: BVH on the user's own character skeleton (a BVH file's
  hierarchy, names, rest pose, unit and axes kept; Mixamo, CMU and similar rigs).
- :mod:`ramos.motion.export.smpl`: SMPL-H parameters (``poses``, ``trans``, ``betas``) in the AMASS
  ``.npz`` layout, fitted to a user-supplied body model, for skinning with a licensed SMPL-H model.
- :mod:`ramos.motion.export.gltf`: glTF 2.0 binary (``.glb``): the skeleton as a node hierarchy with
  a skin, a low-poly figure skinned to it and one animation (root translation, joint rotations),
  which Blender, three.js, Godot and Unity import; ``read_glb_positions`` reads one back.
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
from ramos.motion.export.gltf import read_glb_positions, save_glb, to_glb
from ramos.motion.export.retarget import (
    Retargeted,
    RetargetError,
    TargetRig,
    load_target,
    retarget,
    save_retargeted_bvh,
)
from ramos.motion.export.smpl import SmplExportError, fit_betas, fit_smpl, save_smpl_npz

__all__ = [
    "EULER_ORDER", "REST_DIRECTIONS", "RetargetError", "Retargeted", "SmplExportError", "TargetRig", "fit_betas",
    "fit_smpl", "load_target", "read_glb_positions", "rest_offsets", "retarget", "save_bvh", "save_glb", "save_npy",
    "save_retargeted_bvh", "save_smpl_npz", "solve_rotations", "to_bvh", "to_glb",
]
