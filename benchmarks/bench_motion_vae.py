"""Motion VAE speed: batched encode + decode throughput and training-step time on CPU.

    python benchmarks/bench_motion_vae.py [--checkpoint runs/motion_vae/motion_vae.ckpt]
        [--config FILE] [--threads 2] [--batch 256] [--seconds 10]

Without a checkpoint the architecture of ``--config`` (default: the built-in defaults) is built with random weights (speed does
not depend on the weights). Target on 2 CPU cores: encode + decode >= 500 windows/s (200 x 22 x 3
windows, posterior mean, batched). Also reports the time of one training step (batch of the
config, forward + backward + AdamW) so that the 15-minute training budget can be checked as
steps x step time. Prints one line per figure and updates benchmarks/results/motion_vae.json
(one entry per config/checkpoint and thread count).
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

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "motion_vae.json"


def build(args: argparse.Namespace):
    """(vae, config name, optimiser batch size): from the checkpoint, or the config with random weights."""
    from ramos import configs
    from ramos.motion.skeleton import HUMANML3D
    from ramos.stages.motion_vae.train import build_motion_vae
    from ramos.vae import VAEModule

    cfg = configs.load("motion_vae", args.config)
    if args.checkpoint:
        return VAEModule.load(args.checkpoint, freeze=False), str(args.checkpoint), cfg.optim.batch_size
    return build_motion_vae(cfg, HUMANML3D, 200), args.config or "defaults", cfg.optim.batch_size


def throughput(vae, batch: int, seconds: float) -> float:
    """Windows per second of encode (posterior mean) + decode, batched, after one warm-up batch."""
    x = torch.randn(batch, 200, 22, 3) * 0.3
    mask = torch.ones(batch, 200, dtype=torch.bool)
    mask[: batch // 2, 120:] = False  # half of the windows padded, as in real data
    vae.eval()
    with torch.no_grad():
        vae.decode(vae.encode(x, mask)[0], mask)
        rates = []
        end = time.perf_counter() + seconds
        while time.perf_counter() < end or len(rates) < 3:
            t = time.perf_counter()
            vae.decode(vae.encode(x, mask)[0], mask)
            rates.append(batch / (time.perf_counter() - t))
    return statistics.median(rates)


def step_time(vae, batch: int, repeats: int = 5) -> float:
    """Median seconds of one training step (loss, backward, AdamW) at ``batch`` windows."""
    b = {"motion": torch.randn(batch, 200, 22, 3) * 0.3, "mask": torch.ones(batch, 200, dtype=torch.bool)}
    vae.train().requires_grad_(True)
    opt = torch.optim.AdamW(vae.parameters(), lr=1e-4)
    times = []
    for _ in range(repeats + 1):
        t = time.perf_counter()
        loss = vae.compute_losses(b)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t)
    return statistics.median(times[1:])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--config", default=None, help="motion VAE config file (default: the built-in defaults)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--seconds", type=float, default=10.0)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    vae, name, train_batch = build(args)
    rate = throughput(vae, args.batch, args.seconds)
    step = step_time(vae, train_batch)
    params = sum(q.numel() for q in vae.parameters())
    print(f"motion VAE {name}: encode+decode {rate:.0f} windows/s (batch {args.batch}, {args.threads} threads; "
          f"target >= 500) | training step {step:.3f} s (batch {train_batch}) | {params / 1e6:.2f} M parameters")
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    results[f"{name}@{args.threads}threads"] = {
        "windows_per_s": round(rate, 1), "batch": args.batch, "train_step_s": round(step, 4),
        "train_batch": train_batch, "parameters": params, "threads": args.threads,
        "target_windows_per_s": 500, "meets_target": rate >= 500,
        "machine": platform.processor() or platform.machine(),
        "when": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    from ramos.utils.atomic import write_json

    write_json(RESULTS, results)


if __name__ == "__main__":
    main()
