"""The pose VAE study: does a graph network that knows the skeleton embed single poses better than an MLP?

Both families are trained with the same generic :class:`ramos.vae.VAEModule` (networks injected),
the same loss (:class:`ramos.motion.losses.PoseReconstruction`), the same data and the same
parameter budget, for every latent size and several seeds. Each run is scored on held-out clips
(MPJPE, PA-MPJPE, bone-length error, KL) and on poses sampled from the prior (do their bones keep
the skeleton's lengths?). :func:`run_study` writes ``pose_vae.md``, its figures and a JSON of every
run; ``ramos study pose-vae`` is the command-line entry point.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from tqdm.auto import tqdm

from ramos.motion import metrics
from ramos.motion.losses import PoseReconstruction
from ramos.motion.nets.pose import POSE_FAMILIES, PoseFamily, build_pose_nets, count_parameters
from ramos.motion.render import render_frames, render_grid
from ramos.motion.skeleton import Skeleton
from ramos.stages.pose_vae.data import PoseData, PoseDataConfig, PoseDataModule
from ramos.utils.atomic import atomic_path, write_json, write_text
from ramos.utils.config import to_dict
from ramos.vae import VAEModule, gaussian_kl

log = logging.getLogger(__name__)

FAMILY_COLOURS = {"graph": "#1b9e77", "mlp": "#d95f02"}


# --- configuration ------------------------------------------------------------------------------
@dataclass
class PoseNetConfig:
    """Network sizes. The graph networks fix the budget; the MLP pair is widened to match it.

    Attributes:
        channels: features per joint in the graph networks.
        depth: graph convolution blocks in the encoder and in the decoder.
        readout_channels: features per joint entering the pooling map (and leaving the latent).
        mlp_depth: hidden layers of the MLP encoder and of the MLP decoder.
        output: what both decoders predict: ``"positions"`` (free joint positions) or ``"bones"``
            (bone directions, turned into positions with the training poses' median bone lengths
            by forward kinematics, so that no decoded pose can stretch a bone).
    """

    channels: int = 48
    depth: int = 2
    readout_channels: int = 16
    mlp_depth: int = 2
    output: Literal["positions", "bones"] = "bones"


@dataclass
class PoseTrainConfig:
    """Optimisation of one run.

    Attributes:
        steps: optimiser steps per run (fixed, so that every run costs the same).
        batch_size: poses per step.
        lr: AdamW learning rate (cosine decay to 5 %).
        kl_weight: weight of the KL term relative to ``recon`` (see ``sigma_m``).
        kl_warmup_steps: linear warm-up of the KL weight.
        sigma_m: noise scale of the reconstruction likelihood, metres.
        bone_weight: weight of the bone-length term in the reconstruction loss.
        val_every: validation (and TensorBoard pictures) every this many steps.
        threads: torch CPU threads per run (see ``PoseVAEStudyConfig.workers``).
    """

    steps: int = 3000
    batch_size: int = 128
    lr: float = 6e-3
    kl_weight: float = 0.001
    kl_warmup_steps: int = 300
    sigma_m: float = 0.02
    bone_weight: float = 1.0
    val_every: int = 500
    threads: int = 1


@dataclass
class PoseVAEStudyConfig:
    """``ramos study pose-vae`` (files: ``configs/pose_vae/*.yaml``).

    Attributes:
        data: which poses (see :class:`ramos.stages.pose_vae.data.PoseDataConfig`).
        net: network sizes.
        train: optimisation.
        families: network families compared.
        latents: latent sizes d.
        seeds: runs per (family, d), seeds 0..seeds-1.
        prior_samples: poses drawn from each prior to check the bone lengths.
        bone_tolerance: a sampled pose whose bones are off by more than this (relative, mean over
            bones) counts as breaking the skeleton.
        tensorboard: TensorBoard logs (curves, input vs reconstruction, prior samples) per run.
        workers: runs trained at the same time, one process each (``train.threads`` threads each).
    """

    data: PoseDataConfig = field(default_factory=PoseDataConfig)
    net: PoseNetConfig = field(default_factory=PoseNetConfig)
    train: PoseTrainConfig = field(default_factory=PoseTrainConfig)
    families: list[str] = field(default_factory=lambda: list(POSE_FAMILIES))
    latents: list[int] = field(default_factory=lambda: [4, 8, 16, 32])
    seeds: int = 3
    prior_samples: int = 1024
    bone_tolerance: float = 0.05
    tensorboard: bool = True
    workers: int = 2


# --- one run --------------------------------------------------------------------------------------
def make_pose_vae(family: PoseFamily, skeleton: Skeleton, latent_dim: int, net: PoseNetConfig,
                  train: PoseTrainConfig, bone_lengths: list[float] | None = None) -> VAEModule:
    """A pose VAE of one family, ready for ``Trainer.fit`` with a :class:`PoseDataModule`.

    ``bone_lengths`` (J-1,) are required when ``net.output == "bones"``.
    """
    if net.output == "bones" and bone_lengths is None:
        raise ValueError("net.output 'bones' needs the skeleton's bone lengths")
    enc, dec = build_pose_nets(family, skeleton, latent_dim, net.channels, net.depth, net.readout_channels,
                               net.mlp_depth, bone_lengths if net.output == "bones" else None)
    loss = PoseReconstruction(skeleton.to_dict(), key="pose", sigma_m=train.sigma_m, bone_weight=train.bone_weight)
    return VAEModule(enc, dec, loss, kl_weight=train.kl_weight, kl_warmup_steps=train.kl_warmup_steps,
                     lr=train.lr, input_key="pose")


def display_poses(poses: np.ndarray) -> np.ndarray:
    """Root-relative poses lifted so that each stands on the floor (y = 0), for drawing."""
    out = np.array(poses, dtype=np.float32, copy=True)
    out[..., 1] -= out[..., 1].min(-1, keepdims=True)
    return out


def pose_strip(poses: np.ndarray, skeleton: Skeleton, size_px: int = 128) -> np.ndarray:
    """One (H, K*W, 3) uint8 image of K poses side by side (for TensorBoard)."""
    frames = render_frames(display_poses(poses), skeleton, size_px=size_px)
    return np.concatenate(list(frames), axis=1)


class PosePictures(L.Callback):
    """TensorBoard pictures at each validation: validation poses above their reconstructions, and prior samples."""

    def __init__(self, val_poses: np.ndarray, skeleton: Skeleton, n: int = 8, seed: int = 0) -> None:
        self.poses = torch.from_numpy(val_poses[np.linspace(0, len(val_poses) - 1, n).astype(int)])
        self.skeleton, self.n, self.seed = skeleton, n, seed

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        logger = trainer.logger
        if not isinstance(logger, TensorBoardLogger) or trainer.sanity_checking:
            return
        assert isinstance(pl_module, VAEModule)
        with torch.no_grad():
            recon = pl_module.decode(pl_module.encode(self.poses)[0])
            z = torch.randn(self.n, latent_size_of(pl_module), generator=torch.Generator().manual_seed(self.seed))
            prior = pl_module.decode(z)
        pair = np.concatenate([pose_strip(self.poses.numpy(), self.skeleton), pose_strip(recon.numpy(), self.skeleton)])
        step = trainer.global_step
        logger.experiment.add_image("poses/input_vs_reconstruction", pair, step, dataformats="HWC")
        logger.experiment.add_image("poses/prior_samples", pose_strip(prior.numpy(), self.skeleton), step,
                                    dataformats="HWC")


def latent_size_of(vae: VAEModule) -> int:
    """Latent size of a pose VAE (from its encoder's spec)."""
    return int(vae.encoder.spec["init_args"]["latent_dim"])


@dataclass
class RunResult:
    """Scores of one trained pose VAE (errors in millimetres, KL in nats per pose)."""

    family: str
    latent_dim: int
    seed: int
    params: int
    train_seconds: float
    mpjpe_mm: float
    pa_mpjpe_mm: float
    bone_err_mm: float
    kl: float
    prior_bone_rel_err: float
    prior_broken_fraction: float
    checkpoint: str
    prior_nearest_mm: float = float("nan")
    val_clip_mpjpe_mm: dict[str, float] = field(default_factory=dict)


def evaluate_pose_vae(vae: VAEModule, data: PoseData, prior_samples: int, bone_tolerance: float,
                      seed: int = 0) -> tuple[dict[str, float], np.ndarray, np.ndarray]:
    """Validation and prior scores of a trained VAE, with its prior samples and their bone errors.

    Returns (scores, prior poses (S, J, 3), per-sample relative bone error (S,)). Reconstructions use
    the posterior mean.
    """
    vae.eval()
    val = torch.from_numpy(data.val)
    with torch.no_grad():
        mu, logvar = vae.encode(val)
        recon = vae.decode(mu).numpy()
        kl = float(gaussian_kl(mu, logvar))
        z = torch.randn(prior_samples, mu.shape[1], generator=torch.Generator().manual_seed(seed))
        prior = vae.decode(z).numpy()
    sk = data.skeleton
    ref = data.reference_bone_lengths()
    rel = (np.abs(sk.bone_lengths(prior) - ref) / ref).mean(-1)
    scores = {
        "mpjpe_mm": 1000.0 * metrics.mpjpe(recon, data.val),
        "pa_mpjpe_mm": 1000.0 * metrics.pa_mpjpe(recon, data.val),
        "bone_err_mm": 1000.0 * float(np.abs(sk.bone_lengths(recon) - sk.bone_lengths(data.val)).mean()),
        "kl": kl,
        "prior_bone_rel_err": float(rel.mean()),
        "prior_broken_fraction": float((rel > bone_tolerance).mean()),
        "prior_nearest_mm": float(nearest_training_mpjpe(prior, data, seed).mean()),
    }
    return scores, prior, rel


def nearest_training_mpjpe(poses: np.ndarray, data: PoseData, seed: int = 0, max_reference: int = 10_000) -> np.ndarray:
    """(N,) MPJPE (mm) from each pose to its nearest training pose (a random ``max_reference`` subset).

    A plausibility proxy for prior samples: a sample far from every training pose is a pose the
    data never showed (a twisted or folded body), even when its bones have the right lengths.
    """
    ref = data.train
    if len(ref) > max_reference:
        ref = ref[np.random.default_rng(seed).choice(len(ref), max_reference, replace=False)]
    q, r = torch.from_numpy(np.ascontiguousarray(poses)), torch.from_numpy(ref)
    best = torch.full((len(q),), float("inf"))
    for a in range(0, len(r), 2000):  # chunks keep the (N, chunk, J) distance block small
        d = (q[:, None] - r[None, a:a + 2000]).norm(dim=-1).mean(-1)
        best = torch.minimum(best, d.min(1).values)
    return best.numpy() * 1000.0


def per_clip_mpjpe(vae: VAEModule, data: PoseData) -> dict[str, float]:
    """Validation MPJPE (mm) of each held-out clip (posterior-mean reconstructions)."""
    with torch.no_grad():
        recon = vae.decode(vae.encode(torch.from_numpy(data.val))[0]).numpy()
    return {c: 1000.0 * metrics.mpjpe(recon[data.val_clip_of == c], data.val[data.val_clip_of == c])
            for c in data.val_clips}


def train_pose_vae(vae: VAEModule, data: PoseData, cfg: PoseTrainConfig, seed: int, run_dir: Path,
                   tensorboard: bool = True) -> float:
    """Train ``vae`` for ``cfg.steps`` steps, save ``run_dir/model.ckpt``; returns the training seconds."""
    L.seed_everything(seed, verbose=False)
    logger: TensorBoardLogger | bool = False
    callbacks: list[L.Callback] = []
    if tensorboard:
        logger = TensorBoardLogger(str(run_dir), name="tb", version="")
        callbacks.append(PosePictures(data.val, data.skeleton, seed=seed))
    trainer = L.Trainer(max_steps=cfg.steps, accelerator="cpu", devices=1, logger=logger, callbacks=callbacks,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        num_sanity_val_steps=0, check_val_every_n_epoch=None,
                        val_check_interval=min(cfg.val_every, cfg.steps), log_every_n_steps=50,
                        default_root_dir=str(run_dir))
    started = time.perf_counter()
    trainer.fit(vae, PoseDataModule(data, cfg.batch_size, seed=seed))
    seconds = time.perf_counter() - started
    with atomic_path(run_dir / "model.ckpt") as tmp:
        trainer.save_checkpoint(tmp)
    return seconds


# --- the study ---------------------------------------------------------------------------------------
@dataclass
class StudyOutput:
    """What :func:`run_study` produced."""

    report: Path
    results: list[RunResult]
    best_checkpoints: dict[str, Path]
    seconds: float


def run_study(cfg: PoseVAEStudyConfig, data: PoseData, out_dir: str | os.PathLike[str],
              runs_dir: str | os.PathLike[str], dataset_name: str = "") -> StudyOutput:
    """Train every (family, latent size, seed), score it and write the report.

    Args:
        cfg: the study configuration.
        data: the poses.
        out_dir: where ``pose_vae.md`` and ``pose_vae/`` (figures, results.json) go.
        runs_dir: checkpoints and TensorBoard logs of every run; the best run of each family at the
            largest latent size is copied to ``runs_dir/best_<family>_d<d>.ckpt`` for reuse.
        dataset_name: how the report names the data set.
    """
    unknown = [f for f in cfg.families if f not in POSE_FAMILIES]
    if unknown:
        raise ValueError(f"unknown network families {unknown} (expected {list(POSE_FAMILIES)})")
    out, runs = Path(out_dir), Path(runs_dir)
    started = time.perf_counter()
    results: list[RunResult] = []
    samples: dict[tuple[str, int, int], tuple[np.ndarray, np.ndarray]] = {}
    grid = [(f, d, s) for f in cfg.families for d in cfg.latents for s in range(cfg.seeds)]
    progress = tqdm(total=len(grid), desc="pose-vae study", unit="run")
    if cfg.workers <= 1:
        outcomes: Any = (_run_one(cfg, data, f, d, s, runs) for f, d, s in grid)
    else:
        # Runs are independent: one process per core with one thread each scales better on a small
        # CPU than intra-op threads, whose synchronisation costs dominate these small matrices.
        pool = ProcessPoolExecutor(cfg.workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_quiet_worker)
        outcomes = (f.result() for f in as_completed([pool.submit(_run_one, cfg, data, f, d, s, runs)
                                                     for f, d, s in grid]))
    try:
        for result, prior, rel in outcomes:
            results.append(result)
            samples[(result.family, result.latent_dim, result.seed)] = (prior, rel)
            progress.update()
            log.info("%s d=%d seed %d: MPJPE %.1f mm, prior bone error %.1f %% (%.0f s)", result.family,
                     result.latent_dim, result.seed, result.mpjpe_mm, 100 * result.prior_bone_rel_err,
                     result.train_seconds)
    finally:
        progress.close()
        if cfg.workers > 1:
            pool.shutdown(cancel_futures=True)
    results.sort(key=lambda r: (cfg.families.index(r.family), r.latent_dim, r.seed))
    best = _copy_best(results, runs)
    seconds = time.perf_counter() - started
    report = write_report(cfg, data, results, samples, out, best, seconds, dataset_name)
    return StudyOutput(report, results, best, seconds)


def _run_one(cfg: PoseVAEStudyConfig, data: PoseData, family: str, latent_dim: int, seed: int,
             runs: Path) -> tuple[RunResult, np.ndarray, np.ndarray]:
    """Train and score one (family, d, seed); returns its result, prior samples and their bone errors."""
    torch.set_num_threads(cfg.train.threads)
    # Seeded before the networks are built: their initial weights come from the seed alone, not from
    # whatever drew from the generator earlier in this process.
    L.seed_everything(seed, verbose=False)
    vae = make_pose_vae(family, data.skeleton, latent_dim, cfg.net, cfg.train,  # type: ignore[arg-type]
                        [float(x) for x in data.reference_bone_lengths()])
    run_dir = runs / f"{family}_d{latent_dim}_s{seed}"
    seconds = train_pose_vae(vae, data, cfg.train, seed, run_dir, cfg.tensorboard)
    scores, prior, rel = evaluate_pose_vae(vae, data, cfg.prior_samples, cfg.bone_tolerance, seed)
    result = RunResult(family, latent_dim, seed, count_parameters(vae.encoder, vae.decoder), seconds,
                       checkpoint=str(run_dir / "model.ckpt"), val_clip_mpjpe_mm=per_clip_mpjpe(vae, data), **scores)
    return result, prior, rel


def _quiet_worker() -> None:
    # Lightning's per-Trainer banners from every worker would bury the progress bar.
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    logging.getLogger("lightning").setLevel(logging.WARNING)


def _copy_best(results: list[RunResult], runs: Path) -> dict[str, Path]:
    """Copy the lowest-MPJPE run of each family at the largest latent size beside the runs."""
    best: dict[str, Path] = {}
    d_max = max(r.latent_dim for r in results)
    for family in sorted({r.family for r in results}):
        top = min((r for r in results if r.family == family and r.latent_dim == d_max), key=lambda r: r.mpjpe_mm)
        target = runs / f"best_{family}_d{d_max}.ckpt"
        with atomic_path(target) as tmp:
            shutil.copyfile(top.checkpoint, tmp)
        best[family] = target
    return best


# --- the report ----------------------------------------------------------------------------------------
_METRICS: tuple[tuple[str, str, float], ...] = (
    ("mpjpe_mm", "MPJPE (mm)", 1.0), ("pa_mpjpe_mm", "PA-MPJPE (mm)", 1.0), ("bone_err_mm", "bone-length error (mm)", 1.0),
    ("kl", "KL (nats)", 1.0), ("prior_bone_rel_err", "prior bone error (%)", 100.0),
    ("prior_broken_fraction", "prior poses > tol (%)", 100.0),
    ("prior_nearest_mm", "prior sample to nearest training pose (mm)", 1.0), ("train_seconds", "train time (s)", 1.0),
)


def summarise(results: list[RunResult]) -> dict[tuple[str, int], dict[str, tuple[float, float]]]:
    """Mean and standard deviation over seeds of every metric, per (family, d)."""
    table: dict[tuple[str, int], dict[str, tuple[float, float]]] = {}
    for key in sorted({(r.family, r.latent_dim) for r in results}):
        runs = [asdict(r) for r in results if (r.family, r.latent_dim) == key]
        table[key] = {m: (float(np.mean([r[m] for r in runs])), float(np.std([r[m] for r in runs])))
                      for m in ("params", *(k for k, _, _ in _METRICS))}
    return table


def _pm(stat: tuple[float, float], scale: float = 1.0, digits: int = 1) -> str:
    return f"{stat[0] * scale:.{digits}f} ± {stat[1] * scale:.{digits}f}"


def _compare(summary: dict, metric: str, d: int, scale: float, unit: str, lower_is_better: bool = True) -> str:
    """One sentence: which family wins ``metric`` at latent size ``d``, by how much, and whether beyond noise."""
    g, m = summary.get(("graph", d)), summary.get(("mlp", d))
    if g is None or m is None:
        return ""
    (gm, gs), (mm, ms) = g[metric], m[metric]
    if math.isclose(gm, mm, rel_tol=1e-9, abs_tol=1e-12):
        return f"tie ({gm * scale:.1f} {unit})"
    graph_wins = (gm < mm) == lower_is_better
    win, lose = ("graph", "MLP") if graph_wins else ("MLP", "graph")
    wv, lv = (gm, mm) if graph_wins else (mm, gm)
    rel = abs(lv - wv) / max(abs(lv), 1e-12) * 100
    noise = "beyond" if abs(gm - mm) > gs + ms else "within"
    return (f"**{win}** ({wv * scale:.1f} vs {lv * scale:.1f} {unit} for {lose}, "
            f"{abs(lv - wv) * scale:.1f} {unit} or {rel:.0f} % better; {noise} the seed spread)")


def write_report(cfg: PoseVAEStudyConfig, data: PoseData, results: list[RunResult],
                 samples: dict[tuple[str, int, int], tuple[np.ndarray, np.ndarray]], out: Path,
                 best: dict[str, Path], seconds: float, dataset_name: str = "") -> Path:
    """Write ``out/pose_vae.md``, its figures under ``out/pose_vae/`` and ``out/pose_vae/results.json``."""
    fig_dir = out / "pose_vae"
    summary = summarise(results)
    families = [f for f in cfg.families if any(r.family == f for r in results)]
    latents = sorted({r.latent_dim for r in results})
    d_max = latents[-1]
    _plot_vs_latent(summary, families, latents, fig_dir / "mpjpe_vs_latent.png")
    _plot_metrics(summary, families, latents, fig_dir / "metrics.png")
    best_seed = {(f, d): min((r for r in results if (r.family, r.latent_dim) == (f, d)), key=lambda r: r.mpjpe_mm).seed
                 for f in families for d in latents}
    rows, titles = [], []
    for f in families:
        for d in latents:
            prior, _ = samples[(f, d, best_seed[(f, d)])]
            rows.append(display_poses(prior[:8]))
            titles.append(f"{f} d={d}")
    render_grid(rows, data.skeleton, fig_dir / "prior_samples.png", titles=titles, n_frames=8, panel_px=110)
    worst_rows, worst_titles = [], []
    for f in families:
        prior, rel = samples[(f, d_max, best_seed[(f, d_max)])]
        if cfg.net.output == "bones":  # bones are exact: the failures are poses unlike any training pose
            far = nearest_training_mpjpe(prior, data)
            order = np.argsort(far)[::-1][:8]
            title = f"{f} d={d_max}: farthest from training {far[order[0]]:.0f}..{far[order[-1]]:.0f} mm"
        else:
            order = np.argsort(rel)[::-1][:8]
            title = f"{f} d={d_max}: worst bones {100 * rel[order[0]]:.0f}%..{100 * rel[order[-1]]:.0f}%"
        worst_rows.append(display_poses(prior[order]))
        worst_titles.append(title)
    render_grid(worst_rows, data.skeleton, fig_dir / "prior_worst.png", titles=worst_titles, n_frames=8, panel_px=110)
    pick = np.linspace(0, len(data.val) - 1, 8).astype(int)
    recon_rows, recon_titles = [display_poses(data.val[pick])], ["validation input"]
    for f in families:
        vae = VAEModule.load(next(r.checkpoint for r in results
                                  if (r.family, r.latent_dim, r.seed) == (f, d_max, best_seed[(f, d_max)])))
        with torch.no_grad():
            recon_rows.append(display_poses(vae.decode(vae.encode(torch.from_numpy(data.val[pick]))[0]).numpy()))
        recon_titles.append(f"{f} d={d_max}")
    render_grid(recon_rows, data.skeleton, fig_dir / "reconstructions.png", titles=recon_titles, n_frames=8,
                panel_px=110)
    write_json(fig_dir / "results.json", {"config": to_dict(cfg), "data": data.summary(), "seconds": seconds,
                                          "runs": [asdict(r) for r in results]})
    text = _report_text(cfg, data, summary, families, latents, results, best, seconds, dataset_name)
    path = out / "pose_vae.md"
    write_text(path, text)
    return path


def _report_text(cfg: PoseVAEStudyConfig, data: PoseData, summary: dict, families: list[str], latents: list[int],
                 results: list[RunResult], best: dict[str, Path], seconds: float, dataset_name: str) -> str:
    d_max = latents[-1]
    t = cfg.train
    lines = [
        "# Pose VAE study: skeleton graph network vs MLP",
        "",
        "Does a network told how the joints connect (graph convolutions over the skeleton) embed single "
        "poses better than one that sees the pose as loose numbers (an MLP) with the same number of parameters?",
        "",
        f"- Data: {dataset_name or 'prepared data set'}: {data.summary()}.",
        "- Poses: root-relative, turned to face +z; validation clips never seen in training.",
        f"- Runs: {len(families)} families x latent sizes {latents} x {cfg.seeds} seed(s), {t.steps} steps of "
        f"{t.batch_size} poses each (AdamW lr {t.lr:g}, cosine), KL weight {t.kl_weight:g} (warm-up {t.kl_warmup_steps}"
        f" steps), loss sigma {1000 * t.sigma_m:g} mm, bone weight {t.bone_weight:g}; {cfg.workers} run(s) at a time with {t.threads} CPU thread(s) each.",
        f"- Graph nets: {cfg.net.depth} ST-GCN blocks of {cfg.net.channels} channels per joint in encoder and "
        f"decoder; MLP nets: {cfg.net.mlp_depth} hidden layers, widened to the graph pair's parameter count.",
        f"- Whole study: {seconds / 60:.1f} min wall time.",
        "",
        "## Results (mean ± std over seeds; validation poses; prior: "
        f"{cfg.prior_samples} samples per run)",
        "",
        "| family | d | params | " + " | ".join(label for _, label, _ in _METRICS) + " |",
        "|---|---|---|" + "---|" * len(_METRICS),
    ]
    for f in families:
        for d in latents:
            s = summary[(f, d)]
            cells = [_pm(s[k], scale, 2 if k == "prior_bone_rel_err" else 1) for k, _, scale in _METRICS]
            lines.append(f"| {f} | {d} | {int(s['params'][0]):,} | " + " | ".join(cells) + " |")
    lines += ["", "## Which wins", ""]
    if cfg.net.output == "bones":
        lines += ["Both decoders end in the same forward-kinematics head (`net.output: bones`): every decoded "
                  "pose, prior samples included, has the skeleton's bone lengths by construction, so bone "
                  "lengths do not separate the families here (the reconstruction bone error left is the "
                  "validation data's own: resampling to 20 fps shortens bones a little in fast motion). "
                  "`configs/pose_vae/positions.yaml` runs the same study with free position outputs.", ""]
    if "graph" in families and "mlp" in families:
        for d in latents:
            gp, mp = summary[("graph", d)]["params"][0], summary[("mlp", d)]["params"][0]
            lines.append(f"- d = {d} (parameters graph {int(gp):,} / MLP {int(mp):,}, "
                         f"{100 * (mp - gp) / gp:+.1f} %):")
            lines.append(f"  - MPJPE: {_compare(summary, 'mpjpe_mm', d, 1, 'mm')}")
            lines.append(f"  - PA-MPJPE: {_compare(summary, 'pa_mpjpe_mm', d, 1, 'mm')}")
            if cfg.net.output == "positions":
                lines.append(f"  - bone-length error of reconstructions: {_compare(summary, 'bone_err_mm', d, 1, 'mm')}")
                lines.append(f"  - prior samples' bone error: {_compare(summary, 'prior_bone_rel_err', d, 100, '%')}")
            lines.append(f"  - prior samples' distance to the nearest training pose: "
                         f"{_compare(summary, 'prior_nearest_mm', d, 1, 'mm')}")
            lines.append(f"  - training time: {_compare(summary, 'train_seconds', d, 1, 's')}")
        wins = sum(summary[("graph", d)]["mpjpe_mm"][0] < summary[("mlp", d)]["mpjpe_mm"][0] for d in latents)
        lines += ["", f"In short: the graph network has the lower validation MPJPE at {wins} of {len(latents)} latent "
                      f"sizes; the MLP at {len(latents) - wins}."]
    else:
        lines.append("Only one family was run: no comparison.")
    best_run = min((r for r in results if r.latent_dim == d_max), key=lambda r: r.mpjpe_mm)
    lines += ["", "## Targets", ""]
    ok = best_run.mpjpe_mm <= 20.0
    lines.append(f"- Best pose VAE at d = {d_max}: {best_run.family} (seed {best_run.seed}), validation MPJPE "
                 f"{best_run.mpjpe_mm:.1f} mm: {'meets' if ok else 'MISSES'} the <= 20 mm target.")
    for f in families:
        s = summary[(f, d_max)]
        ok_prior = s["prior_bone_rel_err"][0] <= cfg.bone_tolerance
        lines.append(f"- {f} d = {d_max}: prior samples' bones are off by {_pm(s['prior_bone_rel_err'], 100, 2)} % "
                     f"on average ({'meets' if ok_prior else 'MISSES'} the {100 * cfg.bone_tolerance:g} % target); "
                     f"{_pm(s['prior_broken_fraction'], 100)} % of samples are off by more than "
                     f"{100 * cfg.bone_tolerance:g} % (shown below).")
    lines += ["", f"Validation MPJPE (mm) per held-out clip, best seed of each family at d = {d_max}:", "",
              "| clip | " + " | ".join(families) + " |", "|---|" + "---|" * len(families)]
    tops = {f: min((r for r in results if r.family == f and r.latent_dim == d_max), key=lambda r: r.mpjpe_mm)
            for f in families}
    for clip in data.val_clips:
        lines.append(f"| {clip} ({int((data.val_clip_of == clip).sum())} poses) | "
                     + " | ".join(f"{tops[f].val_clip_mpjpe_mm.get(clip, float('nan')):.1f}" for f in families) + " |")
    lines += [
        "",
        f"- Whole study: {seconds / 60:.1f} min wall time, {cfg.workers} worker(s) x {t.threads} thread(s) "
        f"(target <= 20 min on 2 cores; {_machine()}).",
        "",
        "## Figures",
        "",
        "Validation MPJPE and PA-MPJPE against latent size (mean ± std over seeds):",
        "",
        "![MPJPE against latent size](pose_vae/mpjpe_vs_latent.png)",
        "",
        "Bone-length error, prior bone error, KL and training time:",
        "",
        "![metrics](pose_vae/metrics.png)",
        "",
        f"Validation poses (top row, from held-out clips) and their reconstructions at d = {d_max} (best seed):",
        "",
        "![reconstructions](pose_vae/reconstructions.png)",
        "",
        "Poses sampled from each prior (best seed per family and d; z ~ N(0, I)):",
        "",
        "![prior samples](pose_vae/prior_samples.png)",
        "",
        (f"The prior samples at d = {d_max} farthest from every training pose (MPJPE to the nearest one, worst "
         "first; bone lengths are exact with the FK head, so these are the failures: bodies folded or twisted in "
         "ways the data never shows):" if cfg.net.output == "bones" else
         f"The prior samples at d = {d_max} whose bone lengths are furthest from the skeleton's (mean relative "
         "error over bones in each row's label, worst first): the failures, not hidden."),
        "",
        "![worst prior samples](pose_vae/prior_worst.png)",
        "",
        "## Reuse",
        "",
        "The best run of each family at the largest latent size is kept for the motion stage:",
        "",
    ]
    lines += [f"- {f}: `{p}`" for f, p in sorted(best.items())]
    lines += [
        "",
        "```python",
        "from ramos.motion.nets.pose import load_pose_encoder",
        f"enc = load_pose_encoder(\"{best.get('graph', next(iter(best.values())))}\")",
        "z = enc(positions)  # (..., J, 3) metres -> (..., d) latent means",
        "```",
        "",
        "Per-run numbers: `pose_vae/results.json`. Reproduce: `ramos study pose-vae --out reports/` "
        "(see docs/pose_vae.md).",
        "",
    ]
    return "\n".join(lines)


def _machine() -> str:
    """CPU count of this machine, for the report (timings depend on it)."""
    return f"this machine has {os.cpu_count()} logical CPUs"


def _figure(ncols: int, nrows: int = 1, w: float = 4.2, h: float = 3.2) -> Figure:
    fig = Figure(figsize=(w * ncols, h * nrows), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: Path) -> None:
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", facecolor="white")


def _errorbars(ax: Any, summary: dict, families: list[str], latents: list[int], metric: str, scale: float,
               label: str) -> None:
    for f in families:
        mean = np.array([summary[(f, d)][metric][0] for d in latents]) * scale
        std = np.array([summary[(f, d)][metric][1] for d in latents]) * scale
        ax.errorbar(latents, mean, yerr=std, marker="o", capsize=3, label=f, color=FAMILY_COLOURS.get(f))
    ax.set_xscale("log", base=2)
    ax.set_xticks(latents, [str(d) for d in latents])
    ax.set_xlabel("latent size d")
    ax.set_ylabel(label)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def _plot_vs_latent(summary: dict, families: list[str], latents: list[int], path: Path) -> None:
    fig = _figure(2)
    for ax, (metric, label) in zip(fig.subplots(1, 2), (("mpjpe_mm", "MPJPE (mm)"), ("pa_mpjpe_mm", "PA-MPJPE (mm)"))):
        _errorbars(ax, summary, families, latents, metric, 1.0, label)
        ax.set_title(f"validation {label.split(' ')[0]}", fontsize=10)
    _save(fig, path)


def _plot_metrics(summary: dict, families: list[str], latents: list[int], path: Path) -> None:
    fig = _figure(4, w=3.6)
    panels = (("bone_err_mm", "reconstruction bone error (mm)", 1.0), ("prior_bone_rel_err", "prior bone error (%)", 100.0),
              ("kl", "KL (nats / pose)", 1.0), ("train_seconds", "training time (s)", 1.0))
    for ax, (metric, label, scale) in zip(fig.subplots(1, 4), panels):
        _errorbars(ax, summary, families, latents, metric, scale, label)
    _save(fig, path)
