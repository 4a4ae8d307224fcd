"""The embedded data set: 20 DeepMimic clips retargeted to 22 joints, shipped inside the package.

``src/ramos/assets/deepmimic22.npz`` holds one float32 (T, 22, 3) array per clip (``clip_000``...,
metres, y up, facing +z in the first frame, at the clip's native frame rate) and ``meta``: a JSON
string (plain unicode array, so ``allow_pickle=False`` loads it) listing each clip's key, id, label,
fps and loop mode. ``scripts/build_builtin_asset.py`` rebuilds it from pybullet's data files.
The clips are under the zlib licence (``assets/LICENSE-DeepMimic.txt``).

Captions: ``deepmimic22_captions.json`` beside the asset (``{"format_version": 1, "about": ...,
"clips": {"<clip id>": ["caption", ...]}}``) holds 6 captions per clip, written for RaMoS in
HumanML3D's style after looking at each clip (which side kicks, punches or turns, direction of
travel). ``read_item`` puts them in ``Clip.captions``; a clip absent from the file, or a missing
file, gets none; a malformed file is a :class:`ClipError` naming it. Mirrored windows get the
captions with left and right swapped (``ramos.motion.preprocess.mirror_text``).
"""

from __future__ import annotations

import importlib.resources
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ramos.motion.clip import Clip, ClipError
from ramos.motion.io._common import check_fps, check_positions, load_npz
from ramos.motion.skeleton import HUMANML3D

ASSET_NAME = "deepmimic22.npz"
CAPTIONS_NAME = "deepmimic22_captions.json"
FORMAT_VERSION = 1


def asset_path() -> Path:
    """Path of the shipped asset (inside the installed package)."""
    return Path(str(importlib.resources.files("ramos").joinpath("assets", ASSET_NAME)))


@dataclass(frozen=True)
class BuiltinItem:
    """One clip of the asset."""

    asset: str
    key: str
    source_id: str


def _read_meta(path: Path) -> tuple[dict[str, np.ndarray], list[dict[str, Any]]]:
    stat = path.stat()
    return _read_asset(str(path), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=2)
def _read_asset(path: str, mtime_ns: int, size: int) -> tuple[dict[str, np.ndarray], list[dict[str, Any]]]:
    # Cached per process (keyed by mtime and size): reading every item would otherwise unpack the
    # whole archive once per clip.
    arrays = load_npz(Path(path))
    if "meta" not in arrays:
        raise ClipError(f"{path}: missing 'meta' entry")
    try:
        meta = json.loads(str(arrays["meta"].reshape(-1)[0]))
        clips = meta["clips"]
        if meta.get("format_version") != FORMAT_VERSION:
            raise ClipError(f"{path}: format version {meta.get('format_version')}, expected {FORMAT_VERSION}")
    except (json.JSONDecodeError, KeyError, TypeError, IndexError) as err:
        raise ClipError(f"{path}: malformed 'meta' entry ({err})") from None
    return arrays, clips


def captions_path(asset: Path | str) -> Path:
    """The captions file that belongs to an asset file: ``deepmimic22_captions.json`` beside it."""
    return Path(asset).parent / CAPTIONS_NAME


def read_captions(asset: Path | str) -> dict[str, list[str]]:
    """Captions per clip id of an asset ({} when its captions file is absent)."""
    path = captions_path(asset)
    try:
        stat = path.stat()
    except FileNotFoundError:
        return {}
    return _read_captions(str(path), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=2)
def _read_captions(path: str, mtime_ns: int, size: int) -> dict[str, list[str]]:
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(doc, dict):
            raise TypeError("not a JSON object")
        if doc.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"format version {doc.get('format_version')}, expected {FORMAT_VERSION}")
        clips = doc["clips"]
        if not isinstance(clips, dict):
            raise TypeError("'clips' is not an object")
        for cid, caps in clips.items():
            if not isinstance(caps, list) or not all(isinstance(c, str) and c.strip() for c in caps):
                raise TypeError(f"clip {cid!r}: expected a list of non-empty strings")
    except (OSError, UnicodeDecodeError, ValueError, TypeError, KeyError) as err:
        # One line: json's messages hold no newline, but keep it safe for any error.
        reason = " ".join(str(err).split()) or type(err).__name__
        raise ClipError(f"{path}: malformed captions file ({reason})") from None
    return {cid: [" ".join(c.split()) for c in caps] for cid, caps in clips.items()}


def list_items(root: Path | str | None = None) -> list[BuiltinItem]:
    """Items of the embedded set; ``root`` may name another asset file of the same format."""
    path = Path(root) if root is not None else asset_path()
    if path.is_dir():
        path = path / ASSET_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path}: embedded motion asset not found (rebuild: scripts/build_builtin_asset.py)")
    _, clips = _read_meta(path)
    return [BuiltinItem(str(path), c["key"], c["id"]) for c in clips]


def read_item(item: BuiltinItem) -> list[Clip]:
    """One :class:`Clip` of the embedded set (label = the DeepMimic clip name, captions from the captions file)."""
    path = Path(item.asset)
    arrays, clips = _read_meta(path)
    entry = next((c for c in clips if c["key"] == item.key), None)
    if entry is None or item.key not in arrays:
        raise ClipError(f"{path}: no clip {item.key!r}")
    name = f"{path}:{item.key}"
    positions = check_positions(arrays[item.key].copy(), name, HUMANML3D.num_joints)
    fps = check_fps(entry["fps"], name)
    captions = list(read_captions(path).get(entry["id"], []))
    return [Clip(positions=positions, fps=fps, source_id=entry["id"], source="builtin", captions=captions,
                 labels=[entry["label"]], meta={"loop": entry["loop"], "origin": "deepmimic", "file": entry["file"]})]


def load_all() -> list[Clip]:
    """All clips of the embedded set, in asset order."""
    return [c for item in list_items() for c in read_item(item)]
