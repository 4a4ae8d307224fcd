"""``ramos pipeline``: the whole motion pipeline on one data set, stage by stage.

    data -> pose VAE -> motion VAE -> latent diffusion -> generate (one motion per label or prompt) -> evaluate

The data set is the embedded one by default, or any supported source (``source``, ``root``: a
HumanML3D folder, AMASS with its body model and BABEL labels, BVH or DeepMimic files). The diffusion
is text-conditioned where the data has captions or labels (a label is a prompt), unconditional otherwise.

The pose VAE study (a side branch: nothing downstream reads it) trains in a second process beside
the motion VAE, each on one thread, so both CPU cores work. Each stage writes into its own folder
under the output folder and is recorded in ``pipeline.json`` when it finishes; a rerun skips every
recorded stage whose outputs still exist (a stage interrupted midway resumes from its own
checkpoints where it has them). Each stage's settings are its config (its dataclass defaults, or a
packaged or own YAML file) plus the overrides in the pipeline config.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ramos.utils.atomic import write_json
from ramos.utils.training import TrainerConfig, global_rank

log = logging.getLogger(__name__)

STAGES: tuple[str, ...] = ("data", "pose_vae", "motion_vae", "motion_diffusion", "generate", "evaluate")


@dataclass
class StageSettings:
    """One stage's settings: its YAML config file and dotted overrides on top of it.

    Attributes:
        config: the stage's YAML file or packaged config name (``ramos.configs``); None: the stage's
            defaults (for the data stage: the embedded set's ``builtin``).
        overrides: dotted keys -> values, applied after the file (e.g. ``{"optim.max_minutes": 6}``).
    """

    config: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)


UNCONDITIONAL = 8
"""Motions the generate stage exports (times ``per_label``) for a model with neither labels nor captions."""


@dataclass
class GenerateSettings:
    """The samples the pipeline exports: ``per_label`` motions for every label (or for ``labels``), or for
    every prompt of ``texts``; with neither and no labels in the data, for a few training captions (else
    :data:`UNCONDITIONAL` unconditional motions). ``steps``, ``sampler`` and ``guidance`` default to the trained checkpoint's."""

    labels: list[str] | None = None
    texts: list[str] | None = None
    per_label: int = 1
    steps: int | None = None
    sampler: Literal["ddim", "dpmsolver++", "ddpm"] | None = None
    guidance: float | None = None
    seed: int = 0
    video: Literal["auto", "gif", "mp4", "none"] = "auto"


@dataclass
class PipelineConfig:
    """``ramos pipeline`` (packaged variant: ``tiny``, every stage in seconds). Budget of the defaults on
    the embedded set: <= 20 minutes on 2 CPU cores.

    Attributes:
        source: the data source format ("builtin": the embedded set; "humanml3d", "amass", "bvh",
            "deepmimic": the user's files under ``root``).
        root: the folder (or file) of the source; not needed for "builtin".
        reader: options of the source's reader (amass: ``model_dir``, the body model folder; ``babel``,
            the BABEL annotation folder).
        data: the data stage (default: the source's packaged config, e.g. ``configs/data/builtin.yaml``).
        pose_vae: the pose VAE study, cut to one graph pose VAE at d = 32 (the full comparison of
            both families over latent sizes and seeds: ``ramos study pose-vae``).
        motion_vae, motion_diffusion, evaluation: those stages.
        generate: the exported samples.
        parallel: train the pose VAE study in a second process beside the motion VAE (both
            single-threaded; off when ``trainer`` is distributed).
        trainer: accelerator, devices, strategy, precision of the motion VAE and diffusion stages
            (:class:`ramos.utils.training.TrainerConfig`; a stage's own ``trainer.*`` overrides win).
            With several devices or nodes (DDP), Lightning starts one process per device, each
            rerunning the command: the other ranks join the two training stages and stop after them,
            rank 0 alone writes ``pipeline.json``, generates and evaluates.
    """

    source: str = "builtin"
    root: str | None = None
    reader: dict[str, Any] = field(default_factory=dict)
    data: StageSettings = field(default_factory=StageSettings)
    pose_vae: StageSettings = field(default_factory=lambda: StageSettings(
        overrides={"families": ["graph"], "latents": [32], "seeds": 1, "workers": 1}))
    motion_vae: StageSettings = field(default_factory=StageSettings)
    motion_diffusion: StageSettings = field(default_factory=StageSettings)
    evaluation: StageSettings = field(default_factory=StageSettings)
    generate: GenerateSettings = field(default_factory=GenerateSettings)
    parallel: bool = True
    trainer: TrainerConfig = field(default_factory=TrainerConfig)

    @property
    def distributed(self) -> bool:
        """Whether training runs in several processes (DDP)."""
        return self.trainer.devices > 1 or self.trainer.num_nodes > 1


def _stage_config(stage: str, settings: StageSettings, config: str | None = None,
                  trainer: TrainerConfig | None = None) -> Any:
    """The stage's config; ``trainer`` (the pipeline's) under the stage's own overrides."""
    from ramos import configs
    from ramos.utils.config import to_dict

    # Only what the pipeline changes, so that a stage's own config file keeps its trainer section otherwise.
    default = to_dict(TrainerConfig())
    base = {} if trainer is None else {f"trainer.{k}": v for k, v in to_dict(trainer).items() if v != default[k]}
    return configs.load(stage, settings.config if settings.config is not None else config,
                        {**base, **dict(settings.overrides)})


@dataclass
class PipelineResult:
    """Where everything went, stage by stage."""

    out: Path
    stages: dict[str, dict[str, Any]]

    def summary(self) -> str:
        """A few lines pointing to the report, the GIFs and the BVH files."""
        s = self.stages
        lines = [f"pipeline finished in {Path(self.out)}"]
        for name in STAGES:
            if name in s:
                lines.append(f"  {name:<17} {s[name].get('seconds', 0):7.1f} s  {s[name].get('headline', '')}")
        if "evaluate" in s:
            lines.append(f"report:  {s['evaluate']['report']}")
        if "generate" in s:
            lines.append(f"motions: {s['generate']['folder']} (npy, MP4 or GIF, BVH, glTF; index.json; "
                         "index.html plays them in 3D)")
        return "\n".join(lines)


class Pipeline:
    """Runs the stages in order, skipping those already recorded as finished."""

    def __init__(self, cfg: PipelineConfig, out: str | os.PathLike[str], progress: bool = True) -> None:
        self.cfg = cfg
        self.out = Path(out)
        self.progress = progress
        self.record_path = self.out / "pipeline.json"
        self.record: dict[str, Any] = {"stages": {}, "data_source": self.data_source}
        if self.record_path.is_file():
            import json

            self.record = json.loads(self.record_path.read_text(encoding="utf-8"))
            before = self.record.setdefault("data_source", {"source": "builtin", "root": None})
            if before != self.data_source:
                raise PipelineError(f"{self.out}: holds a pipeline run on {_describe(before)}, not on "
                                    f"{_describe(self.data_source)}; use another --out")

    @property
    def data_source(self) -> dict[str, Any]:
        """The data source of this run (recorded, so that a rerun never mixes two data sets)."""
        root = self.cfg.root
        return {"source": self.cfg.source, "root": None if root is None else str(Path(root).resolve())}

    # --- bookkeeping -------------------------------------------------------------------------------
    def _done(self, name: str) -> dict[str, Any] | None:
        entry = self.record["stages"].get(name)
        if entry and all(Path(p).exists() for p in entry.get("outputs", [])):
            return entry
        return None

    def _run(self, name: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        done = self._done(name)
        if done is not None:
            log.info("stage %s: already done, skipped", name)
            return done
        log.info("stage %s: starting", name)
        start = time.perf_counter()
        entry = fn()
        entry["seconds"] = round(time.perf_counter() - start, 1)
        return self._record(name, entry)

    def _record(self, name: str, entry: dict[str, Any]) -> dict[str, Any]:
        self.record["stages"][name] = entry
        if global_rank() == 0:
            write_json(self.record_path, self.record)
        log.info("stage %s: done in %.1f s", name, entry["seconds"])
        return entry

    # --- stages -----------------------------------------------------------------------------------
    def run(self) -> PipelineResult:
        import concurrent.futures
        import multiprocessing

        from tqdm import tqdm

        self.out.mkdir(parents=True, exist_ok=True)
        steps = [("data", self.data), ("pose_vae", self.pose_vae), ("motion_vae", self.motion_vae),
                 ("motion_diffusion", self.motion_diffusion), ("generate", self.generate),
                 ("evaluate", self.evaluate)]
        bar = tqdm(steps, desc="pipeline", unit="stage", disable=not self.progress or None)
        side: concurrent.futures.Future[dict[str, Any]] | None = None
        with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            for name, fn in bar:
                bar.set_postfix_str(name)
                if global_rank() != 0 and name in ("generate", "evaluate"):
                    break  # a DDP rank other than 0: its part (the training stages) is done
                if name == "pose_vae" and self.cfg.parallel and not self.cfg.distributed and self._done(name) is None:
                    log.info("stage pose_vae: starting in a second process")
                    side = pool.submit(_side_stage, self.cfg, self.out, name)
                    continue
                self._run(name, fn)
                if side is not None and name == "motion_vae":
                    # Recorded only now, so pipeline.json is written by this process alone.
                    self._record("pose_vae", side.result())
                    side = None
        return PipelineResult(self.out, self.record["stages"])

    @property
    def dataset_dir(self) -> Path:
        return self.out / "data"

    def data(self) -> dict[str, Any]:
        from ramos.stages.data.prepare import prepare_dataset

        cfg = _stage_config("data", self.cfg.data, self.cfg.source)
        summary = prepare_dataset(self.cfg.source, self.dataset_dir, cfg, root=self.cfg.root,
                                  reader_opts=dict(self.cfg.reader), progress=self.progress)
        return {"outputs": [str(self.dataset_dir / "manifest.json")], "headline": summary.line()}

    def pose_vae(self) -> dict[str, Any]:
        from ramos.stages.pose_vae.data import PoseData
        from ramos.stages.pose_vae.study import run_study

        cfg = _stage_config("pose_vae", self.cfg.pose_vae)
        data = PoseData.from_dataset(self.dataset_dir, cfg.data)
        result = run_study(cfg, data, self.out / "reports", self.out / "pose_vae", dataset_name=_describe(self.data_source))
        best = {k: str(v) for k, v in result.best_checkpoints.items()}
        return {"outputs": [str(result.report), *best.values()], "report": str(result.report),
                "checkpoints": best, "headline": f"report {result.report}"}

    def motion_vae(self) -> dict[str, Any]:
        from ramos.stages.motion_vae.train import summary_line, train_motion_vae

        cfg = _stage_config("motion_vae", self.cfg.motion_vae, trainer=self.cfg.trainer)
        result = train_motion_vae(cfg, self.dataset_dir, self.out / "motion_vae", progress=self.progress)
        if global_rank() != 0:
            return {"outputs": [result["checkpoint"]], "checkpoint": result["checkpoint"]}
        return {"outputs": [result["checkpoint"]], "checkpoint": result["checkpoint"],
                "val": result["val"], "headline": summary_line(result).split(";")[0]}

    def motion_diffusion(self) -> dict[str, Any]:
        from ramos.stages.motion_diffusion import train_motion_diffusion

        cfg = _stage_config("motion_diffusion", self.cfg.motion_diffusion, trainer=self.cfg.trainer)
        vae = self.record["stages"]["motion_vae"]["checkpoint"]
        result = train_motion_diffusion(vae, self.dataset_dir, self.out / "diffusion", cfg, progress=self.progress)
        return {"outputs": [str(result.checkpoint)], "checkpoint": str(result.checkpoint),
                "headline": f"{result.steps_text}, final loss {result.final_loss}"}

    def generate(self) -> dict[str, Any]:
        from ramos.motion.generate import MotionGenerator, export_motions

        g = self.cfg.generate
        gen = MotionGenerator.load(self.record["stages"]["motion_diffusion"]["checkpoint"])
        if g.texts or (not g.labels and not gen.labels and gen.text):
            texts = [t for t in (g.texts or gen.example_prompts or [None] * UNCONDITIONAL) for _ in range(g.per_label)]
            result = gen.sample(texts=texts, steps=g.steps, sampler=g.sampler, guidance=g.guidance, seed=g.seed)
        else:
            labels = [lab for lab in (g.labels or gen.labels or [None] * UNCONDITIONAL) for _ in range(g.per_label)]
            result = gen.sample(labels, steps=g.steps, sampler=g.sampler, guidance=g.guidance, seed=g.seed)
        folder = export_motions(result.motions, self.out / "samples", gen.fps, gen.skeleton, labels=result.labels,
                                prompts=result.prompts,
                                seeds=result.seeds, settings=result.settings, video=g.video, overwrite=True,
                                progress=self.progress)
        return {"outputs": [str(folder / "index.json")], "folder": str(folder),
                "headline": f"{len(result.motions)} motions in {folder}"}

    def evaluate(self) -> dict[str, Any]:
        from ramos.motion.dataset import MotionDataset
        from ramos.stages.evaluation import evaluate, latent_generators, latent_text_generators

        cfg = _stage_config("evaluation", self.cfg.evaluation)
        data = MotionDataset(self.dataset_dir)
        ckpt = self.record["stages"]["motion_diffusion"]["checkpoint"]
        results = evaluate(latent_generators(ckpt, data.labels, cfg), data, self.out / "reports", cfg,
                           progress=self.progress, text_models=latent_text_generators(ckpt, cfg))
        report = self.out / "reports" / "generation.md"
        return {"outputs": [str(report)], "report": str(report), **evaluation_summary(results)}


def evaluation_summary(results: dict[str, Any]) -> dict[str, Any]:
    """The evaluate stage's record: the latent model's label metrics (``overall``, ``overall_planted_feet``),
    text metrics (``text``) and physics-only scores (``physics``), whichever the data set allowed, and a
    one-line ``headline`` of them."""
    from ramos.stages.evaluation import PLANTED, REAL

    entry: dict[str, Any] = {}
    heads: list[str] = []
    labelled = results.get("models") or {}
    if "latent" in labelled:
        o, p = labelled["latent"]["overall"], labelled[PLANTED]["overall"]
        draws = results.get("fid_draws") or {}
        entry.update(overall=o, overall_planted_feet=p, fid_draws=draws)
        # With several draws the headline's FID is their mean (the first draw's is in `overall`).
        fid = (f"FID {draws['mean']['latent']:.3f} ± {draws['ci95']['latent']:.2f} ({draws['ratio']['latent']:.2f}x "
               f"the real floor, means of {len(draws['seeds'])} draws)" if "latent" in draws.get("ratio", {})
               else f"FID {o['fid']:.3f}")
        heads.append(f"{fid}, recognition accuracy {o['accuracy']:.3f}, foot skating "
                     f"{o['foot_skating']:.3f} ({p['foot_skating']:.3f} with planted feet)")
    text = (results.get("text") or {}).get("models", {})
    entry["text"] = text
    if "latent" in text:
        t = text["latent"]
        heads.append(f"text: R-precision top-3 {t['top3']['mean']:.3f} (real {text[REAL]['top3']['mean']:.3f}), "
                     f"FID {t['fid']['mean']:.3f}")
        phys = results["text"].get("physics") or {}
        entry["text_physics"] = phys
        if not labelled and "latent" in phys:
            # Without the label table the text sets' physics are the only ones: headline them.
            heads.append(_skating_line(phys))
    physics = (results.get("physics") or {}).get("models", {})
    if physics:
        entry["physics"] = physics
        if "latent" in physics:
            heads.append("physics only (no labels or captions): " + _skating_line(physics))
    entry["headline"] = "; ".join(heads) or "no generated motions scored"
    return entry


def _skating_line(scored: dict[str, dict[str, Any]]) -> str:
    """e.g. "foot skating 0.120 (0.050 with planted feet, real 0.040), jitter 310.2 (real 150.1)"."""
    from ramos.stages.evaluation import PLANTED, REAL

    o, real = scored["latent"], scored[REAL]
    planted = f"{scored[PLANTED]['foot_skating']:.3f} with planted feet, " if PLANTED in scored else ""
    return (f"foot skating {o['foot_skating']:.3f} ({planted}real {real['foot_skating']:.3f}), "
            f"jitter {o['jitter']:.1f} (real {real['jitter']:.1f})")


class PipelineError(ValueError):
    """The pipeline cannot run as asked (e.g. its output folder holds a run on another data set); one line."""


def _describe(source: dict[str, Any]) -> str:
    """e.g. "the embedded set" or "humanml3d at /data/HumanML3D"."""
    return "the embedded set" if source["source"] == "builtin" else f"{source['source']} at {source['root']}"


def _side_stage(cfg: PipelineConfig, out: Path, name: str) -> dict[str, Any]:
    """Run stage ``name`` in a worker process, on one thread and without progress bars (the main
    process shows its own); returns its record entry with the seconds it took."""
    import torch

    torch.set_num_threads(1)
    start = time.perf_counter()
    entry = getattr(Pipeline(cfg, out, progress=False), name)()
    entry["seconds"] = round(time.perf_counter() - start, 1)
    return entry


def run_pipeline(cfg: PipelineConfig, out: str | os.PathLike[str], progress: bool = True) -> PipelineResult:
    """Run (or resume) the whole pipeline into ``out``."""
    from ramos.motion.io import READERS

    if cfg.source not in READERS:
        raise PipelineError(f"unknown source {cfg.source!r}; choose one of {', '.join(READERS)}")
    if cfg.source != "builtin" and cfg.root is None:
        raise PipelineError(f"the source {cfg.source!r} needs its folder (--root)")
    if cfg.root is not None and not Path(cfg.root).exists():
        raise PipelineError(f"{cfg.root}: no such file or folder")
    return Pipeline(cfg, out, progress).run()
