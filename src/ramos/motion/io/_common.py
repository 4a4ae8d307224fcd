"""Helpers shared by the readers: validation, axis conventions, rigid forward kinematics, facing.

Readers import from here so that every source is checked the same way and ends up in the same
convention (metres, y up, a subject facing +z has its left side at +x).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ramos.motion.clip import ClipError
from ramos.motion.skeleton import HUMANML3D, Skeleton

# Proper rotations (det +1) that take a source frame to ours (y up, facing +z, left at +x).
AXIS_MATRICES: dict[str, np.ndarray] = {
    "y_up": np.eye(3),
    # AMASS (z up): HumanML3D swaps y and z and negates x, (x, y, z) -> (-x, z, y); the swap alone
    # would be a reflection (left and right exchanged), the negation makes it a rotation.
    "z_up": np.array([[-1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]]),
    # DeepMimic characters face +x with their right at +z: (x, y, z) -> (-z, y, x).
    "y_up_facing_x": np.array([[0.0, 0.0, -1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]),
}


def check_positions(positions: np.ndarray, name: str, num_joints: int | None = None,
                    min_frames: int = 2) -> np.ndarray:
    """Return ``positions`` as float32 (T, J, 3), raising :class:`ClipError` for unusable data.

    Rejects wrong shapes, fewer than ``min_frames`` frames (a 0- or 1-frame clip has no motion),
    and NaN/inf values (they poison normalisation statistics downstream).
    """
    arr = np.asarray(positions)
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise ClipError(f"{name}: expected positions of shape (T, J, 3), got {arr.shape}")
    if num_joints is not None and arr.shape[1] != num_joints:
        raise ClipError(f"{name}: expected {num_joints} joints, got {arr.shape[1]}")
    if not np.issubdtype(arr.dtype, np.number):
        raise ClipError(f"{name}: positions are not numeric (dtype {arr.dtype})")
    if arr.shape[0] < min_frames:
        raise ClipError(f"{name}: {arr.shape[0]} frame(s); at least {min_frames} needed")
    arr = arr.astype(np.float32)
    bad = ~np.isfinite(arr).all(axis=(1, 2))
    if bad.any():
        raise ClipError(f"{name}: {int(bad.sum())} frame(s) with NaN/inf values (first at frame {int(np.argmax(bad))})")
    return arr


def check_fps(fps: float, name: str) -> float:
    """A finite, positive frame rate or :class:`ClipError`."""
    try:
        value = float(fps)
    except (TypeError, ValueError):
        raise ClipError(f"{name}: frame rate {fps!r} is not a number") from None
    if not np.isfinite(value) or value <= 0:
        raise ClipError(f"{name}: invalid frame rate {value}")
    return value


def load_npz(path: Path) -> dict[str, np.ndarray]:
    """Load every array of an ``.npz`` without unpickling; any failure becomes a :class:`ClipError`."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except ValueError as err:
        # numpy raises ValueError for object arrays when allow_pickle=False.
        raise ClipError(f"{path}: cannot read without unpickling or malformed ({err})") from None
    except (OSError, EOFError, KeyError) as err:
        raise ClipError(f"{path}: not a readable .npz file ({err})") from None
    except Exception as err:  # zipfile.BadZipFile and friends from a truncated file
        raise ClipError(f"{path}: corrupt .npz file ({type(err).__name__}: {err})") from None


def load_npy(path: Path) -> np.ndarray:
    """Load one ``.npy`` array without unpickling; any failure becomes a :class:`ClipError`."""
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as err:
        # object arrays (need pickle) and truncated data both end here.
        raise ClipError(f"{path}: cannot read without unpickling or malformed ({err})") from None
    except (OSError, EOFError) as err:
        raise ClipError(f"{path}: not a readable .npy file ({err})") from None


def read_text(path: Path, encoding: str = "utf-8") -> str:
    """Read a text file, turning I/O and decoding errors into :class:`ClipError`."""
    try:
        return path.read_text(encoding=encoding)
    except UnicodeDecodeError as err:
        raise ClipError(f"{path}: not valid {encoding} text ({err.reason} at byte {err.start})") from None
    except OSError as err:
        raise ClipError(f"{path}: cannot read ({err.strerror or err})") from None


def read_sidecar(path: Path) -> tuple[list[str], list[str]]:
    """Labels and captions from an optional ``<stem>.json`` beside ``path``: {"labels": [...], "captions": [...]}."""
    side = path.with_suffix(".json")
    if not side.is_file():
        return [], []
    try:
        data = json.loads(read_text(side))
        labels, captions = data.get("labels", []), data.get("captions", [])
        if not all(isinstance(x, str) for x in [*labels, *captions]):
            raise TypeError("labels/captions must be lists of strings")
    except (json.JSONDecodeError, AttributeError, TypeError) as err:
        raise ClipError(f"{side}: malformed sidecar ({err})") from None
    return list(labels), list(captions)


def to_y_up(positions: np.ndarray, axes: str | np.ndarray) -> np.ndarray:
    """Rotate positions (..., 3) from a named source convention (see AXIS_MATRICES) or a 3x3 matrix."""
    m = AXIS_MATRICES[axes] if isinstance(axes, str) else np.asarray(axes, dtype=np.float64)
    if m.shape != (3, 3) or not np.isclose(np.linalg.det(m), 1.0, atol=1e-6):
        raise ValueError("axis conversion must be a proper 3x3 rotation (det +1), not a reflection")
    return (positions @ m.T).astype(positions.dtype, copy=False)


def quat_wxyz_to_matrix(q: np.ndarray) -> np.ndarray:
    """(..., 4) quaternions (w, x, y, z), not necessarily unit, to (..., 3, 3) rotation matrices."""
    from scipy.spatial.transform import Rotation  # deferred: scipy.spatial is slow to import

    q = np.asarray(q, dtype=np.float64)
    flat = q.reshape(-1, 4)
    norms = np.linalg.norm(flat, axis=1)
    if not (norms > 1e-8).all():
        raise ValueError("zero-length quaternion")
    mats = Rotation.from_quat(flat[:, [1, 2, 3, 0]]).as_matrix()
    return mats.reshape(q.shape[:-1] + (3, 3))


def forward_kinematics(parents: Sequence[int], offsets: np.ndarray, local_rot: np.ndarray,
                       root_pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rigid forward kinematics.

    Args:
        parents: parent index per joint (-1 root), parents before children.
        offsets: (J, 3) or (T, J, 3) offset of each joint from its parent, in the parent's frame
            (the root's offset is added to ``root_pos`` unrotated).
        local_rot: (T, J, 3, 3) rotation of each joint relative to its parent (root: global).
        root_pos: (T, 3) root position.

    Returns:
        (positions (T, J, 3), global rotations (T, J, 3, 3)).
    """
    t, j = local_rot.shape[:2]
    offsets = np.broadcast_to(offsets, (t, j, 3))
    pos = np.empty((t, j, 3))
    rot = np.empty((t, j, 3, 3))
    for i, p in enumerate(parents):
        if p < 0:
            rot[:, i] = local_rot[:, i]
            pos[:, i] = root_pos + offsets[:, i]
        else:
            rot[:, i] = rot[:, p] @ local_rot[:, i]
            pos[:, i] = pos[:, p] + np.einsum("tab,tb->ta", rot[:, p], offsets[:, i])
    return pos, rot


def canonical_facing(positions: np.ndarray, name: str, skeleton: Skeleton = HUMANML3D) -> np.ndarray:
    """First-frame pelvis to x = z = 0 and first-frame facing to +z (``preprocess.canonicalize``).

    A pose whose facing cannot be told (hips and shoulders vertical) becomes a :class:`ClipError`.
    """
    from ramos.motion.preprocess import canonicalize  # deferred: preprocess pulls in scipy.interpolate

    try:
        return canonicalize(positions, skeleton)
    except ValueError as err:
        raise ClipError(f"{name}: {err}") from None
