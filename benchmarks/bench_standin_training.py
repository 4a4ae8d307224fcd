"""Training at HumanML3D size: throughput, peak memory and time-to-quality curves of the motion VAE
and the text-conditioned diffusion on the prepared stand-in (2 CPU cores, or wherever it runs).

    python benchmarks/standin_humanml3d.py --clips 14616 --out /tmp/standin
    ramos data prepare --source humanml3d --root /tmp/standin --out /tmp/standin_prep
    python benchmarks/bench_standin_training.py --data /tmp/standin_prep --out /tmp/standin_train \\
        [--vae-steps 600] [--diffusion-steps 1000] [--set-vae KEY=VALUE ...] [--set-diffusion KEY=VALUE ...]
        [--trainer accelerator=gpu ...]

Each stage runs as ``ramos train ...`` in a child process, with the pipeline config
``humanml3d``'s stage settings (``--config humanml3d`` of each stage is not a thing: the overrides are
read from ``configs/pipeline/humanml3d.yaml``) cut to the given steps. Memory (PSS and RSS of the
process tree) is sampled every 0.2 s. The curves come from the stages' TensorBoard logs (their wall
times): the VAE's validation MPJPE and the diffusion's validation loss against seconds since the
stage started. Throughput: steps and windows per second over the fit (the run report), which is the
figure to multiply for a full run; fixed costs (loading, caching latents, encoding captions,
evaluation) are reported apart. The stand-in is for time and memory: its quality numbers say
nothing about HumanML3D. Prints a summary and writes ``OUT/bench_standin_training.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from bench_prepare import _descendants, _memory_kib


def run_measured(cmd: list[str], log_path: Path) -> dict[str, Any]:
    """Run ``cmd``; its wall time and the peak PSS / RSS of its process tree (sampled every 0.2 s)."""
    peak = {"pss": 0, "rss": 0}
    with open(log_path, "w") as log:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        while proc.poll() is None:
            pss, rss = _memory_kib(_descendants(proc.pid))
            peak["pss"], peak["rss"] = max(peak["pss"], pss), max(peak["rss"], rss)
            time.sleep(0.2)
        seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed (exit {proc.returncode}); see {log_path}")
    return {"seconds": round(seconds, 1), "peak_pss_mb": round(peak["pss"] / 1024), "peak_rss_mb": round(peak["rss"] / 1024)}


def curve(tb_dir: Path, tag: str) -> list[list[float]]:
    """[seconds since the first logged event, step, value] of ``tag`` in a TensorBoard folder."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tb_dir), size_guidance={"scalars": 0})
    acc.Reload()
    if tag not in acc.Tags()["scalars"]:
        return []
    starts = [e.wall_time for t in acc.Tags()["scalars"] for e in acc.Scalars(t)[:1]]
    t0 = min(starts)
    return [[round(e.wall_time - t0, 1), e.step, round(e.value, 4)] for e in acc.Scalars(tag)]


def pipeline_overrides(stage: str, config: str) -> dict[str, Any]:
    """The stage's overrides in the packaged ``humanml3d`` pipeline config (none for ``default``)."""
    from ramos import configs

    if config == "default":
        return {}
    cfg = configs.load("pipeline", config, {})
    return dict(getattr(cfg, stage).overrides)


def sets(overrides: dict[str, Any]) -> list[str]:
    out = []
    for k, v in overrides.items():
        out += ["--set", f"{k}={json.dumps(v)}"]
    return out


def plot(results: dict[str, Any], path: Path) -> None:
    """The two time-to-quality curves side by side (PNG)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.2), dpi=100)
    for k, (stage, key, title, unit) in enumerate([
            ("vae", "curve_val_mpjpe_mm", "motion VAE: validation MPJPE", "mm"),
            ("diffusion", "curve_val_loss", "diffusion: validation loss", "loss")]):
        ax = fig.add_subplot(1, 2, k + 1)
        pts = results.get(stage, {}).get(key) or []
        if pts:
            ax.plot([p[0] / 60 for p in pts], [p[2] for p in pts], marker="o")
            for t, step, v in pts[:: max(1, len(pts) // 3)]:
                ax.annotate(f"{step + 1}", (t / 60, v), textcoords="offset points", xytext=(4, 4), fontsize=7)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("minutes of training (2 CPU cores)", fontsize=8)
        ax.set_ylabel(unit, fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle("HumanML3D-sized stand-in: time to quality (labels: optimiser steps); the stand-in measures "
                 "time, not quality", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="the prepared stand-in (ramos data prepare)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--vae-steps", type=int, default=600)
    parser.add_argument("--diffusion-steps", type=int, default=1000)
    parser.add_argument("--set-vae", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--set-diffusion", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--trainer", action="append", default=[], metavar="NAME=VALUE",
                        help="Lightning settings for both stages, e.g. accelerator=gpu precision=bf16-mixed")
    parser.add_argument("--skip-vae", action="store_true", help="reuse OUT/vae from an earlier run")
    parser.add_argument("--replot", action="store_true", help="only redraw OUT/time_to_quality.png from the JSON")
    parser.add_argument("--config", choices=["humanml3d", "default"], default="humanml3d",
                        help="the stages' settings: the humanml3d pipeline config's, or the stage defaults")
    parser.add_argument("--distill-steps", type=int, default=0, help="guidance distillation steps (throughput)")
    parser.add_argument("--decoder-steps", type=int, default=0, help="decoder tuning steps (throughput)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.replot:
        plot(json.loads((args.out / "bench_standin_training.json").read_text()), args.out / "time_to_quality.png")
        return
    ramos = [sys.executable, "-m", "ramos.cli"]
    trainer = [f"--{k.replace('_', '-')}={v}" for k, v in (t.split("=", 1) for t in args.trainer)]
    results: dict[str, Any] = {"data": str(args.data), "config": args.config,
                               "counts": json.loads((args.data / "manifest.json").read_text()).get("counts")}

    vae_over = {**pipeline_overrides("motion_vae", args.config), "optim.max_steps": args.vae_steps, "optim.max_minutes": None,
                "optim.val_every_n_steps": max(1, args.vae_steps // 6), "optim.render_every_n_steps": 0}
    vae_dir = args.out / "vae"
    if not args.skip_vae:
        cmd = [*ramos, "train", "motion-vae", "--dataset", str(args.data), "--out", str(vae_dir), "--no-progress",
               *sets(vae_over), *[a for s in args.set_vae for a in ("--set", s)], *trainer]
        results["vae"] = run_measured(cmd, args.out / "vae.log")
    metrics = json.loads((vae_dir / "metrics.json").read_text())
    run = metrics["run"]
    results.setdefault("vae", {}).update({
        "steps": metrics["steps"], "fit_seconds": metrics["fit_seconds"], "batch_size": run.get("batch_size"),
        "steps_per_s": round(metrics["steps"] / metrics["fit_seconds"], 2),
        "windows_per_s": round(metrics["steps"] * metrics["config"]["optim"]["batch_size"] / metrics["fit_seconds"], 1),
        "val_mpjpe_mm": round(metrics["val"]["mpjpe_mm"], 1),
        "curve_val_mpjpe_mm": curve(vae_dir / "tb", "val/mpjpe_mm"), "run": run})

    diff_over = {**pipeline_overrides("motion_diffusion", args.config), "steps": args.diffusion_steps,
                 "val_every_n_steps": max(1, args.diffusion_steps // 6),
                 "distill_steps": args.distill_steps, "decoder_steps": args.decoder_steps}
    diff_dir = args.out / "diffusion"
    cmd = [*ramos, "train", "motion-diffusion", "--dataset", str(args.data), "--vae", str(vae_dir / "motion_vae.ckpt"),
           "--out", str(diff_dir), "--no-progress", *sets(diff_over), *[a for s in args.set_diffusion for a in ("--set", s)],
           *trainer]
    results["diffusion"] = run_measured(cmd, args.out / "diffusion.log")
    summary = json.loads((diff_dir / "summary.json").read_text())
    train = summary["runs"]["train"]
    train["seconds"] = train.get("wall_seconds")
    bs = train["batch_size"]
    results["diffusion"].update({
        "steps": summary["steps"], "fit_seconds": train.get("seconds"), "prompts": summary["prompts"],
        "steps_per_s": round(summary["steps"] / train["seconds"], 2) if train.get("seconds") else None,
        "windows_per_s": round(summary["steps"] * bs / train["seconds"], 1) if train.get("seconds") else None,
        # loading, latent caching, caption encoding (first run only: then cached), saving
        "fixed_seconds": round(results["diffusion"]["seconds"] - sum(r.get("wall_seconds") or 0
                                                                    for r in summary["runs"].values()), 1),
        "curve_val_loss": curve(diff_dir / "tb", "val/loss"), "run": train,
        "phases": {phase: {"steps": run["steps"], "seconds": run["wall_seconds"], "batch_size": run["batch_size"],
                           "steps_per_s": round(run["steps"] / run["wall_seconds"], 2)}
                   for phase, run in summary["runs"].items() if run.get("wall_seconds")}})
    results.update({"cpu_count": os.cpu_count(), "machine": platform.processor() or platform.machine(),
                    "trainer": args.trainer, "measured": time.strftime("%Y-%m-%dT%H:%M:%S")})
    from ramos.utils.atomic import write_json

    write_json(args.out / "bench_standin_training.json", results)
    plot(results, args.out / "time_to_quality.png")
    v, d = results["vae"], results["diffusion"]
    print(f"motion VAE: {v['steps']} steps, {v['steps_per_s']} steps/s ({v['windows_per_s']} windows/s), "
          f"peak RSS {v.get('peak_rss_mb')} MB, val MPJPE {v['val_mpjpe_mm']} mm; diffusion: {d['steps']} steps, "
          f"{d['steps_per_s']} steps/s ({d['windows_per_s']} windows/s), fixed costs {d['fixed_seconds']} s, "
          f"peak RSS {d['peak_rss_mb']} MB")


if __name__ == "__main__":
    main()
