"""An offline 3D viewer page for a folder of generated motions (``ramos generate --out DIR``).

    from ramos.motion.viewer import write_viewer
    page = write_viewer("runs/generated")   # -> runs/generated/index.html

The page is one self-contained HTML file: the template ``assets/viewer.html`` (plain JavaScript,
Canvas 2D with its own perspective projection, no library, nothing fetched from the network) with
the motions embedded as base64 int16 positions (1 mm steps, around a per-motion origin). It shows
every motion in its own view on a floor grid with its shadow, an orbit camera shared by all views,
play/pause (button or space), a time scrubber and speed, and per motion its prompt or label, seed
and length, plus the generation settings of ``index.json``.

A listed ``.npy`` that is missing or unreadable is skipped with a warning naming it; the page is
written with the others. No usable motion at all is a :class:`ViewerError`.
"""

from __future__ import annotations

import base64
import html
import importlib.resources
import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ramos.motion.render import SIDE_COLOURS
from ramos.motion.skeleton import HUMANML3D, Skeleton
from ramos.utils.atomic import write_text

log = logging.getLogger(__name__)

TEMPLATE_NAME = "viewer.html"
PAGE_NAME = "index.html"
_DATA_MARK = "__RAMOS_VIEWER_DATA__"
_TITLE_MARK = "__RAMOS_VIEWER_TITLE__"
_INT16_MAX = 32767


class ViewerError(ValueError):
    """A folder the viewer cannot show (no or bad index.json, no usable motion); one line."""


class _Unusable(Exception):
    """A listed motion the page cannot show; the message names its file and why."""


@dataclass(frozen=True)
class ViewerMotion:
    """One motion of the folder as the page receives it."""

    entry: dict[str, Any]
    positions: np.ndarray  # float32 (T, J, 3)


def template_path() -> Path:
    """Path of the page template inside the installed package."""
    return Path(str(importlib.resources.files("ramos").joinpath("assets", TEMPLATE_NAME)))


def read_index(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """The folder's ``index.json`` (checked for the fields the page needs)."""
    folder = Path(folder)
    path = folder / "index.json"
    if not folder.is_dir():
        raise ViewerError(f"{folder}: no such folder")
    if not path.is_file():
        raise ViewerError(f"{folder}: no index.json (not a `ramos generate --out` folder)")
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ViewerError(f"{path}: unreadable ({' '.join(str(exc).split())})") from None
    if not isinstance(index, dict) or not isinstance(index.get("motions"), list):
        raise ViewerError(f"{path}: no \"motions\" list")
    fps = index.get("fps")
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not math.isfinite(fps) or fps <= 0:
        raise ViewerError(f"{path}: \"fps\" must be a positive number, got {fps!r}")
    return index


def _skeleton_of(index: dict[str, Any], path: Path) -> Skeleton:
    joints = index.get("joints")
    if joints is None or tuple(joints) == HUMANML3D.names:
        return HUMANML3D
    # index.json names the joints only; the bone tree is known for the HumanML3D layout alone.
    raise ViewerError(f"{path}: joints {joints!r} are not the 22-joint HumanML3D skeleton the viewer draws")


def _load_motion(folder: Path, entry: Any, number: int, skeleton: Skeleton) -> ViewerMotion:
    """One listed motion; :class:`_Unusable` with the reason when it cannot be shown."""
    if not isinstance(entry, dict):
        raise _Unusable(f"motion {number}: not an object")
    files = entry.get("files")
    name = files.get("npy") if isinstance(files, dict) else None
    if not isinstance(name, str) or not name:
        raise _Unusable(f"motion {number}: no npy file listed")
    path = folder / name
    # A name from the file could point anywhere; the page is about this folder only.
    if Path(name).is_absolute() or ".." in Path(name).parts:
        raise _Unusable(f"{name}: not inside the folder")
    if not path.is_file():
        raise _Unusable(f"{name}: missing")
    try:
        positions = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise _Unusable(f"{name}: not a readable .npy ({' '.join(str(exc).split())})") from None
    if not isinstance(positions, np.ndarray):  # an .npz archive under an .npy name
        raise _Unusable(f"{name}: not a single array")
    if positions.ndim != 3 or positions.shape[1:] != (skeleton.num_joints, 3) or positions.shape[0] == 0:
        raise _Unusable(f"{name}: shape {positions.shape}, expected (T, {skeleton.num_joints}, 3)")
    if not np.issubdtype(positions.dtype, np.floating) or not np.isfinite(positions).all():
        raise _Unusable(f"{name}: not finite float positions")
    return ViewerMotion(entry, positions.astype(np.float32))


def load_motions(folder: str | os.PathLike[str], index: dict[str, Any] | None = None,
                 skeleton: Skeleton | None = None) -> tuple[list[ViewerMotion], list[str]]:
    """The usable motions of ``folder`` and, for each listed one that is not, the reason (naming its file)."""
    folder = Path(folder)
    index = read_index(folder) if index is None else index
    skeleton = skeleton or _skeleton_of(index, folder / "index.json")
    motions, skipped = [], []
    for number, entry in enumerate(index["motions"]):
        try:
            motions.append(_load_motion(folder, entry, number, skeleton))
        except _Unusable as exc:
            skipped.append(str(exc))
    return motions, skipped


def _encode(positions: np.ndarray) -> dict[str, Any]:
    """Positions as base64 little-endian int16 around an origin: 1 mm steps (coarser only past +-32 m)."""
    lo, hi = positions.reshape(-1, 3).min(0), positions.reshape(-1, 3).max(0)
    origin = np.round((lo + hi) / 2, 3)
    half = float(np.abs(positions - origin).max())
    # Exact millimetres cover a 65 m wide box; a longer path gets the smallest step that still fits.
    step = max(0.001, math.ceil(half / _INT16_MAX * 1e6) / 1e6)
    q = np.clip(np.round((positions - origin) / step), -_INT16_MAX, _INT16_MAX).astype("<i2")
    return {"origin": [float(v) for v in origin], "step": step,
            "data": base64.b64encode(q.tobytes()).decode("ascii")}


def _page_data(index: dict[str, Any], motions: list[ViewerMotion], skeleton: Skeleton, title: str,
               skipped: list[str]) -> dict[str, Any]:
    side = skeleton.side
    bones = [[int(p), int(c), SIDE_COLOURS[int(side[c] if side[c] != 0 else side[p])]] for p, c in skeleton.bones]
    items = []
    for m in motions:
        e = m.entry
        items.append({
            "index": e.get("index"), "label": e.get("label"), "prompt": e.get("prompt"), "seed": e.get("seed"),
            "frames": int(m.positions.shape[0]), "file": e["files"]["npy"],
            **_encode(m.positions),
        })
    return {
        "title": title, "fps": float(index["fps"]), "created": index.get("created"),
        "settings": index.get("settings") or {}, "skipped": skipped,
        "joints": list(skeleton.names), "root": skeleton.root, "feet": list(skeleton.feet),
        "bones": bones, "jointColours": [SIDE_COLOURS[int(s)] for s in side],
        "sideColours": {"left": SIDE_COLOURS[1], "right": SIDE_COLOURS[-1], "centre": SIDE_COLOURS[0]},
        "motions": items,
    }


def render_page(data: dict[str, Any], template: str | None = None) -> str:
    """Fill the template with the page data (JSON safe inside a ``<script>`` element)."""
    template = template_path().read_text(encoding="utf-8") if template is None else template
    for mark in (_DATA_MARK, _TITLE_MARK):
        if template.count(mark) != 1:
            raise ViewerError(f"viewer template: {mark} must appear exactly once")
    payload = json.dumps(data, separators=(",", ":"), ensure_ascii=True)
    # "</" would end the script element early, "<!--" would open a comment inside it.
    payload = payload.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return template.replace(_TITLE_MARK, html.escape(data["title"])).replace(_DATA_MARK, payload)


def write_viewer(folder: str | os.PathLike[str], title: str | None = None) -> Path:
    """Write ``folder/index.html``: a self-contained offline page playing the folder's motions in 3D.

    Reads ``folder/index.json`` and the ``.npy`` files it lists; a missing or bad one is skipped
    (logged as a warning naming it). ``title`` defaults to the folder's name. Returns the page's path.
    Raises :class:`ViewerError` when the folder has no usable index.json or no usable motion.
    """
    folder = Path(folder)
    index = read_index(folder)
    skeleton = _skeleton_of(index, folder / "index.json")
    motions, skipped = load_motions(folder, index, skeleton)
    for reason in skipped:
        log.warning("skipped %s", reason)
    if not motions:
        listed = len(index["motions"])
        detail = f": {'; '.join(skipped)}" if skipped else ""
        raise ViewerError(f"{folder}: no usable motion ({listed} listed){detail}")
    name = title if title is not None else (folder.resolve().name or str(folder))
    page = folder / PAGE_NAME
    write_text(page, render_page(_page_data(index, motions, skeleton, name, skipped)))
    return page
