"""The data set report: what motions a prepared data set holds and what preparation left out.

``analyze_dataset(path)`` writes ``report.md`` and four PNG plots: the most common motions
(labels, or keyword frequency over captions), the distribution of motion lengths, the joint-speed
distribution with the filter threshold marked, and the rejections by reason.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ramos.motion.dataset import SPLITS, MotionDataset
from ramos.motion.preprocess import joint_speeds
from ramos.stages.data.prepare import SPEED_BINS
from ramos.utils.atomic import atomic_dir, atomic_path, write_text

# Words that say nothing about the motion itself (subjects, articles, connectives, body words).
_STOPWORDS = frozenset("""
a an the person man woman someone somebody human figure subject he she they it his her their its him them
and then while with to of in on at by for from as into onto up down is are was be being been does do doing
this that these those one two three both each other another again also very slightly bit little some
left right hand hands arm arms leg legs foot feet body head back front side forward forwards backward
backwards around over out off time times way like so just still before after towards toward
""".split())
_WORD = re.compile(r"[a-z]+")
SPEED_SAMPLE_WINDOWS = 2000  # joint speeds are measured on at most this many windows (memmap reads)


def caption_keywords(captions_per_clip: list[list[str]], top: int = 20) -> list[tuple[str, int]]:
    """Most frequent content words over captions, each word counted once per clip."""
    counts: Counter[str] = Counter()
    for captions in captions_per_clip:
        words = {w for c in captions for w in _WORD.findall(c.lower()) if w not in _STOPWORDS and len(w) > 2}
        counts.update(words)
    return counts.most_common(top)


def _original_windows(data: MotionDataset) -> list[int]:
    """Windows of real motion as captured: not mirrored, not an augmented copy."""
    return [i for i, m in enumerate(data.meta) if not m.get("mirrored") and not m.get("copy")]


def _clips(data: MotionDataset) -> dict[str, dict[str, Any]]:
    """Per clip: labels, captions and duration (s) of its prepared pieces (all splits)."""
    clips: dict[str, dict[str, Any]] = {}
    pieces: dict[str, set[tuple[str, int, int]]] = {}
    for i in _original_windows(data):
        m = data.meta[i]
        c = clips.setdefault(m["clip_id"], {"labels": m.get("labels", []), "captions": m.get("captions", [])})
        frames = int(m.get("piece_frames", data.lengths[i]))
        pieces.setdefault(m["clip_id"], set()).add((m["split"], int(m.get("piece_start", 0)), frames))
        c["fps"] = float(m.get("fps", data.fps))
    for cid, c in clips.items():
        c["seconds"] = sum(f for _, _, f in pieces[cid]) / c["fps"]
    return clips


def _frame_peak_speeds(data: MotionDataset, rng: np.random.Generator) -> np.ndarray:
    """Per valid frame transition, the fastest joint's speed (m/s), over a sample of original windows."""
    idx = np.array(_original_windows(data))
    if len(idx) > SPEED_SAMPLE_WINDOWS:
        idx = np.sort(rng.choice(idx, SPEED_SAMPLE_WINDOWS, replace=False))
    out = []
    for i in idx:
        # A looped window starts with its source piece (phase 0): only those frames are real.
        n = min(int(data.lengths[i]), int(data.meta[i].get("piece_frames", data.lengths[i])))
        if n >= 2:
            out.append(joint_speeds(np.asarray(data.windows[i, :n], np.float64), data.fps).max(axis=1))
    return np.concatenate(out) if out else np.zeros(0)


def _barh(path: Path, names: list[str], values: list[int], title: str, xlabel: str) -> None:
    fig = Figure(figsize=(7.0, max(2.0, 0.32 * len(names) + 1.2)), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    if names:
        ax.barh(range(len(names))[::-1], values, color="#4c72b0")
        ax.set_yticks(range(len(names))[::-1], names)
    else:
        ax.text(0.5, 0.5, "none", ha="center", va="center", transform=ax.transAxes)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    fig.tight_layout()
    _save(fig, path)


def _save(fig: Figure, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")


def analyze_dataset(dataset: str | os.PathLike[str], out: str | os.PathLike[str] | None = None,
                    seed: int = 0) -> Path:
    """Write ``report.md`` and its plots into the data set folder (or ``out``); returns the report path.

    Into the data set folder every file is written atomically; into ``out`` the whole folder is.
    """
    data = MotionDataset(dataset)
    if out is None:
        return _write_report(data, data.path, seed)
    with atomic_dir(out) as tmp:
        _write_report(data, tmp, seed)
    return Path(out) / "report.md"


def _write_report(data: MotionDataset, folder: Path, seed: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    man = data.manifest
    cfg = man["config"]
    clips = _clips(data)
    rng = np.random.default_rng(seed)
    lines = [f"# Data set report: `{data.path.name}`", "",
             f"Source `{man['source']}`, prepared {man['created']} by ramos {man['versions']['ramos']}. "
             f"{len(data)} windows of {data.window} frames at {data.fps:g} fps "
             f"({', '.join(f'{s} {len(data.split_indices(s))}' for s in SPLITS)}), "
             f"{man['counts']['clips']} clips from {man['counts']['items']} source items.", ""]

    # 1. Most common motions.
    label_counts = Counter(lab for c in clips.values() for lab in c["labels"])
    if label_counts:
        top = label_counts.most_common(20)
        what, unit = "labels", "clips"
    else:
        top = caption_keywords([c["captions"] for c in clips.values()])
        what, unit = "caption keywords", "clips mentioning it"
    _barh(folder / "motions.png", [k for k, _ in top], [v for _, v in top], f"Most common motions ({what})", unit)
    lines += ["## Most common motions", "", f"By {what} ({unit}); augmented copies are not counted.", "",
              "![motions](motions.png)", "", "| motion | clips |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in top] or ["| (none) | 0 |"]
    lines.append("")

    # 2. Motion lengths.
    seconds = np.array([c["seconds"] for c in clips.values()])
    fig = Figure(figsize=(7.0, 3.2), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    if len(seconds):
        ax.hist(seconds, bins=min(40, max(5, len(seconds) // 2)), color="#55a868")
    ax.set_xlabel("seconds of prepared motion per clip (all splits, before augmentation)")
    ax.set_ylabel("clips")
    ax.set_title("Distribution of motion lengths")
    fig.tight_layout()
    _save(fig, folder / "lengths.png")
    window_s = data.lengths / data.fps
    lines += ["## Motion lengths", "", "![lengths](lengths.png)", ""]
    if len(seconds):
        lines += [f"Clips: {len(seconds)}, total {seconds.sum():.1f} s; median {np.median(seconds):.2f} s, "
                  f"min {seconds.min():.2f} s, max {seconds.max():.2f} s. Windows: {len(window_s)}, "
                  f"{(data.lengths < data.window).mean() * 100:.0f} % padded (median valid "
                  f"{np.median(window_s):.2f} s of {data.window / data.fps:g} s).", ""]

    # 3. Joint speeds.
    limit = cfg["filters"]["max_speed_mps"]
    speeds = _frame_peak_speeds(data, rng)
    hist = man.get("clip_peak_speed_hist", {})
    handles: list[Any] = []
    fig = Figure(figsize=(7.0, 3.4), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    top_speed = max(float(speeds.max()) if len(speeds) else 1.0, (limit or 0) * 1.2, 1.0)
    bins = np.linspace(0, top_speed, 60)
    if len(speeds):
        handles.append(ax.hist(speeds, bins=bins, color="#4c72b0", alpha=0.8,
                               label="kept frames: fastest joint")[2][0])
    if hist and sum(hist.get("counts", [])):
        edges = np.asarray(hist["bin_edges_mps"])
        counts = np.asarray(hist["counts"], float)
        ax2 = ax.twinx()
        handles += ax2.step(edges[:-1], counts, where="post", color="#c44e52", label="clip peak before filtering")
        ax2.set_ylabel("clips", color="#c44e52")
        ax2.set_xlim(0, max(top_speed, float(edges[np.flatnonzero(counts)[-1] + 1])))
    if limit is not None:
        handles.append(ax.axvline(limit, color="k", linestyle="--", label=f"filter threshold {limit:g} m/s"))
    ax.set_yscale("log")
    ax.set_xlabel("joint speed (m/s)")
    ax.set_ylabel("frames")
    ax.set_title("Joint-speed distribution")
    ax.legend(handles=handles, loc="upper right", fontsize=8)
    fig.tight_layout()
    _save(fig, folder / "speeds.png")
    lines += ["## Joint speeds", "", "![speeds](speeds.png)", ""]
    if len(speeds):
        p = np.percentile(speeds, [50, 99, 99.9])
        action = cfg["filters"]["velocity_action"]
        threshold = "off" if limit is None else f"{limit:g} m/s ({action})"
        lines += [f"Fastest joint per frame over {len(speeds)} frame transitions of real (non-augmented) "
                  f"windows: median {p[0]:.2f} m/s, 99th percentile {p[1]:.2f} m/s, 99.9th {p[2]:.2f} m/s, "
                  f"max {speeds.max():.2f} m/s. Filter threshold: "
                  f"{threshold}; "
                  f"{man['counts'].get('trimmed_frames', 0)} frames cut out. The red line counts clips by "
                  f"their peak speed before filtering (bins of {SPEED_BINS[1] - SPEED_BINS[0]:g} m/s).", ""]

    # 4. Rejections.
    by_code = Counter(r.get("code", "other") for r in man["rejections"])
    _barh(folder / "rejections.png", list(by_code), list(by_code.values()), "Rejections by reason", "items / clips")
    lines += ["## Rejections", "", "![rejections](rejections.png)", ""]
    if man["rejections"]:
        lines += ["| reason | count |", "|---|---|"] + [f"| {k} | {v} |" for k, v in by_code.most_common()]
        lines += ["", "First rejections:", ""]
        lines += [f"- `{r['item']}`: {r['reason']}" for r in man["rejections"][:20]]
        if len(man["rejections"]) > 20:
            lines.append(f"- ... {len(man['rejections']) - 20} more in manifest.json")
    else:
        lines.append("Nothing was rejected.")
    lines.append("")
    report = folder / "report.md"
    write_text(report, "\n".join(lines))
    return report
