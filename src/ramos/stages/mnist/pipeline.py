"""``ramos mnist``: VAE -> classifier -> latent diffusion -> evaluation (the template of the motion pipeline).

Each stage trains in its own folder of the output directory (``vae/``, ``classifier/``,
``diffusion/``, ``pixel/``) with its config, its ``checkpoints/last.ckpt`` (written every epoch)
and, once finished, its final checkpoint. A stage whose final checkpoint exists is skipped; an
interrupted stage resumes from ``last.ckpt`` and ends where an uninterrupted run would have.
Stages meet only through those checkpoint files.

    out/
      config.yaml           the whole run's config
      vae/ classifier/ diffusion/ [pixel/]   config.yaml, checkpoints/last.ckpt, <stage>.ckpt, timing.json
      tb/                   TensorBoard logs of every stage
      samples.png reconstructions.png [pixel_samples.png] metrics.json report.md
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import torch

from ramos.stages.mnist.config import MnistConfig
from ramos.stages.mnist.report import evaluate_run, write_report
from ramos.stages.mnist.training import Run
from ramos.utils.atomic import write_json
from ramos.utils.config import save_config


def run_mnist(cfg: MnistConfig, out: str | os.PathLike[str], with_pixel_baseline: bool = False,
              progress: bool = True) -> dict[str, Any]:
    """Run (or resume) every stage and the evaluation; return the metrics also written to ``out/metrics.json``.

    Under DDP only rank 0 evaluates and writes the report; other ranks return an empty dict.
    """
    out = Path(out)
    run = Run(cfg, out, progress)
    start = time.perf_counter()
    save_config(cfg, out / "config.yaml")
    results = {"vae": run.train_vae(), "classifier": run.train_classifier(), "diffusion": run.train_diffusion()}
    if with_pixel_baseline:
        budget = cfg.pixel.max_time_s if cfg.pixel.max_time_s is not None else results["diffusion"].seconds
        results["pixel"] = run.train_pixel_baseline(budget)
    if torch.distributed.is_available() and torch.distributed.is_initialized() and torch.distributed.get_rank() != 0:
        return {}
    metrics = evaluate_run(run, results, progress=progress)
    metrics["durations_s"]["total_this_invocation"] = time.perf_counter() - start
    write_json(out / "metrics.json", metrics)
    write_report(out, metrics)
    return metrics
