"""Write a small, real HumanML3D-layout folder cut from the embedded DeepMimic clips.

    python scripts/make_humanml3d_sample.py OUT [--seed 0] [--force]
    ramos data prepare --source humanml3d --root OUT --out data/h3d_sample

It lets the ``humanml3d`` path (reader, ``files`` split, ``M`` mirrors, captions) be tried without
the licensed HumanML3D download. The layout is HumanML3D's:

    OUT/new_joints/<id>.npy    float32 (T, 22, 3), metres, y up, 20 fps; floor at y = 0, first frame
                               at the origin facing +z (HumanML3D's canonical frame)
    OUT/new_joints/M<id>.npy   the left/right mirror of <id> (ramos.motion.preprocess.mirror)
    OUT/texts/<id>.txt         one caption per line: ``caption#tok/POS tok/POS ...#0.0#0.0``; the
                               M files hold the captions with left and right swapped
    OUT/{train,val,test}.txt   ids (and their M ids) split by source clip, about 80/10/10
    OUT/SAMPLE.json            where each id comes from (clip, phase, seconds, looped, held frames)
    OUT/LICENSE-DeepMimic.txt  the clips' zlib licence notice

Pieces are 2-10 s at 20 fps (``ramos.motion.preprocess.resample``). Cyclic clips are looped
(``loop_clip``: root path and heading continue from cycle to cycle) from a random phase: two
pieces each for the humanoid clips, one for the walker clips. The non-cyclic clips (get-ups,
kick, punch) give one piece each, the whole clip; the kick (1.57 s) is lengthened to 2 s by
holding its first and last poses, since HumanML3D's loaders drop motions under 2 s. Every piece
keeps the clip's captured bone lengths. Captions are the embedded set's
(``src/ramos/assets/deepmimic22_captions.json``); POS tags are a crude guess (HumanML3D's are
spaCy's), enough for the format. The folder is written beside OUT and renamed into place.

Note: the ``humanml3d`` data config excludes backflips, so ``ramos data prepare`` lists the
backflip pieces as ``excluded_motion``.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
from pathlib import Path

import numpy as np

from ramos.motion.io import builtin
from ramos.motion.preprocess import (
    cycle_frames,
    loop_clip,
    mirror,
    mirror_text,
    normalize,
    resample,
)
from ramos.motion.rigid import make_rigid, rest_skeleton
from ramos.motion.skeleton import HUMANML3D
from ramos.motion.text import pos_tokens
from ramos.utils.atomic import atomic_dir

FPS = 20.0
MIN_SECONDS = 2.0
MAX_SECONDS = 10.0
LOOP_SECONDS = (2.0, 6.0)  # random length of a looped piece
MARKER = "SAMPLE.json"

def text_lines(captions: list[str]) -> str:
    """A texts/<id>.txt file: one ``caption#tokens#0.0#0.0`` line per caption (0.0#0.0: the whole motion)."""
    lines = []
    for cap in captions:
        cap = " ".join(cap.replace("#", " ").split())
        lines.append(f"{cap}#{pos_tokens(cap)}#0.0#0.0")
    return "\n".join(lines) + "\n"


def _hold(positions: np.ndarray, frames: int) -> tuple[np.ndarray, int, int]:
    """Lengthen to ``frames`` by holding the first and last poses (half before, half after)."""
    missing = max(0, frames - positions.shape[0])
    before, after = missing // 2, missing - missing // 2
    held = np.concatenate([np.repeat(positions[:1], before, 0), positions, np.repeat(positions[-1:], after, 0)])
    return held, before, after


def _finish(positions: np.ndarray, rest: np.ndarray) -> np.ndarray:
    """The captured (rigid) skeleton, floor at y = 0, first frame at the origin facing +z."""
    return normalize(make_rigid(positions, HUMANML3D, rest), HUMANML3D).astype(np.float32)


def pieces(seed: int = 0) -> list[dict]:
    """The sample's motions: one dict per piece (positions at 20 fps and where they come from)."""
    rng = np.random.default_rng(seed)
    out = []
    for clip in builtin.load_all():
        rest = rest_skeleton(clip.positions, HUMANML3D)
        at20 = resample(clip.positions, clip.fps, FPS)
        base = {"clip": clip.source_id, "label": clip.labels[0], "captions": clip.captions}
        if clip.meta.get("loop") == "wrap":
            cycle = max(cycle_frames(clip.positions, HUMANML3D) * FPS / clip.fps, at20.shape[0] - 1.0)
            count = 1 if clip.source_id.startswith("walker_") else 2
            for k in range(count):
                if k == 0:  # the clip from its start, looped up to 2 s when shorter
                    phase, seconds = 0, max(MIN_SECONDS, at20.shape[0] / FPS)
                else:
                    phase = int(rng.integers(0, max(1, int(cycle))))
                    seconds = float(rng.uniform(*LOOP_SECONDS))
                seconds = min(MAX_SECONDS, seconds)
                motion = loop_clip(at20, FPS, seconds, HUMANML3D, cycle, phase)
                # phase 0 over the clip's own length gives its frames back (the interpolant passes through them)
                looped = phase + motion.shape[0] > at20.shape[0]
                out.append({**base, "positions": _finish(motion, rest), "phase": phase, "looped": looped,
                            "held_frames": [0, 0]})
        else:
            held, before, after = _hold(at20, math.ceil(MIN_SECONDS * FPS))
            out.append({**base, "positions": _finish(held, rest), "phase": 0, "looped": False,
                        "held_frames": [before, after]})
    return out


def split_clips(clip_ids: list[str], seed: int = 0, keep_in_train: tuple[str, ...] = ("humanoid3d_backflip",)
                ) -> dict[str, str]:
    """Split by source clip, about 80/10/10 (at least one clip each in val and test).

    ``keep_in_train``: never held out. The backflip, since the humanml3d config's exclusion list
    drops it: held out, it would leave its split nearly empty.
    """
    candidates = [c for c in clip_ids if c not in keep_in_train]
    order = np.random.default_rng([seed, 1]).permutation(len(candidates))
    n_held = max(1, round(0.1 * len(clip_ids)))
    split = dict.fromkeys(clip_ids, "train")
    for rank, i in enumerate(order[: 2 * n_held]):
        split[candidates[i]] = "val" if rank < n_held else "test"
    return split


def build(out: Path | str, seed: int = 0, overwrite: bool = False) -> Path:
    """Write the sample folder at ``out`` (renamed into place when complete); returns ``out``.

    An existing ``out`` is an error, unless ``overwrite`` is set and it is an earlier sample
    (it holds SAMPLE.json): a real HumanML3D folder is never replaced.
    """
    out = Path(out)
    if out.exists():
        if not overwrite:
            raise FileExistsError(f"{out}: already exists (pass --force to replace an earlier sample)")
        if not (out / MARKER).is_file():
            raise FileExistsError(f"{out}: exists and is not a sample written by this script; not replacing it")
    motions = pieces(seed)
    clip_ids = list(dict.fromkeys(m["clip"] for m in motions))
    split_of = split_clips(clip_ids, seed)
    splits: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    index = []
    with atomic_dir(out) as tmp:
        (tmp / "new_joints").mkdir()
        (tmp / "texts").mkdir()
        for k, m in enumerate(motions):
            sid = f"{k:06d}"
            pos = m["positions"]
            np.save(tmp / "new_joints" / f"{sid}.npy", pos)
            np.save(tmp / "new_joints" / f"M{sid}.npy", mirror(pos, HUMANML3D).astype(np.float32))
            (tmp / "texts" / f"{sid}.txt").write_text(text_lines(m["captions"]), encoding="utf-8")
            (tmp / "texts" / f"M{sid}.txt").write_text(
                text_lines([mirror_text(c) for c in m["captions"]]), encoding="utf-8")
            split = split_of[m["clip"]]
            splits[split] += [sid, f"M{sid}"]  # an M id follows its original
            index.append({"id": sid, "clip": m["clip"], "label": m["label"], "split": split,
                          "frames": int(pos.shape[0]), "seconds": round(pos.shape[0] / FPS, 2),
                          "phase_frames": m["phase"], "looped": m["looped"], "held_frames": m["held_frames"]})
        for split, ids in splits.items():
            (tmp / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids), encoding="utf-8")
        shutil.copyfile(builtin.asset_path().parent / "LICENSE-DeepMimic.txt", tmp / "LICENSE-DeepMimic.txt")
        about = ("A small HumanML3D-layout sample cut from RaMoS's embedded DeepMimic clips "
                 "(scripts/make_humanml3d_sample.py); not HumanML3D data. Captions written for RaMoS.")
        (tmp / MARKER).write_text(json.dumps({"format_version": 1, "about": about, "seed": seed, "fps": FPS,
                                              "motions": index}, indent=1) + "\n", encoding="utf-8")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path, help="folder to write (must not exist, unless --force on an earlier sample)")
    ap.add_argument("--seed", type=int, default=0, help="phases and lengths of looped pieces, split (default 0)")
    ap.add_argument("--force", action="store_true", help="replace an earlier sample at OUT")
    args = ap.parse_args(argv)
    try:
        out = build(args.out, args.seed, overwrite=args.force)
    except FileExistsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    meta = json.loads((out / MARKER).read_text(encoding="utf-8"))["motions"]
    counts = {s: sum(m["split"] == s for m in meta) * 2 for s in ("train", "val", "test")}
    print(f"wrote {2 * len(meta)} motions ({len(meta)} + their M mirrors; train {counts['train']} / "
          f"val {counts['val']} / test {counts['test']}) from {len({m['clip'] for m in meta})} clips -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
