"""Every export of the generated motions against the motion itself (issue 16's targets).

    python benchmarks/bench_exports.py --pipeline runs/pipeline

For the motions a finished `ramos pipeline` wrote to ``samples/`` (their ``.npy`` is the motion):

- rigid skeleton: per motion the largest standard deviation over time of a bone's length
  (target <= 1 mm);
- BVH: Blender's own importer (``blender -b``, benchmarks/blender_read.py) against the npy,
  every joint and frame (target <= 1 mm mean, <= 5 mm max; frame count and rate exact);
- glTF: the ``.glb`` read back with pygltflib and by Blender's glTF importer (target <= 1 mm);
- SMPL-H: ``save_smpl_npz`` with a body model built like the tests' (SMPL's own files are licensed;
  tests/test_export_smpl.py) on the motions' rest skeleton, read back by RaMoS's AMASS reader
  (target <= 1 cm mean);
- retargeting: onto the Mixamo-like and the CMU rig of tests/test_retarget.py, read back by the BVH
  reader: bone lengths against the rig's (target 0.1 mm) and foot skating against the motion's
  (target <= 1.1x).

Blender parts are skipped (and say so) where ``blender`` is not on PATH. Prints one line per check and
writes benchmarks/results/exports.json.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "exports.json"
sys.path.insert(0, str(HERE.parent / "tests"))  # the body model and rigs the tests build


def _errors_mm(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    err = np.linalg.norm(a - b, axis=-1) * 1000
    return float(err.mean()), float(err.max())


def rigid(motions: list[np.ndarray]) -> dict:
    from ramos.motion.skeleton import HUMANML3D

    worst = [float(HUMANML3D.bone_lengths(m).std(0).max() * 1000) for m in motions]
    return {"worst_bone_std_mm": worst, "max_mm": max(worst), "pass": max(worst) <= 1.0}


def gltf(motions: list[np.ndarray], files: list[Path], fps: float, names: list[str]) -> dict:
    from ramos.motion.export import read_glb_positions

    rows = []
    for motion, path in zip(motions, files):
        got, got_fps, got_names = read_glb_positions(path)
        got = got[:, [got_names.index(n) for n in names]]
        mean, worst = _errors_mm(got, motion)
        rows.append({"file": path.name, "pygltflib_mean_mm": mean, "pygltflib_max_mm": worst,
                     "frames_exact": got.shape[0] == motion.shape[0], "fps_exact": abs(got_fps - fps) < 1e-6})
    if shutil.which("blender"):
        from bench_blender_bvh import blender_positions

        got_all = [got for got, _ in blender_positions([f"{f}@{round(fps)}" for f in files], names)]
        for row, motion, got in zip(rows, motions, got_all):
            same = got.shape[0] == motion.shape[0]
            row["blender_mean_mm"], row["blender_max_mm"] = _errors_mm(got, motion) if same else (np.inf, np.inf)
            row["blender_frames_exact"] = same
    worst = max(max(r["pygltflib_max_mm"], r.get("blender_max_mm", 0.0)) for r in rows)
    return {"motions": rows, "worst_max_mm": worst, "blender": bool(shutil.which("blender")),
            "pass": worst <= 1.0 and all(r["frames_exact"] and r["fps_exact"] for r in rows)}


def smpl(motions: list[np.ndarray], fps: float) -> dict:
    from test_export_smpl import _t_pose, _write_model

    from ramos.motion.export import save_smpl_npz
    from ramos.motion.io import amass

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        models = Path(tmp) / "smplh"
        # A body model on the generated skeleton's rest pose, shape directions as in the tests.
        _write_model(models / "neutral" / "model.npz", _t_pose(np.concatenate(motions)))
        for k, motion in enumerate(motions):
            path = save_smpl_npz(motion, Path(tmp) / f"{k:03d}.npz", models, fps)
            (item,) = amass.list_items(path)
            (clip,) = amass.read_item(item, model_dir=models)
            mean, worst = _errors_mm(clip.positions, motion)
            rows.append({"motion": k, "mean_mm": mean, "max_mm": worst, "fps_exact": clip.fps == fps,
                         "frames_exact": clip.positions.shape[0] == motion.shape[0]})
    worst = max(r["mean_mm"] for r in rows)
    return {"motions": rows, "worst_mean_mm": worst, "worst_max_mm": max(r["max_mm"] for r in rows),
            "pass": worst <= 10.0 and all(r["fps_exact"] and r["frames_exact"] for r in rows)}


def retargeting(motions: list[np.ndarray], fps: float) -> dict:
    from test_retarget import RIGS

    from ramos.motion.export import load_target, retarget
    from ramos.motion.io.bvh import parse_bvh

    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for key in ("mixamo", "cmu"):
            rig_file = Path(tmp) / f"{key}.bvh"
            rig_file.write_text(RIGS[key]())
            rig = load_target(rig_file)
            rows = []
            for motion in motions:
                result = retarget(motion, rig, fps=fps)
                back = parse_bvh(result.to_bvh())
                pos = back.positions()
                bones = [(p, c) for c, p in enumerate(back.parents) if p >= 0]
                want = np.array([np.linalg.norm(rig.bvh.offsets[c]) for _, c in bones])
                got = np.stack([np.linalg.norm(pos[:, c] - pos[:, p], axis=-1) for p, c in bones], -1)
                rows.append({"bone_error_mm": float(np.abs(got - want).max() * rig.unit_m * 1000),
                             "skating_source": result.skating_source,
                             "skating_retargeted": result.skating_retargeted,
                             "direction_error_deg": result.direction_error_deg})
            src = float(np.mean([r["skating_source"] for r in rows]))
            dst = float(np.mean([r["skating_retargeted"] for r in rows]))
            worst_bone = max(r["bone_error_mm"] for r in rows)
            out[key] = {"joint_map": rig.joint_map, "units": rig.units, "motions": rows,
                        "worst_bone_error_mm": worst_bone, "skating_source": src, "skating_retargeted": dst,
                        "skating_ratio": dst / src if src > 0 else float("nan"),
                        "motions_over_1_1x": sum(r["skating_retargeted"] > 1.1 * r["skating_source"] + 1e-9
                                                 for r in rows),
                        "pass": worst_bone <= 0.1 and (src == 0 or dst <= 1.1 * src)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline", type=Path, required=True, help="a finished `ramos pipeline` output folder")
    args = parser.parse_args()
    from ramos.motion.skeleton import HUMANML3D
    from ramos.utils.atomic import write_json

    samples = args.pipeline / "samples"
    index = json.loads((samples / "index.json").read_text(encoding="utf-8"))
    entries = index["motions"]
    fps = float(index["fps"])
    motions = [np.load(samples / m["files"]["npy"], allow_pickle=False).astype(np.float64) for m in entries]
    names = list(HUMANML3D.names)
    results: dict = {"pipeline": str(args.pipeline), "motions": len(motions)}
    results["rigid"] = rigid(motions)
    print(f"rigid skeleton: worst bone-length std {results['rigid']['max_mm']:.4f} mm over {len(motions)} motions "
          f"(target <= 1 mm: {'pass' if results['rigid']['pass'] else 'fail'})")
    if shutil.which("blender"):
        from bench_blender_bvh import compare, line

        results["bvh_blender"] = compare(motions, [samples / m["files"]["bvh"] for m in entries],
                                         [fps] * len(motions), names)
        print(line("generated", results["bvh_blender"]))
    else:
        print("blender bvh: skipped (blender not on PATH; ../shared/reference/tools.md)")
    results["gltf"] = gltf(motions, [samples / m["files"]["glb"] for m in entries], fps, names)
    g = results["gltf"]
    print(f"glb: worst joint error {g['worst_max_mm']:.4f} mm (pygltflib" + (" and Blender" if g["blender"] else "")
          + f"; target <= 1 mm: {'pass' if g['pass'] else 'fail'})")
    results["smpl"] = smpl(motions, fps)
    s = results["smpl"]
    print(f"smpl-h npz via the AMASS reader: worst motion mean {s['worst_mean_mm']:.2f} mm, max "
          f"{s['worst_max_mm']:.2f} mm (target <= 10 mm mean: {'pass' if s['pass'] else 'fail'})")
    results["retarget"] = retargeting(motions, fps)
    for key, r in results["retarget"].items():
        print(f"retarget {key}: bones within {r['worst_bone_error_mm']:.2e} mm of the rig's; foot skating "
              f"{r['skating_source']:.3f} -> {r['skating_retargeted']:.3f} ({r['skating_ratio']:.2f}x, "
              f"{r['motions_over_1_1x']} of {len(r['motions'])} motions over 1.1x; target <= 1.1x: "
              f"{'pass' if r['pass'] else 'fail'})")
    results["created"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    write_json(RESULTS, results)


if __name__ == "__main__":
    main()
