"""Blender reads our BVH files: joint error of Blender's own importer against the motions we meant.

    python benchmarks/bench_blender_bvh.py [--pipeline runs/pipeline]

Exports the 20 embedded real clips (rigid skeletons) as BVH with RaMoS's writer, imports them with
Blender's BVH importer (``blender -b``, Debian's 3.4; benchmarks/blender_read.py) and compares
every joint at every frame with the positions written, and with RaMoS's own BVH reader. With
``--pipeline``, the same for the generated motions of ``samples/`` (their ``.bvh`` against their
``.npy``). Targets (issue 16): <= 1 mm mean and <= 5 mm max per motion; frame count and frame rate
exact. Prints one line per set and writes benchmarks/results/blender_bvh.json.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "blender_bvh.json"
READER = HERE / "blender_read.py"


def blender_positions(files: list[Path | str], names: list[str]) -> list[tuple[np.ndarray, float]]:
    """(positions (F, J, 3) in ``names`` order, fps) of each file as Blender imports it (a BVH path, or a
    ``.glb`` path with ``@FPS``: benchmarks/blender_read.py)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "blender.npz"
        subprocess.run(["blender", "-b", "--factory-startup", "--python", str(READER), "--", str(out),
                        *map(str, files)], check=True, capture_output=True, timeout=600)
        with np.load(out, allow_pickle=False) as d:
            result = []
            for i in range(len(files)):
                bones = list(d[f"names_{i}"])
                result.append((d[f"positions_{i}"][:, [bones.index(n) for n in names]], float(d[f"fps_{i}"])))
    return result


def compare(motions: list[np.ndarray], files: list[Path], fps: list[float], names: list[str]) -> dict:
    """Per motion: mean and max joint error (mm) of Blender against the motion, frames and fps exact."""
    rows = []
    for motion, (got, got_fps), rate, path in zip(motions, blender_positions(files, names), fps, files):
        same_frames = got.shape[0] == motion.shape[0]
        err = np.linalg.norm(got - motion, axis=-1) * 1000 if same_frames else np.array([np.inf])
        rows.append({"file": path.name, "frames": int(motion.shape[0]), "frames_blender": int(got.shape[0]),
                     "fps": rate, "fps_blender": round(got_fps, 4), "mean_mm": float(err.mean()),
                     "max_mm": float(err.max())})
    return {"motions": rows, "mean_mm": float(np.mean([r["mean_mm"] for r in rows])),
            "worst_mean_mm": max(r["mean_mm"] for r in rows), "worst_max_mm": max(r["max_mm"] for r in rows),
            "frames_exact": all(r["frames"] == r["frames_blender"] for r in rows),
            "fps_exact": all(abs(r["fps"] - r["fps_blender"]) < 1e-3 for r in rows)}


def line(name: str, r: dict) -> str:
    ok = r["worst_mean_mm"] <= 1 and r["worst_max_mm"] <= 5 and r["frames_exact"] and r["fps_exact"]
    return (f"blender bvh, {name}: {len(r['motions'])} motions, joint error mean {r['mean_mm']:.3f} mm "
            f"(worst motion {r['worst_mean_mm']:.3f} mm), max {r['worst_max_mm']:.3f} mm; frames exact "
            f"{r['frames_exact']}, fps exact {r['fps_exact']} (target <= 1 mm mean, <= 5 mm max: "
            f"{'pass' if ok else 'fail'})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline", type=Path, default=None, help="a finished `ramos pipeline` output folder")
    args = parser.parse_args()
    if shutil.which("blender") is None:
        raise SystemExit("blender not found (apt-get install blender python3-numpy; ../shared/reference/tools.md)")

    from ramos.motion.export import save_bvh
    from ramos.motion.io.builtin import load_all
    from ramos.motion.skeleton import HUMANML3D

    names = list(HUMANML3D.names)
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        clips = load_all()
        files = []
        for k, clip in enumerate(clips):
            files.append(save_bvh(clip.positions, Path(tmp) / f"{k:02d}_{clip.labels[0]}.bvh", HUMANML3D, clip.fps))
        results["real clips"] = compare([c.positions for c in clips], files, [c.fps for c in clips], names)
    print(line("real clips", results["real clips"]))
    if args.pipeline is not None:
        samples = args.pipeline / "samples"
        index = json.loads((samples / "index.json").read_text(encoding="utf-8"))
        motions = [np.load(samples / m["files"]["npy"], allow_pickle=False) for m in index["motions"]]
        files = [samples / m["files"]["bvh"] for m in index["motions"]]
        results["generated"] = compare(motions, files, [float(index["fps"])] * len(motions), names)
        print(line("generated", results["generated"]))
    version = subprocess.run(["blender", "--version"], capture_output=True, text=True, check=True).stdout.splitlines()[0]
    results.update({"blender": version, "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                    "pipeline": None if args.pipeline is None else str(args.pipeline)})
    from ramos.utils.atomic import write_json

    write_json(RESULTS, results)


if __name__ == "__main__":
    main()
