"""Long motions (issue 17): speed, the joins' physics, recognition of each segment, in-betweening.

    python benchmarks/bench_long.py --pipeline runs/pipeline [--timelines 24] [--repeats 5]

On a finished `ramos pipeline` folder (its diffusion checkpoint, data set, and the evaluation's label
evaluator and retrieval model under reports/), for each join method of ``ramos.motion.compose``
("context": the next window given the last frames; "inertialize": windows on their own, blended):

- **speed**: a 60 s motion from 6 prompts of 10 s, median of ``--repeats`` runs on 2 threads
  (target: under 0.6 s, >= 100x real time);
- **joins**: over ``--timelines`` timelines of 6 segments (labels drawn at random, 2-10 s each), the
  jerk (mean |d^3 x / dt^3| of the joints, m/s^3, as ``metrics.jitter``) and foot skating in the 20
  frames around every join, against the same measures on 20-frame pieces at random places inside
  real windows of the two labels that meet there, one of each per join (targets: <= 1.5x); the
  largest root step and facing change at a join against the largest frame-to-frame ones of the
  real windows (target: no larger);
- **recognition**: each segment (canonicalised) classified by the label evaluator and, with its
  label's prompt, ranked among 32 captions by the retrieval model (top-3), against single windows of
  the same labels and lengths (target: >= 0.8x the single-window rate); also every segment after
  the first without its first second (is a low rate the transition's time, or the whole segment?);
  the joins' jerk and skating are also given as ``ramos generate`` writes the motion (stance foot
  planted, its default);
- **in-betweening** (context only): real windows' first and last 0.5 s given, 4 s generated between
  with the window's label: the decoder's mean joint error at the given frames before it is blended
  away (the output holds them exactly: measured too), the generated frames' skating and jitter
  against the real windows', and jerk and skating in the 20 frames around each boundary between given
  and generated frames against the real window's same frames;
- **keyframes** (context only): 24 real 10 s windows' poses every ``--key-every`` seconds (and their
  last frame) given, the rest generated with the window's label: the decoder's error at the keyframes
  before the blend and the output's, skating and jitter of the whole motion against the real window,
  jerk and skating in the 20 frames around each inner keyframe against the real window's same
  frames; the same for the keyframes interpolated linearly (the field's baseline).

``--parts`` picks what to measure (default: all). Prints one line per figure and writes benchmarks/results/long.json.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

RESULTS = Path(__file__).resolve().parent / "results" / "long.json"
AROUND = 10  # frames on each side of a join


def _jerk(x: np.ndarray, fps: float) -> float:
    from ramos.motion.metrics import jitter

    return jitter(x, fps)


def _facing(x: np.ndarray, skeleton) -> np.ndarray:
    from ramos.motion.preprocess import facing_direction

    return np.array([np.arctan2(*facing_direction(p, skeleton)[[0, 2]]) for p in x])


def _angle_steps(a: np.ndarray) -> np.ndarray:
    return np.abs((np.diff(a) + np.pi) % (2 * np.pi) - np.pi)


def main() -> None:
    from ramos.motion import metrics as M
    from ramos.motion.compose import Composer, Segment
    from ramos.motion.dataset import MotionDataset
    from ramos.motion.generate import MotionGenerator
    from ramos.motion.postprocess import planting_shift
    from ramos.motion.preprocess import canonicalize
    from ramos.motion.text import label_prompt, text_encoder
    from ramos.stages.evaluation.evaluator import classify, load_evaluator
    from ramos.stages.evaluation.retrieval import embed_motions, embed_texts, load_retrieval, r_precision
    from ramos.utils.atomic import write_json

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pipeline", required=True)
    ap.add_argument("--timelines", type=int, default=24)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--fit-steps", type=int, default=None, help="Composer fit_steps (default: its own)")
    ap.add_argument("--blend-s", type=float, default=None, help="Composer blend_s (default: its own)")
    ap.add_argument("--guidance", type=float, default=None, help="Composer guidance (default: the checkpoint's)")
    ap.add_argument("--tail-s", type=float, default=None, help="Composer tail_s (default: its own)")
    ap.add_argument("--candidates", type=int, default=None, help="Composer candidates (default: its own)")
    ap.add_argument("--context-until", type=int, default=None,
                    help="Composer context_until (default: its own; 999: the known frames at every step)")
    ap.add_argument("--methods", default="context,inertialize")
    ap.add_argument("--parts", default="joins,inbetween,keyframes",
                    help="what to measure (default: %(default)s; joins covers speed and recognition)")
    ap.add_argument("--key-every", type=float, default=1.0, help="keyframes: seconds between given poses")
    ap.add_argument("--results", type=Path, default=RESULTS, help="JSON to write (default: %(default)s)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    run = Path(args.pipeline)
    gen = MotionGenerator.load(run / "diffusion" / "last.ckpt")
    data = MotionDataset(run / "data")
    sk, fps = gen.skeleton, gen.fps
    net, ev_labels, _ = load_evaluator(run / "reports" / "evaluator.ckpt")
    retrieval, _ = load_retrieval(run / "reports" / "retrieval.ckpt")
    labels = [lab for lab in data.labels if lab in ev_labels]
    rng = np.random.default_rng(0)
    out: dict = {"date": _dt.date.today().isoformat(), "machine": platform.platform(), "pipeline": str(run),
                 "threads": 2, "methods": {}}

    # Real reference: random 20-frame pieces of full real windows, and their frame-to-frame maxima.
    train = data.split_indices("train")
    full = train[data.lengths[train] == data.window]
    real_idx = [int(i) for i in rng.choice(full, min(400, len(full)), replace=False)]
    real = [np.asarray(data.windows[i], np.float32) for i in real_idx]
    by_label: dict[str, list[int]] = {}
    for i in full:
        by_label.setdefault(data.labels[data.label_id(int(i))], []).append(int(i))

    def real_piece(label: str) -> np.ndarray:
        w = np.asarray(data.windows[int(rng.choice(by_label[label]))], np.float32)
        s = int(rng.integers(0, len(w) - 2 * AROUND))
        return w[s:s + 2 * AROUND]

    real_root_step = float(max(np.linalg.norm(np.diff(w[:, sk.root, [0, 2]], axis=0), axis=-1).max() for w in real))
    real_turn = float(max(_angle_steps(_facing(w, sk)).max() for w in real))
    out["real"] = {"max_root_step_m": real_root_step, "max_facing_step_rad": real_turn, "windows": len(real)}
    print(f"real: largest root step {real_root_step * 100:.1f} cm, largest facing step {np.degrees(real_turn):.1f} deg "
          f"(frame to frame, {len(real)} windows)")

    six = [Segment(lab, 10.0, is_label=True) for lab in (labels * 6)[:6]]
    labels = [lab for lab in labels if lab in by_label]
    timelines = [[Segment(str(rng.choice(labels)), float(rng.integers(2, 11)), is_label=True) for _ in range(6)]
                 for _ in range(args.timelines)]
    encoder = text_encoder()
    opts = {k: v for k, v in (("fit_steps", args.fit_steps), ("blend_s", args.blend_s), ("guidance", args.guidance),
                                         ("tail_s", args.tail_s), ("context_until", args.context_until),
                                         ("candidates", args.candidates))
            if v is not None}
    out["composer_options"] = opts
    parts = args.parts.split(",")
    for method in args.methods.split(",") if "joins" in parts else []:
        composer = Composer(gen, method=method, **opts)
        composer.compose(six[:2], seed=99)  # warm-up: traces the frozen networks
        times = []
        for r in range(args.repeats):
            t0 = time.perf_counter()
            composer.compose(six, seed=r)
            times.append(time.perf_counter() - t0)
        speed = statistics.median(times)
        res: dict = {"seconds_60s_6_prompts": speed, "x_real_time": 60.0 / speed, "runs": times}
        print(f"{method}: 60 s from 6 prompts in {speed * 1000:.0f} ms (median of {len(times)}; "
              f"{60 / speed:.0f}x real time)")
        jerks, skate_pieces, root_steps, turns, offsets, real_pieces = [], [], [], [], [], []
        planted_jerks, planted_pieces = [], []
        segs, seg_labels, singles_len, later, later_labels = [], [], [], [], []
        for k, timeline in enumerate(timelines):
            result = composer.compose(timeline, seed=1000 + k)
            x = result.positions
            # What `ramos generate` writes: the same motion with its stance foot planted (its default).
            x_planted = x + planting_shift(x, sk, fps)[:, None, :]
            offsets += result.offsets_m
            starts = [seg["start"] for seg in result.segments]
            for j in result.joins:
                k_after = int(np.searchsorted(starts, j, side="right")) - 1
                k_before = int(np.searchsorted(starts, j - 1, side="right")) - 1
                real_pieces += [real_piece(timeline[k_before].prompt), real_piece(timeline[k_after].prompt)]
                piece = x[j - AROUND:j + AROUND]
                jerks.append(_jerk(piece, fps))
                skate_pieces.append(piece)
                planted_jerks.append(_jerk(x_planted[j - AROUND:j + AROUND], fps))
                planted_pieces.append(x_planted[j - AROUND:j + AROUND])
                root_steps.append(float(np.linalg.norm(x[j, sk.root, [0, 2]] - x[j - 1, sk.root, [0, 2]])))
                turns.append(float(_angle_steps(_facing(x[j - 1:j + 1], sk))[0]))
            for i, seg in enumerate(result.segments):
                segs.append(canonicalize(x[seg["start"]:seg["end"]], sk))
                seg_labels.append(seg["prompt"])
                singles_len.append(seg["end"] - seg["start"])
                if i > 0 and seg["end"] - seg["start"] > 2 * round(fps):  # the segment after its first second
                    later.append(canonicalize(x[seg["start"] + round(fps):seg["end"]], sk))
                    later_labels.append(seg["prompt"])
        jerk, skate = float(np.mean(jerks)), M.foot_skating_ratio(np.stack(skate_pieces), sk, fps)
        real_jerk = float(np.mean([_jerk(p, fps) for p in real_pieces]))
        real_skate = M.foot_skating_ratio(np.stack(real_pieces), sk, fps)
        res["joins"] = {"n": len(jerks), "real_jerk_mps3": real_jerk, "real_skating": real_skate, "jerk_mps3": jerk, "jerk_ratio": jerk / real_jerk, "skating": skate,
                        "skating_ratio": skate / max(real_skate, 1e-9), "max_root_step_m": max(root_steps),
                        "max_facing_step_rad": max(turns), "mean_offset_m": float(np.mean(offsets)) if offsets else 0.0}
        planted_jerk = float(np.mean(planted_jerks))
        planted_skate = M.foot_skating_ratio(np.stack(planted_pieces), sk, fps)
        res["joins"]["as_written"] = {"jerk_mps3": planted_jerk, "jerk_ratio": planted_jerk / real_jerk,
                                      "skating": planted_skate, "skating_ratio": planted_skate / max(real_skate, 1e-9)}
        print(f"{method}: the same joins as `ramos generate` writes them (stance foot planted): jerk "
              f"{planted_jerk / real_jerk:.2f}x real, skating {planted_skate / max(real_skate, 1e-9):.2f}x real")
        print(f"{method}: {len(jerks)} joins: jerk {jerk:.0f} m/s^3 ({jerk / real_jerk:.2f}x real {real_jerk:.0f}), skating "
              f"{skate:.3f} ({skate / max(real_skate, 1e-9):.2f}x real {real_skate:.3f}), largest root step {max(root_steps) * 100:.1f} cm, "
              f"largest facing step {np.degrees(max(turns)):.1f} deg, decoder offset at the joins "
              f"{np.mean(offsets) * 100 if offsets else 0:.1f} cm (blended away)")
        # Recognition: segments against single windows of the same labels and lengths.
        singles = gen.sample(labels=seg_labels, frames=singles_len, seed=7, plant_feet=False).motions
        inside = [m[s:s + 2 * AROUND] for m in singles if len(m) > 2 * AROUND
                  for s in [int(rng.integers(0, len(m) - 2 * AROUND))]]
        res["joins"]["generated_inside_jerk_mps3"] = float(np.mean([_jerk(p, fps) for p in inside]))
        res["joins"]["generated_inside_skating"] = M.foot_skating_ratio(np.stack(inside), sk, fps)
        print(f"{method}: for comparison, 20-frame pieces inside single generated windows of the segments' labels: "
              f"jerk {res['joins']['generated_inside_jerk_mps3']:.0f} m/s^3, skating {res['joins']['generated_inside_skating']:.3f}")
        truth = np.array([ev_labels.index(lab) for lab in seg_labels])
        acc_seg = float((classify(net, segs) == truth).mean())
        acc_one = float((classify(net, singles) == truth).mean())
        names = sorted(set(seg_labels))
        text_feats = embed_texts(retrieval, encoder.encode([label_prompt(n) for n in names]))
        ids = np.array([names.index(lab) for lab in seg_labels])
        r_seg = r_precision(embed_motions(retrieval, segs), text_feats[ids], text_ids=ids)[2]
        r_one = r_precision(embed_motions(retrieval, singles), text_feats[ids], text_ids=ids)[2]
        acc_later = float((classify(net, later) == np.array([ev_labels.index(lab) for lab in later_labels])).mean())
        res["recognition"] = {"segments": len(segs), "label_acc_segments": acc_seg, "label_acc_single": acc_one,
                              "label_acc_after_first_second": acc_later, "segments_after_first_second": len(later),
                              "label_ratio": acc_seg / max(acc_one, 1e-9), "r3_segments": float(r_seg),
                              "r3_single": float(r_one), "r3_ratio": float(r_seg / max(r_one, 1e-9))}
        print(f"{method}: recognition of {len(segs)} segments: label evaluator {acc_seg:.3f} vs single windows "
              f"{acc_one:.3f} ({acc_seg / max(acc_one, 1e-9):.2f}x); retrieval top-3 among {len(names)} label prompts "
              f"{r_seg:.3f} vs {r_one:.3f} ({r_seg / max(r_one, 1e-9):.2f}x); label evaluator on the {len(later)} later "
              f"segments without their first second {acc_later:.3f}")
        out["methods"][method] = res

    composer = Composer(gen, **opts)
    if "inbetween" in parts:
        out["inbetween"] = inbetween(composer, real, real_idx, data, rng)
    if "keyframes" in parts:
        out["keyframes"] = keyframes(composer, real, real_idx, data, args.key_every)
    write_json(args.results, out)


def _edges(motion: np.ndarray, real: np.ndarray, at: list[int]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The 20 frames around each of the frames ``at`` of a generated motion, and the real one's same frames."""
    at = [b for b in at if AROUND <= b <= len(motion) - AROUND]
    return [motion[b - AROUND:b + AROUND] for b in at], [real[b - AROUND:b + AROUND] for b in at]


def _physics(gen_parts: list[np.ndarray], real_parts: list[np.ndarray], gen_edges: list[np.ndarray],
             real_edges: list[np.ndarray], skeleton, fps: float) -> dict:
    """Skating and jitter of generated motions against the real ones they stand for, and jerk and skating
    in the 20 frames around the given frames against the real motions' same frames."""
    from ramos.motion import metrics as M

    g, r = np.stack(gen_parts), np.stack(real_parts)
    edge_jerk = float(np.mean([_jerk(e, fps) for e in gen_edges]))
    edge_jerk_real = float(np.mean([_jerk(e, fps) for e in real_edges]))
    edge_skate, edge_skate_real = (M.foot_skating_ratio(np.stack(e), skeleton, fps) for e in (gen_edges, real_edges))
    return {"skating": M.foot_skating_ratio(g, skeleton, fps), "skating_real": M.foot_skating_ratio(r, skeleton, fps),
            "jitter": M.jitter(g, fps), "jitter_real": M.jitter(r, fps),
            "floor_penetration_m": M.floor_penetration(g, skeleton), "floor_penetration_real_m": M.floor_penetration(r, skeleton),
            "boundaries": {"n": len(gen_edges), "jerk_mps3": edge_jerk, "jerk_real_mps3": edge_jerk_real,
                           "jerk_ratio": edge_jerk / edge_jerk_real, "skating": edge_skate,
                           "skating_real": edge_skate_real, "skating_ratio": edge_skate / max(edge_skate_real, 1e-9)}}


def inbetween(composer, real: list[np.ndarray], real_idx: list[int], data, rng) -> dict:
    """Real windows' first and last 0.5 s given, 4 s generated between with the window's label."""
    from ramos.motion.compose import Segment

    gen = composer.gen
    fps = gen.fps
    h, gap = gen.context_frames, round(4 * fps)
    h, gap = gen.context_frames, round(4 * fps)
    errs, out_errs, gen_parts, real_parts, gen_edges, real_edges = [], [], [], [], [], []
    for k, w in enumerate(real[:48]):
        i = int(rng.integers(0, len(w) - (2 * h + gap) + 1))
        piece = w[i:i + 2 * h + gap]
        lab = data.labels[data.label_id(real_idx[k])]
        motion, offs = composer.inbetween(piece[:h], piece[-h:], gap, Segment(lab, 4.0, is_label=True), seed=k)
        errs += offs
        out_errs += [float(np.linalg.norm(motion[:h] - piece[:h], axis=-1).mean()),
                     float(np.linalg.norm(motion[-h:] - piece[-h:], axis=-1).mean())]
        gen_parts.append(motion[h:-h])
        real_parts.append(piece[h:-h])
        # Where given and generated frames meet: the 20 frames around each boundary.
        e, r = _edges(motion, piece, [h, h + gap])
        gen_edges += e
        real_edges += r
    ib = {"n": len(gen_parts), "mean_error_at_given_frames_m": float(np.mean(errs)),
          "max_error_at_given_frames_m": float(np.max(errs)), "output_error_at_given_frames_m": float(np.max(out_errs)),
          **_physics(gen_parts, real_parts, gen_edges, real_edges, gen.skeleton, fps)}
    print(f"in-betweening ({len(gen_parts)} x 4 s): the output's error at the given frames "
          f"{ib['output_error_at_given_frames_m'] * 100:.2f} cm (largest mean), the decoder's before it is blended away "
          f"{ib['mean_error_at_given_frames_m'] * 100:.1f} cm mean (max {ib['max_error_at_given_frames_m'] * 100:.1f} cm); "
          f"generated frames: skating {ib['skating']:.3f} (real {ib['skating_real']:.3f}), jitter {ib['jitter']:.0f} "
          f"(real {ib['jitter_real']:.0f}) m/s^3, floor penetration {ib['floor_penetration_m'] * 100:.2f} cm (real "
          f"{ib['floor_penetration_real_m'] * 100:.2f}); the {len(gen_edges)} boundaries (20 frames each): jerk "
          f"{ib['boundaries']['jerk_ratio']:.2f}x the real window's same frames, skating {ib['boundaries']['skating_ratio']:.2f}x")
    return ib


def keyframes(composer, real: list[np.ndarray], real_idx: list[int], data, every_s: float) -> dict:
    """Real 10 s windows' poses every ``every_s`` seconds (and the last) given as keyframes, the rest
    generated with the window's label; and, the field's baseline, the same keyframes interpolated
    linearly (joint by joint)."""
    from ramos.motion.compose import Segment

    gen = composer.gen
    fps, every = gen.fps, max(1, round(every_s * gen.fps))
    errs, out_errs, gen_m, interp_m, real_m, gen_edges, interp_edges, real_edges = ([] for _ in range(8))
    t0 = time.perf_counter()
    for k, w in enumerate(real[:24]):
        at = sorted(set(range(0, len(w), every)) | {len(w) - 1})
        lab = data.labels[data.label_id(real_idx[k])]
        motion, offs = composer.inbetween(None, None, len(w), Segment(lab, len(w) / fps, is_label=True), seed=k,
                                          keyframes=[(f, w[f]) for f in at])
        errs += offs
        out_errs.append(float(np.linalg.norm(motion[at] - w[at], axis=-1).mean(-1).max()))
        t = np.arange(len(w))
        lin = np.stack([np.interp(t, at, w[at, j, c]) for j in range(w.shape[1]) for c in range(3)], -1)
        lin = lin.reshape(len(w), w.shape[1], 3).astype(np.float32)
        gen_m.append(motion)
        interp_m.append(lin)
        real_m.append(w)
        inner = at[1:-1] or at
        for m, edges in ((motion, gen_edges), (lin, interp_edges)):
            edges += _edges(m, w, inner)[0]
        real_edges += _edges(w, w, inner)[1]
    seconds = time.perf_counter() - t0
    res = {"n": len(gen_m), "every_s": every_s, "keyframes_per_motion": len(at), "seconds_per_motion": seconds / len(gen_m),
           "mean_error_at_keyframes_m": float(np.mean(errs)), "max_error_at_keyframes_m": float(np.max(errs)),
           "output_error_at_keyframes_m": float(np.max(out_errs)),
           **_physics(gen_m, real_m, gen_edges, real_edges, gen.skeleton, fps),
           "interpolation": _physics(interp_m, real_m, interp_edges, real_edges, gen.skeleton, fps)}
    for name, r in (("generated", res), ("linear interpolation", res["interpolation"])):
        print(f"keyframes every {every_s:g} s ({len(gen_m)} x {len(real[0]) / fps:g} s), {name}: skating {r['skating']:.3f} "
              f"({r['skating'] / r['skating_real']:.2f}x real {r['skating_real']:.3f}), jitter {r['jitter']:.0f} "
              f"({r['jitter'] / r['jitter_real']:.2f}x real {r['jitter_real']:.0f}) m/s^3; around the "
              f"{r['boundaries']['n']} inner keyframes: jerk {r['boundaries']['jerk_ratio']:.2f}x, skating "
              f"{r['boundaries']['skating_ratio']:.2f}x the real frames; floor penetration {r['floor_penetration_m'] * 100:.2f} cm "
              f"(real {r['floor_penetration_real_m'] * 100:.2f} cm)")
    print(f"keyframes: the output's error at them {res['output_error_at_keyframes_m'] * 100:.2f} cm (largest mean), "
          f"the decoder's before the blend {res['mean_error_at_keyframes_m'] * 100:.1f} cm mean (max "
          f"{res['max_error_at_keyframes_m'] * 100:.1f} cm); {res['seconds_per_motion']:.2f} s per motion")
    return res


if __name__ == "__main__":
    main()
