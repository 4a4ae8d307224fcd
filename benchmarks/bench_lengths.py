"""Variety across seeds at each motion length: does every seed give another motion?

For each length (seconds) and each label of the data set, ``--seeds`` motions are generated with one
prompt (the label's prompt) and different seeds; the figure is their mean pairwise joint distance
(metres, every frame and joint; the motions start at the same place, facing the same way). A model
that saw no window of a length can ignore the noise there and give the same motion for every seed.
Writes ``benchmarks/results/lengths.json`` (or ``--results``).

    python benchmarks/bench_lengths.py --checkpoint runs/pipeline/diffusion/last.ckpt
"""

from __future__ import annotations

import argparse
import datetime as _dt
import itertools
import platform
from pathlib import Path

import numpy as np
import torch

RESULTS = Path(__file__).resolve().parent / "results" / "lengths.json"


def pairwise_distance(motions: list[np.ndarray]) -> float:
    """Mean joint distance (m) over all frames and joints, averaged over every pair of motions."""
    return float(np.mean([np.linalg.norm(a - b, axis=-1).mean() for a, b in itertools.combinations(motions, 2)]))


def main() -> None:
    from ramos.motion.generate import MotionGenerator
    from ramos.motion.text import label_prompt
    from ramos.utils.atomic import write_json

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--seconds", default="1,2,3,4,6,8,10", help="comma-separated lengths (default: %(default)s)")
    ap.add_argument("--seeds", type=int, default=6)
    ap.add_argument("--results", type=Path, default=RESULTS)
    args = ap.parse_args()
    torch.set_num_threads(2)
    gen = MotionGenerator.load(args.checkpoint)
    labels = [lab for lab in gen.labels if lab != "none"]
    out: dict = {"date": _dt.date.today().isoformat(), "machine": platform.platform(), "checkpoint": args.checkpoint,
                 "seeds": args.seeds, "labels": labels, "lengths": {}}
    for seconds in (float(s) for s in args.seconds.split(",")):
        per_label = []
        for lab in labels:
            kw = {"texts": [label_prompt(lab)] * args.seeds} if gen.text else {"labels": [lab] * args.seeds}
            motions = gen.sample(seconds=seconds, seed=0, plant_feet=False, **kw).motions
            per_label.append(pairwise_distance(motions))
        out["lengths"][f"{seconds:g}"] = {"mean_pairwise_m": float(np.mean(per_label)),
                                          "min_label_pairwise_m": float(np.min(per_label)),
                                          "labels_under_1cm": int(sum(d < 0.01 for d in per_label))}
        print(f"{seconds:g} s: mean pairwise distance between seeds {np.mean(per_label) * 100:.1f} cm "
              f"(lowest label {np.min(per_label) * 100:.1f} cm; {sum(d < 0.01 for d in per_label)} of "
              f"{len(labels)} labels under 1 cm)", flush=True)
    write_json(args.results, out)


if __name__ == "__main__":
    main()
