"""How much can 256 linear numbers hold of the held-out windows? A PCA check for the motion VAE.

    python benchmarks/diag_latent_capacity.py [--dataset runs/pipeline/data] [--components 64 256]

Fits PCA, on training material only, to (a) short crops (3-13 frames, normalised at their first
frame like every prepared window) and (b) a mix of full 200-frame windows and short crops, then
reconstructs the val/test windows with it. Prints MPJPE per case and writes
benchmarks/results/latent_capacity.json. See docs/motion_vae.md ("a linear check").
"""

from __future__ import annotations

import argparse
import datetime as _dt
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "latent_capacity.json"


def main() -> None:
    from ramos.motion.dataset import MotionDataset
    from ramos.motion.preprocess import canonicalize, pad_window
    from ramos.stages.data.prepare import ensure_builtin_dataset
    from ramos.utils.atomic import write_json

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default=None, help="prepared data set (default: the embedded one)")
    parser.add_argument("--components", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--crops", type=int, default=20000, help="short crops for case (a)")
    parser.add_argument("--mixed", type=int, default=6000, help="windows for case (b)")
    args = parser.parse_args()
    data = MotionDataset(args.dataset or ensure_builtin_dataset())
    sk, w = data.skeleton, data.window
    rng = np.random.default_rng(0)
    train = data.split_indices("train")
    held = {s: data.split_indices(s) for s in ("val", "test")}
    short = int(max(data.lengths[np.concatenate(list(held.values()))]))

    def crop(i: int, max_len: int) -> tuple[np.ndarray, int]:
        n_valid = int(data.lengths[i])
        n = int(round(np.exp(rng.uniform(np.log(3), np.log(min(max_len, n_valid))))))
        s = int(rng.integers(0, n_valid - n + 1))
        return canonicalize(np.asarray(data.windows[i, s:s + n]), sk), n

    def fit(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean = x.mean(0)
        return mean, np.linalg.svd(x - mean, full_matrices=False)[2]

    def score(mean: np.ndarray, basis: np.ndarray, frames: int, k: int, split: str) -> float:
        idx = held[split]
        mask = np.arange(frames)[None] < np.minimum(data.lengths[idx], frames)[:, None]
        x = np.stack([np.asarray(data.windows[i, :frames]) for i in idx]) * mask[..., None, None]
        x = x.reshape(len(idx), -1)
        rec = (x - mean) @ basis[:k].T @ basis[:k] + mean
        err = np.linalg.norm((rec - x).reshape(len(idx), frames, -1, 3), axis=-1).mean(-1)
        return float(1000 * err[mask].mean())

    out: dict = {"dataset": str(data.path), "short_frames": short}
    # (a) short crops only, first `short` frames
    xs = []
    for _ in range(args.crops):
        piece, n = crop(int(rng.choice(train)), short)
        xs.append(pad_window(piece, short)[0] * (np.arange(short) < n)[:, None, None])
    mean, basis = fit(np.stack(xs).reshape(len(xs), -1).astype(np.float64))
    out["short_crops"] = {str(k): {s: score(mean, basis, short, k, s) for s in held} for k in args.components}
    # (b) half full windows, half short crops, all W frames
    xs = []
    for _ in range(args.mixed):
        i = int(rng.choice(train))
        if rng.random() < 0.5:
            piece, n = crop(i, int(data.lengths[i]))
            win = pad_window(piece, w)[0]
        else:
            win, n = np.asarray(data.windows[i]), int(data.lengths[i])
        xs.append(win * (np.arange(w) < n)[:, None, None])
    mean, basis = fit(np.stack(xs).reshape(len(xs), -1).astype(np.float32))
    out["mixed"] = {str(k): {s: score(mean, basis, w, k, s) for s in held} for k in args.components}
    for case in ("short_crops", "mixed"):
        for k, r in out[case].items():
            print(f"PCA on {case}, {k} components: " + ", ".join(f"{s} MPJPE {v:.1f} mm" for s, v in r.items()))
    out["created"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    write_json(RESULTS, out)


if __name__ == "__main__":
    main()
