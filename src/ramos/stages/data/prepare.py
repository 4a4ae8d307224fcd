"""``ramos data prepare``: source files -> a prepared data set folder (see :mod:`ramos.motion.dataset`).

The writer reads source items in worker processes (each clip through
:class:`~ramos.stages.data.process.ClipProcessor`) and appends each clip's windows to the growing
``windows.npy`` as they arrive, so its memory does not grow with the number of clips. Everything
is written into a temporary folder that is renamed into place only when complete.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import gc
import hashlib
import inspect
import io
import itertools
import json
import logging
import multiprocessing as mp
import os
import platform
import sys
from collections import Counter, deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from tqdm import tqdm

import ramos
from ramos.motion.clip import Clip, ClipError
from ramos.motion.dataset import SPLITS, DataError, Split
from ramos.motion.skeleton import HUMANML3D, Skeleton
from ramos.stages.data.config import PrepareConfig
from ramos.stages.data.process import ClipProcessor, ClipResult, ClipWindows, Rejection, copies_for, hash_split
from ramos.utils.atomic import atomic_dir, write_json, write_text
from ramos.utils.config import to_dict

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
PROCESSING_VERSION = 4
"""Bumped when processing changes the windows a config gives (2: augmented copies keep the bone
lengths; 3: embedded-set captions, BABEL segment labels, HumanML3D mirrored flags; 4: interpolated
frames go back onto the clip's rigid skeleton, clusters included), so that cached data sets prepared
by older code are not reused."""

# Errors a bad source file is expected to raise from inside a reader (ClipError is a ValueError).
# Anything else (MemoryError from a hostile header, a reader bug tripped by one odd file) still
# only rejects that item, with its exception type in the reason: one file never aborts a batch.
_ITEM_ERRORS = (ValueError, OSError, KeyError, IndexError, EOFError, UnicodeDecodeError)


# --- low-level: an .npy file that grows ------------------------------------------------------------
class NpyAppender:
    """Write a C-order ``.npy`` file row block by row block without knowing its length in advance.

    A fixed-size header is reserved and rewritten with the final shape on :meth:`close`, so the
    file is a normal ``.npy`` that ``np.load(mmap_mode="r")`` opens.
    """

    HEADER_BYTES = 128  # magic (6) + version (2) + length (2) + dict text; a multiple of 64

    def __init__(self, path: Path, row_shape: tuple[int, ...], dtype: np.dtype | type) -> None:
        self.path = path
        self.row_shape = tuple(row_shape)
        self.dtype = np.dtype(dtype)
        self.rows = 0
        self._file: BinaryIO = open(path, "wb")  # noqa: SIM115 - closed in close()
        self._file.write(self._header(0))

    def _header(self, rows: int) -> bytes:
        text = repr({"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False,
                     "shape": (rows, *self.row_shape)})
        body_len = self.HEADER_BYTES - 10
        if len(text) + 1 > body_len:
            raise ValueError(f"{self.path}: shape {(rows, *self.row_shape)} does not fit the reserved header")
        return b"\x93NUMPY\x01\x00" + body_len.to_bytes(2, "little") + (text.ljust(body_len - 1) + "\n").encode("latin1")

    def append(self, block: np.ndarray) -> None:
        if block.shape[1:] != self.row_shape:
            raise ValueError(f"{self.path}: rows of shape {block.shape[1:]} != {self.row_shape}")
        self._file.write(np.ascontiguousarray(block, dtype=self.dtype).tobytes())
        self.rows += block.shape[0]

    def close(self) -> None:
        self._file.seek(0)
        self._file.write(self._header(self.rows))
        self._file.close()


def iter_npy_rows(path: Path, chunk: int) -> Iterator[tuple[int, np.ndarray]]:
    """(start row, block of up to ``chunk`` rows) of an ``.npy`` file, read with plain file reads.

    Unlike scanning a memmap, this leaves no file pages mapped into the process, so a pass over a
    large data set does not show up as growing resident memory.
    """
    with open(path, "rb") as f:
        major, _ = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(f)
        if fortran:
            raise DataError(f"{path}: Fortran-ordered arrays are not supported")
        row = int(np.prod(shape[1:], dtype=np.int64))
        for start in range(0, shape[0], chunk):
            n = min(chunk, shape[0] - start)
            yield start, np.fromfile(f, dtype=dtype, count=n * row).reshape((n, *shape[1:]))


# --- configuration helpers ---------------------------------------------------------------------------
def load_prepare_config(source: str, config: str | os.PathLike[str] | None = None,
                        overrides: dict[str, Any] | None = None) -> PrepareConfig:
    """The source's packaged config ``configs/data/<source>.yaml`` (or ``config``: a path or a
    packaged name) as a :class:`PrepareConfig`.

    Every source has its file: the dataclass defaults suit large data sets, not the embedded one,
    so falling back to them would silently give a different data set.
    """
    from ramos import configs

    return configs.load("data", config if config is not None else source, overrides)


def _read_split_files(root: Path | None) -> dict[str, Split]:
    """HumanML3D ``train.txt``/``val.txt``/``test.txt``: clip id -> split."""
    if root is None:
        raise DataError("split.method 'files' needs --root with train.txt, val.txt and test.txt")
    mapping: dict[str, Split] = {}
    missing = [s for s in SPLITS if not (root / f"{s}.txt").is_file()]
    if missing:
        raise DataError(f"{root}: split file(s) {', '.join(m + '.txt' for m in missing)} not found "
                        "(set split.method: hash in the config to split by clip id instead)")
    for s in SPLITS:
        for line in (root / f"{s}.txt").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.strip():
                mapping[line.strip()] = s
    return mapping


# --- worker side ---------------------------------------------------------------------------------------
@dataclass
class _Job:
    source: str
    reader: Any  # a source name in READERS, or a picklable reader object
    cfg: PrepareConfig
    reader_opts: dict[str, Any]
    split_of: dict[str, Split] | None
    skeleton: Skeleton


_JOB: _Job | None = None
_PROCESSOR: ClipProcessor | None = None


def _init_worker(job: _Job, single_thread: bool = False) -> None:
    global _JOB, _PROCESSOR
    if single_thread:
        # One process per core already: readers that use torch (amass forward kinematics) would
        # otherwise start a thread per core in every worker and run ~40x slower oversubscribed.
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            os.environ[var] = "1"
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(1)
    _JOB = job
    _PROCESSOR = ClipProcessor(job.cfg, job.skeleton)


def _accepted(fn: Any, opts: dict[str, Any]) -> dict[str, Any]:
    """The options ``fn`` accepts: one ``reader:`` config section serves list_items and read_item."""
    params = inspect.signature(fn).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return dict(opts)
    names = {p.name for p in params}
    return {k: v for k, v in opts.items() if k in names}


def _check_options(reader: Any, opts: dict[str, Any]) -> None:
    known = set(_accepted(reader.list_items, opts)) | set(_accepted(reader.read_item, opts))
    unknown = sorted(set(opts) - known)
    if unknown:
        raise DataError(f"reader options not understood by this reader: {', '.join(unknown)}")


def _get_reader(source: Any) -> Any:
    if not isinstance(source, str):
        return source  # a reader object (anything with list_items and read_item)
    try:
        from ramos.motion.io import READERS
    except ImportError as exc:
        raise DataError(f"no motion readers available ({exc})") from exc
    if source not in READERS:
        raise DataError(f"unknown source {source!r}; choose from {', '.join(sorted(READERS))}")
    return READERS[source]


def _split_for(clip: Clip, job: _Job) -> Split | None:
    method = job.cfg.split.method
    if method == "segment":
        return None
    if method == "files":
        assert job.split_of is not None
        return job.split_of.get(clip.source_id)
    return hash_split(clip.source_id, job.cfg.split.val_ratio, job.cfg.split.test_ratio)


def _reason(name: str, exc: BaseException) -> str:
    """One line naming the file: a ClipError's own message, else the exception type and text."""
    if isinstance(exc, ClipError):
        text = str(exc)
    elif isinstance(exc, MemoryError):
        text = f"{name}: MemoryError: not enough memory to read it (corrupt header or oversized file?)"
    else:
        text = f"{name}: {type(exc).__name__}: {exc}"
    return " ".join(text.split())


def _process_item(item: Any) -> tuple[str, list[ClipResult], list[dict[str, str]]]:
    """Worker: read one source item and process its clips (any error of the item becomes a rejection).

    Returns the item's name, one result per clip, and the reader's warnings (``clip.meta["warnings"]``).
    """
    assert _JOB is not None and _PROCESSOR is not None
    # An item is a path, or a reader's record holding one (e.g. HumanML3D's motion and caption files).
    name = str(getattr(item, "path", item))
    reader = _get_reader(_JOB.reader)
    try:
        got = reader.read_item(item, **_accepted(reader.read_item, _JOB.reader_opts))
    except Exception as exc:  # one bad item (even a MemoryError) must not abort the batch
        if not isinstance(exc, _ITEM_ERRORS):
            log.debug("unexpected error reading %s", name, exc_info=True)
        return name, [ClipResult(_empty(_JOB), [Rejection(name, "read_error", _reason(name, exc))])], []
    clips = got if isinstance(got, list) else [got]
    results = []
    warnings: list[dict[str, str]] = []
    for clip in clips:
        warnings.extend(clip.meta.get("warnings") or [])
        split = _split_for(clip, _JOB)
        if split is None and _JOB.cfg.split.method != "segment":
            res = ClipResult(_empty(_JOB), [Rejection(clip.source_id, "no_split",
                                                      f"{clip.source_id}: not listed in any split file")])
        else:
            try:
                res = _PROCESSOR.process(clip, split, item=clip.source_id)
            except Exception as exc:  # noqa: BLE001 - e.g. a pose whose facing cannot be told (all in a line)
                res = ClipResult(_empty(_JOB), [Rejection(clip.source_id, "invalid_motion",
                                                          _reason(clip.source_id, exc))])
        if clip.meta.get("mirrored"):
            # The source's own mirrored copy (HumanML3D's M* files) is not motion as captured, and
            # neither is our mirror of it: that reproduces the original, already in the set as its own clip.
            for m in res.windows.meta:
                m["mirrored"] = True
        annotation = clip.meta.get("annotation")
        res.annotation = {**annotation, "clip_id": clip.source_id} if annotation else None
        results.append(res)
    return name, results, warnings


def _empty(job: _Job) -> ClipWindows:
    return ClipWindows.empty(job.cfg.window, job.skeleton.num_joints)


def _process_chunk(items: list[Any]) -> list[tuple[str, list[ClipResult], list[dict[str, str]]]]:
    """Worker: :func:`_process_item` over a few items (one round trip for several small files)."""
    return [_process_item(item) for item in items]


IN_FLIGHT_PER_WORKER = 4
"""Chunks submitted ahead per worker: enough to keep the workers busy, few enough that results
waiting for the writer stay bounded whatever the number of items."""


def _results(items: list[Any], job: _Job, workers: int) -> Iterator[tuple[str, list[ClipResult],
                                                                         list[dict[str, str]]]]:
    if workers <= 1:
        _init_worker(job)
        yield from map(_process_item, items)
        return
    # fork starts workers instantly and needs no importable __main__; the workers never touch
    # torch, so a parent that loaded it is not a problem. A crashed worker raises
    # BrokenProcessPool instead of hanging (unlike multiprocessing.Pool).
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    chunksize = max(1, min(16, len(items) // (workers * 8) or 1))
    starts = iter(range(0, len(items), chunksize))
    # Executor.map would submit every item at once: its futures and finished results would then
    # grow with the data set. Chunks are submitted as results are taken, in order.
    pending: deque[Future[list[tuple[str, list[ClipResult], list[dict[str, str]]]]]] = deque()
    # Frozen objects are skipped by the garbage collector, so a forked worker's collections do not
    # write to (and so copy) the parent's pages holding the item list.
    gc.freeze()
    try:
        with ProcessPoolExecutor(workers, mp_context=mp.get_context(method), initializer=_init_worker,
                                 initargs=(job, True)) as pool:
            for start in itertools.islice(starts, workers * IN_FLIGHT_PER_WORKER):
                pending.append(pool.submit(_process_chunk, items[start:start + chunksize]))
            while pending:
                done = pending.popleft().result()
                start = next(starts, None)
                if start is not None:
                    pending.append(pool.submit(_process_chunk, items[start:start + chunksize]))
                yield from done
    finally:
        gc.unfreeze()


# --- the writer ------------------------------------------------------------------------------------------
@dataclass
class PrepareSummary:
    """What :func:`prepare_dataset` did (also in the manifest)."""

    path: Path
    windows: dict[str, int]
    clips: int
    items: int
    rejections: Counter[str]
    warnings: Counter[str] = field(default_factory=Counter)

    def line(self) -> str:
        """The one-line summary printed by ``ramos data prepare``."""
        per_split = " / ".join(f"{s} {self.windows.get(s, 0)}" for s in SPLITS)
        skipped = ", ".join(f"{k} {v}" for k, v in sorted(self.rejections.items())) or "none"
        warned = ", ".join(f"{k} {v}" for k, v in sorted(self.warnings.items()))
        return (f"prepared {sum(self.windows.values())} windows ({per_split}) from {self.clips} clips "
                f"of {self.items} items; skipped: {skipped}{'; warnings: ' + warned if warned else ''} -> {self.path}")


def prepare_dataset(source: str, out: str | os.PathLike[str], cfg: PrepareConfig | None = None,
                    root: str | os.PathLike[str] | None = None, workers: int | None = None,
                    reader_opts: dict[str, Any] | None = None, skeleton: Skeleton = HUMANML3D,
                    progress: bool = True, items: list[Any] | None = None,
                    reader: Any = None) -> PrepareSummary:
    """Read every item of ``source`` under ``root``, process it with ``cfg`` and write the data set to ``out``.

    Bad items are skipped and listed in the manifest (``rejections``), as are the readers' warnings
    (``warnings``: missing captions, split ids without a motion file, files that hold no motion);
    :class:`DataError` when no window, or no training window, is left (and nothing is written).
    ``items`` overrides the reader's ``list_items`` (tests, subsets); ``reader`` replaces the
    registered reader of ``source`` by a picklable object with ``list_items``/``read_item``.
    ``workers`` defaults to all cores.
    """
    cfg = cfg or load_prepare_config(source)
    root_path = Path(root) if root is not None else None
    opts = {**cfg.reader, **(reader_opts or {})}
    reader_obj = _get_reader(reader if reader is not None else source)
    _check_options(reader_obj, opts)
    notes: list[dict[str, str]] = []
    if items is None:
        try:
            listed = reader_obj.list_items(root_path, **_accepted(reader_obj.list_items, opts))
        except ClipError as exc:
            raise DataError(str(exc)) from exc
        notes = list(getattr(listed, "notes", []))  # see ramos.motion.io._common.ItemList
        items = list(listed)
    if not items:
        raise DataError(f"{root_path or source}: no motion files found for source {source!r}")
    split_of = _read_split_files(root_path) if cfg.split.method == "files" else None
    job = _Job(source, reader if reader is not None else source, cfg, opts, split_of, skeleton)
    workers = max(1, min(workers or os.cpu_count() or 1, len(items)))
    out_path = Path(out)
    started = _dt.datetime.now(_dt.timezone.utc)
    with atomic_dir(out_path) as tmp:
        state = _write_windows(tmp, items, job, workers, progress)
        state, augmentation = _augment_small_set(tmp, items, job, workers, progress, state)
        state.warnings[:0] = notes
        _log_warnings(state.warnings)
        if cfg.filters.min_label_count > 0:
            _drop_rare_labels(tmp, state, cfg.filters.min_label_count)
        n = state.counts_total()
        codes = ", ".join(f"{k} {v}" for k, v in sorted(Counter(r.code for r in state.rejections).items()))
        if n == 0:
            first = state.rejections[0].reason if state.rejections else "no clips"
            raise DataError(f"nothing usable in {len(items)} {source} item(s) ({codes}); first: {first}")
        if not state.split_counts.get("train"):
            # Raised inside atomic_dir: the temporary folder goes, no half-written data set is left.
            per_split = ", ".join(f"{s} {state.split_counts.get(s, 0)}" for s in SPLITS)
            raise DataError(f"0 training windows from {len(items)} {source} item(s) ({per_split}; skipped: "
                            f"{codes or 'none'}): nothing to train on")
        stats = _training_stats(tmp, state.split_counts)
        np.savez(tmp / "stats.npz", **stats)
        write_text(tmp / "skeleton.json", json.dumps(skeleton.to_dict(), indent=1) + "\n")
        summary = PrepareSummary(out_path, dict(state.split_counts), state.clips, len(items),
                                 Counter(r.code for r in state.rejections), Counter(w["code"] for w in state.warnings))
        write_json(tmp / "manifest.json", {**_manifest(source, root_path, cfg, state, summary, started),
                                            "augmentation": augmentation})
    return summary


def _log_warnings(warnings: list[dict[str, str]]) -> None:
    """One logged line per warning code (a large set may have thousands), with its first example."""
    by_code: dict[str, list[dict[str, str]]] = {}
    for w in warnings:
        by_code.setdefault(w["code"], []).append(w)
    for code, ws in by_code.items():
        more = f" (and {len(ws) - 1} more like it)" if len(ws) > 1 else ""
        log.warning("%s: %s%s", code, ws[0]["reason"], more)


# Per-clip peak joint speeds go into a fixed histogram (not a list) so memory stays flat.
SPEED_BINS = np.linspace(0.0, 40.0, 161)
UNMATCHED_EXAMPLES = 20  # ids of clips a label set did not match, listed in the manifest (bounded)


@dataclass
class _WriteState:
    split_counts: Counter[str]
    label_clips: Counter[str]  # label -> clips carrying it (bounded by the label vocabulary, not the clips)
    rejections: list[Rejection]
    label_windows: Counter[str]
    clips: int = 0
    trimmed_frames: int = 0
    max_speed_seen: float = 0.0
    speed_hist: np.ndarray = field(default_factory=lambda: np.zeros(len(SPEED_BINS) - 1, np.int64))
    warnings: list[dict[str, str]] = field(default_factory=list)  # {"item", "code", "reason"}
    # Per external label set (BABEL): clips it matched and did not, with the first few unmatched ids.
    annotations: dict[str, dict[str, Any]] = field(default_factory=dict)

    def count_annotation(self, annotation: dict[str, Any] | None) -> None:
        if not annotation:
            return
        entry = self.annotations.setdefault(str(annotation.get("set")),
                                            {"matched": 0, "unmatched": 0, "unmatched_examples": []})
        if annotation.get("matched"):
            entry["matched"] += 1
        else:
            entry["unmatched"] += 1
            if len(entry["unmatched_examples"]) < UNMATCHED_EXAMPLES:
                entry["unmatched_examples"].append(annotation.get("clip_id"))

    def counts_total(self) -> int:
        return sum(self.split_counts.values())


def _write_windows(tmp: Path, items: list[Any], job: _Job, workers: int, progress: bool) -> _WriteState:
    cfg, skel = job.cfg, job.skeleton
    state = _WriteState(Counter(), Counter(), [], Counter())
    windows = NpyAppender(tmp / "windows.npy", (cfg.window, skel.num_joints, 3), np.float32)
    lengths = NpyAppender(tmp / "lengths.npy", (), np.int32)
    try:
        with open(tmp / "meta.jsonl", "w", encoding="utf-8") as meta_file:
            bar = tqdm(_results(items, job, workers), total=len(items), desc=f"prepare {job.source}",
                       unit="item", disable=not progress or None, dynamic_ncols=True)
            for _, results, warnings in bar:
                state.warnings.extend(warnings)
                for res in results:
                    state.count_annotation(res.annotation)
                    state.rejections.extend(res.rejections)
                    state.trimmed_frames += res.trimmed_frames
                    if res.max_speed_mps > 0:
                        state.max_speed_seen = max(state.max_speed_seen, res.max_speed_mps)
                        state.speed_hist[min(np.searchsorted(SPEED_BINS, res.max_speed_mps, "right") - 1,
                                             len(SPEED_BINS) - 2)] += 1
                    w = res.windows
                    if not w.meta:
                        continue
                    windows.append(w.windows)
                    lengths.append(w.lengths)
                    buf = io.StringIO()
                    per_clip = Counter()
                    for m in w.meta:
                        k = per_clip[m["clip_id"]]
                        per_clip[m["clip_id"]] += 1
                        buf.write(json.dumps({"id": f"{m['clip_id']}:{k}", **m}) + "\n")
                        state.split_counts[m["split"]] += 1
                        if m["labels"]:
                            state.label_windows[m["labels"][0]] += 1
                    meta_file.write(buf.getvalue())
                    state.clips += 1
                    # Windows of one clip may differ in labels (frame-level labels such as BABEL's);
                    # mirrored windows are left out, as they always were, so the vocabulary holds
                    # the labels of real motion.
                    state.label_clips.update({lab for m in w.meta if not m.get("mirrored") for lab in m["labels"]})
    finally:
        windows.close()
        lengths.close()
    return state


def _augment_small_set(tmp: Path, items: list[Any], job: _Job, workers: int, progress: bool,
                       state: _WriteState) -> tuple[_WriteState, dict[str, Any]]:
    """With ``augment.copies: None``, write the windows again with speed/yaw copies when the training
    split (written without copies: the first pass counts it) is smaller than ``augment.min_train_windows``;
    returns the state and the manifest's ``augmentation`` record."""
    aug = job.cfg.augment
    before = int(state.split_counts.get("train", 0))
    copies = copies_for(before, aug)
    record: dict[str, Any] = {"copies": copies, "min_train_windows": aug.min_train_windows,
                              "train_windows_without_copies": None if aug.copies else before}
    if aug.copies is not None:
        record["reason"] = "set by augment.copies"
        return state, record
    if copies == 0:
        record["reason"] = f"{before} training windows, augment.min_train_windows {aug.min_train_windows}: none needed"
        return state, record
    # Sped-up copies of pieces near min_frames fall under it and are dropped, so a copy adds fewer
    # windows than an original (a 60-clip set of 2-10 s pieces: 78 %): one more pass scales by the
    # count it got.
    log.info("%d training windows < augment.min_train_windows %d: %d speed/yaw copies per training clip",
             before, aug.min_train_windows, copies)
    for again in (True, False):
        cfg = dataclasses.replace(job.cfg, augment=dataclasses.replace(aug, copies=copies))
        state = _write_windows(tmp, items, dataclasses.replace(job, cfg=cfg), workers, progress)
        got = int(state.split_counts.get("train", 0))
        if not again or got >= 0.9 * aug.min_train_windows:
            break
        more = copies_for(got, aug, counted_with=copies)
        log.info("%d copies gave %d training windows: %d copies instead", copies, got, more)
        copies = more
    record["copies"] = copies
    record["reason"] = (f"{before} training windows < augment.min_train_windows {aug.min_train_windows}: "
                        f"{copies} copies per training clip give {state.split_counts.get('train', 0)}")
    return state, record


def _drop_rare_labels(tmp: Path, state: _WriteState, k: int) -> None:
    """Remove the windows of clips whose labels are all seen in fewer than ``k`` clips (a second,
    streaming pass: label counts are only known once every clip has been read)."""
    rare_labels = {lab for lab, n in state.label_clips.items() if n < k}
    if not rare_labels:
        return
    src_len = np.load(tmp / "lengths.npy")
    rows = iter_npy_rows(tmp / "windows.npy", 1)
    keep_w = NpyAppender(tmp / "windows.keep.npy", next(iter_npy_rows(tmp / "windows.npy", 1))[1].shape[1:],
                         np.float32)
    keep_l = NpyAppender(tmp / "lengths.keep.npy", (), np.int32)
    state.split_counts.clear()
    state.label_windows.clear()
    rare_clips: dict[str, list[str]] = {}  # only the dropped ones, in order
    kept_labels: set[str] = set()
    with open(tmp / "meta.jsonl", encoding="utf-8") as fin, \
            open(tmp / "meta.keep.jsonl", "w", encoding="utf-8") as fout:
        for (i, row), line in zip(rows, fin):
            m = json.loads(line)
            if m["labels"] and set(m["labels"]) <= rare_labels:
                if m["clip_id"] not in rare_clips:
                    rare_clips[m["clip_id"]] = m["labels"]
                continue
            keep_w.append(row)
            keep_l.append(src_len[i:i + 1])
            fout.write(line)
            state.split_counts[m["split"]] += 1
            if m["labels"]:
                state.label_windows[m["labels"][0]] += 1
                kept_labels.update(m["labels"])
    keep_w.close()
    keep_l.close()
    for name in ("windows.npy", "lengths.npy", "meta.jsonl"):
        os.replace(tmp / name.replace(".", ".keep.", 1), tmp / name)
    state.clips -= len(rare_clips)
    for lab in rare_labels - kept_labels:
        del state.label_clips[lab]
    for cid, labels in rare_clips.items():
        state.rejections.append(Rejection(cid, "rare_label",
                                          f"{cid}: label(s) {', '.join(labels)} seen in fewer than {k} clips"))


def _training_stats(tmp: Path, split_counts: Counter[str], chunk: int = 64) -> dict[str, np.ndarray]:
    """Mean and std per joint coordinate over the valid frames of the training windows (streamed)."""
    lengths = np.load(tmp / "lengths.npy")
    with open(tmp / "meta.jsonl", encoding="utf-8") as f:
        is_train = np.array([json.loads(line)["split"] == "train" for line in f], dtype=bool)
    use = is_train if split_counts.get("train") else np.ones(len(is_train), bool)
    total = total_sq = None
    frames = 0
    for start, block in iter_npy_rows(tmp / "windows.npy", chunk):
        sel = use[start:start + len(block)]
        valid = np.arange(block.shape[1])[None, :] < lengths[start:start + len(block), None]
        v = block[sel][valid[sel]].astype(np.float64)
        total = v.sum(0) if total is None else total + v.sum(0)
        total_sq = (v * v).sum(0) if total_sq is None else total_sq + (v * v).sum(0)
        frames += v.shape[0]
    assert total is not None and total_sq is not None
    mean = total / max(frames, 1)
    std = np.sqrt(np.maximum(total_sq / max(frames, 1) - mean * mean, 0.0))
    # Coordinates that never move (e.g. a joint pinned by normalisation) must not blow up on division.
    std = np.maximum(std, 1e-4)
    return {"mean": mean.astype(np.float32), "std": std.astype(np.float32), "frames": np.int64(frames)}


def _manifest(source: str, root: Path | None, cfg: PrepareConfig, state: _WriteState, summary: PrepareSummary,
              started: _dt.datetime) -> dict[str, Any]:
    import scipy

    labels = sorted(state.label_clips)
    return {
        "format_version": FORMAT_VERSION,
        "source": source,
        "root": str(root) if root is not None else None,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "seconds": round((_dt.datetime.now(_dt.timezone.utc) - started).total_seconds(), 2),
        "config": to_dict(cfg),
        "config_hash": config_hash(cfg),
        "counts": {
            "items": summary.items,
            "clips": summary.clips,
            "windows": summary.windows,
            "windows_total": sum(summary.windows.values()),
            "windows_per_label": dict(sorted(state.label_windows.items())),
            "rejections_by_code": dict(sorted(summary.rejections.items())),
            "warnings_by_code": dict(sorted(summary.warnings.items())),
            "trimmed_frames": state.trimmed_frames,
        },
        "labels": labels,
        **({"annotations": state.annotations} if state.annotations else {}),
        "clip_peak_speed_hist": {"bin_edges_mps": SPEED_BINS.tolist(), "counts": state.speed_hist.tolist()},
        "rejections": [r.to_dict() for r in state.rejections],
        "warnings": state.warnings,
        "versions": {"ramos": ramos.__version__, "numpy": np.__version__, "scipy": scipy.__version__,
                     "python": platform.python_version()},
    }


def config_hash(cfg: PrepareConfig) -> str:
    """Short stable hash of a config (and the format and processing versions): cache key of prepared data sets."""
    text = json.dumps({"format": FORMAT_VERSION, "processing": PROCESSING_VERSION, "cfg": to_dict(cfg)},
                      sort_keys=True)
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]


# --- the default embedded data set ----------------------------------------------------------------------
def default_cache_dir() -> Path:
    """Where prepared default data sets are cached: $RAMOS_CACHE or ~/.cache/ramos."""
    return Path(os.environ.get("RAMOS_CACHE", Path.home() / ".cache" / "ramos"))


def ensure_builtin_dataset(out_dir: str | os.PathLike[str] | None = None, cfg: PrepareConfig | None = None,
                           workers: int | None = None, progress: bool = True) -> Path:
    """The prepared embedded (builtin) data set, preparing it on first use.

    ``out_dir`` defaults to ``<cache>/datasets/builtin-<config hash>``; an existing folder whose
    manifest has the same config hash is reused, so a config change gives a fresh data set.
    """
    cfg = cfg or load_prepare_config("builtin")
    key = config_hash(cfg)
    out = Path(out_dir) if out_dir is not None else default_cache_dir() / "datasets" / f"builtin-{key}"
    manifest = out / "manifest.json"
    if manifest.is_file():
        try:
            if json.loads(manifest.read_text("utf-8")).get("config_hash") == key:
                return out
        except (ValueError, OSError):
            pass  # unreadable: prepare again
    summary = prepare_dataset("builtin", out, cfg, workers=workers, progress=progress)
    log.info(summary.line())
    return out


