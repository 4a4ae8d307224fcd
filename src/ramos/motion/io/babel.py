"""BABEL action labels for AMASS sequences (Punnakkal et al., CVPR 2021), read from BABEL's JSON files.

A BABEL release (``babel_v1.0_release``) is a folder of JSON files: ``train.json``, ``val.json``
and optionally ``test.json``, ``extra_train.json``, ``extra_val.json``. Each maps a sequence id to::

    {"babel_sid": 7692, "feat_p": "CMU/CMU/141/141_05_poses.npz", "dur": 3.83, "url": ...,
     "seq_ann": {"labels": [{"raw_label": "jump", "proc_label": "jump", "act_cat": ["jump"], "seg_id": ...}]},
     "frame_ann": {"labels": [{"raw_label": "hopping left", "proc_label": "hop left", "act_cat": ["hop"],
                               "start_t": 1, "end_t": 2, "seg_id": ...}, ...]}}

``frame_ann`` is null when an annotator saw a single action (the sequence label then covers every
frame). The ``extra_*`` files hold further annotators' work as lists, ``seq_anns`` and ``frame_anns``.
``test.json`` comes with its labels withheld; entries without any label are ignored. ``act_cat``
may be null. Times are seconds from the first frame, so they hold at any frame rate.

``feat_p`` is the path of the AMASS file relative to BABEL's AMASS root; the first folder is often
doubled (``CMU/CMU/``) or named differently from a user's download (``BioMotionLab_NTroje`` vs
``BMLrub``), and newer AMASS releases name files ``*_stageii.npz``. Sequences are therefore
matched by the longest common tail of their paths, case-insensitive, without the ``_poses`` /
``_stageii`` suffix (see :meth:`BabelIndex.lookup`).

Only JSON is read; nothing is unpickled.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from ramos.motion.clip import Clip

DENSE_FILES: tuple[str, ...] = ("train", "val", "test")
EXTRA_FILES: tuple[str, ...] = ("extra_train", "extra_val")
FILES: tuple[str, ...] = DENSE_FILES + EXTRA_FILES
"""In order of precedence: a sequence labelled in several files takes its labels from the first."""

_STEM_SUFFIXES: tuple[str, ...] = ("_poses", "_stageii")
# Two candidates whose durations differ by less than this (s) cannot be told apart by duration.
DURATION_TOLERANCE_S = 0.1


class BabelError(ValueError):
    """A BABEL file or folder cannot be used; the message names the file and the reason (one line)."""


@dataclass(frozen=True)
class BabelSegment:
    """One frame-level label: an action from ``start_t`` to ``end_t`` seconds."""

    start_t: float
    end_t: float
    act_cat: tuple[str, ...]
    raw_label: str
    proc_label: str


@dataclass(frozen=True)
class BabelSequence:
    """The labels of one AMASS sequence.

    Attributes:
        sid: BABEL's sequence id (``babel_sid``, else the file's key).
        feat_p: the AMASS path as BABEL gives it.
        file: the BABEL file it came from ("train", "extra_val", ...).
        dur: duration in seconds as BABEL measured it (None when absent).
        labels: sequence-level action categories (``act_cat``), unique, in order.
        raw_labels: sequence-level free-text labels as annotated (``raw_label``).
        segments: frame-level labels (empty when BABEL has only sequence labels for it).
    """

    sid: str
    feat_p: str
    file: str
    dur: float | None
    labels: tuple[str, ...]
    raw_labels: tuple[str, ...]
    segments: tuple[BabelSegment, ...]


def path_key(path: str) -> tuple[str, ...]:
    """Lower-case path parts without ``.npz`` and the ``_poses``/``_stageii`` suffix: what matching compares."""
    parts = [p for p in path.replace("\\", "/").split("/") if p and p != "."]
    if not parts:
        return ()
    stem = parts[-1]
    if stem.lower().endswith(".npz"):
        stem = stem[:-4]
    for suffix in _STEM_SUFFIXES:
        if stem.lower().endswith(suffix) and len(stem) > len(suffix):
            stem = stem[: -len(suffix)]
            break
    return tuple(p.casefold() for p in [*parts[:-1], stem])


class BabelIndex:
    """BABEL sequences indexed by every tail of their AMASS path, for :meth:`lookup`."""

    def __init__(self, sequences: Iterable[BabelSequence]) -> None:
        self.sequences: list[BabelSequence] = []
        self._tails: dict[tuple[str, ...], list[int]] = {}
        seen: set[tuple[str, ...]] = set()
        for seq in sequences:
            key = path_key(seq.feat_p)
            if not key or key in seen:
                continue  # the same file in a later (lower-precedence) BABEL file: the first one wins
            seen.add(key)
            self.sequences.append(seq)
            for k in range(1, len(key) + 1):
                self._tails.setdefault(key[-k:], []).append(len(self.sequences) - 1)
        self._max_parts = max((len(k) for k in self._tails), default=0)

    def __len__(self) -> int:
        return len(self.sequences)

    def lookup(self, amass_path: str, seconds: float | None = None) -> BabelSequence | None:
        """The sequence whose path shares the longest tail with ``amass_path`` (e.g. ``CMU/86/86_05_poses``).

        When several share that tail (the same file name in two AMASS subsets), the one whose BABEL
        duration matches ``seconds`` is taken; None when still ambiguous or nothing shares the file name.
        """
        key = path_key(amass_path)
        for k in range(min(len(key), self._max_parts), 0, -1):
            found = self._tails.get(key[-k:])
            if not found:
                continue
            if len(found) == 1:
                return self.sequences[found[0]]
            if seconds is None:
                return None
            close = [i for i in found if self.sequences[i].dur is not None
                     and abs(self.sequences[i].dur - seconds) < DURATION_TOLERANCE_S]
            return self.sequences[close[0]] if len(close) == 1 else None
        return None


# --- parsing ----------------------------------------------------------------------------------------
def _strings(value: Any, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):  # a single category written without a list
        return (value,)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TypeError(f"{what} must be a list of strings, got {value!r}")
    return tuple(value)


def _text(value: Any, what: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a string, got {value!r}")
    return value


def _seconds(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise TypeError(f"{what} must be a number of seconds, got {value!r}")
    return float(value)


def _label_list(ann: Any, what: str) -> list[dict[str, Any]]:
    """The ``labels`` of one ``seq_ann``/``frame_ann`` object (null: none)."""
    if ann is None:
        return []
    if not isinstance(ann, dict):
        raise TypeError(f"{what} must be an object or null, got {type(ann).__name__}")
    labels = ann.get("labels") or []
    if not isinstance(labels, list) or not all(isinstance(x, dict) for x in labels):
        raise TypeError(f"{what}.labels must be a list of objects")
    return labels


def _annotations(entry: dict[str, Any], single: str, many: str) -> list[Any]:
    """Dense files hold one annotation (``seq_ann``), extra files a list of them (``seq_anns``)."""
    anns = [entry.get(single)] if entry.get(single) is not None else []
    several = entry.get(many)
    if several is not None:
        if not isinstance(several, list):
            raise TypeError(f"{many} must be a list or null, got {type(several).__name__}")
        anns += several
    return anns


def _parse_entry(key: str, entry: Any, file: str) -> BabelSequence | None:
    if not isinstance(entry, dict):
        raise TypeError(f"sequence {key!r} must be an object, got {type(entry).__name__}")
    feat_p = entry.get("feat_p")
    if not isinstance(feat_p, str) or not feat_p.strip():
        raise TypeError(f"sequence {key!r} has no feat_p (the AMASS file path)")
    dur = entry.get("dur")
    dur = None if dur is None else _seconds(dur, f"sequence {key!r} dur")
    labels: list[str] = []
    raw: list[str] = []
    for n, ann in enumerate(_annotations(entry, "seq_ann", "seq_anns")):
        for lab in _label_list(ann, f"sequence {key!r} seq_ann[{n}]"):
            labels += [c for c in _strings(lab.get("act_cat"), f"sequence {key!r} act_cat") if c not in labels]
            text = _text(lab.get("raw_label"), f"sequence {key!r} raw_label").strip()
            if text and text not in raw:
                raw.append(text)
    segments = []
    for n, ann in enumerate(_annotations(entry, "frame_ann", "frame_anns")):
        for lab in _label_list(ann, f"sequence {key!r} frame_ann[{n}]"):
            where = f"sequence {key!r} frame label"
            start, end = _seconds(lab.get("start_t"), f"{where} start_t"), _seconds(lab.get("end_t"), f"{where} end_t")
            if end <= start:
                continue  # an empty segment covers no frame
            segments.append(BabelSegment(start, end, _strings(lab.get("act_cat"), f"{where} act_cat"),
                                         _text(lab.get("raw_label"), f"{where} raw_label").strip(),
                                         _text(lab.get("proc_label"), f"{where} proc_label").strip()))
    if not labels and not raw and not segments:
        return None  # e.g. test.json, whose labels BABEL withholds
    sid = entry.get("babel_sid", key)
    return BabelSequence(str(sid), feat_p.strip(), file, dur, tuple(labels), tuple(raw),
                         tuple(sorted(segments, key=lambda s: (s.start_t, s.end_t))))


def read_babel_file(path: Path | str, file: str | None = None) -> list[BabelSequence]:
    """The labelled sequences of one BABEL JSON file; :class:`BabelError` naming it when malformed."""
    path = Path(path)
    file = file or path.stem
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise BabelError(f"{path}: not valid JSON ({err.msg} at line {err.lineno} column {err.colno})") from None
    except UnicodeDecodeError as err:
        raise BabelError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    except OSError as err:
        raise BabelError(f"{path}: cannot read ({err.strerror or err})") from None
    if not isinstance(data, dict):
        raise BabelError(f"{path}: expected a JSON object of sequences (BABEL format), got {type(data).__name__}")
    out = []
    for key, entry in data.items():
        try:
            seq = _parse_entry(key, entry, file)
        except TypeError as err:
            raise BabelError(f"{path}: {err}") from None
        if seq is not None:
            out.append(seq)
    return out


@lru_cache(maxsize=4)
def load_babel(path: str) -> BabelIndex:
    """The BABEL files in folder ``path`` (or one BABEL JSON file) as a :class:`BabelIndex`.

    Cached per process: the amass reader's workers look sequences up in one index each.
    """
    where = Path(path).expanduser()  # a config's reader: {babel: ~/babel_v1.0_release} is not shell-expanded
    if where.is_file():
        files = [(where.stem, where)]
    elif where.is_dir():
        files = [(name, where / f"{name}.json") for name in FILES if (where / f"{name}.json").is_file()]
        if not files:
            raise BabelError(f"{where}: no BABEL file found (expected {', '.join(f + '.json' for f in FILES)})")
    else:
        raise FileNotFoundError(f"{where}: no such BABEL folder or file")
    # Dense files first: their one annotation per sequence takes precedence over the extra annotators'.
    rank = {name: i for i, name in enumerate(FILES)}
    files.sort(key=lambda f: rank.get(f[0], len(FILES)))
    return BabelIndex(seq for name, file in files for seq in read_babel_file(file, name))


def attach_labels(clip: Clip, amass_path: str, index: BabelIndex) -> bool:
    """Give ``clip`` the BABEL labels of the sequence at ``amass_path``; whether one was found.

    Sets ``clip.labels`` (sequence-level ``act_cat`` first, then any labels it had) and in
    ``clip.meta``: ``raw_labels`` (sequence-level free text), ``segments`` (frame-level labels:
    ``start_s``, ``end_s``, ``labels`` = act_cat, ``raw_label``; what windows and the exclusion
    filter read) and ``annotation`` (which BABEL sequence matched, or that none did).
    """
    seq = index.lookup(amass_path, clip.seconds)
    if seq is None:
        clip.meta["annotation"] = {"set": "babel", "matched": False}
        return False
    clip.labels = [*seq.labels, *(x for x in clip.labels if x not in seq.labels)]
    clip.meta["raw_labels"] = list(seq.raw_labels)
    clip.meta["segments"] = [{"start_s": s.start_t, "end_s": s.end_t, "labels": list(s.act_cat),
                              "raw_label": s.raw_label} for s in seq.segments]
    clip.meta["annotation"] = {"set": "babel", "matched": True, "sid": seq.sid, "path": seq.feat_p,
                               "file": seq.file}
    return True
