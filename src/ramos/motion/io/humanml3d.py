"""The HumanML3D folder layout (what users who own AMASS build with the HumanML3D scripts).

    <root>/new_joints/<id>.npy   float32 (T, 22, 3), metres, y up, 20 fps
    <root>/texts/<id>.txt        one caption per line: ``caption#tok/POS tok/POS ...#start#end``
                                 (``0.0#0.0``: the whole clip; otherwise a sub-span in seconds)
    <root>/{train,val,test}.txt  ids per split (``M``-prefixed ids are left/right mirrored copies)

Captions become ``Clip.captions``; their spans and POS tokens stay in ``meta`` (``caption_spans``,
``caption_tokens``), with ``split`` and ``mirrored``. HumanML3D has no action labels.

Every HumanML3D motion has captions, so a missing or empty caption file is recorded in
``meta["warnings"]``, and ids of the split files without a motion file in the listing's ``notes``;
``ramos data prepare`` lists both in the manifest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from ramos.motion.clip import Clip, ClipError
from ramos.motion.io._common import ItemList, check_positions, load_npy, note, read_text
from ramos.motion.skeleton import HUMANML3D

FPS = 20.0
SPLITS: tuple[str, ...] = ("train", "val", "test")
MAX_FRAMES = 72_000
"""Longest motion read (an hour at 20 fps; HumanML3D's are seconds to minutes): a bound against
corrupt headers, raised with the reader option ``max_frames``."""


@dataclass(frozen=True)
class HumanML3DItem:
    """One motion of the folder."""

    path: str
    text_path: str | None
    source_id: str
    split: str | None
    mirrored: bool


def _read_splits(root: Path) -> dict[str, str]:
    """Id -> split from the split files present (the first file listing an id wins)."""
    split_of: dict[str, str] = {}
    for split in SPLITS:
        f = root / f"{split}.txt"
        if f.is_file():
            for line in read_text(f).splitlines():
                if line.strip():
                    split_of.setdefault(line.strip(), split)
    return split_of


def list_items(root: Path | str, include_mirrored: bool = True,
               splits: tuple[str, ...] | None = None) -> ItemList:
    """Motions under ``root/new_joints``.

    Args:
        root: the HumanML3D folder.
        include_mirrored: keep ``M``-prefixed mirrored copies (off when mirroring is done later).
        splits: keep only these splits (ids absent from every split file have split None and are
            kept only when ``splits`` is None).

    Returns:
        the items; their ``notes`` name each id of a split file (one that these options would
        keep) that has no ``new_joints/<id>.npy`` (code ``missing_motion``).
    """
    root = Path(root)
    joints = root / "new_joints"
    if not joints.is_dir():
        raise FileNotFoundError(f"{joints}: no such folder (expected a HumanML3D root with new_joints/)")
    split_of = _read_splits(root)
    items = []
    paths = sorted(joints.glob("*.npy"))
    for path in paths:
        sid = path.stem
        mirrored = sid.startswith("M")
        if mirrored and not include_mirrored:
            continue
        # Split files list the mirrored ids too; fall back to the original's split if one does not.
        split = split_of.get(sid) or (split_of.get(sid[1:]) if mirrored else None)
        if splits is not None and split not in splits:
            continue
        text = root / "texts" / f"{sid}.txt"
        items.append(HumanML3DItem(str(path), str(text) if text.is_file() else None, sid, split, mirrored))
    on_disk = {p.stem for p in paths}
    notes = [note(sid, "missing_motion", f"{sid}: listed in {root / (split + '.txt')} but "
                                         f"{joints / (sid + '.npy')} does not exist")
             for sid, split in split_of.items()
             if sid not in on_disk and (include_mirrored or not sid.startswith("M"))
             and (splits is None or split in splits)]
    return ItemList(items, notes)


def parse_texts(text: str, name: str) -> tuple[list[str], list[list[float]], list[str]]:
    """Captions, spans [start, end] in seconds ([0, 0] = whole clip) and token strings of a texts file."""
    captions, spans, tokens = [], [], []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.strip().split("#")
        caption = parts[0].strip()
        if not caption:
            raise ClipError(f"{name}: line {lineno}: empty caption")
        start = end = 0.0
        if len(parts) >= 4:
            try:
                start, end = float(parts[2]), float(parts[3])
            except ValueError:
                raise ClipError(f"{name}: line {lineno}: non-numeric span {parts[2]!r}#{parts[3]!r}") from None
            # HumanML3D's own loader reads NaN spans as the whole clip.
            start, end = (0.0 if math.isnan(start) else start), (0.0 if math.isnan(end) else end)
            if start < 0 or end < 0 or (end and end <= start):
                raise ClipError(f"{name}: line {lineno}: bad span {start}..{end}")
        captions.append(caption)
        spans.append([start, end])
        tokens.append(parts[1].strip() if len(parts) > 1 else "")
    return captions, spans, tokens


def read_item(item: HumanML3DItem, max_frames: int = MAX_FRAMES) -> list[Clip]:
    """One motion with its captions (20 fps, already metres / y up / HumanML3D orientation).

    ``meta["mirrored"]`` is True for the ``M``-prefixed left/right mirrored copies; ``meta["warnings"]``
    holds a ``no_captions`` / ``empty_captions`` note when the caption file is missing or empty.
    ``max_frames`` bounds the frame count, read from the ``.npy`` header before any data.
    """
    path = Path(item.path)
    positions = check_positions(load_npy(path, max_frames=max_frames), str(path), HUMANML3D.num_joints)
    captions: list[str] = []
    spans: list[list[float]] = []
    tokens: list[str] = []
    warnings = []
    if item.text_path is None:
        warnings.append(note(str(path), "no_captions", f"{path}: no caption file texts/{item.source_id}.txt"))
    else:
        tpath = Path(item.text_path)
        captions, spans, tokens = parse_texts(read_text(tpath), str(tpath))
        if not captions:
            warnings.append(note(str(path), "empty_captions", f"{path}: caption file {tpath} holds no caption"))
    return [Clip(positions=positions, fps=FPS, source_id=item.source_id, source="humanml3d", captions=captions,
                 labels=[], meta={"split": item.split, "mirrored": item.mirrored, "caption_spans": spans,
                                  "caption_tokens": tokens, "file": path.name, "warnings": warnings})]
