"""Pelvis "pops": frames where the body's yaw jumps by more than a real motion ever turns in one frame.

    python benchmarks/diag_pops.py --pipeline runs/pipeline [--seeds 4] [--threshold 90]

Generates every label of the checkpoint at the full window length (``--seeds`` motions each, decoder
output as it is) and measures, per frame transition, the change of direction of the across-hips vector
about the vertical (degrees). Prints, for generated motions and for the data set's training windows,
how many motions have a transition above ``--threshold`` and above 45 degrees, the median of each
motion's largest transition, and the label, seed and frames of every generated pop.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch


def hip_yaw_steps(x: np.ndarray, names: list[str]) -> np.ndarray:
    """|change of the across-hips direction about +y| (degrees) between consecutive frames of (T, J, 3)."""
    v = x[..., names.index("right_hip"), :] - x[..., names.index("left_hip"), :]
    a = np.arctan2(v[..., 0], v[..., 2])
    return np.degrees(np.abs((np.diff(a, axis=-1) + np.pi) % (2 * np.pi) - np.pi))


def main() -> None:
    from ramos.motion.dataset import MotionDataset
    from ramos.motion.generate import MotionGenerator

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pipeline", required=True)
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--threshold", type=float, default=90.0)
    args = ap.parse_args()
    torch.set_num_threads(2)
    gen = MotionGenerator.load(f"{args.pipeline}/diffusion/last.ckpt")
    names, labels = list(gen.skeleton.names), list(gen.labels)
    largest = []
    for seed in range(args.seeds):
        motions = gen.sample(labels, frames=[gen.window] * len(labels), seed=seed, plant_feet=False).motions
        for label, x in zip(labels, motions):
            s = hip_yaw_steps(np.asarray(x), names)
            largest.append(s.max())
            if s.max() > args.threshold:
                print(f"pop: {label}, seed {seed}, frames {np.flatnonzero(s > args.threshold).tolist()}")
    data = MotionDataset(f"{args.pipeline}/data")
    real = [hip_yaw_steps(np.asarray(data.windows[int(i)][:int(data.lengths[int(i)])]), names).max()
            for i in data.split_indices("train")]
    for what, v in (("generated", np.array(largest)), ("real (training windows)", np.array(real))):
        print(f"{what}: {len(v)} motions, {(v > args.threshold).sum()} with a transition > {args.threshold:g} deg, "
              f"{(v > 45).sum()} > 45 deg; median of the largest transition {np.median(v):.1f} deg")


if __name__ == "__main__":
    main()
