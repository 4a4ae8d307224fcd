"""Joint-name maps from common BVH rigs to the 22 HumanML3D joints.

A map gives, per target joint, candidate source names in order of preference (matched case-
insensitively, ignoring a namespace prefix such as ``mixamorig:``). End sites are named
``<parent>_end``. Target joints left out (or whose candidates are all absent) are interpolated
along their kinematic chain by the reader; pelvis, hips, knees, ankles, shoulders, elbows,
wrists, feet and head must be found.
"""

from __future__ import annotations

from ramos.motion.skeleton import HUMANML3D_JOINTS

JointMap = dict[str, tuple[str, ...]]


def _sided(m: dict[str, tuple[str, ...]]) -> JointMap:
    """Expand ``{"{S}_hip": ("{Side}UpLeg",)}`` into left/right entries."""
    out: JointMap = {}
    for target, sources in m.items():
        if "{S}" in target:
            for s, side in (("left", "Left"), ("right", "Right")):
                out[target.replace("{S}", s)] = tuple(x.replace("{Side}", side).replace("{L}", side[0])
                                                      for x in sources)
        else:
            out[target] = sources
    return out


# CMU and Mixamo rigs name their limbs alike; they differ along the spine.
_LIMBS: dict[str, tuple[str, ...]] = {
    "{S}_hip": ("{Side}UpLeg",),
    "{S}_knee": ("{Side}Leg",),
    "{S}_ankle": ("{Side}Foot",),
    "{S}_foot": ("{Side}ToeBase", "{Side}Foot_end"),
    "{S}_collar": ("{Side}Shoulder",),
    "{S}_shoulder": ("{Side}Arm",),
    "{S}_elbow": ("{Side}ForeArm",),
    "{S}_wrist": ("{Side}Hand",),
}

CMU: JointMap = _sided({
    "pelvis": ("Hips",),
    "spine1": ("Spine",),
    "spine2": (),
    "spine3": ("Spine1",),
    "neck": ("Neck", "Neck1"),
    "head": ("Head", "Neck1_end", "Head_end"),
    **_LIMBS,
})
"""CMU mocap BVH conversions (Hips, LowerBack, Spine, Spine1, Neck, Neck1, Head, LeftUpLeg, ...).

CMU's LowerBack sits on the hips (zero offset) and its Spine1 carries the shoulders, so spine1 is
Spine, spine3 is Spine1 and spine2 is interpolated between them."""

MIXAMO: JointMap = _sided({
    "pelvis": ("Hips",),
    "spine1": ("Spine",),
    "spine2": ("Spine1",),
    "spine3": ("Spine2",),
    "neck": ("Neck",),
    "head": ("Head",),
    **_LIMBS,
})
"""Mixamo rigs (``mixamorig:Hips``, ``mixamorig:Spine``..``Spine2``, ``mixamorig:LeftUpLeg``...)."""

HUMANML3D_NAMES: JointMap = {n: (n,) for n in HUMANML3D_JOINTS}
"""Files whose joints already carry the HumanML3D names (as written by ramos' own BVH export)."""

JOINT_MAPS: dict[str, JointMap] = {"humanml3d": HUMANML3D_NAMES, "cmu": CMU, "mixamo": MIXAMO}

SIGNATURES: dict[str, tuple[str, ...]] = {
    "humanml3d": ("pelvis", "spine3"), "cmu": ("LowerBack", "LHipJoint", "Neck1"), "mixamo": ("Spine2",),
}
"""Names that tell rigs apart when two maps find equally many joints (CMU and Mixamo share most names)."""
