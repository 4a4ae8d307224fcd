"""``ramos pipeline``: prepare data, train every stage, generate and evaluate, resumably."""

from __future__ import annotations

import argparse
from pathlib import Path

from ramos.commands._args import add_config_args, add_trainer_args, load_stage_config, trainer_overrides
from ramos.commands.data import SOURCES

DEFAULT_OUT = Path("runs/pipeline")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "pipeline", help="the whole motion pipeline on the embedded data set or your own (resumable)",
        description="data -> pose VAE -> motion VAE -> latent diffusion -> one motion per label or prompt -> "
                    "evaluation, on the embedded set or on your files (--source, --root). Text-conditioned "
                    "where the data has captions or labels. A finished stage is not redone: rerun the same "
                    "command to resume.")
    add_config_args(p, "pipeline")
    p.add_argument("--source", choices=SOURCES, default=None,
                   help="data source format (default: the config's, builtin = the embedded set)")
    p.add_argument("--root", type=Path, default=None, help="folder (or file) of the source; not needed for builtin")
    p.add_argument("--body-model", type=Path, default=None, help="amass: folder with the SMPL-H body model files")
    p.add_argument("--babel", type=Path, default=None, metavar="DIR",
                   help="amass: BABEL annotation folder (train.json, val.json): action labels")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default: %(default)s)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_trainer_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ramos.commands._args import UserError
    from ramos.stages.pipeline import PipelineError, run_pipeline

    cfg = load_stage_config("pipeline", args, trainer_overrides(args))
    if args.source is not None:
        cfg.source = args.source
    if args.root is not None:
        cfg.root = str(args.root)
    if args.body_model is not None:
        cfg.reader["model_dir"] = str(args.body_model)
    if args.babel is not None:
        cfg.reader["babel"] = str(args.babel)
    if cfg.reader.get("babel") and cfg.source != "amass":
        raise UserError("--babel labels AMASS sequences: use it with --source amass")
    try:
        result = run_pipeline(cfg, args.out, progress=not args.no_progress)
    except PipelineError as exc:
        raise UserError(str(exc)) from None
    from ramos.utils.training import global_rank

    if global_rank() == 0:  # under DDP the other ranks only trained
        print(result.summary())
    return 0
