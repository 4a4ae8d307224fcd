"""MNIST latent diffusion: every figure of the issue, on this machine, with the default config.

    python benchmarks/bench_mnist.py [--out runs/bench_mnist] [--reuse] [--speed-repeats 5]

1. end to end: ``ramos mnist --out OUT`` in a fresh process (VAE + classifier + latent diffusion +
   evaluation), wall-clock including start-up. Target <= 600 s.
2. quality: conditional accuracy at 20 steps with guidance (target >= 97 %) and FID on LeNet
   features, from OUT/metrics.json; the real test set's FID is the floor.
3. the pixel-space baseline: ``ramos mnist --with-pixel-baseline`` on the same folder trains the
   pixel UNet for the latent diffusion stage's measured training time, then both models are scored
   on the same number of samples (target: latent FID <= pixel FID).
4. sampling speed at 10/20/50 steps (guided, decoding included), median of ``--speed-repeats``
   runs: latent at batch 500 (target >= 1,000 images/s at 20 steps) and the pixel baseline at
   batch 100 (target: latent >= 30x pixel at the same step count).

``--reuse`` skips step 1 when OUT already holds a finished run. Prints one line per figure and
writes benchmarks/results/mnist.json.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "mnist.json"


def _ramos(*args: str) -> float:
    """Run ``ramos`` in a fresh process; return its wall-clock seconds."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "ramos.cli", *args], check=True)
    return time.perf_counter() - start


def _speeds(path: Path, batch: int, steps: list[int], repeats: int, guidance: float, sampler: str) -> dict[str, float]:
    import torch

    from ramos.diffusion import LatentDiffusionModule
    from ramos.mnist.evaluate import sampling_speed

    model = LatentDiffusionModule.load(path)
    with torch.no_grad():
        return {str(s): statistics.median(sampling_speed(model, batch, s, sampler, guidance, 1) for _ in range(repeats))
                for s in steps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/bench_mnist", help="run folder (deleted first unless --reuse)")
    parser.add_argument("--reuse", action="store_true", help="reuse a finished run in --out (skip step 1)")
    parser.add_argument("--speed-repeats", type=int, default=5)
    parser.add_argument("--pixel-speed-repeats", type=int, default=2)
    parser.add_argument("--fast", action="store_true", help="smoke-test the script with `ramos mnist --fast` "
                                                            "(figures meaningless; results not saved)")
    args = parser.parse_args()
    out = Path(args.out)
    extra = ["--fast"] if args.fast else []

    e2e_s = None
    if not args.reuse:
        shutil.rmtree(out, ignore_errors=True)
        e2e_s = _ramos("mnist", "--out", str(out), *extra)
    latent_metrics = json.loads((out / "metrics.json").read_text())
    pixel_wall_s = _ramos("mnist", "--out", str(out), "--with-pixel-baseline", *extra)
    metrics = json.loads((out / "metrics.json").read_text())

    from ramos.stages.mnist.config import MnistConfig
    from ramos.utils.config import load_config

    cfg = load_config(MnistConfig, out / "config.yaml")
    e = cfg.evaluation
    latent_speed = _speeds(out / "diffusion" / "diffusion.ckpt", e.speed_batch, e.steps, args.speed_repeats,
                           e.guidance, e.sampler)
    pixel_speed = _speeds(out / "pixel" / "pixel.ckpt", cfg.pixel.speed_batch, e.steps, args.pixel_speed_repeats,
                          e.guidance, e.sampler)

    lat20 = latent_metrics["latent_diffusion"]["by_steps"]["20"]
    pix = metrics["pixel_baseline"]
    figures = {
        "end_to_end_s": e2e_s,
        "stage_durations_s": latent_metrics["durations_s"],
        "classifier_test_accuracy": latent_metrics["classifier"]["test_accuracy"],
        "conditional_accuracy_20_steps": lat20["conditional_accuracy"],
        "fid_latent_20_steps": lat20["fid"],
        "fid_real_test_floor": latent_metrics["fid_real_test"],
        "fid_samples": latent_metrics["latent_diffusion"]["fid_samples"],
        "by_steps": latent_metrics["latent_diffusion"]["by_steps"],
        "pixel_comparison": {
            "samples": pix["fid_samples"], "train_seconds_pixel": pix["train_seconds"],
            "train_seconds_latent": pix["latent_train_seconds"],
            "fid_latent": pix["latent_20_steps"]["fid"], "fid_pixel": pix["pixel_20_steps"]["fid"],
            "fid_real_test_floor": pix["fid_real_test"],
            "conditional_accuracy_latent": pix["latent_20_steps"]["conditional_accuracy"],
            "conditional_accuracy_pixel": pix["pixel_20_steps"]["conditional_accuracy"],
            "command_wall_s": pixel_wall_s,
        },
        "images_per_s_latent": latent_speed,
        "images_per_s_pixel": pixel_speed,
        "speedup_latent_over_pixel": {s: latent_speed[s] / pixel_speed[s] for s in latent_speed},
        "speed_batch": {"latent": e.speed_batch, "pixel": cfg.pixel.speed_batch},
    }
    targets = {
        "end_to_end_le_600_s": None if e2e_s is None else e2e_s <= 600,
        "conditional_accuracy_ge_97pct": lat20["conditional_accuracy"] >= 0.97,
        "classifier_ge_99pct": latent_metrics["classifier"]["test_accuracy"] >= 0.99,
        "fid_latent_le_pixel": pix["latent_20_steps"]["fid"] <= pix["pixel_20_steps"]["fid"],
        "latent_ge_1000_images_per_s_20_steps": latent_speed["20"] >= 1000,
        "latent_ge_30x_pixel_20_steps": figures["speedup_latent_over_pixel"]["20"] >= 30,
    }
    if e2e_s is not None:
        print(f"mnist end to end: {e2e_s:.0f} s (target <= 600 s)")
    print(f"mnist LeNet test accuracy: {100 * figures['classifier_test_accuracy']:.2f} % (target >= 99 %)")
    print(f"mnist conditional accuracy @20 steps, guidance {e.guidance:g}: "
          f"{100 * lat20['conditional_accuracy']:.1f} % (target >= 97 %)")
    print(f"mnist FID @20 steps ({figures['fid_samples']} samples): latent {lat20['fid']:.2f}, "
          f"real test floor {figures['fid_real_test_floor']:.2f}")
    pc = figures["pixel_comparison"]
    print(f"mnist FID vs pixel baseline ({pc['samples']} samples, {pc['train_seconds_pixel']:.0f} s pixel / "
          f"{pc['train_seconds_latent']:.0f} s latent training): latent {pc['fid_latent']:.2f}, "
          f"pixel {pc['fid_pixel']:.2f}, floor {pc['fid_real_test_floor']:.2f}")
    for s in latent_speed:
        print(f"mnist sampling {s} steps: latent {latent_speed[s]:.0f} images/s (batch {e.speed_batch}), pixel "
              f"{pixel_speed[s]:.1f} images/s (batch {cfg.pixel.speed_batch}), {figures['speedup_latent_over_pixel'][s]:.0f}x")
    print("mnist targets: " + ", ".join(f"{k}={'pass' if v else 'FAIL' if v is not None else 'n/a'}"
                                        for k, v in targets.items()))

    if args.fast:
        return

    import torch

    from ramos.utils.atomic import write_json

    write_json(RESULTS, {
        "figures": figures, "targets": targets,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "torch": torch.__version__},
        "date": _dt.datetime.now().isoformat(timespec="seconds"),
        "command": "python benchmarks/bench_mnist.py" + (" --reuse" if args.reuse else ""),
    })


if __name__ == "__main__":
    main()
