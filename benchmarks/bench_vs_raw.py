"""Latent diffusion against the raw-space (MDM-style) baseline, side by side in one run.

    python benchmarks/bench_vs_raw.py --vae runs/pipeline/motion_vae/motion_vae.ckpt [--dataset DIR] [--threads 2]
        [--latent runs/pipeline/diffusion/last.ckpt] [--out runs/bench_vs_raw]

1. Trains the motion latent diffusion (default config) on the VAE, or
   reuses ``--latent`` (its ``summary.json`` gives its training time).
2. Trains the raw-space baseline (default config: MDM's size) for the same wall-clock
   time: the latent diffusion's training time plus the VAE's (``fit_seconds`` in the VAE folder's
   ``metrics.json``; ``--diffusion-time-only`` leaves the VAE's out).
3. Times one motion at batch 1 (10 s, same sampler, steps and guidance; median of ``--runs``).
4. Scores both with ``ramos evaluate``'s protocol (same evaluator, same real reference).

Target (issue 6): the latent model >= 100x faster per motion at equal or better FID. Prints one
result line and updates benchmarks/results/vs_raw.json.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import platform
import statistics
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results" / "vs_raw.json"


def _vae_seconds(vae: Path) -> float:
    metrics = vae.parent / "metrics.json"
    if metrics.is_file():
        return float(json.loads(metrics.read_text()).get("fit_seconds", 0.0))
    return 0.0


def _time_batch1(sample, runs: int) -> tuple[float, float]:
    """Median wall and CPU seconds of ``sample(seed)`` after a warm-up."""
    for i in range(2):
        sample(i)
    wall, cpu = [], []
    for i in range(runs):
        t0, c0 = time.perf_counter(), time.process_time()
        sample(i)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(wall), statistics.median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vae", type=Path, required=True, help="motion VAE checkpoint (`ramos train motion-vae`)")
    parser.add_argument("--latent", type=Path, help="reuse this trained latent diffusion checkpoint")
    parser.add_argument("--dataset", type=Path, help="prepared data set (default: the embedded set)")
    parser.add_argument("--out", type=Path, default=Path("runs/bench_vs_raw"))
    parser.add_argument("--evaluator", type=Path, help="evaluator checkpoint (default: trained into OUT)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--steps", type=int, default=None, help="default: the latent checkpoint's")
    parser.add_argument("--sampler", default=None, help="default: the latent checkpoint's")
    parser.add_argument("--guidance", type=float, default=None, help="default: the latent checkpoint's")
    parser.add_argument("--runs", type=int, default=5, help="timed batch-1 motions per model (median)")
    parser.add_argument("--n-per-label", type=int, default=8, help="motions per label for the FID")
    parser.add_argument("--baseline-config",
                        help="raw baseline config: a file or a packaged name, e.g. small (default: MDM's size)")
    parser.add_argument("--budget-s", type=float,
                        help="override the baseline's training time (quick checks only: the result is then "
                             "not an equal-time comparison and is marked so)")
    parser.add_argument("--diffusion-time-only", action="store_true",
                        help="give the baseline only the latent diffusion's training time (not the VAE's)")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    from ramos import configs
    from ramos.motion.dataset import MotionDataset
    from ramos.motion.generate import MotionGenerator
    from ramos.stages.data.prepare import ensure_builtin_dataset
    from ramos.stages.evaluation import checkpoint_generator, evaluate
    from ramos.stages.motion_diffusion import train_motion_diffusion
    from ramos.stages.raw_baseline import (
        load_raw_baseline,
        sample_raw_baseline,
        train_raw_baseline,
    )
    from ramos.utils.atomic import write_json

    data = MotionDataset(args.dataset if args.dataset is not None else ensure_builtin_dataset())
    args.out.mkdir(parents=True, exist_ok=True)
    if args.latent is not None:
        latent_ckpt = args.latent
        summary = latent_ckpt.parent / "summary.json"
        latent_s = float(json.loads(summary.read_text())["seconds"]) if summary.is_file() else float("nan")
    else:
        trained = train_motion_diffusion(args.vae, data.path, args.out / "latent")
        latent_ckpt, latent_s = trained.checkpoint, trained.seconds
    vae_s = 0.0 if args.diffusion_time_only else _vae_seconds(args.vae)
    budget = args.budget_s if args.budget_s is not None else latent_s + vae_s
    if not budget > 0:
        raise SystemExit(f"{latent_ckpt}: unknown training time (no summary.json); train it here instead")
    raw_cfg = configs.load("raw_baseline", args.baseline_config)
    raw_ckpt = train_raw_baseline(data.path, args.out / "raw", raw_cfg, max_time_s=budget)
    raw_steps = (args.out / "raw" / "train_seconds.txt").read_text().strip()

    # Per-motion sampling time, batch 1, a full window, same sampler / steps / guidance.
    gen = MotionGenerator.load(latent_ckpt)
    default = gen.sampling  # both models sample alike: the latent model's defaults
    args.steps = default.steps if args.steps is None else args.steps
    args.sampler = default.sampler if args.sampler is None else args.sampler
    args.guidance = default.guidance if args.guidance is None else args.guidance
    # Like for like: the baseline samples through the same frozen TorchScript path as the latent model
    # (MotionGenerator.load freezes its module).
    raw = load_raw_baseline(raw_ckpt).freeze_for_inference()
    label = data.labels[0]
    kw = dict(steps=args.steps, sampler=args.sampler, guidance=args.guidance)
    lat_wall, lat_cpu = _time_batch1(lambda s: gen.sample([label], seconds=data.window / data.fps, seed=s, **kw),
                                     args.runs)
    raw_label = list(raw.hparams.class_names).index(label)
    raw_wall, raw_cpu = _time_batch1(lambda s: sample_raw_baseline(raw, [raw_label], [data.window], seed=s, **kw),
                                     args.runs)

    cfg = configs.load("evaluation", overrides={"n_per_label": args.n_per_label, "steps": args.steps,
                                            "sampler": args.sampler, "guidance": args.guidance})
    models = {"latent": checkpoint_generator(latent_ckpt, data.labels, cfg),
              "raw baseline": checkpoint_generator(raw_ckpt, data.labels, cfg)}
    res = evaluate(models, data, args.out / "report", cfg, evaluator=args.evaluator)
    m = res["models"]
    fid_lat, fid_raw, floor = m["latent"]["overall"]["fid"], m["raw baseline"]["overall"]["fid"], m["real"]["overall"]["fid"]
    speedup = raw_wall / lat_wall
    result = {
        "speedup_per_motion": round(speedup, 1),
        "latent": {"checkpoint": str(latent_ckpt), "train_s": round(latent_s, 1), "vae_train_s": round(vae_s, 1),
                   "s_per_motion_batch1": round(lat_wall, 4), "cpu_s_per_motion_batch1": round(lat_cpu, 4),
                   "fid": fid_lat, "accuracy": m["latent"]["overall"]["accuracy"]},
        "raw_baseline": {"checkpoint": str(raw_ckpt), "train_budget_s": round(budget, 1), "trained": raw_steps,
                         "denoiser": {k: getattr(raw_cfg.denoiser, k) for k in ("d_model", "num_layers", "ff_dim")},
                         "s_per_motion_batch1": round(raw_wall, 4), "cpu_s_per_motion_batch1": round(raw_cpu, 4),
                         "fid": fid_raw, "accuracy": m["raw baseline"]["overall"]["accuracy"]},
        "real_fid_floor": floor,
        "targets": {"speedup_per_motion": 100, "latent_fid_at_most_raw": True},
        "equal_time": args.budget_s is None,
        "passed": bool(speedup >= 100 and fid_lat <= fid_raw and args.budget_s is None),
        "settings": {"steps": args.steps, "sampler": args.sampler, "guidance": args.guidance,
                     "frames_per_motion": data.window, "n_per_label": args.n_per_label,
                     "reference": res["reference"]["split"], "threads": torch.get_num_threads()},
        "report": str(args.out / "report" / "generation.md"),
        "machine": {"cpu": platform.processor() or platform.machine(), "torch": torch.__version__},
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    print(f"vs_raw: latent {1000 * lat_wall:.1f} ms/motion vs raw {1000 * raw_wall:.0f} ms/motion (batch 1, "
          f"{args.steps} {args.sampler} steps) = {speedup:.0f}x faster; FID latent {fid_lat:.3f} vs raw {fid_raw:.3f} "
          f"(real floor {floor:.3f}); both trained {budget:.0f} s; {'PASS' if result['passed'] else 'FAIL'}")
    write_json(RESULTS, result)


if __name__ == "__main__":
    main()
