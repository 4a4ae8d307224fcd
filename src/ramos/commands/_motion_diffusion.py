"""``ramos train motion-diffusion``: listed in :data:`ramos.commands.train.STAGES`, kept in its own
module so the training subcommands evolve independently. Heavy imports happen in :func:`run`."""

from __future__ import annotations

import argparse
from typing import Any


def register(train_subparsers: Any) -> None:
    """Add ``motion-diffusion`` to the subparsers of ``ramos train``."""
    from ramos.commands.train import CONFIG_DIR, _add_common

    p = train_subparsers.add_parser(
        "motion-diffusion", help="label- and length-conditional motion latent diffusion",
        description="Latent diffusion in the space of a trained motion VAE (frozen), conditioned on the "
                    "label (classifier-free guidance) and the length in seconds. Writes OUT/last.ckpt "
                    "(self-contained: includes the VAE), OUT/config.yaml, OUT/summary.json, sample "
                    "strips in OUT/samples and TensorBoard logs in OUT/tb. Resumes an interrupted run.",
    )
    p.add_argument("--vae", required=True,
                   help="motion VAE checkpoint (OUT/motion_vae.ckpt of `ramos train motion-vae`)")
    p.add_argument("--dataset", default=None,
                   help="prepared data set folder (default: the embedded set, prepared on first use)")
    _add_common(p, CONFIG_DIR / "motion_diffusion" / "default.yaml")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ramos.commands.train import parse_overrides, resolve_dataset
    from ramos.motion.diffusion_stage import MotionDiffusionConfig, train_motion_diffusion
    from ramos.utils.config import load_config

    cfg = load_config(MotionDiffusionConfig, args.config, parse_overrides(args.set))
    dataset = resolve_dataset(args.dataset, progress=not args.no_progress)
    # MotionDiffusionError (a RaMoS ValueError) is printed by ramos.cli as a one-line error.
    result = train_motion_diffusion(args.vae, dataset, args.out, cfg, progress=not args.no_progress)
    loss = "" if result.final_loss is None else f", final loss {result.final_loss:.4f}"
    print(f"ramos train motion-diffusion: {result.steps_text} in {result.seconds:.0f} s{loss} -> {result.checkpoint}")
    return 0
