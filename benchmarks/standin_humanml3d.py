"""A HumanML3D-sized stand-in folder, built from the embedded clips, to measure time and memory at
the real size. Not data to train on for quality: every motion is a recombination of 19 clips.

    python benchmarks/standin_humanml3d.py --clips 14616 --out /tmp/standin [--workers 2] [--seed 0]
    ramos data prepare --source humanml3d --root /tmp/standin --out /tmp/standin_prep

HumanML3D has 14,616 motions (plus their ``M`` mirrors: 29,232 files) and 44,970 captions, 2-10 s
at 20 fps. The stand-in has the same layout (``new_joints/``, ``texts/``, ``{train,val,test}.txt``
with HumanML3D's 80/5/15 split, the ``M`` mirrors, 3 captions per motion) and size. Each motion:

- a duration drawn uniformly in 2-10 s, filled with 1-3 parts, each an embedded clip (looped from a
  random phase when cyclic) played 0.8-1.25x as fast;
- consecutive parts joined by a generated transition: the next part is turned to the facing and
  placed at the position the previous one reaches, and the pose difference is decayed over
  0.5 s (``ramos.motion.compose.join_motions``);
- its path bent by a random yaw rate (up to 20 deg/s), small smooth noise on every bone's
  direction, then put back on the first part's captured skeleton (``make_rigid``: constant bone
  lengths) and normalised as HumanML3D does (floor at y = 0, first frame at the origin facing +z);
- 3 captions, each joining one caption of every part ("a person walks forward, then does a
  cartwheel to the left"); the ``M`` copy is the left/right mirror with left and right swapped in
  its captions.

The backflip is left out: the ``humanml3d`` data config excludes backflips, as HumanML3D's users do.
Files are written by ``--workers`` processes into a temporary folder renamed into place when
complete. ``STANDIN.json`` records the parts of every motion.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from functools import lru_cache
from pathlib import Path

import numpy as np

FPS = 20.0
SECONDS = (2.0, 10.0)
SPEED = (0.8, 1.25)
BLEND_FRAMES = 10
MAX_YAW_RATE_DEG = 20.0
BONE_NOISE = 0.06  # of each bone's length
SPLIT = {"train": 0.80, "val": 0.05, "test": 0.15}  # HumanML3D's
LEFT_OUT = ("humanoid3d_backflip",)
MARKER = "STANDIN.json"
_SUBJECT = re.compile(r"^(a person|the person|a man|someone|a martial artist|the dancer|a figure|a gymnast)\s+")
_CONNECTORS = (", then ", " and then ", ", and after that ", ", then ")


@lru_cache(maxsize=1)
def library() -> list[dict]:
    """The embedded clips at 20 fps with what joining needs (cycle length, rest skeleton, captions)."""
    from ramos.motion.io import builtin
    from ramos.motion.preprocess import cycle_frames, resample
    from ramos.motion.rigid import rest_skeleton
    from ramos.motion.skeleton import HUMANML3D

    out = []
    for clip in builtin.load_all():
        if clip.source_id in LEFT_OUT:
            continue
        at20 = resample(clip.positions, clip.fps, FPS)
        cyclic = clip.meta.get("loop") == "wrap"
        cycle = cycle_frames(clip.positions, HUMANML3D) * FPS / clip.fps if cyclic else None
        out.append({"id": clip.source_id, "at20": at20, "cyclic": cyclic, "cycle": cycle,
                    "rest": rest_skeleton(clip.positions, HUMANML3D), "captions": list(clip.captions)})
    return out


def _part(src: dict, seconds: float, speed: float, rng: np.random.Generator) -> np.ndarray:
    """One clip played ``speed`` times as fast; cyclic clips looped to ``seconds`` from a random phase."""
    from ramos.motion.preprocess import loop_clip, resample
    from ramos.motion.skeleton import HUMANML3D

    x = resample(src["at20"], FPS * speed, FPS)
    if not src["cyclic"]:
        return x
    cycle = max(src["cycle"] / speed, x.shape[0] - 1.0)
    phase = int(rng.integers(0, max(1, int(cycle))))
    return loop_clip(x, FPS, max(seconds, 2 * BLEND_FRAMES / FPS), HUMANML3D, cycle, phase)


def _bend(x: np.ndarray, rate_deg: float) -> np.ndarray:
    """The path turned by ``rate_deg`` per second: each step of the root and each pose rotated by the
    heading change so far (a curved walk, not a whole-body spin about the origin)."""
    from ramos.motion.skeleton import HUMANML3D

    root = HUMANML3D.root
    theta = np.radians(rate_deg) * np.arange(len(x)) / FPS
    c, s = np.cos(theta), np.sin(theta)
    rot = np.zeros((len(x), 3, 3))
    rot[:, 0, 0], rot[:, 0, 2], rot[:, 1, 1], rot[:, 2, 0], rot[:, 2, 2] = c, s, 1.0, -s, c
    steps = np.diff(x[:, root], axis=0, prepend=x[:1, root])
    steps[:, 1] = 0.0
    path = np.cumsum(np.einsum("tij,tj->ti", rot, steps), axis=0) + x[0, root] * [1, 0, 1]
    path[:, 1] = x[:, root, 1]
    rel = x - x[:, root:root + 1]
    return (np.einsum("tij,tkj->tki", rot, rel) + path[:, None]).astype(np.float32)


def _limb_noise(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Every bone vector plus smooth noise (a constant and a slow sine, ``BONE_NOISE`` of its length)."""
    from ramos.motion.skeleton import HUMANML3D

    parents = HUMANML3D.parents
    t = np.arange(len(x))[:, None] / FPS
    out = x.astype(np.float64).copy()
    for j in range(1, len(parents)):  # parents come before children
        bone = x[:, j] - x[:, parents[j]]
        length = np.linalg.norm(bone, axis=-1, keepdims=True)
        wobble = rng.normal(0, 1, 3) + rng.normal(0, 1, 3) * np.sin(2 * np.pi * rng.uniform(0.1, 0.5) * t)
        out[:, j] = out[:, parents[j]] + bone + BONE_NOISE / math.sqrt(2) * length * wobble
    return out.astype(np.float32)


def _caption(parts: list[dict], k: int, connectors: list[str]) -> str:
    """The ``k``-th caption of the motion: one caption of each part, joined."""
    text = parts[0]["captions"][k]
    for part, conn in zip(parts[1:], connectors):
        cap = part["captions"][k]
        rest = _SUBJECT.sub("", cap)
        text += conn + (rest if rest != cap else "after that " + cap)
    return text


def motion(index: int, seed: int) -> tuple[np.ndarray, list[str], dict]:
    """Motion ``index`` of the stand-in: positions (T, 22, 3) float32, its 3 captions, where it comes from."""
    from ramos.motion.compose import join_motions
    from ramos.motion.preprocess import normalize
    from ramos.motion.rigid import make_rigid
    from ramos.motion.skeleton import HUMANML3D

    rng = np.random.default_rng([seed, index])
    lib = library()
    frames = round(rng.uniform(*SECONDS) * FPS)
    n_parts = int(rng.choice([1, 2, 3], p=[0.4, 0.4, 0.2]))
    parts, x, starts = [], None, []
    while x is None or len(x) < frames:
        src = lib[int(rng.integers(len(lib)))]
        speed = float(rng.uniform(*SPEED))
        left = frames - (0 if x is None else len(x))
        share = max(left / max(1, n_parts - len(parts)), 2 * BLEND_FRAMES) / FPS
        piece = _part(src, share, speed, rng)
        piece[..., 1] -= piece[..., 1].min()
        starts.append(0 if x is None else len(x))
        x = piece if x is None else join_motions(x, piece, BLEND_FRAMES)
        order = rng.permutation(len(src["captions"]))[:3]
        parts.append({"clip": src["id"], "speed": round(speed, 3), "frames": len(piece),
                      "captions": [src["captions"][i] for i in order]})
    if len(parts) > 1 and starts[-1] > frames - FPS and starts[-1] >= SECONDS[0] * FPS:
        # the last part would show for under a second: end before it instead of captioning it
        frames = starts[-1]
        parts.pop()
    x = x[:frames]
    rate = float(rng.uniform(-MAX_YAW_RATE_DEG, MAX_YAW_RATE_DEG))
    x = _limb_noise(_bend(x, rate), rng)
    first = next(s for s in lib if s["id"] == parts[0]["clip"])
    x = normalize(make_rigid(x, HUMANML3D, first["rest"]), HUMANML3D)
    captions = [_caption(parts, k, [_CONNECTORS[int(rng.integers(len(_CONNECTORS)))] for _ in parts[1:]])
                for k in range(3)]
    about = {"frames": frames, "yaw_rate_deg_s": round(rate, 2),
             "parts": [{k: v for k, v in p.items() if k != "captions"} for p in parts]}
    return x.astype(np.float32), captions, about


def _split(index: int, seed: int) -> str:
    u = np.random.default_rng([seed, index, 7]).random()
    return "train" if u < SPLIT["train"] else "val" if u < SPLIT["train"] + SPLIT["val"] else "test"


def _write_range(folder: str, start: int, stop: int, seed: int, mirrored: bool) -> list[dict]:
    """Write motions ``start..stop-1`` (and their mirrors) into ``folder``; their index entries."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    from make_humanml3d_sample import text_lines

    from ramos.motion.preprocess import mirror, mirror_text
    from ramos.motion.skeleton import HUMANML3D

    root, index = Path(folder), []
    for i in range(start, stop):
        x, captions, about = motion(i, seed)
        sid = f"{i:06d}"
        np.save(root / "new_joints" / f"{sid}.npy", x)
        (root / "texts" / f"{sid}.txt").write_text(text_lines(captions), encoding="utf-8")
        if mirrored:
            np.save(root / "new_joints" / f"M{sid}.npy", mirror(x, HUMANML3D).astype(np.float32))
            (root / "texts" / f"M{sid}.txt").write_text(text_lines([mirror_text(c) for c in captions]),
                                                         encoding="utf-8")
        index.append({"id": sid, "split": _split(i, seed), **about})
    return index


def build(out: Path, clips: int, seed: int = 0, workers: int = 2, mirrored: bool = True,
          overwrite: bool = False) -> dict:
    """Write the stand-in folder at ``out``; returns a summary (motions, files, seconds, hours)."""
    from tqdm import tqdm

    from ramos.utils.atomic import atomic_dir

    if out.exists() and not (overwrite and (out / MARKER).is_file()):
        raise FileExistsError(f"{out}: exists (pass --force to replace an earlier stand-in; "
                              "any other folder is never replaced)")
    t0 = time.perf_counter()
    chunk = 250
    ranges = [(s, min(clips, s + chunk)) for s in range(0, clips, chunk)]
    index: list[dict] = []
    with atomic_dir(out) as tmp:
        (tmp / "new_joints").mkdir()
        (tmp / "texts").mkdir()
        if workers <= 1:  # in this process (also what a caller that imported this file by path needs)
            for a, b in tqdm(ranges, desc="stand-in", unit=f"x{chunk} motions", disable=not sys.stderr.isatty()):
                index += _write_range(str(tmp), a, b, seed, mirrored)
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                jobs = [pool.submit(_write_range, str(tmp), a, b, seed, mirrored) for a, b in ranges]
                for job in tqdm(jobs, desc="stand-in", unit=f"x{chunk} motions", disable=not sys.stderr.isatty()):
                    index += job.result()
        splits: dict[str, list[str]] = {s: [] for s in SPLIT}
        for entry in index:
            splits[entry["split"]] += [entry["id"]] + ([f"M{entry['id']}"] if mirrored else [])
        for split, ids in splits.items():
            (tmp / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids), encoding="utf-8")
        hours = sum(e["frames"] for e in index) / FPS / 3600
        summary = {"motions": clips, "files": clips * (2 if mirrored else 1), "hours": round(hours, 2),
                   "hours_with_mirrors": round(hours * (2 if mirrored else 1), 2),
                   "captions": 3 * clips * (2 if mirrored else 1), "seed": seed,
                   "seconds_to_build": round(time.perf_counter() - t0, 1)}
        about = ("A HumanML3D-sized stand-in recombined from RaMoS's embedded DeepMimic clips "
                 "(benchmarks/standin_humanml3d.py), for time and memory measurements; not HumanML3D data "
                 "and not for judging quality.")
        (tmp / MARKER).write_text(json.dumps({"format_version": 1, "about": about, **summary, "motions_index": index},
                                             indent=None) + "\n", encoding="utf-8")
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=14616, help="motions, not counting the M mirrors")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-mirror", action="store_true", help="leave out the M mirrored copies")
    parser.add_argument("--force", action="store_true", help="replace an earlier stand-in at --out")
    args = parser.parse_args()
    if args.clips < 1:
        parser.error("--clips must be positive")
    try:
        summary = build(args.out, args.clips, args.seed, args.workers, not args.no_mirror, args.force)
    except FileExistsError as exc:
        parser.error(str(exc))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
