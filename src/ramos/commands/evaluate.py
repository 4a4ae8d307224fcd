"""``ramos evaluate``: compare generated motions with real ones and write reports/generation.md."""

from __future__ import annotations

import argparse
from pathlib import Path

from ramos.commands._args import add_config_args, add_dataset_arg, load_stage_config, resolve_dataset


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "evaluate", help="evaluate generated motions (FID, accuracy, physics) against real data",
        description="Sample every label from the diffusion model (and the raw-space baseline), score the "
                    "motions with a feature extractor trained on the data set and with physics metrics, "
                    "and write OUT/generation.md, OUT/generation.json and figures. When the data set has "
                    "captions, the text-to-motion metrics (R-precision, MM-Dist, FID, diversity, multimodality "
                    "in the space of a text-motion retrieval model trained on it) of real motions and of a "
                    "text-conditioned model are added. Without labels there are no label metrics: the text "
                    "metrics (with physics) when there are captions, else the physics of unconditional samples.")
    p.add_argument("--diffusion", required=True, type=Path, help="diffusion checkpoint (latent model)")
    p.add_argument("--baseline", type=Path, help="raw-space baseline checkpoint to evaluate beside it")
    add_dataset_arg(p)
    p.add_argument("--evaluator", type=Path,
                   help="evaluator checkpoint (default: OUT/evaluator.ckpt, trained when absent)")
    p.add_argument("--retrieval", type=Path,
                   help="text-motion retrieval checkpoint for the text metrics (data sets with captions; default: "
                        "OUT/retrieval.ckpt, trained when absent)")
    p.add_argument("--t2m-evaluator", type=Path, metavar="DIR",
                   help="folder with Guo et al.'s text-motion evaluator (text_mot_match/model/finest.tar, meta/mean.npy "
                        "and std.npy, the GloVe our_vab_* files): the text metrics in the papers' feature space "
                        "instead of a retrieval model trained here (docs/evaluation.md says what compares)")
    add_config_args(p, "evaluation")
    p.add_argument("--n-per-label", type=int, help="generated motions per label")
    p.add_argument("--steps", type=int, help="sampling steps (default: each checkpoint's)")
    p.add_argument("--sampler", choices=["ddpm", "ddim", "dpmsolver++"], help="sampler (default: each checkpoint's)")
    p.add_argument("--guidance", type=float, help="classifier-free guidance scale (default: each checkpoint's)")
    p.add_argument("--labels", nargs="+", help="evaluate only these labels")
    p.add_argument("--seed", type=int, help="seed of the reference draw and of sampling")
    p.add_argument("--out", type=Path, default=Path("reports"), help="output folder (default: reports/)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ramos.motion.dataset import MotionDataset
    from ramos.stages.evaluation import checkpoint_generator, evaluate, latent_generators, latent_text_generators
    from ramos.stages.raw_baseline import is_raw_baseline

    overrides = {k: v for k, v in {"n_per_label": args.n_per_label, "steps": args.steps, "sampler": args.sampler,
                                   "guidance": args.guidance, "seed": args.seed}.items() if v is not None}
    cfg = load_stage_config("evaluation", args, overrides)
    for path in (args.diffusion, args.baseline, args.evaluator, args.retrieval):
        if path is not None and not path.is_file():
            raise FileNotFoundError(f"{path}: checkpoint not found")
    t2m = None
    if args.t2m_evaluator is not None:
        from ramos.commands._args import UserError
        from ramos.stages.evaluation.t2m import T2MEvaluator, T2MEvaluatorError

        try:
            t2m = T2MEvaluator.load(args.t2m_evaluator)
        except T2MEvaluatorError as exc:
            raise UserError(str(exc)) from None
    data = MotionDataset(resolve_dataset(args.dataset))
    # A latent model gets two rows, its decoder's output and the same motions with planted feet.
    models = ({"latent": checkpoint_generator(args.diffusion, data.labels, cfg)} if is_raw_baseline(args.diffusion)
              else latent_generators(args.diffusion, data.labels, cfg))
    if args.baseline is not None:
        models["raw baseline"] = checkpoint_generator(args.baseline, data.labels, cfg)
    text_models = {} if is_raw_baseline(args.diffusion) else latent_text_generators(args.diffusion, cfg)
    results = evaluate(models, data, args.out, cfg, evaluator=args.evaluator, labels=args.labels,
                       text_models=text_models, retrieval=args.retrieval, t2m=t2m)
    for name, m in results.get("models", {}).items():
        o = m["overall"]
        print(f"{name}: FID {o['fid']:.3f}  accuracy {o['accuracy']:.3f}  foot skating {o['foot_skating']:.3f}  "
              f"jitter {o['jitter']:.1f}  ({o['n']} motions)")
    for why in results.get("skipped", {}).values():
        print(f"not computed: {why}")
    for name, m in (results.get("text") or {}).get("models", {}).items():
        print(f"{name} (text): R-precision top-1/2/3 {m['top1']['mean']:.3f}/{m['top2']['mean']:.3f}/"
              f"{m['top3']['mean']:.3f}  MM-Dist {m['mm_dist']['mean']:.3f}  FID {m['fid']['mean']:.3f}")
    physics = {**(results.get("text") or {}).get("physics", {}), **(results.get("physics") or {}).get("models", {})}
    if "models" not in results:
        for name, o in physics.items():
            print(f"{name} (physics): foot skating {o['foot_skating']:.3f}  jitter {o['jitter']:.1f}  bone std "
                  f"{o['bone_std']:.4f}  ({o['n']} motions)")
    print(f"report: {args.out / 'generation.md'}")
    return 0
