"""``ramos train <model>``: train one stage on a prepared data set; each trainable model is a sub-subcommand.

These functions only parse arguments, build the stage's config and call the stage
(:mod:`ramos.stages`); heavy imports happen inside them so that ``ramos --help`` stays fast.
"""

from __future__ import annotations

import argparse
from typing import Any

from ramos.commands._args import (
    add_config_args,
    add_dataset_arg,
    add_trainer_args,
    load_stage_config,
    resolve_dataset,
    trainer_overrides,
)


def _parser(sub: Any, name: str, stage: str, help: str, description: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help, description=description)
    add_dataset_arg(p)
    add_config_args(p, stage)
    p.add_argument("--out", required=True, help="output folder (checkpoint, metrics, TensorBoard logs)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def _motion_vae(args: argparse.Namespace) -> int:
    from ramos.stages.motion_vae.train import summary_line, train_motion_vae

    cfg = load_stage_config("motion_vae", args, trainer_overrides(args))
    result = train_motion_vae(cfg, resolve_dataset(args.dataset, not args.no_progress), args.out,
                              progress=not args.no_progress)
    print(summary_line(result))
    return 0


def _motion_diffusion(args: argparse.Namespace) -> int:
    from ramos.stages.motion_diffusion import train_motion_diffusion

    cfg = load_stage_config("motion_diffusion", args, trainer_overrides(args))
    dataset = resolve_dataset(args.dataset, not args.no_progress)
    # MotionDiffusionError (a RaMoS ValueError) is printed by ramos.cli as a one-line error.
    result = train_motion_diffusion(args.vae, dataset, args.out, cfg, progress=not args.no_progress)
    loss = "" if result.final_loss is None else f", final loss {result.final_loss:.4f}"
    print(f"ramos train motion-diffusion: {result.steps_text} in {result.seconds:.0f} s{loss} -> {result.checkpoint}")
    return 0


def _raw_baseline(args: argparse.Namespace) -> int:
    from ramos.stages.raw_baseline import train_raw_baseline

    cfg = load_stage_config("raw_baseline", args)
    path = train_raw_baseline(resolve_dataset(args.dataset, not args.no_progress), args.out, cfg,
                              max_time_s=args.seconds, progress=not args.no_progress)
    print(f"ramos train raw-baseline: {(path.parent / 'train_seconds.txt').read_text().strip()} -> {path}")
    return 0


def register(subparsers: Any) -> None:
    """Add ``ramos train`` and its per-model sub-subcommands."""
    p = subparsers.add_parser("train", help="train a model stage (motion-vae, motion-diffusion, raw-baseline)",
                              description="Train one model stage; see `ramos train MODEL --help`.")
    sub = p.add_subparsers(dest="model", metavar="MODEL", required=True)

    vae = _parser(sub, "motion-vae", "motion_vae", "motion VAE: 200-frame windows -> latent vectors",
                  "Train the motion VAE on a prepared data set and evaluate it on the held-out split "
                  "(writes OUT/motion_vae.ckpt, OUT/metrics.json, OUT/tb/).")
    add_trainer_args(vae)
    vae.set_defaults(func=_motion_vae)

    diffusion = _parser(
        sub, "motion-diffusion", "motion_diffusion", "label- and length-conditional motion latent diffusion",
        "Latent diffusion in the space of a trained motion VAE (frozen), conditioned on the label (classifier-free "
        "guidance) and the length in seconds, then guidance distillation and decoder tuning. Writes OUT/last.ckpt "
        "(self-contained: includes the VAE and the sampling settings), OUT/config.yaml, OUT/summary.json, sample "
        "strips in OUT/samples and TensorBoard logs in OUT/tb. Resumes an interrupted run.")
    diffusion.add_argument("--vae", required=True,
                           help="motion VAE checkpoint (OUT/motion_vae.ckpt of `ramos train motion-vae`)")
    add_trainer_args(diffusion)
    diffusion.set_defaults(func=_motion_diffusion)

    raw = _parser(sub, "raw-baseline", "raw_baseline", "the raw-space (MDM-style) diffusion baseline",
                  "Train the same diffusion stage directly on the motion features (no VAE) with an MDM-size "
                  "transformer, for a wall-clock budget (writes OUT/raw_baseline.ckpt, OUT/train_seconds.txt).")
    raw.add_argument("--seconds", type=float, default=None,
                     help="wall-clock training budget (default: the config's max_time_s)")
    raw.set_defaults(func=_raw_baseline)
