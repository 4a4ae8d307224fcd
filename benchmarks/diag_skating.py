"""Where the decoder output's foot skating comes from (issue 16's inherited 1.5x target).

    python benchmarks/diag_skating.py --pipeline runs/pipeline [--draws 6] [--per-label 16]

Draws the evaluation's real half A (``draw_reference``: ``--per-label`` training windows per label)
with ``--draws`` seeds, generates one motion per window with its label and length (raw decoder output,
no planting), and prints per draw the skating of real and generated motions and their ratio (is the
ratio at the line noise of the reference, or the model?). For the first draw it also splits the
skating by length range of the bucketed decoder, by position in the window, and by label.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np
from scipy import ndimage


def _pad(motions: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    t = max(len(m) for m in motions)
    x = np.zeros((len(motions), t, *motions[0].shape[1:]), np.float32)
    mask = np.zeros((len(motions), t), bool)
    for i, m in enumerate(motions):
        x[i, :len(m)], x[i, len(m):], mask[i, :len(m)] = m, m[-1], True
    return x, mask


def main() -> None:
    from ramos.motion import metrics as M
    from ramos.motion.dataset import MotionDataset
    from ramos.motion.generate import MotionGenerator
    from ramos.stages.evaluation.protocol import _windows, draw_reference

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pipeline", required=True, help="a finished `ramos pipeline` folder")
    ap.add_argument("--draws", type=int, default=6)
    ap.add_argument("--per-label", type=int, default=16)
    args = ap.parse_args()
    run = Path(args.pipeline)
    gen = MotionGenerator.load(run / "diffusion" / "last.ckpt")
    data = MotionDataset(run / "data")
    sk, fps = gen.skeleton, gen.fps
    ratios = []
    for seed in range(args.draws):
        ref = draw_reference(data, "train", list(range(len(data.labels))), args.per_label, seed)
        real = _windows(data, ref.a)
        labels = [data.labels[data.label_id(int(i))] for i in ref.a]
        res = gen.sample(labels=labels, frames=[len(m) for m in real], seed=seed, plant_feet=False)
        (xr, mr), (xg, mg) = _pad(real), _pad(res.motions)
        r, g = M.foot_skating_ratio(xr, sk, fps, mr), M.foot_skating_ratio(xg, sk, fps, mg)
        ratios.append(g / r)
        print(f"draw {seed}: {len(real)} windows, skating real {r:.3f}, generated {g:.3f}, ratio {g / r:.3f}, "
              f"floor penetration {1000 * M.floor_penetration(xg, sk, mg):.1f} mm", flush=True)
        if seed:
            continue
        lengths = np.array([len(m) for m in real])
        edges = [0, *getattr(gen.module.autoencoder.decoder, "buckets", [gen.window])]
        for lo, hi in itertools.pairwise(edges):
            sel = (lengths > lo) & (lengths <= hi)
            if sel.any():
                r1, g1 = M.foot_skating_ratio(xr[sel], sk, fps, mr[sel]), M.foot_skating_ratio(xg[sel], sk, fps, mg[sel])
                print(f"  lengths ({lo}, {hi}]: {sel.sum()} windows, real {r1:.3f}, generated {g1:.3f}")
        for name, x, m in (("real", xr, mr), ("generated", xg, mg)):
            contact, step, _ = M.foot_contacts(x, sk, 0.05)
            speed = np.linalg.norm(step, axis=-1) * fps
            smooth = ndimage.uniform_filter1d(speed, size=5, axis=-2, mode="nearest")
            skate = (contact & (speed > 0.5) & (smooth > 0.5)).any(-1)
            pairs = m[:, 1:] & m[:, :-1]
            spans = [(0, 20), (20, 60), (60, 100), (100, 140), (140, x.shape[1] - 1)]
            print(f"  {name} by frame: " + ", ".join(f"[{a}, {b}) {skate[:, a:b][pairs[:, a:b]].mean():.3f}"
                                                    for a, b in spans if pairs[:, a:b].any()))
        lab = np.array(labels)
        for name in sorted(set(labels)):
            sel = lab == name
            print(f"  {name}: real {M.foot_skating_ratio(xr[sel], sk, fps, mr[sel]):.3f}, "
                  f"generated {M.foot_skating_ratio(xg[sel], sk, fps, mg[sel]):.3f}")
    print(f"ratio over {len(ratios)} draws: median {np.median(ratios):.3f}, range {min(ratios):.3f}-{max(ratios):.3f}")


if __name__ == "__main__":
    main()
