"""Generation speed: text encoding, latency of one motion (batch 1) and batched throughput, decoding included.

    python benchmarks/bench_generate.py [--checkpoint runs/pipeline/diffusion/last.ckpt] [--threads 2]

Without a checkpoint the default architecture is built with random weights (speed does not depend
on the weights): the default motion VAE for 200-frame windows and the default text-conditioned
denoiser. Targets on 2 CPU cores: text encoding <= 10 ms for one prompt (never seen before);
<= 25 ms per text-conditioned motion at batch 1 with its prompt encoded in the call (the
checkpoint's default sampling: 10 DPM-Solver++ steps, guidance 2), >= 1,000 motions/s batched (one
prompt repeated, as in a batch job). A label model (an earlier checkpoint) is timed with a label. The whole
measurement runs ``--repeats`` times in a row and each figure is the median over them (this shared
machine's speed drifts by up to 1.5x within minutes). Prints one line and updates
benchmarks/results/generate.json.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

RESULTS = Path(__file__).resolve().parent / "results" / "generate.json"


def default_generator(width: int | None = None, depth: int | None = None):
    """A MotionGenerator with the default architecture (or another denoiser size) and random weights."""
    from ramos.diffusion import LatentDiffusionModule
    from ramos.diffusion.nets import ResidualMLPDenoiser
    from ramos.motion.generate import MotionGenerator
    from ramos.motion.io import builtin
    from ramos.motion.rigid import rest_skeleton
    from ramos.motion.skeleton import HUMANML3D
    from ramos.motion.text import ENCODER, TEXT_DIM
    from ramos.stages.motion_diffusion import MotionDiffusionConfig
    from ramos.stages.motion_vae.train import MotionVAEConfig, build_motion_vae

    window = 200
    vae_cfg, cfg = MotionVAEConfig(), MotionDiffusionConfig()
    # The rigid skeleton of the embedded clips: trained decoders end in it (its cost is measured too).
    rest = rest_skeleton(np.concatenate([c.positions for c in builtin.load_all()]), HUMANML3D)
    vae = build_motion_vae(vae_cfg, HUMANML3D, window, rest_offsets=rest)
    latent = vae_cfg.net.latent_dim
    denoiser = ResidualMLPDenoiser(latent, width or cfg.denoiser.width, depth or cfg.denoiser.depth,
                                   cond_scalars=["length"], text_dim=TEXT_DIM)
    info = {"kind": "motion", "fps": 20.0, "window": window, "length_unit": "seconds", "text_encoder": ENCODER,
            "skeleton": HUMANML3D.to_dict(), "length_hist": {"*": [[120, 1], [200, 1]]}}
    module = LatentDiffusionModule(denoiser, vae, noise=cfg.noise, cond_keys=["length"], input_key="motion",
                                   data_info=info, sampling=cfg.sampling, text_dim=TEXT_DIM)
    module.latent_shift.fill_(0.0)
    module.latent_scale.fill_(1.0)
    module.latent_shape = torch.tensor([latent])
    return MotionGenerator(module, "<random weights, default architecture>")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None, help="a trained motion diffusion checkpoint (optional)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--width", type=int, default=None, help="denoiser width (default: the config's)")
    parser.add_argument("--depth", type=int, default=None, help="denoiser depth (default: the config's)")
    parser.add_argument("--steps", type=int, default=None, help="default: the checkpoint's")
    parser.add_argument("--sampler", default=None, help="default: the checkpoint's")
    parser.add_argument("--guidance", type=float, default=None, help="default: the checkpoint's")
    parser.add_argument("--runs", type=int, default=50, help="timed batch-1 runs (median reported)")
    parser.add_argument("--batch", type=int, default=256, help="motions per batched call")
    parser.add_argument("--batched-runs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3,
                        help="whole measurements in a row; the figures are their medians (a shared machine is noisy)")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    from ramos.motion.generate import MotionGenerator
    from ramos.motion.text import text_encoder

    gen = MotionGenerator.load(args.checkpoint) if args.checkpoint else default_generator(args.width, args.depth)
    label = gen.labels[0] if gen.labels else None
    prompt = "a person jogs forward, swinging both arms"
    encoder = text_encoder()

    def one(i: int, batch: int = 1) -> None:
        """One call: a text model encodes its prompt afresh (the cache is cleared), a label model takes a label."""
        if gen.text:
            encoder.clear_cache()
            gen.sample(texts=[prompt] * batch, seed=i, **kw)
        else:
            gen.sample([label] * batch, seed=i, **kw)

    encoder.encode(["warm-up"])  # loads the model (about 4 s, once per process)
    encode_ms = []
    for i in range(args.runs):
        encoder.clear_cache()
        t0 = time.perf_counter()
        encoder.encode([prompt])
        encode_ms.append(1000 * (time.perf_counter() - t0))
    default = gen.sampling
    args.steps = default.steps if args.steps is None else args.steps
    args.sampler = default.sampler if args.sampler is None else args.sampler
    args.guidance = default.guidance if args.guidance is None else args.guidance
    kw = dict(steps=args.steps, sampler=args.sampler, guidance=args.guidance, seconds=gen.window / gen.fps)
    for _ in range(5):  # warm-up: allocator, scheduler construction, lazy imports
        one(0)
    one(0, args.batch)
    # CPU time beside wall time: on a busy machine the wall clock measures the other processes too.
    latencies, rates, times, cpu, batched, batched_cpu = [], [], [], [], [], []
    for _ in range(args.repeats):
        run_times = []
        for i in range(args.runs):
            t0, c0 = time.perf_counter(), time.process_time()
            one(i)
            run_times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        latencies.append(1000 * statistics.median(run_times))
        times += run_times
        run_batched = []
        for i in range(args.batched_runs):
            t0, c0 = time.perf_counter(), time.process_time()
            one(i, args.batch)
            run_batched.append(time.perf_counter() - t0)
            batched_cpu.append(time.process_time() - c0)
        rates.append(args.batch / statistics.median(run_batched))
        batched += run_batched
    latency_ms, per_s = statistics.median(latencies), statistics.median(rates)

    result = {
        "condition": "text (encoded in each call)" if gen.text else "label",
        "text_encode_ms_median": round(statistics.median(encode_ms), 2),
        "latency_ms_batch1_median": round(latency_ms, 2),
        "latency_ms_batch1_each_repeat": [round(v, 2) for v in latencies],
        "motions_per_s_each_repeat": [round(v, 1) for v in rates],
        "latency_ms_batch1_p90": round(1000 * sorted(times)[int(0.9 * (len(times) - 1))], 2),
        "motions_per_s_batched": round(per_s, 1),
        "cpu_ms_batch1_median": round(1000 * statistics.median(cpu), 2),
        "cpu_s_per_batch_median": round(statistics.median(batched_cpu), 3),
        "batch": args.batch, "steps": args.steps, "sampler": args.sampler, "guidance": args.guidance,
        "frames_per_motion": gen.window, "threads": torch.get_num_threads(),
        "model": args.checkpoint or "default architecture, random weights",
        "denoiser": {k: getattr(gen.module.denoiser, k, None) for k in ("dim", "width")},
        "parameters": sum(p.numel() for p in gen.module.parameters()) - sum(
            p.numel() for p in gen.module.ema.parameters()),
        "targets": {"text_encode_ms": 10, "latency_ms_batch1": 25 if gen.text else 20, "motions_per_s_batched": 1000},
        "machine": {"cpu": platform.processor() or platform.machine(), "torch": torch.__version__},
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    print(f"generate: text encoding {result['text_encode_ms_median']:.1f} ms/prompt; "
          f"{result['condition']}: batch 1 {latency_ms:.1f} ms/motion (medians of {args.runs} calls, repeats "
          f"{', '.join(f'{v:.1f}' for v in latencies)}; {args.steps} {args.sampler} steps, "
          f"guidance {args.guidance}, decoding included); batched {per_s:.0f} motions/s (batch {args.batch}; repeats "
          f"{', '.join(f'{v:.0f}' for v in rates)}); "
          f"{result['threads']} threads; CPU time {result['cpu_ms_batch1_median']:.1f} ms/motion, "
          f"{args.batch / result['cpu_s_per_batch_median']:.0f} motions per CPU-second batched")
    from ramos.utils.atomic import write_json

    previous = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    previous[f"threads={result['threads']}"] = result
    write_json(RESULTS, previous)


if __name__ == "__main__":
    main()
