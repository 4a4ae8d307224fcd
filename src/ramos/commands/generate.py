"""``ramos generate``: sample motions from a motion diffusion checkpoint and export them.

Writes OUT/<i>_<prompt or label>.npy (float32 (T, 22, 3), HumanML3D new_joints), a stick-figure MP4
(or GIF), a .bvh and a .glb, optionally SMPL-H parameters and a BVH on the user's character, plus
OUT/index.json and OUT/index.html (a page playing them in 3D). Heavy imports happen in :func:`run`.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    from ramos.motion.export.retarget import TargetRig
    from ramos.motion.generate import MotionGenerator

DEFAULT_DIFFUSION_CKPT = Path("runs/pipeline/diffusion/last.ckpt")
"""Where ``ramos pipeline`` leaves the motion diffusion checkpoint (the default of ``--checkpoint``)."""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "generate", help="generate motions from a trained motion diffusion checkpoint",
        description="Sample motions from free text (or a label of the training data) and a length, and "
                    "write them as .npy joint positions, stick-figure animations and BVH files, plus index.json. "
                    "The output folder appears complete or not at all.",
    )
    p.add_argument("--checkpoint", type=Path, default=DEFAULT_DIFFUSION_CKPT,
                   help="motion diffusion checkpoint (default: %(default)s, written by `ramos pipeline`)")
    p.add_argument("--text", action="append", default=None, metavar="PROMPT",
                   help='what the motion shows, e.g. "a person jogs forward, swinging both arms" (repeat for '
                        "several: one motion each, or --n motions cycling through them)")
    p.add_argument("--prompts", type=Path, default=None, metavar="FILE",
                   help="a UTF-8 text file of prompts, one per line (blank lines and lines starting with # skipped)")
    p.add_argument("--label", action="append", default=None,
                   help="action label of the training data (repeat for several: motions cycle through them); "
                        "omit --text and --label for unconditional motions")
    p.add_argument("--n", type=int, default=None,
                   help="number of motions (default: one per prompt, else 8)")
    p.add_argument("--steps", type=int, default=None, help="sampling steps (default: the checkpoint's, 10)")
    p.add_argument("--guidance", type=float, default=None,
                   help="classifier-free guidance scale (default: the checkpoint's, 2, which its distilled "
                        "student serves in one pass; another scale runs the two-pass teacher)")
    p.add_argument("--sampler", choices=("ddim", "dpmsolver++", "ddpm"), default=None,
                   help="reverse-process sampler (default: the checkpoint's, dpmsolver++)")
    p.add_argument("--seconds", type=float, default=None,
                   help="length of every motion (default: drawn from the training lengths of the label, or of "
                        "all motions for free text)")
    p.add_argument("--then", nargs=2, action="append", default=None, metavar=("PROMPT", "SECONDS"),
                   help="continue the motion with this prompt (a text, or a label for a label model) for SECONDS "
                        "(repeat: one continuous motion of any length, e.g. --text 'a person walks forward' "
                        "--seconds 4 --then 'a person turns left' 2 --then 'a person runs' 6)")
    p.add_argument("--timeline", type=Path, default=None, metavar="FILE",
                   help="a YAML or JSON list of segments ({text: ..., seconds: ...} or {label: ..., seconds: ...}) "
                        "made into one continuous motion")
    p.add_argument("--before", type=Path, default=None, metavar="MOTION",
                   help="continue this motion (.npy joint positions or HumanML3D new_joint_vecs, .bvh, or AMASS .npz "
                        "with --body-model): "
                        "the output starts with it, unchanged")
    p.add_argument("--after", type=Path, default=None, metavar="MOTION",
                   help="end in this motion: with --before, generate --seconds between the two (in-betweening); "
                        "alone, lead into it")
    p.add_argument("--keyframe", nargs=2, action="append", default=None, metavar=("POSE", "SECONDS"),
                   help="pass through this pose SECONDS into the generated part (repeat for several): POSE is a motion "
                        "file as for --before (its first frame) or FILE@T (its frame at T seconds), e.g. --keyframe "
                        "mocap.bvh@2.5 3; with --before and --after as well, the keyframes lie in the gap")
    p.add_argument("--join", choices=("context", "inertialize"), default="context",
                   help="how the windows of a long motion are joined: 'context' samples each next window given the "
                        "last frames (a generated transition), 'inertialize' samples it on its own and blends it on "
                        "(smoother joins, no generated transition; docs/generation.md compares them) "
                        "(default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    p.add_argument("--video", choices=("auto", "gif", "mp4", "none"), default="auto",
                   help="animation format; auto = MP4 where ffmpeg is available, else GIF (default: %(default)s)")
    p.add_argument("--no-bvh", action="store_true", help="do not write .bvh files")
    p.add_argument("--no-glb", action="store_true", help="do not write .glb (glTF 2.0) files")
    p.add_argument("--skeleton", type=Path, default=None, metavar="CHARACTER.bvh",
                   help="also write each motion on this character's skeleton (a BVH file: CMU, Mixamo and similar "
                        "rigs; its joint names, hierarchy, rest pose, bone lengths and units are kept)")
    p.add_argument("--body-model", type=Path, default=None, metavar="DIR",
                   help="also write SMPL-H parameters (AMASS .npz layout) fitted to this SMPL-H body model "
                        "(a folder with model.npz or male/ female/ neutral/ subfolders, as for `--source amass`)")
    p.add_argument("--gender", choices=("neutral", "male", "female"), default="neutral",
                   help="body model used with --body-model (default: %(default)s)")
    p.add_argument("--no-plant-feet", action="store_true",
                   help="keep the decoder's raw output (default: the stance foot is kept from sliding)")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier generation output in --out")
    p.add_argument("--out", type=Path, required=True, help="output folder (created; must not exist or be empty)")
    p.set_defaults(func=run)


def read_prompts(path: Path) -> list[str]:
    """The prompts of a prompts file (one per line; blank and ``#`` lines skipped); errors name file and line."""
    from ramos.motion.generate import GenerationError
    from ramos.motion.text import PromptError, check_prompt

    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise GenerationError(f"{path}: cannot read prompts ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise GenerationError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    prompts = []
    for number, line in enumerate(lines, 1):
        if line.strip() and not line.lstrip().startswith("#"):
            try:
                prompts.append(check_prompt(line, f"{path}:{number}"))
            except PromptError as exc:
                raise GenerationError(str(exc)) from None
    if not prompts:
        raise GenerationError(f"{path}: no prompts (one per line)")
    return prompts


def check_exports(skeleton: Path | None, body_model: Path | None, gender: str) -> TargetRig | None:
    """Read the character skeleton and check the body model before sampling (one-line errors naming
    the file); returns the character."""
    from ramos.motion.clip import ClipError
    from ramos.motion.export import SmplExportError, load_target
    from ramos.motion.io.amass import load_body_model, model_file

    character = load_target(skeleton) if skeleton is not None else None
    if body_model is not None:
        try:
            load_body_model(str(model_file(body_model, gender)))
        except (OSError, ClipError) as exc:
            raise SmplExportError(str(exc)) from None
    return character


def _timeline(args: argparse.Namespace, texts: list[str] | None) -> list:
    """The segments asked by --timeline, or by the first prompt with --seconds and the --then ones."""
    from ramos.motion.compose import Segment, parse_timeline
    from ramos.motion.generate import GenerationError

    if args.timeline is not None:
        if texts or args.label or args.then or args.seconds is not None:
            raise GenerationError("--timeline gives the prompts and durations: no --text, --label, --seconds or --then")
        try:
            text = args.timeline.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise GenerationError(f"{args.timeline}: cannot read ({getattr(exc, 'strerror', None) or exc})") from None
        return parse_timeline(text, str(args.timeline))
    if (texts and len(texts) > 1) or (args.label and len(args.label) > 1):
        raise GenerationError("a continuous motion starts with one --text or --label; add the next ones with --then")
    if args.seconds is None:
        raise GenerationError("give the first segment's length with --seconds")
    first = Segment(texts[0] if texts else args.label[0] if args.label else None, args.seconds,
                    is_label=bool(args.label) and not texts)
    segments = [first]
    for i, (prompt, seconds) in enumerate(args.then or [], 1):
        try:
            value = float(seconds)
        except ValueError:
            raise GenerationError(f"--then {i}: the duration must be a number of seconds, got {seconds!r}") from None
        segments.append(Segment(prompt, value, is_label=first.is_label))
    return segments


def read_keyframes(given: list[list[str]], gen: MotionGenerator, frames: int,
                   body_model: Path | None) -> list[tuple[int, np.ndarray]]:
    """The poses of ``--keyframe POSE SECONDS`` as (frame of the generated part, pose (J, 3)), read as
    given motions are (:func:`~ramos.motion.compose.read_given_motion`); ``POSE`` is a file (its first frame)
    or ``FILE@T`` (its frame at T seconds). One-line errors name the file and the problem."""
    from ramos.motion.compose import read_given_motion
    from ramos.motion.generate import GenerationError

    keys, read = [], {}
    for i, (pose, seconds) in enumerate(given, 1):
        path, at = Path(pose), 0.0
        if not path.exists() and "@" in pose:
            name, _, when = pose.rpartition("@")
            try:
                path, at = Path(name), float(when)
            except ValueError:
                raise GenerationError(f"--keyframe {i}: {pose!r}: the time after @ must be seconds") from None
        try:
            t = float(seconds)
        except ValueError:
            raise GenerationError(f"--keyframe {i}: the time must be a number of seconds, got {seconds!r}") from None
        frame = round(t * gen.fps) if math.isfinite(t) else -1
        if not 0 <= frame < frames:
            raise GenerationError(f"--keyframe {i} at {seconds} s is outside the generated motion "
                                  f"(0 to {(frames - 1) / gen.fps:g} s)")
        if path not in read:
            read[path] = read_given_motion(path, gen, body_model)
        x = read[path]
        f = round(at * gen.fps)
        if not math.isfinite(at) or not 0 <= f < len(x):
            raise GenerationError(f"{path}: no frame at {at:g} s (it has {len(x) / gen.fps:g} s)")
        keys.append((frame, x[f]))
    return keys


def run_long(args: argparse.Namespace, texts: list[str] | None) -> int:
    """``ramos generate`` with --then, --timeline, --before or --after: one continuous motion per --n."""
    from ramos.motion.compose import Composer, read_given_motion
    from ramos.motion.generate import GenerationError, MotionGenerator, check_output_dir, export_motions
    from ramos.motion.postprocess import planting_shift

    segments = _timeline(args, texts)
    if (args.after is not None or args.keyframe) and len(segments) != 1:
        raise GenerationError("in-betweening (--after, --keyframe) takes one prompt and the generated part's "
                              "--seconds, not a timeline")
    n = args.n if args.n is not None else 1
    if n < 1:
        raise GenerationError(f"--n must be at least 1, got {n}")
    check_output_dir(args.out, args.overwrite)
    character = check_exports(args.skeleton, args.body_model, args.gender)
    if not args.checkpoint.is_file():
        raise GenerationError(f"{args.checkpoint}: checkpoint not found (train one with `ramos pipeline` or "
                              "`ramos train motion-diffusion`, or pass --checkpoint)")
    gen = MotionGenerator.load(args.checkpoint)
    composer = Composer(gen, method=args.join, steps=args.steps, sampler=args.sampler, guidance=args.guidance)
    before = None if args.before is None else read_given_motion(args.before, gen, args.body_model)
    after = None if args.after is None else read_given_motion(args.after, gen, args.body_model)
    frames = composer.check_segments(segments)
    keys = read_keyframes(args.keyframe or [], gen, frames[0], args.body_model)
    composer.check_keyframes(keys, frames[0])
    between = after is not None or bool(keys)
    motions, timelines = [], []
    for k in range(n):
        seed = args.seed + 1000 * k
        if between:
            motion, _ = composer.inbetween(before, after, frames[0], segments[0], seed, keys)
            start = 0 if before is None else len(before)
            parts = [{"prompt": segments[0].prompt, "start": start, "end": start + frames[0]}]
        else:
            result = composer.compose(segments, seed, before)
            motion, parts = result.positions, result.segments
            if not args.no_plant_feet and gen.skeleton.feet:
                # The generated frames only: given frames stay as they are.
                start = 0 if before is None else len(before)
                motion = motion.copy()
                motion[start:] += planting_shift(motion[start:], gen.skeleton, gen.fps)[:, None, :]
        motions.append(motion)
        timelines.append(parts)
    prompt = " | ".join(f"{s.prompt or 'unconditional'} ({s.seconds:g} s)" for s in segments)
    settings = {"seed": args.seed, "n": n, "timeline": [{"prompt": s.prompt, "seconds": s.seconds,
                                                         "label": s.is_label} for s in segments],
                "segments_frames": timelines, "before": None if args.before is None else str(args.before),
                "after": None if args.after is None else str(args.after),
                "keyframes": [{"pose": pose, "seconds": float(t)} for pose, t in args.keyframe or []],
                "method": composer.method, "plant_feet": not args.no_plant_feet and not between,
                "checkpoint": str(args.checkpoint), **gen.sampling.to_dict()}
    out = export_motions(motions, args.out, gen.fps, gen.skeleton, [None] * n, [args.seed + 1000 * k for k in range(n)],
                         settings, video=args.video, bvh=not args.no_bvh, overwrite=args.overwrite,
                         prompts=[prompt] * n, glb=not args.no_glb, body_model=args.body_model,
                         gender=args.gender, character=character)
    seconds = sum(len(m) for m in motions) / gen.fps
    print(f"ramos generate: {n} continuous motion(s) of {len(segments)} segment(s) ({seconds:.1f} s in all) "
          f"-> {out}/index.json")
    return 0


def run(args: argparse.Namespace) -> int:
    from ramos.commands._args import UserError
    from ramos.motion.export import RetargetError, SmplExportError
    from ramos.motion.generate import GenerationError, MotionGenerator, check_output_dir, export_motions
    from ramos.motion.text import PromptError, check_prompt

    try:
        texts = None
        if args.text is not None or args.prompts is not None:
            if args.label:
                raise GenerationError("ask with --text/--prompts or with --label, not both")
            try:
                texts = [check_prompt(t, f"--text {i + 1}") for i, t in enumerate(args.text or [])]
            except PromptError as exc:
                raise GenerationError(str(exc)) from None
            texts += read_prompts(args.prompts) if args.prompts is not None else []
        if args.then or args.timeline is not None or args.before is not None or args.after is not None or args.keyframe:
            return run_long(args, texts)
        n = args.n if args.n is not None else len(texts) if texts else 8
        if n < 1:
            raise GenerationError(f"--n must be at least 1, got {n}")
        check_output_dir(args.out, args.overwrite)  # before the slow part
        character = check_exports(args.skeleton, args.body_model, args.gender)
        if not args.checkpoint.is_file():
            raise GenerationError(f"{args.checkpoint}: checkpoint not found (train one with `ramos pipeline` or "
                                  "`ramos train motion-diffusion`, or pass --checkpoint)")
        gen = MotionGenerator.load(args.checkpoint)
        labels = texts_n = None
        if texts:
            texts_n = [texts[i % len(texts)] for i in range(n)]
        else:
            labels = [args.label[i % len(args.label)] for i in range(n)] if args.label else [None] * n
        result = gen.sample(labels, steps=args.steps, sampler=args.sampler, guidance=args.guidance,
                            seconds=args.seconds, seed=args.seed, plant_feet=not args.no_plant_feet, texts=texts_n)
        out = export_motions(result.motions, args.out, gen.fps, gen.skeleton, result.labels, result.seeds,
                             result.settings, video=args.video, bvh=not args.no_bvh, overwrite=args.overwrite,
                             prompts=result.prompts, glb=not args.no_glb, body_model=args.body_model,
                             gender=args.gender, character=character)
    except (GenerationError, RetargetError, SmplExportError) as exc:
        raise UserError(str(exc)) from None
    seconds = sum(result.frames) / gen.fps
    print(f"ramos generate: {len(result.motions)} motions ({seconds:.1f} s in all) -> {out}/index.json")
    return 0
