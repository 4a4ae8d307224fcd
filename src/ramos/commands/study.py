"""``ramos study <name>``: experiments that train several models and write a report.

``ramos study pose-vae`` compares a skeleton graph VAE with a matched MLP VAE on single poses
(see docs/pose_vae.md).
"""

from __future__ import annotations

import argparse
import math
from typing import Any

from ramos.commands._args import UserError, add_config_args, add_dataset_arg, load_stage_config, resolve_dataset


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("study", help="run a study (several trainings) and write its report",
                              description=__doc__.splitlines()[0])
    studies = p.add_subparsers(dest="study", metavar="STUDY", required=True)
    pose = studies.add_parser(
        "pose-vae", help="graph-network VAE vs MLP VAE for single poses",
        description="Train a skeleton graph VAE and an MLP VAE with the same parameter budget for each latent "
                    "size and seed on single poses of a prepared data set (the embedded one by default); write "
                    "OUT/pose_vae.md with figures under OUT/pose_vae/.")
    add_dataset_arg(pose)
    add_config_args(pose, "pose_vae")
    pose.add_argument("--quick", action="store_true",
                      help="= --config quick: latent sizes 4 and 32, one seed, short runs")
    pose.add_argument("--latents", type=int, nargs="+", default=None, metavar="D", help="latent sizes")
    pose.add_argument("--seeds", type=int, default=None, help="seeds per family and latent size")
    length = pose.add_mutually_exclusive_group()
    length.add_argument("--steps", type=int, default=None, help="optimiser steps per run")
    length.add_argument("--epochs", type=float, default=None,
                        help="passes over the training poses per run (converted to steps)")
    pose.add_argument("--families", nargs="+", choices=("graph", "mlp"), default=None, help="network families")
    pose.add_argument("--workers", type=int, default=None,
                      help="runs trained at the same time, one process each (default 2)")
    pose.add_argument("--threads", type=int, default=None, help="torch CPU threads per run (default 1)")
    pose.add_argument("--no-tensorboard", action="store_true", help="skip the per-run TensorBoard logs")
    pose.add_argument("--out", default="reports", help="report folder (default: %(default)s)")
    pose.add_argument("--runs", default="runs/pose_vae",
                      help="checkpoints and TensorBoard logs of every run (default: %(default)s)")
    pose.set_defaults(func=run_pose_vae)


def run_pose_vae(args: argparse.Namespace) -> int:
    """Run the pose VAE study from parsed arguments."""
    from ramos.stages.pose_vae.data import PoseData, PoseDataError
    from ramos.stages.pose_vae.study import run_study

    if args.quick:
        if args.config is not None:
            raise UserError("--quick is --config quick: give one of them")
        args.config = "quick"
    flags: dict[str, Any] = {key: value for key, value in (
        ("latents", args.latents), ("seeds", args.seeds), ("families", args.families), ("train.steps", args.steps),
        ("train.threads", args.threads), ("workers", args.workers)) if value is not None}
    if args.no_tensorboard:
        flags["tensorboard"] = False
    cfg = load_stage_config("pose_vae", args, flags)
    dataset = resolve_dataset(args.dataset)
    name = "embedded DeepMimic set" if args.dataset is None else str(args.dataset)
    try:
        data = PoseData.from_dataset(dataset, cfg.data)
    except PoseDataError as exc:
        raise UserError(str(exc)) from None
    if args.epochs is not None:
        cfg.train.steps = max(1, math.ceil(args.epochs * len(data.train) / cfg.train.batch_size))
        cfg.train.val_every = min(cfg.train.val_every, cfg.train.steps)
    print(f"ramos study pose-vae: {data.summary()}")
    out = run_study(cfg, data, args.out, args.runs, dataset_name=name)
    best = min((r for r in out.results if r.latent_dim == max(cfg.latents)), key=lambda r: r.mpjpe_mm)
    print(f"ramos study pose-vae: wrote {out.report} in {out.seconds / 60:.1f} min; best d={best.latent_dim}: "
          f"{best.family} MPJPE {best.mpjpe_mm:.1f} mm; encoders: "
          + ", ".join(str(p) for p in out.best_checkpoints.values()))
    return 0
