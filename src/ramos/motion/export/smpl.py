"""Export joint positions as SMPL-H parameters in the AMASS ``.npz`` layout.

RaMoS motions are joint positions; users who hold an SMPL-H licence can skin them once they are
SMPL parameters. :func:`fit_smpl` inverts the AMASS reader (:mod:`ramos.motion.io.amass`), which
computes ``J_regressor @ (v_template + shapedirs @ betas)`` rest joints, poses them by forward
kinematics and maps z-up to y-up by (x, y, z) -> (-x, z, y):

1. y-up -> z-up: the reader's axis map is its own inverse.
2. ``betas``: the rest joints are linear in ``betas``, so the distances between rigidly linked
   joints (every bone, plus every pair within the pelvis and spine3 clusters, whose joints move
   as one) are fitted to the motion's mean distances by a few Gauss-Newton steps with a small
   ridge penalty that keeps the shape near the mean body.
3. ``poses``: local rotations that pose the model's rest joints (SMPL's own T-pose) like the
   motion, from :func:`ramos.motion.rigid.solve_rotations` (shortest arc for one child, a
   best-fit rotation for the pelvis and spine3), with each bone aimed from its *fitted* parent so
   that misses do not add up down the chains; as axis-angle; hand joints stay zero.
4. ``trans``: SMPL's root sits at ``rest_joints[0] + trans``, so ``trans = pelvis - rest_pelvis``.

Where the body model can take the motion's bone lengths and cluster shapes, the joints come back
to float precision. What remains otherwise is that difference (mostly along the bones). Generated
motions have fixed bones (:mod:`ramos.motion.rigid`); a motion whose bones vary over time keeps
that variation as error. A skeleton laid out unlike SMPL's keeps a few centimetres: the embedded
DeepMimic clips have their hips level with the pelvis, where SMPL's sit about 9 cm below it,
which no shape of an SMPL model reproduces.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from ramos.motion.clip import ClipError
from ramos.motion.export.bvh import check_motion
from ramos.motion.io._common import AXIS_MATRICES, forward_kinematics
from ramos.motion.io.amass import BODY_JOINTS, GENDERS, BodyModel, load_body_model, model_file
from ramos.motion.rigid import solve_rotations
from ramos.motion.skeleton import HUMANML3D, Skeleton
from ramos.utils.atomic import atomic_path

SMPLH_JOINTS = 52
"""Joints in an SMPL-H ``poses`` row (22 body, 30 hand): 156 axis-angle values."""
BETA_RIDGE = 1e-7
"""Ridge weight of the shape fit, in m^2 per unit beta^2 against the *mean* squared distance
residual: one beta unit costs as much as a 0.3 mm rms length error, so betas grow only as far as
they buy length accuracy, and lengths the shape space cannot reach do not drive them to extremes."""
BETA_STEPS = 20
"""Most Gauss-Newton steps of the shape fit (it converges in a few: lengths are nearly linear)."""


class SmplExportError(ValueError):
    """A motion or body model cannot be exported as SMPL-H; the message names the file and reason."""


def _positions(positions: np.ndarray, skeleton: Skeleton, name: str, min_frames: int = 1) -> np.ndarray:
    try:
        return check_motion(positions, skeleton, min_frames=min_frames, name=name)
    except ValueError as err:
        raise SmplExportError(str(err)) from None


def _check_model(model: BodyModel, skeleton: Skeleton, name: str) -> None:
    if skeleton.num_joints != BODY_JOINTS:
        raise SmplExportError(f"{name}: the skeleton has {skeleton.num_joints} joints; "
                              f"SMPL export needs the {BODY_JOINTS} SMPL body joints")
    if model.parents.shape[0] < BODY_JOINTS:
        raise SmplExportError(f"{name}: body model has {model.parents.shape[0]} joints, "
                              f"need at least the {BODY_JOINTS} SMPL body joints")
    if list(model.parents[:BODY_JOINTS]) != list(skeleton.parents):
        raise SmplExportError(f"{name}: body model's first {BODY_JOINTS} joint parents "
                              f"{model.parents[:BODY_JOINTS].tolist()} differ from the skeleton's {list(skeleton.parents)}")


def _rigid_pairs(parents: tuple[int, ...] | list[int]) -> np.ndarray:
    """(P, 2) joint pairs at a fixed distance in any pose: bones, and pairs within multi-child clusters."""
    pairs = {(p, c) for c, p in enumerate(parents) if p >= 0}
    kids: dict[int, list[int]] = {}
    for c, p in enumerate(parents):
        if p >= 0:
            kids.setdefault(p, []).append(c)
    for j, cs in kids.items():
        if len(cs) > 1:
            # A joint's children all hang off its one rotation: their mutual distances are rigid too.
            group = [j, *cs]
            pairs |= {(min(a, b), max(a, b)) for i, a in enumerate(group) for b in group[i + 1:]}
    return np.array(sorted(pairs), dtype=np.int64)


def fit_betas(positions_z: np.ndarray, model: BodyModel, num_betas: int = 10, skeleton: Skeleton = HUMANML3D,
              ridge: float = BETA_RIDGE) -> np.ndarray:
    """(num_betas,) shape whose rest joints best match the motion's mean rigid distances.

    ``positions_z`` (T, 22, 3) in the model's frame (any rotation of it: only distances are used).
    Betas beyond the model's shape space stay zero.
    """
    if ridge < 0:
        raise SmplExportError(f"ridge must be >= 0, got {ridge}")
    betas = np.zeros(num_betas)
    n = min(num_betas, model.shapedirs.shape[-1])
    if n == 0:
        return betas
    pairs = _rigid_pairs(skeleton.parents)
    a, b = pairs[:, 0], pairs[:, 1]
    target = np.linalg.norm(positions_z[:, a] - positions_z[:, b], axis=-1).mean(0)  # (P,)
    jr = model.j_regressor[:BODY_JOINTS]
    j0 = jr @ model.v_template  # (22, 3)
    dirs = np.einsum("jv,vcb->jcb", jr, model.shapedirs[..., :n])  # (22, 3, n): rest joints per beta
    d0, dd = j0[a] - j0[b], dirs[a] - dirs[b]  # (P, 3), (P, 3, n)
    x = np.zeros(n)
    count = len(pairs)
    for _ in range(BETA_STEPS):
        diff = d0 + dd @ x
        length = np.maximum(np.linalg.norm(diff, axis=-1), 1e-9)
        resid = length - target
        jac = np.einsum("pc,pcn->pn", diff / length[:, None], dd)  # d length / d beta
        lhs = jac.T @ jac / count + ridge * np.eye(n)
        rhs = jac.T @ resid / count + ridge * x
        # lstsq: with ridge 0, directions the joints cannot see (or repeat) leave lhs singular.
        step = np.linalg.lstsq(lhs, -rhs, rcond=None)[0]
        x += step
        if np.abs(step).max() < 1e-8:
            break
    betas[:n] = x
    return betas


def _depth(parents: tuple[int, ...]) -> int:
    depth = [0] * len(parents)
    for j, p in enumerate(parents):
        depth[j] = depth[p] + 1 if p >= 0 else 0
    return max(depth)


def _solve_pose(pos: np.ndarray, offsets: np.ndarray, skeleton: Skeleton) -> np.ndarray:
    """Local rotations (T, J, 3, 3) posing ``offsets`` like ``pos`` (SMPL's FK convention, root at pos[:, root]).

    :func:`solve_rotations` aims each bone along the motion's own bone (child minus parent). Where
    the model's lengths or cluster shapes differ from the motion's, the fitted joints then carry
    every ancestor's miss, and misses add up down each chain. Aiming instead from the *fitted*
    parent towards the motion's child leaves a joint only the part of the miss along its own
    bone. That aim depends on the ancestors' rotations, so the solver is rerun with the aims
    updated, once per tree level (level k is final after k + 1 runs): a fixed number of
    vectorised passes, no iterative optimisation.
    """
    parents = skeleton.parents
    aim = pos
    for _ in range(_depth(parents)):
        local = solve_rotations(aim, offsets, skeleton)
        fitted, _ = forward_kinematics(parents, offsets, local, pos[:, skeleton.root])
        # Pseudo-positions whose parent-to-child vectors are the aims (the solver reads only those).
        aim = np.empty_like(pos)
        for j, p in enumerate(parents):
            aim[:, j] = pos[:, j] if p < 0 else aim[:, p] + pos[:, j] - fitted[:, p]
    return solve_rotations(aim, offsets, skeleton)


def fit_smpl(positions: np.ndarray, model: BodyModel, skeleton: Skeleton = HUMANML3D,
             num_betas: int = 10) -> dict[str, np.ndarray]:
    """SMPL-H parameters that reproduce ``positions`` through the AMASS reader; see the module docstring.

    Args:
        positions: (T, 22, 3) joint positions in metres, y up, facing +z (SMPL joint order).
        model: the body model (:func:`ramos.motion.io.amass.load_body_model`).
        skeleton: the joints' skeleton; its parents must be SMPL's first 22.
        num_betas: length of the returned ``betas``.

    Returns:
        ``poses`` (T, 156) axis-angle, hands zero; ``trans`` (T, 3); ``betas`` (num_betas,); all
        float64 in AMASS's z-up frame.
    """
    pos = _positions(positions, skeleton, "fit_smpl")
    _check_model(model, skeleton, "fit_smpl")
    if num_betas < 0:
        raise SmplExportError(f"num_betas must be >= 0, got {num_betas}")
    # The reader maps z-up to y-up by a matrix that is its own inverse (a half turn).
    pos_z = pos @ AXIS_MATRICES["z_up"]
    betas = fit_betas(pos_z, model, num_betas, skeleton)
    rest = model.rest_joints(betas)[:BODY_JOINTS]
    parents = np.asarray(skeleton.parents)
    offsets = np.where((parents >= 0)[:, None], rest - rest[np.maximum(parents, 0)], 0.0)
    local = _solve_pose(pos_z, offsets, skeleton)
    t = pos.shape[0]
    poses = np.zeros((t, 3 * SMPLH_JOINTS))
    poses[:, : 3 * BODY_JOINTS] = Rotation.from_matrix(local.reshape(-1, 3, 3)).as_rotvec().reshape(t, -1)
    trans = pos_z[:, skeleton.root] - rest[skeleton.root]
    return {"poses": poses, "trans": trans, "betas": betas}


def save_smpl_npz(positions: np.ndarray, path: str | os.PathLike[str], model_dir: str | os.PathLike[str],
                  fps: float = 20.0, gender: str = "neutral", skeleton: Skeleton = HUMANML3D,
                  num_betas: int = 10) -> Path:
    """Write ``positions`` as an AMASS-layout SMPL-H ``.npz`` (atomic, no pickled objects); returns the path.

    Args:
        positions: (T, 22, 3) joint positions in metres, y up, facing +z; T >= 2.
        path: the output file.
        model_dir: the SMPL-H body-model folder (per-gender subfolders or ``model.npz``) or file,
            as for the AMASS reader; the betas are fitted to this model.
        fps: frame rate, stored as ``mocap_framerate``.
        gender: "male", "female" or "neutral": the model used and the ``gender`` stored.
        skeleton: the joints' skeleton (SMPL's 22 body joints).
        num_betas: length of the stored ``betas``.

    The file holds ``poses`` (T, 156), ``trans`` (T, 3), ``betas``, ``gender``, ``mocap_framerate``
    and ``surface_model_type`` ("smplh"); strings are numpy unicode arrays, so it loads with
    ``allow_pickle=False``.
    """
    path = Path(path)
    if not np.isfinite(fps) or fps <= 0:
        raise SmplExportError(f"{path}: fps must be a positive number, got {fps}")
    if gender not in GENDERS:
        raise SmplExportError(f"{path}: gender {gender!r} is not one of {', '.join(GENDERS)}")
    # Two frames at least: fewer is not a sequence the AMASS reader accepts.
    pos = _positions(positions, skeleton, str(path), min_frames=2)
    try:
        model_path = model_file(model_dir, gender)
        model = load_body_model(str(model_path))
    except (OSError, ClipError) as err:
        raise SmplExportError(str(err)) from None
    _check_model(model, skeleton, str(model_path))
    params = fit_smpl(pos, model, skeleton, num_betas)
    arrays = {**params, "gender": np.array(gender), "mocap_framerate": np.array(float(fps)),
              "surface_model_type": np.array("smplh")}
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        # A file object: np.savez would append ".npz" to a name lacking it, breaking the rename.
        np.savez(f, **arrays)
    return path
