"""AMASS sequences (SMPL-H axis-angle poses) to 22 joint positions, with a user-supplied body model.

An AMASS ``.npz`` holds ``poses`` (T, 156) (52 joints x axis-angle: 22 body joints, then hands),
``trans`` (T, 3), ``betas``, ``gender`` and ``mocap_framerate``; z is up. Joint positions need
the SMPL-H body model each user downloads under its licence: a folder with ``model.npz``
(``v_template``, ``shapedirs``, ``J_regressor``, ``kintree_table``, ...) or per-gender subfolders
``male/``, ``female/``, ``neutral/``. Both are read with ``allow_pickle=False``; nothing is unpickled.

Rest joints are ``J_regressor @ (v_template + shapedirs @ betas)``; posed joints follow by forward
kinematics along ``kintree_table`` (smplx's ``batch_rigid_transform``), plus ``trans``; then z-up
becomes y-up as HumanML3D does it, (x, y, z) -> (-x, z, y), a rotation (not a reflection).
Pose blend shapes move vertices only, so ``posedirs``/``weights`` are not needed for joints.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ramos.motion.clip import Clip, ClipError
from ramos.motion.io._common import (
    ItemList,
    canonical_facing,
    check_positions,
    load_npz,
    note,
    npz_keys,
    read_sidecar,
    to_y_up,
)
from ramos.motion.io.babel import attach_labels, load_babel
from ramos.motion.skeleton import HUMANML3D

BODY_JOINTS = 22
MODEL_KEYS: tuple[str, ...] = ("v_template", "shapedirs", "J_regressor", "kintree_table")
GENDERS: tuple[str, ...] = ("male", "female", "neutral")
SEQUENCE_KEYS: tuple[str, ...] = ("poses", "trans", "betas", "gender", "mocap_framerate", "mocap_frame_rate")
"""The arrays a sequence is read from; others (``dmpls``...) are never decompressed."""
MAX_FRAMES = 500_000
"""Longest sequence read (over an hour at AMASS's usual 120 fps; its longest takes are minutes):
the frame count is checked in the file's headers before anything is decompressed, so a small file
that claims a huge sequence is rejected without inflating it. Reader option ``max_frames``."""


@dataclass(frozen=True)
class AmassItem:
    """One AMASS sequence file."""

    path: str
    source_id: str


def list_items(root: Path | str, pattern: str = "**/*.npz", babel: Path | str | None = None,
               model_dir: Path | str | None = None) -> ItemList:
    """AMASS ``.npz`` files under ``root`` (``shape.npz`` files, which hold no motion, are skipped).

    Ids are relative paths (``CMU/01/01_01_poses``); the sub-data-set folder is not an action label.
    Body models are not motions: files under ``model_dir`` (the ``--body-model`` path) and files
    whose arrays are those of a body model (``v_template``, ``shapedirs``, ``J_regressor``; found
    from the zip directory alone) are left out and named in the list's ``notes`` (code ``not_motion``).
    ``babel`` (see :func:`read_item`) is read here once, so that a malformed BABEL file stops the run
    before any sequence is processed.
    """
    if babel is not None:
        load_babel(str(babel))
    root = Path(root)
    if root.is_file():
        paths, ids = [root], [root.stem]
    elif root.is_dir():
        paths = [p for p in sorted(root.glob(pattern)) if p.is_file() and p.name != "shape.npz"]
        ids = ["/".join(p.relative_to(root).with_suffix("").parts) for p in paths]
    else:
        raise FileNotFoundError(f"{root}: no such file or folder")
    items, notes = [], []
    for path, sid in zip(paths, ids, strict=True):
        why = _not_a_motion(path, model_dir)
        if why:
            notes.append(note(str(path), "not_motion", f"{path}: {why}, not a motion; skipped"))
        else:
            items.append(AmassItem(str(path), sid))
    return ItemList(items, notes)


def _not_a_motion(path: Path, model_dir: Path | str | None) -> str | None:
    """Why ``path`` is a body model rather than a sequence, or None."""
    if model_dir is not None:
        model = Path(model_dir).resolve()
        here = path.resolve()
        if here == model or model in here.parents:
            return "the body model given as model_dir (--body-model)"
    keys = set(npz_keys(path) or ())
    # An unreadable file is left to read_item, which says what is wrong with it.
    if "poses" not in keys and {"v_template", "shapedirs", "J_regressor"} & keys:
        return f"an SMPL body model ({', '.join(k for k in MODEL_KEYS if k in keys)})"
    return None


@dataclass(frozen=True)
class BodyModel:
    """The parts of an SMPL-H model that joint positions need (float64)."""

    v_template: np.ndarray  # (V, 3)
    shapedirs: np.ndarray  # (V, 3, B)
    j_regressor: np.ndarray  # (J, V)
    parents: np.ndarray  # (J,) int, -1 for the root

    def rest_joints(self, betas: np.ndarray) -> np.ndarray:
        """(J, 3) rest-pose joints for shape ``betas`` (extra betas beyond the model's are ignored)."""
        import torch
        from smplx.lbs import blend_shapes, vertices2joints

        n = min(len(betas), self.shapedirs.shape[-1])
        b = torch.as_tensor(betas[None, :n], dtype=torch.float64)
        v = torch.as_tensor(self.v_template[None]) + blend_shapes(b, torch.as_tensor(self.shapedirs[..., :n]))
        return vertices2joints(torch.as_tensor(self.j_regressor), v)[0].numpy()


def model_file(model_dir: Path | str, gender: str) -> Path:
    """``model_dir/<gender>/model.npz``, else ``model_dir/model.npz`` (or ``model_dir`` if it is a file)."""
    model_dir = Path(model_dir)
    if model_dir.is_file():
        return model_dir
    for candidate in (model_dir / gender / "model.npz", model_dir / "neutral" / "model.npz", model_dir / "model.npz"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{model_dir}: no SMPL-H model.npz for gender {gender!r} (expected "
                            f"{model_dir}/{gender}/model.npz or {model_dir}/model.npz)")


@lru_cache(maxsize=8)
def load_body_model(path: str) -> BodyModel:
    """Read an SMPL-H ``model.npz`` without unpickling (cached per worker process)."""
    data = load_npz(Path(path))
    missing = [k for k in MODEL_KEYS if k not in data]
    if missing:
        raise ClipError(f"{path}: body model lacks {missing}")
    try:
        v = np.asarray(data["v_template"], dtype=np.float64)
        sd = np.asarray(data["shapedirs"], dtype=np.float64)
        jr = np.asarray(data["J_regressor"], dtype=np.float64)
        kt = np.asarray(data["kintree_table"]).astype(np.int64)
    except (TypeError, ValueError) as err:
        raise ClipError(f"{path}: non-numeric body model arrays ({err})") from None
    if v.ndim != 2 or v.shape[1] != 3 or sd.shape[:2] != v.shape or jr.ndim != 2 or jr.shape[1] != v.shape[0]:
        raise ClipError(f"{path}: inconsistent body model shapes v_template {v.shape}, shapedirs {sd.shape}, "
                        f"J_regressor {jr.shape}")
    if kt.ndim != 2 or kt.shape[0] != 2 or kt.shape[1] != jr.shape[0]:
        raise ClipError(f"{path}: kintree_table shape {kt.shape} does not match {jr.shape[0]} joints")
    parents = kt[0].copy()
    parents[0] = -1  # stored as 2**32-1 or -1
    if not all(0 <= p < i for i, p in enumerate(parents[1:], 1)):
        raise ClipError(f"{path}: kintree_table parents are not in topological order")
    return BodyModel(v, sd, jr, parents)


def _scalar_str(value: np.ndarray) -> str:
    v = np.asarray(value).reshape(-1)[0] if np.asarray(value).size else ""
    return (v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)).strip().lower()


def joint_positions(poses: np.ndarray, trans: np.ndarray, betas: np.ndarray, model: BodyModel,
                    num_joints: int = BODY_JOINTS) -> np.ndarray:
    """(T, num_joints, 3) joint positions in the model's (z-up) frame by SMPL forward kinematics."""
    import torch
    from smplx.lbs import batch_rigid_transform, batch_rodrigues

    if any(p >= num_joints for p in model.parents[:num_joints]):
        raise ValueError("the first joints' parents must be among them")
    t = poses.shape[0]
    rest = torch.as_tensor(model.rest_joints(betas)[:num_joints])
    aa = torch.as_tensor(poses[:, : 3 * num_joints].reshape(-1, 3), dtype=torch.float64)
    rot = batch_rodrigues(aa).reshape(t, num_joints, 3, 3)
    parents = torch.as_tensor(model.parents[:num_joints])
    posed, _ = batch_rigid_transform(rot, rest.expand(t, -1, -1), parents, dtype=torch.float64)
    return posed.numpy() + trans[:, None, :]


def read_item(item: AmassItem, model_dir: Path | str | None = None, gender: str = "auto",
              canonicalize: bool = False, babel: Path | str | None = None, max_frames: int = MAX_FRAMES) -> list[Clip]:
    """One AMASS sequence as a 22-joint :class:`Clip` (metres, y up, native frame rate).

    Args:
        item: from :func:`list_items`.
        model_dir: the SMPL-H body-model folder (or a ``model.npz``); required.
        gender: "auto" (the file's ``gender``), or force "male" / "female" / "neutral".
        canonicalize: face +z in the first frame with the pelvis at x = z = 0.
        babel: a BABEL release folder (or one of its JSON files): the sequence's BABEL action labels
            become its labels, with frame-level segments in ``meta`` (:func:`ramos.motion.io.babel.attach_labels`).
        max_frames: longest sequence read (checked before decompressing; see :data:`MAX_FRAMES`).
    """
    if model_dir is None:
        raise ValueError("the amass reader needs model_dir (the SMPL-H body model folder)")
    path = Path(item.path)
    name = str(path)
    data = load_npz(path, keys=SEQUENCE_KEYS, max_frames=max_frames)
    missing = [k for k in ("poses", "trans") if k not in data]
    if missing:
        raise ClipError(f"{name}: missing keys {missing} (have {sorted(npz_keys(path) or [])})")
    fps_key = next((k for k in ("mocap_framerate", "mocap_frame_rate") if k in data), None)
    if fps_key is None:
        raise ClipError(f"{name}: missing key 'mocap_framerate'")
    fps_value = np.asarray(data[fps_key]).reshape(-1)
    if fps_value.size != 1:
        raise ClipError(f"{name}: {fps_key} holds {fps_value.size} values, expected one")
    try:
        fps = float(fps_value[0])
    except (TypeError, ValueError):
        raise ClipError(f"{name}: {fps_key} {fps_value[0]!r} is not a number") from None
    if not np.isfinite(fps) or fps <= 0:
        raise ClipError(f"{name}: invalid frame rate {fps:g} ({fps_key}); it must be positive")
    try:
        poses = np.asarray(data["poses"], dtype=np.float64)
        trans = np.asarray(data["trans"], dtype=np.float64)
        betas = np.asarray(data.get("betas", np.zeros(0)), dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as err:
        raise ClipError(f"{name}: non-numeric arrays ({err})") from None
    if poses.ndim != 2 or poses.shape[1] < 3 * BODY_JOINTS or poses.shape[1] % 3:
        raise ClipError(f"{name}: poses shape {poses.shape}, expected (T, 3*J) with J >= {BODY_JOINTS}")
    if trans.shape != (poses.shape[0], 3):
        raise ClipError(f"{name}: trans shape {trans.shape} does not match poses {poses.shape}")
    if poses.shape[0] < 2:
        raise ClipError(f"{name}: {poses.shape[0]} frame(s); at least 2 needed")
    bad = ~(np.isfinite(poses).all(1) & np.isfinite(trans).all(1))
    if bad.any() or not np.isfinite(betas).all():
        raise ClipError(f"{name}: NaN/inf values ({int(bad.sum())} frame(s))")
    sex = _scalar_str(data["gender"]) if gender == "auto" and "gender" in data else gender
    sex = sex if sex in GENDERS else "neutral"
    model_path = model_file(model_dir, sex)
    model = load_body_model(str(model_path))
    if model.parents.shape[0] < BODY_JOINTS:
        raise ClipError(f"{model_path}: {model.parents.shape[0]} joints, need at least {BODY_JOINTS}")
    joints = to_y_up(joint_positions(poses, trans, betas, model), "z_up")
    if canonicalize:
        joints = canonical_facing(joints, name)
    labels, captions = read_sidecar(path)
    clip = Clip(positions=check_positions(joints, name, HUMANML3D.num_joints), fps=fps, source_id=item.source_id,
                source="amass", captions=captions, labels=labels,
                meta={"file": path.name, "gender": sex, "body_model": model_path.name,
                      "dataset": Path(item.source_id).parts[0] if "/" in item.source_id else ""})
    if babel is not None:
        # The full path: its longest tail shared with a BABEL path identifies the sequence.
        attach_labels(clip, item.path, load_babel(str(babel)))
    return [clip]
