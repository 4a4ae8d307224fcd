"""How well the motion VAE reconstructs the windows the diffusion model is trained on.

    python benchmarks/bench_vae_windows.py --pipeline runs/pipeline [--n 300]

The motion VAE stage reports its MPJPE on the validation split. On the embedded set that split is
20 short windows (124 frames in all, about 6 frames each), so its figure says little about the
full 10 s windows that the diffusion model learns and generates. This measures, on ``--n`` training
windows drawn at random (seed 0), the mean per-joint position error (mm) of encode (posterior
mean) + decode, overall, on the full-length windows alone, and root-relative; once with the VAE
checkpoint and once with the decoder inside the diffusion checkpoint (after decoder tuning, which
fits it to the sampler's latents rather than to the encoder's). Prints one line per model and writes
benchmarks/results/vae_windows.json.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import platform
from pathlib import Path

import numpy as np
import torch

RESULTS = Path(__file__).resolve().parent / "results" / "vae_windows.json"


def reconstruction_mm(autoencoder: torch.nn.Module, x: torch.Tensor, lengths: np.ndarray) -> dict[str, float]:
    """MPJPE (mm) of ``autoencoder``'s reconstruction of windows ``x`` (N, W, J, 3) of ``lengths``."""
    mask = torch.arange(x.shape[1])[None] < torch.as_tensor(lengths)[:, None]
    with torch.no_grad():
        rec = autoencoder.decode(autoencoder.encode(x, mask)[0], mask)
    err = (rec - x).norm(dim=-1).mean(-1)  # (N, W)
    rel = ((rec - rec[:, :, :1]) - (x - x[:, :, :1])).norm(dim=-1).mean(-1)
    full = mask & torch.as_tensor(lengths == x.shape[1])[:, None]
    return {"mpjpe_mm": float(err[mask].mean() * 1000),
            "mpjpe_full_windows_mm": float(err[full].mean() * 1000) if bool(full.any()) else float("nan"),
            "root_relative_mm": float(rel[mask].mean() * 1000)}


def main() -> None:
    from ramos.diffusion import LatentDiffusionModule
    from ramos.motion.dataset import MotionDataset
    from ramos.utils.atomic import write_json
    from ramos.vae.module import VAEModule

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pipeline", required=True, help="a finished `ramos pipeline` folder")
    ap.add_argument("--n", type=int, default=300, help="training windows to reconstruct")
    args = ap.parse_args()
    torch.set_num_threads(2)
    run = Path(args.pipeline)
    data = MotionDataset(run / "data")
    train = data.split_indices("train")
    idx = np.sort(np.random.default_rng(0).choice(train, min(args.n, len(train)), replace=False))
    x = torch.as_tensor(np.stack([data.item(int(i))["motion"] for i in idx]), dtype=torch.float32)
    lengths = np.asarray(data.lengths[idx])
    models = {"motion VAE checkpoint": VAEModule.load(run / "motion_vae" / "motion_vae.ckpt"),
              "decoder inside the diffusion checkpoint": LatentDiffusionModule.load(
                  run / "diffusion" / "last.ckpt").autoencoder}
    out = {"date": _dt.date.today().isoformat(), "machine": platform.platform(), "pipeline": str(run),
           "windows": len(idx), "full_windows": int((lengths == data.window).sum()), "results": {}}
    for name, ae in models.items():
        ae.eval()
        r = reconstruction_mm(ae, x, lengths)
        out["results"][name] = r
        print(f"{name}: MPJPE {r['mpjpe_mm']:.1f} mm ({r['mpjpe_full_windows_mm']:.1f} on full windows), "
              f"root-relative {r['root_relative_mm']:.1f} mm over {len(idx)} training windows")
    write_json(RESULTS, out)


if __name__ == "__main__":
    main()
