"""Helpers shared by the readers: validation, axis conventions, rigid forward kinematics, facing.

Readers import from here so that every source is checked the same way and ends up in the same
convention (metres, y up, a subject facing +z has its left side at +x).
"""

from __future__ import annotations

import json
import math
import os
import zipfile
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

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

    Rejects wrong shapes, integer or boolean arrays (joints are float metres; integers are almost
    always another unit, e.g. millimetres, and casting them would silently give a 1000x giant),
    fewer than ``min_frames`` frames (a 0- or 1-frame clip has no motion), and NaN/inf values
    (they poison normalisation statistics downstream).
    """
    arr = np.asarray(positions)
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise ClipError(f"{name}: expected positions of shape (T, J, 3), got {arr.shape}")
    if num_joints is not None and arr.shape[1] != num_joints:
        raise ClipError(f"{name}: expected {num_joints} joints, got {arr.shape[1]}")
    if arr.dtype == np.bool_ or np.issubdtype(arr.dtype, np.integer):
        raise ClipError(f"{name}: joint positions are {_describe_integers(arr)}; joints must be float metres "
                        "(convert and save as float32)")
    if not np.issubdtype(arr.dtype, np.number):
        raise ClipError(f"{name}: positions are not numeric (dtype {arr.dtype})")
    if not np.issubdtype(arr.dtype, np.floating):
        raise ClipError(f"{name}: positions are complex numbers (dtype {arr.dtype}); joints must be float metres")
    if arr.shape[0] < min_frames:
        raise ClipError(f"{name}: {arr.shape[0]} frame(s); at least {min_frames} needed")
    arr = arr.astype(np.float32)
    bad = ~np.isfinite(arr).all(axis=(1, 2))
    if bad.any():
        raise ClipError(f"{name}: {int(bad.sum())} frame(s) with NaN/inf values (first at frame {int(np.argmax(bad))})")
    return arr


def _describe_integers(arr: np.ndarray) -> str:
    """What an integer joint array looks like, with a guess at its unit (for the error message)."""
    if arr.dtype == np.bool_:
        return "booleans"
    peak = int(np.abs(arr.astype(np.int64)).max()) if arr.size else 0
    # A standing adult spans about 1.7 m: ~1700 in mm, ~170 in cm, 1-2 in (rounded) metres.
    guess = "millimetres?" if peak >= 400 else "centimetres?" if peak >= 40 else "rounded metres?"
    return f"integers ({arr.dtype}, max |x| {peak}: {guess})"


def check_fps(fps: float, name: str) -> float:
    """A finite, positive frame rate or :class:`ClipError`."""
    try:
        value = float(fps)
    except (TypeError, ValueError):
        raise ClipError(f"{name}: frame rate {fps!r} is not a number") from None
    if not np.isfinite(value) or value <= 0:
        raise ClipError(f"{name}: invalid frame rate {value}")
    return value


# --- .npy / .npz: headers first, data only once they are known to be sane -------------------------
NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGICS: tuple[bytes, ...] = (b"PK\x03\x04", b"PK\x05\x06")  # a local file header; an empty archive
MAX_NPZ_BYTES = 2 << 30
"""Default bound on the memory an ``.npz`` may inflate to (2 GiB: an SMPL-H body model with its
pose blend shapes is ~100 MB, the longest AMASS sequences a few hundred MB)."""


@dataclass(frozen=True)
class NpyHeader:
    """What an ``.npy`` header promises: shape, dtype and order of the data after it."""

    shape: tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool

    @property
    def nbytes(self) -> int:
        """Bytes of data the header announces (Python ints: a hostile shape cannot overflow)."""
        return math.prod(self.shape) * self.dtype.itemsize


def _size(nbytes: int) -> str:
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if nbytes >= factor:
            return f"{nbytes / factor:.3g} {unit}"
    return f"{nbytes} bytes"


def describe_bytes(head: bytes) -> str:
    """A few words on what a file that starts with ``head`` looks like (for "not a .npy file" errors)."""
    if not head:
        return "the file is empty"
    if head.startswith(NPY_MAGIC):
        return "looks like a .npy array"
    if head.startswith(ZIP_MAGICS):
        return "looks like a zip archive (an .npz?)"
    if head[:1] == b"\x80":
        return "looks like a Python pickle"
    if head.startswith(b"\x89HDF"):
        return "looks like an HDF5 file"
    text = head.decode("utf-8", "replace")
    if b"\x00" not in head and sum(c.isprintable() or c in "\r\n\t" for c in text) >= 0.95 * len(text):
        return f"looks like text: {text[:24]!r}"
    return "binary data of unknown format"


def read_npy_header(f: BinaryIO, name: str) -> NpyHeader:
    """Parse the ``.npy`` header at the current position of ``f`` (a file or a zip member), reading no data.

    Raises :class:`ClipError` for a missing magic string, a malformed header or an object dtype
    (which would need unpickling).
    """
    head = f.read(8)
    if not head.startswith(NPY_MAGIC) or len(head) < 8:
        head += f.read(56)  # enough to tell text from binary in the message
        raise ClipError(f"{name}: not a .npy file (no NumPy magic header; {describe_bytes(head)})")
    major = head[6]
    try:
        if major == 1:
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif major in (2, 3):  # 3.0 only allows utf-8 field names; the layout is that of 2.0
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f"unknown format version {major}.{head[7]}")
    except ValueError as err:
        raise ClipError(f"{name}: malformed .npy header ({' '.join(str(err).split())})") from None
    if any(n < 0 for n in shape):
        raise ClipError(f"{name}: malformed .npy header (negative dimension in shape {shape})")
    if dtype.hasobject:
        raise ClipError(f"{name}: array of Python objects (dtype {dtype}); cannot read without unpickling, "
                        "which is never done")
    return NpyHeader(tuple(int(n) for n in shape), dtype, bool(fortran))


def _check_frames(header: NpyHeader, name: str, max_frames: int | None) -> None:
    if max_frames is not None and len(header.shape) >= 2 and header.shape[0] > max_frames:
        raise ClipError(f"{name}: {header.shape[0]:,} frames, more than the limit of {max_frames:,} "
                        "(reader option max_frames)")


def _read_data(f: BinaryIO, header: NpyHeader, name: str) -> np.ndarray:
    """The array announced by ``header`` from ``f``, read into one preallocated buffer."""
    buf = bytearray(header.nbytes)
    got = f.readinto(buf) if header.nbytes else 0
    if got != header.nbytes:
        raise ClipError(f"{name}: truncated: {_size(got)} of {_size(header.nbytes)} of data")
    arr = np.frombuffer(buf, dtype=header.dtype)
    return arr.reshape(header.shape, order="F" if header.fortran_order else "C")


def load_npy(path: Path, max_frames: int | None = None) -> np.ndarray:
    """Load one ``.npy`` array without unpickling; any failure becomes a :class:`ClipError`.

    The header is read first and checked against the file size (and ``max_frames``, the first
    dimension of an array of 2 or more dimensions) before any data is allocated, so a header that
    claims a billion frames in a 1 MiB file is rejected instead of raising MemoryError.
    """
    try:
        with open(path, "rb") as f:
            header = read_npy_header(f, str(path))
            available = os.fstat(f.fileno()).st_size - f.tell()
            if header.nbytes > available:
                raise ClipError(f"{path}: header says shape {header.shape} {header.dtype} ({_size(header.nbytes)}) "
                                f"but the file holds {_size(available)} of data: truncated or corrupt")
            _check_frames(header, str(path), max_frames)
            return _read_data(f, header, str(path))
    except OSError as err:
        raise ClipError(f"{path}: cannot read ({err.strerror or err})") from None


def npz_keys(path: Path) -> list[str] | None:
    """The array names of an ``.npz`` from its zip directory alone (nothing decompressed); None if not a zip."""
    try:
        with zipfile.ZipFile(path) as zf:
            return [n[:-4] for n in zf.namelist() if n.endswith(".npy")]
    except (OSError, zipfile.BadZipFile, ValueError):
        return None


def load_npz(path: Path, keys: Iterable[str] | None = None, max_bytes: int = MAX_NPZ_BYTES,
             max_frames: int | None = None) -> dict[str, np.ndarray]:
    """Load the arrays of an ``.npz`` (all, or those of ``keys`` present) without unpickling.

    Every member's ``.npy`` header is read first (decompressing only those few hundred bytes) and
    checked against the member's size in the zip directory, ``max_frames`` (first dimension of
    arrays of 2 or more dimensions) and ``max_bytes`` (the arrays' total size): a small file that
    would inflate to gigabytes is rejected before it is decompressed. Any failure becomes a
    :class:`ClipError` naming the file.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError as err:
        raise ClipError(f"{path}: cannot read ({err.strerror or err})") from None
    if not head.startswith(ZIP_MAGICS):
        raise ClipError(f"{path}: not a .npz file (not a zip archive; {describe_bytes(head)})")
    wanted = None if keys is None else set(keys)
    try:
        with zipfile.ZipFile(path) as zf:
            members = [(i.filename[:-4], i) for i in zf.infolist() if i.filename.endswith(".npy")]
            members = [(k, i) for k, i in members if wanted is None or k in wanted]
            total = 0
            for key, info in members:
                name = f"{path}: {key!r}"
                with zf.open(info) as member:
                    header = read_npy_header(member, name)
                    data_bytes = info.file_size - member.tell()
                if header.nbytes > data_bytes:
                    raise ClipError(f"{name}: header says shape {header.shape} {header.dtype} "
                                    f"({_size(header.nbytes)}) but the member holds {_size(data_bytes)}")
                _check_frames(header, name, max_frames)
                total += header.nbytes
            if total > max_bytes:
                raise ClipError(f"{path}: arrays would take {_size(total)} in memory, more than the limit of "
                                f"{_size(max_bytes)}")
            out = {}
            for key, info in members:
                with zf.open(info) as member:
                    header = read_npy_header(member, f"{path}: {key!r}")
                    out[key] = _read_data(member, header, f"{path}: {key!r}")
            return out
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError, ValueError) as err:
        # ClipError is a ValueError: pass ours through, wrap the rest (bad CRC, truncated archive...).
        if isinstance(err, ClipError):
            raise
        raise ClipError(f"{path}: corrupt .npz file ({type(err).__name__}: {' '.join(str(err).split())})") from None


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


class ItemList(list):
    """A reader's items, plus ``notes``: what its lister saw but did not list, for the manifest.

    Each note is ``{"item", "code", "reason"}`` (e.g. code ``missing_motion``: an id in a split
    file with no motion file; ``not_motion``: a body model under the AMASS root). A plain list
    subclass, so callers that only want the items need not know.
    """

    def __init__(self, items: Iterable[object] = (), notes: Iterable[dict[str, str]] = ()) -> None:
        super().__init__(items)
        self.notes: list[dict[str, str]] = list(notes)


def note(item: str, code: str, reason: str) -> dict[str, str]:
    """A warning record ``{"item", "code", "reason"}`` (the shape of the manifest's rejections)."""
    return {"item": item, "code": code, "reason": " ".join(reason.split())}


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
