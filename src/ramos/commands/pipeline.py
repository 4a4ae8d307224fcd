"""``ramos pipeline``: prepare data, train every stage, generate and evaluate, resumably."""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_OUT = Path("runs/pipeline")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "pipeline", help="the whole motion pipeline on the embedded data set (resumable)",
        description="data -> pose VAE -> motion VAE -> latent diffusion -> one motion per label -> evaluation. "
                    "A finished stage is not redone: rerun the same command to resume.")
    p.add_argument("--config", type=Path, default=None,
                   help="pipeline config (default: configs/pipeline/default.yaml)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default: %(default)s)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ramos.pipeline import CONFIG_DIR, PipelineConfig, run_pipeline
    from ramos.utils.config import load_config

    path = args.config if args.config is not None else CONFIG_DIR / "pipeline" / "default.yaml"
    cfg = load_config(PipelineConfig, path)
    result = run_pipeline(cfg, args.out, progress=not args.no_progress)
    print(result.summary())
    return 0
