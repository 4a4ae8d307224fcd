"""``ramos generate``: sample motions from a motion diffusion checkpoint and export them.

Writes OUT/<i>_<label>.npy (float32 (T, 22, 3), HumanML3D new_joints), a stick-figure GIF (or
MP4), a .bvh and OUT/index.json. Heavy imports happen in :func:`run`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_DIFFUSION_CKPT = Path("runs/pipeline/diffusion/last.ckpt")
"""Where ``ramos pipeline`` leaves the motion diffusion checkpoint (the default of ``--checkpoint``)."""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "generate", help="generate motions from a trained motion diffusion checkpoint",
        description="Sample motions (label- and length-conditional latent diffusion) and write them as "
                    ".npy joint positions, stick-figure animations and BVH files, plus index.json. "
                    "The output folder appears complete or not at all.",
    )
    p.add_argument("--checkpoint", type=Path, default=DEFAULT_DIFFUSION_CKPT,
                   help="motion diffusion checkpoint (default: %(default)s, written by `ramos pipeline`)")
    p.add_argument("--label", action="append", default=None,
                   help="action label (repeat for several: motions cycle through them); omit for unconditional")
    p.add_argument("--n", type=int, default=8, help="number of motions (default: %(default)s)")
    p.add_argument("--steps", type=int, default=None, help="sampling steps (default: the checkpoint's, 10)")
    p.add_argument("--guidance", type=float, default=None,
                   help="classifier-free guidance scale (default: the checkpoint's, 2, which its distilled "
                        "student serves in one pass; another scale runs the two-pass teacher)")
    p.add_argument("--sampler", choices=("ddim", "dpmsolver++", "ddpm"), default=None,
                   help="reverse-process sampler (default: the checkpoint's, dpmsolver++)")
    p.add_argument("--seconds", type=float, default=None,
                   help="length of every motion (default: drawn from the label's training lengths)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    p.add_argument("--video", choices=("auto", "gif", "mp4", "none"), default="auto",
                   help="animation format; auto = MP4 where ffmpeg is available, else GIF (default: %(default)s)")
    p.add_argument("--no-bvh", action="store_true", help="do not write .bvh files")
    p.add_argument("--no-plant-feet", action="store_true",
                   help="keep the decoder's raw output (default: the stance foot is kept from sliding)")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier generation output in --out")
    p.add_argument("--out", type=Path, required=True, help="output folder (created; must not exist or be empty)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ramos.commands._args import UserError
    from ramos.motion.generate import GenerationError, MotionGenerator, check_output_dir, export_motions

    try:
        if args.n < 1:
            raise GenerationError(f"--n must be at least 1, got {args.n}")
        check_output_dir(args.out, args.overwrite)  # before the slow part
        if not args.checkpoint.is_file():
            raise GenerationError(f"{args.checkpoint}: checkpoint not found (train one with `ramos pipeline` or "
                                  "`ramos train motion-diffusion`, or pass --checkpoint)")
        gen = MotionGenerator.load(args.checkpoint)
        labels = [args.label[i % len(args.label)] for i in range(args.n)] if args.label else [None] * args.n
        result = gen.sample(labels, steps=args.steps, sampler=args.sampler, guidance=args.guidance, seconds=args.seconds,
                            seed=args.seed, plant_feet=not args.no_plant_feet)
        out = export_motions(result.motions, args.out, gen.fps, gen.skeleton, result.labels, result.seeds,
                             result.settings, video=args.video, bvh=not args.no_bvh, overwrite=args.overwrite)
    except GenerationError as exc:
        raise UserError(str(exc)) from None
    seconds = sum(result.frames) / gen.fps
    print(f"ramos generate: {len(result.motions)} motions ({seconds:.1f} s in all) -> {out}/index.json")
    return 0
