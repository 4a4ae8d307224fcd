"""``ramos pipeline``: prepare data, train every stage, generate and evaluate, resumably."""

from __future__ import annotations

import argparse
from pathlib import Path

from ramos.commands._args import add_config_args, load_stage_config

DEFAULT_OUT = Path("runs/pipeline")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "pipeline", help="the whole motion pipeline on the embedded data set (resumable)",
        description="data -> pose VAE -> motion VAE -> latent diffusion -> one motion per label -> evaluation. "
                    "A finished stage is not redone: rerun the same command to resume.")
    add_config_args(p, "pipeline")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default: %(default)s)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ramos.stages.pipeline import run_pipeline

    cfg = load_stage_config("pipeline", args)
    result = run_pipeline(cfg, args.out, progress=not args.no_progress)
    print(result.summary())
    return 0
