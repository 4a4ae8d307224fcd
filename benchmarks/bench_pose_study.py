"""Wall time of the pose VAE study (``ramos study pose-vae``) on the embedded data set.

    python benchmarks/bench_pose_study.py [--quick] [--workers 2] [--threads 1] [--out /tmp/pose_bench]

Runs the whole study (2 families x latent sizes {4, 8, 16, 32} x 3 seeds, the default config;
``--quick``: the quick config) and times it end to end: data preparation excluded (the embedded
set is prepared once and cached), training, evaluation, figures and report included. Target: the
full study in <= 20 minutes on 2 CPU cores. Prints one line and updates
benchmarks/results/pose_study.json (key: quick/full and the worker x thread layout).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "pose_study.json"
TARGET_MIN = 20.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="time the quick study instead of the full one")
    parser.add_argument("--workers", type=int, default=None, help="runs at a time (default: the config's)")
    parser.add_argument("--threads", type=int, default=None, help="threads per run (default: the config's)")
    parser.add_argument("--out", default=None, help="report/runs folder (default: a temporary folder)")
    args = parser.parse_args()

    import torch

    from ramos import configs
    from ramos.stages.data.prepare import ensure_builtin_dataset
    from ramos.stages.pose_vae.data import PoseData
    from ramos.stages.pose_vae.study import run_study
    from ramos.utils.atomic import write_json

    overrides = {}
    if args.workers is not None:
        overrides["workers"] = args.workers
    if args.threads is not None:
        overrides["train.threads"] = args.threads
    cfg = configs.load("pose_vae", "quick" if args.quick else None, overrides)
    dataset = ensure_builtin_dataset(progress=False)
    data = PoseData.from_dataset(dataset, cfg.data)
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="pose_bench_"))
    started = time.perf_counter()
    result = run_study(cfg, data, out / "reports", out / "runs", dataset_name="embedded DeepMimic set")
    minutes = (time.perf_counter() - started) / 60
    best = min((r for r in result.results if r.latent_dim == max(cfg.latents)), key=lambda r: r.mpjpe_mm)
    key = f"{'quick' if args.quick else 'full'} workers={cfg.workers} threads={cfg.train.threads}"
    record = {
        "wall_min": round(minutes, 2),
        "runs": len(result.results),
        "s_per_run_mean": round(sum(r.train_seconds for r in result.results) / len(result.results), 1),
        "best_mpjpe_mm_at_max_d": round(best.mpjpe_mm, 1),
        "best_family": best.family,
        "train_poses": len(data.train),
        "val_poses": len(data.val),
        "steps": cfg.train.steps,
        "batch": cfg.train.batch_size,
        "target_wall_min": TARGET_MIN,
        "machine": {"cpu": platform.machine(), "logical_cpus": os.cpu_count(), "torch": torch.__version__},
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    previous = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    previous[key] = record
    write_json(RESULTS, previous)
    verdict = "meets" if minutes <= TARGET_MIN else "MISSES"
    print(f"pose study ({key}): {minutes:.1f} min for {len(result.results)} runs ({verdict} the "
          f"{TARGET_MIN:g} min target); best d={max(cfg.latents)} MPJPE {best.mpjpe_mm:.1f} mm ({best.family})")


if __name__ == "__main__":
    main()
