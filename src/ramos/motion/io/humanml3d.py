"""The HumanML3D folder layout (what users who own AMASS build with the HumanML3D scripts).

    <root>/new_joints/<id>.npy   float32 (T, 22, 3), metres, y up, 20 fps
    <root>/texts/<id>.txt        one caption per line: ``caption#tok/POS tok/POS ...#start#end``
                                 (``0.0#0.0``: the whole clip; otherwise a sub-span in seconds)
    <root>/{train,val,test}.txt  ids per split (``M``-prefixed ids are left/right mirrored copies)

Captions become ``Clip.captions``; their spans and POS tokens stay in ``meta`` (``caption_spans``,
``caption_tokens``), with ``split`` and ``mirrored``. HumanML3D has no action labels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from ramos.motion.clip import Clip, ClipError
from ramos.motion.io._common import check_positions, load_npy, read_text
from ramos.motion.skeleton import HUMANML3D

FPS = 20.0
SPLITS: tuple[str, ...] = ("train", "val", "test")


@dataclass(frozen=True)
class HumanML3DItem:
    """One motion of the folder."""

    path: str
    text_path: str | None
    source_id: str
    split: str | None
    mirrored: bool


def _read_splits(root: Path) -> dict[str, str]:
    split_of: dict[str, str] = {}
    for split in SPLITS:
        f = root / f"{split}.txt"
        if f.is_file():
            for line in read_text(f).splitlines():
                if line.strip():
                    split_of.setdefault(line.strip(), split)
    return split_of


def list_items(root: Path | str, include_mirrored: bool = True,
               splits: tuple[str, ...] | None = None) -> list[HumanML3DItem]:
    """Motions under ``root/new_joints``.

    Args:
        root: the HumanML3D folder.
        include_mirrored: keep ``M``-prefixed mirrored copies (off when mirroring is done later).
        splits: keep only these splits (ids absent from every split file have split None and are
            kept only when ``splits`` is None).
    """
    root = Path(root)
    joints = root / "new_joints"
    if not joints.is_dir():
        raise FileNotFoundError(f"{joints}: no such folder (expected a HumanML3D root with new_joints/)")
    split_of = _read_splits(root)
    items = []
    for path in sorted(joints.glob("*.npy")):
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
    return items


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


def read_item(item: HumanML3DItem) -> list[Clip]:
    """One motion with its captions (20 fps, already metres / y up / HumanML3D orientation)."""
    path = Path(item.path)
    positions = check_positions(load_npy(path), str(path), HUMANML3D.num_joints)
    captions: list[str] = []
    spans: list[list[float]] = []
    tokens: list[str] = []
    if item.text_path is not None:
        tpath = Path(item.text_path)
        captions, spans, tokens = parse_texts(read_text(tpath), str(tpath))
    return [Clip(positions=positions, fps=FPS, source_id=item.source_id, source="humanml3d", captions=captions,
                 labels=[], meta={"split": item.split, "mirrored": item.mirrored, "caption_spans": spans,
                                  "caption_tokens": tokens, "file": path.name})]
