"""``ramos analyze <what>``: reports on trained models (``latents``: the motion VAE's latent space).

Further analyses are added like the stages of ``ramos train``: an ``_add_<name>(sub)`` function
listed in :data:`ANALYSES`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from ramos.commands._args import add_dataset_arg, resolve_dataset


def _add_latents(sub: Any) -> None:
    p = sub.add_parser("latents", help="latent space of a motion VAE: maps, clusters, interpolation",
                       description="Encode a data set with a trained motion VAE and write OUT/latents.md with "
                                   "PCA/t-SNE maps, k-means clusters, an interpolation strip and a TensorBoard "
                                   "projector export.")
    p.add_argument("--vae", required=True, help="motion VAE checkpoint (OUT/motion_vae.ckpt of ramos train motion-vae)")
    add_dataset_arg(p)
    p.add_argument("--out", default="reports", help="report folder (default: reports)")
    p.add_argument("--split", default="train", choices=["train", "val", "test", "all"],
                   help="windows to encode (default: train)")
    p.add_argument("--clusters", type=int, default=8, help="k of k-means (default: 8)")
    p.add_argument("--max-windows", type=int, default=3000, help="random subset size cap (default: 3000)")
    p.add_argument("--no-tsne", action="store_true", help="skip the t-SNE map (the slowest part)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_run_latents)


def _run_latents(args: argparse.Namespace) -> int:
    from ramos.motion.dataset import MotionDataset
    from ramos.stages.motion_vae.latents import analyze_latents
    from ramos.vae import VAEModule

    vae = VAEModule.load(args.vae)
    data = MotionDataset(resolve_dataset(args.dataset, progress=not args.no_progress))
    report = analyze_latents(vae, data, args.out, split=args.split, k=args.clusters, max_windows=args.max_windows,
                             seed=args.seed, tsne=not args.no_tsne, vae_path=args.vae, progress=not args.no_progress)
    print(f"latent analysis -> {report}")
    return 0


ANALYSES: dict[str, Callable[[Any], None]] = {
    "latents": _add_latents,
}


def register(subparsers: Any) -> None:
    """Add ``ramos analyze`` and its sub-subcommands."""
    p = subparsers.add_parser("analyze", help="reports on trained models (latents, ...)",
                              description="Analyse a trained model; see `ramos analyze WHAT --help`.")
    sub = p.add_subparsers(dest="what", metavar="WHAT", required=True)
    for add in ANALYSES.values():
        add(sub)
