"""``ramos data``: prepare a motion data set, analyse it, preview clips as stick-figure animations."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

SOURCES = ("humanml3d", "amass", "deepmimic", "bvh", "builtin")
"""The source formats: a reader each (ramos.motion.io.READERS) and a packaged config each (configs/data/)."""


def register(subparsers: Any) -> None:
    """Add ``ramos data {prepare,analyze,preview}``."""
    data = subparsers.add_parser("data", help="prepare, analyse and preview motion data sets",
                                 description=__doc__)
    sub = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    p = sub.add_parser("prepare", help="read a source, process it and write a prepared data set folder")
    p.add_argument("--source", choices=SOURCES, required=True, help="source format")
    p.add_argument("--root", type=Path, help="folder (or file) of the source; not needed for builtin")
    p.add_argument("--body-model", type=Path, help="amass: folder with the SMPL-H body model files")
    p.add_argument("--babel", type=Path, metavar="DIR",
                   help="amass: BABEL release folder (train.json, val.json, ...): action labels per sequence and "
                        "per frame segment")
    p.add_argument("--config", help="YAML file, or a packaged name (builtin, humanml3d, amass, bvh, deepmimic); it "
                                    "holds only what differs from the defaults (default: the source's own)")
    p.add_argument("--out", type=Path, required=True, help="data set folder to write (replaced atomically)")
    p.add_argument("--workers", type=int, default=None, help="worker processes (default: all cores)")
    p.set_defaults(func=_prepare)

    a = sub.add_parser("analyze", help="write report.md with plots about a prepared data set")
    a.add_argument("dataset", type=Path, help="prepared data set folder")
    a.add_argument("--out", type=Path, help="write the report here instead of into the data set folder")
    a.set_defaults(func=_analyze)

    v = sub.add_parser("preview", help="render clips as animated stick figures (GIF, or MP4 with ffmpeg)")
    v.add_argument("dataset", type=Path, nargs="?", help="prepared data set folder (or use --source)")
    v.add_argument("--source", choices=SOURCES, help="preview raw clips of a source instead of a data set")
    v.add_argument("--root", type=Path, help="source folder (with --source)")
    v.add_argument("--body-model", type=Path, help="amass: SMPL-H body model folder (with --source)")
    v.add_argument("--ids", nargs="+", help="window ids or clip ids to render (default: the first --n clips)")
    v.add_argument("--n", type=int, default=4, help="number of clips to render without --ids")
    v.add_argument("--split", choices=("train", "val", "test"), help="only windows of this split")
    v.add_argument("--max-seconds", type=float, default=10.0, help="render at most this much of each clip")
    v.add_argument("--format", choices=("gif", "mp4"), default="gif", help="animation format")
    v.add_argument("--out", type=Path, required=True, help="folder for the animations")
    v.set_defaults(func=_preview)


def _reader_opts(args: argparse.Namespace) -> dict[str, Any]:
    opts = {"model_dir": str(args.body_model)} if getattr(args, "body_model", None) else {}
    if getattr(args, "babel", None):
        opts["babel"] = str(args.babel)
    return opts


def _prepare(args: argparse.Namespace) -> int:
    from ramos.commands._args import UserError
    from ramos.stages.data.prepare import load_prepare_config, prepare_dataset

    if args.source != "builtin" and args.root is None:
        raise UserError(f"--root is required for --source {args.source}")
    if args.root is not None and not args.root.exists():
        raise FileNotFoundError(f"{args.root}: no such file or folder")
    if args.workers is not None and args.workers < 1:
        raise UserError("--workers must be at least 1")
    if args.babel is not None and args.source != "amass":
        raise UserError("--babel labels AMASS sequences: use it with --source amass")
    cfg = load_prepare_config(args.source, args.config)
    summary = prepare_dataset(args.source, args.out, cfg, root=args.root, workers=args.workers,
                              reader_opts=_reader_opts(args), progress=sys.stderr.isatty())
    print(summary.line())
    return 0


def _analyze(args: argparse.Namespace) -> int:
    from ramos.stages.data.analysis import analyze_dataset

    report = analyze_dataset(args.dataset, args.out)
    print(f"wrote {report}")
    return 0


def _preview(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ramos.commands._args import UserError
    from ramos.motion import render
    from ramos.utils.atomic import atomic_dir

    if (args.dataset is None) == (args.source is None):
        raise UserError("give either a DATASET folder or --source (with --root)")
    if args.format == "mp4" and not render.mp4_available():
        raise UserError("MP4 needs ffmpeg (pip install imageio-ffmpeg); use --format gif")
    clips = _preview_dataset(args) if args.dataset is not None else _preview_source(args)
    if not clips:
        raise UserError("nothing to preview: no window or clip matches --ids/--split")
    write = render.render_gif if args.format == "gif" else render.render_mp4
    with atomic_dir(args.out) as tmp:
        for name, positions, fps, title, skeleton in tqdm(clips, desc="preview", unit="clip",
                                                          disable=not sys.stderr.isatty()):
            n = max(2, int(round(args.max_seconds * fps)))
            write(positions[:n], skeleton, tmp / f"{_safe(name)}.{args.format}", fps, title=title)
    print(f"wrote {len(clips)} {args.format.upper()} file(s) to {args.out}")
    return 0


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:80]


def _preview_dataset(args: argparse.Namespace) -> list[tuple[str, Any, float, str, Any]]:
    from ramos.motion.dataset import MotionDataset

    data = MotionDataset(args.dataset)
    chosen: list[int] = []
    if args.ids:
        wanted = set(args.ids)
        seen: set[str] = set()
        for i, m in enumerate(data.meta):
            key = m["id"] if m["id"] in wanted else m["clip_id"] if m["clip_id"] in wanted else None
            if key is not None and key not in seen and (args.split is None or m["split"] == args.split):
                seen.add(key)
                chosen.append(i)
    else:
        clips_seen: set[str] = set()
        for i, m in enumerate(data.meta):
            # One real (non-augmented) window per clip.
            if m.get("mirrored") or m.get("copy") or (args.split and m["split"] != args.split):
                continue
            if m["clip_id"] not in clips_seen:
                clips_seen.add(m["clip_id"])
                chosen.append(i)
            if len(chosen) >= args.n:
                break
    out = []
    for i in chosen:
        m = data.meta[i]
        what = ", ".join(m.get("labels") or [])
        if not what and m.get("captions"):
            what = m["captions"][0][:60]
        out.append((m["id"], data.windows[i, : int(data.lengths[i])], data.fps,
                    f"{m['id']} ({m['split']}) {what}".strip(), data.skeleton))
    return out


def _preview_source(args: argparse.Namespace) -> list[tuple[str, Any, float, str, Any]]:
    from ramos.commands._args import UserError
    from ramos.motion.io import READERS
    from ramos.motion.skeleton import HUMANML3D

    if args.source != "builtin" and args.root is None:
        raise UserError(f"--root is required for --source {args.source}")
    reader = READERS[args.source]
    opts = _reader_opts(args)
    # The amass lister leaves body models (the --body-model folder among them) out of the motions.
    items = reader.list_items(args.root, **({"model_dir": opts["model_dir"]} if "model_dir" in opts
                                            and args.source == "amass" else {}))
    out: list[tuple[str, Any, float, str, Any]] = []
    wanted = set(args.ids or [])
    for item in items:
        for clip in reader.read_item(item, **opts):
            if wanted and clip.source_id not in wanted:
                continue
            what = ", ".join(clip.labels) or (clip.captions[0][:60] if clip.captions else "")
            out.append((clip.source_id, clip.positions, clip.fps, f"{clip.source_id} {what}".strip(), HUMANML3D))
        if not wanted and len(out) >= args.n:
            break
    return out[: len(out) if wanted else args.n]
