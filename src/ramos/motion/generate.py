"""Motion generation from a trained motion latent-diffusion checkpoint, and export of the results.

    from ramos.motion.generate import generate, export_motions
    motions = generate("runs/pipeline/diffusion/last.ckpt", text="a person jogs forward", n=4, seed=0)
    motions = generate("runs/pipeline/diffusion/last.ckpt", "walk", n=4)  # a label: read as the prompt "walk"

A text model (every model trained since text conditioning) takes free text; a label of its data set is
the prompt of that label read as text (``turn_left`` -> "turn left"). Models trained earlier on labels
take labels only. Each motion gets a length in frames, either the asked ``seconds`` (or ``frames``) or
one drawn from the training length distribution of its label (all windows for free text; stored in
the checkpoint); the diffusion is conditioned on it,
and the decoded window is cut to it (the frames after it are padding). By default the stance foot
is then kept from sliding (``plant_feet``, :func:`ramos.motion.postprocess.plant_feet`: the body is
shifted, the pose untouched); ``plant_feet=False`` returns the decoder's output as it is.

Seeds: motion ``i`` of a call with ``seed`` uses seed ``seed + i`` for its length draw and its
initial noise, so with the deterministic samplers ("ddim", "dpmsolver++") it is reproduced alone by
``n=1, seed=seed + i`` with the same label and settings. "ddpm" also draws noise at every step,
from one generator seeded with ``seed`` for the whole batch.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch

from ramos.diffusion import LatentDiffusionModule, SamplingConfig
from ramos.diffusion.schedule import SAMPLERS
from ramos.motion.postprocess import planting_shift
from ramos.motion.skeleton import Skeleton
from ramos.motion.text import ENCODER, PromptError, label_prompt, text_encoder
from ramos.utils.checkpoint import CheckpointError, load_checkpoint

if TYPE_CHECKING:
    from ramos.motion.export.retarget import TargetRig

log = logging.getLogger(__name__)

VideoFormat = Literal["auto", "gif", "mp4", "none"]
FILE_FORMATS: dict[str, str] = {
    "npy": "float32 (T, J, 3) joint positions, metres, y up (HumanML3D new_joints)",
    "video": "stick-figure animation (MP4 or GIF)",
    "bvh": "metres, y up, Euler ZXY degrees; rest pose: the motion's own (rigid) skeleton",
    "glb": "glTF 2.0 binary: joint hierarchy with a skin, a stick figure skinned to it, one animation; metres, y up",
    "smplh": "AMASS-layout SMPL-H parameters (poses, trans, betas, gender, mocap_framerate), z up, "
             "fitted to the given body model",
    "character_bvh": "BVH on the given character skeleton (its joints, rest pose, units and axes)",
}
"""What each entry of an ``index.json`` motion's ``files`` holds (written into ``index.json``)."""
DATA_KIND = "motion"
"""``data_info["kind"]`` of motion diffusion checkpoints (tells them apart from MNIST ones)."""
MAX_BATCH = 1024
"""Motions sampled per forward batch (bounds memory for large ``n``)."""


class GenerationError(ValueError):
    """Bad generation input (unknown label, empty or over-long prompt, impossible length, unusable output
    folder); one line."""


@dataclass
class GenerationResult:
    """Generated motions and how each was made.

    Attributes:
        motions: (T_i, J, 3) float32 joint positions in metres, y up, cut to their lengths.
        labels: the label asked for each motion (None: none asked).
        frames: valid frames of each motion.
        seeds: the seed of each motion (see the module docstring).
        settings: steps, sampler, guidance, seed, seconds (as asked), n.
    """

    motions: list[np.ndarray]
    labels: list[str | None]
    frames: list[int]
    seeds: list[int]
    settings: dict[str, Any] = field(default_factory=dict)
    prompts: list[str | None] = field(default_factory=list)
    """The text each motion was conditioned on (a label's prompt for a label asked; None: unconditional
    or a label model)."""

    @property
    def names(self) -> list[str]:
        """Per motion its label, else its prompt, else "any" (titles and file names)."""
        prompts = self.prompts or [None] * len(self.labels)
        return [lab or text or "any" for lab, text in zip(self.labels, prompts)]


class MotionGenerator:
    """A loaded motion diffusion stage, ready to sample (see :meth:`load`)."""

    def __init__(self, module: LatentDiffusionModule, checkpoint: str | None = None) -> None:
        info = module.hparams.get("data_info") or {}
        where = checkpoint or "the diffusion module"
        if info.get("kind") != DATA_KIND:
            raise CheckpointError(f"{where}: not a motion diffusion checkpoint (no motion data info; "
                                  "train one with `ramos train motion-diffusion`)")
        self.module = module  # sampling switches the denoiser to eval itself; a module in training stays so
        self.checkpoint = checkpoint
        self.info = info
        self.fps = float(info["fps"])
        self.window = int(info["window"])
        self.skeleton = Skeleton.from_dict(info["skeleton"])
        self.text = int(module.hparams.get("text_dim", 0)) > 0
        """Whether the model takes text (otherwise labels, or nothing)."""
        self.labels: list[str] = list(module.hparams.get("class_names") or info.get("labels") or [])
        self.example_prompts: list[str] = list(info.get("example_prompts") or [])
        self.context_frames = int((info.get("context") or {}).get("frames", 0))
        """Known frames the model can be given at each end of a window (0: none; :mod:`ramos.motion.compose`)."""
        if self.text and info.get("text_encoder", ENCODER) != ENCODER:
            raise CheckpointError(f"{where}: trained with the text encoder {info.get('text_encoder')!r}; "
                                  f"this version of RaMoS has {ENCODER!r}")
        self._check_shapes(where)
        decoder = getattr(module.autoencoder, "decoder", None)
        self.rest_offsets: np.ndarray | None = (
            decoder.rigid.offsets.detach().cpu().numpy() if getattr(decoder, "rigid", None) is not None else None)
        """(J, 3) rest skeleton every motion is forward kinematics of (None: a decoder saved before the
        rigid skeleton, whose bones stretch; train again for exact BVH/glTF/SMPL exports)."""
        if self.rest_offsets is None:
            log.warning("%s: its VAE decoder predates the rigid skeleton: generated bones stretch, and "
                        "BVH/glTF/SMPL exports are fitted onto their mean lengths (retrain for exact exports)", where)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> MotionGenerator:
        """Load and check a checkpoint of ``ramos train motion-diffusion`` (clear errors otherwise)."""
        path = Path(path)
        ckpt = load_checkpoint(path)  # missing / not a checkpoint: CheckpointError naming the file
        specs = ckpt.get("ramos_specs")
        if isinstance(specs, dict) and "denoiser" not in specs and "encoder" in specs:
            raise CheckpointError(f"{path}: a VAE checkpoint, not a diffusion one "
                                  "(pass the output of `ramos train motion-diffusion`)")
        del ckpt
        try:
            module = LatentDiffusionModule.load(path)
        except CheckpointError:
            raise
        except (RuntimeError, KeyError, TypeError, ValueError) as exc:
            # e.g. a denoiser for one latent size stored beside a VAE with another
            first = " ".join(str(exc).split())[:160]
            raise CheckpointError(f"{path}: networks and weights do not match ({first})") from None
        # Loaded for sampling only: frozen TorchScript copies make batch-1 sampling ~2x faster.
        return cls(module.freeze_for_inference(), str(path))

    def _check_shapes(self, where: str) -> None:
        """The VAE must decode windows of the stored skeleton, and the denoiser fit its latent."""
        m = self.module
        if not m.is_initialised:
            raise CheckpointError(f"{where}: the diffusion stage was never trained (no latent statistics)")
        latent = tuple(int(s) for s in m.latent_shape.tolist())
        dim = getattr(m.denoiser, "dim", None)
        if dim is not None and dim != int(np.prod(latent)):
            raise CheckpointError(f"{where}: denoiser of latent size {dim} but the VAE latent is {latent}")
        with torch.no_grad():
            try:
                out = m.from_latent(torch.zeros(1, *latent))
            except (RuntimeError, ValueError) as exc:
                raise CheckpointError(f"{where}: the VAE cannot decode latents of shape {latent} "
                                      f"({' '.join(str(exc).split())[:120]})") from None
        want = (1, self.window, self.skeleton.num_joints, 3)
        if tuple(out.shape) != want:
            raise CheckpointError(f"{where}: the VAE decodes {tuple(out.shape[1:])} but the checkpoint's data "
                                  f"is {want[1:]} (a VAE from another skeleton or window)")

    # --- inputs ---------------------------------------------------------------------------------
    def label_index(self, label: str | None) -> int:
        """Class index of ``label`` (the "none" index for None) in a label model; unknown labels list the
        known ones."""
        k = len(self.labels)
        if label is None:
            return k
        if k == 0:
            raise GenerationError(f"label {label!r} asked, but this model knows no labels"
                                  + (" (ask with text instead)" if self.text else " (it is unconditional)"))
        if label not in self.labels:
            raise GenerationError(f"unknown label {label!r}; known labels: {', '.join(self.labels)}")
        return self.labels.index(label)

    def condition(self, labels: Sequence[str | None], texts: Sequence[str | None] | None) -> tuple[
            torch.Tensor | None, list[str | None]]:
        """The model's condition for one motion per entry (label ids, or text embeddings with zeros for
        none), and the prompt of each; one-line errors for what the model cannot take."""
        if not self.text:
            if texts is not None:
                raise GenerationError("this model was trained without text ("
                                      + (f"labels: {', '.join(self.labels)}; ask with a label)" if self.labels
                                         else "it is unconditional)"))
            ids = [self.label_index(lab) for lab in labels]  # an unknown label (or any, unconditional) fails
            y = torch.tensor(ids, dtype=torch.long) if self.module.hparams.num_classes > 0 else None
            return y, [None] * len(labels)
        if texts is None:
            for lab in labels:
                self.label_index(lab)  # an unknown label fails, listing the known ones
            texts = [None if lab is None else label_prompt(lab) for lab in labels]
        asked = [(i, t) for i, t in enumerate(texts) if t is not None]
        try:
            vectors = text_encoder().encode([t for _, t in asked]) if asked else np.zeros((0, 1), np.float32)
        except PromptError as exc:
            raise GenerationError(str(exc)) from None
        cond = torch.zeros(len(texts), int(self.module.hparams.text_dim))
        prompts: list[str | None] = [None] * len(texts)
        for row, (i, text) in enumerate(asked):
            cond[i] = torch.from_numpy(vectors[row])
            prompts[i] = " ".join(text.split())
        return cond, prompts

    def frames_for_seconds(self, seconds: float) -> int:
        """Frames of a motion of ``seconds`` (checked against the model's window)."""
        if not np.isfinite(seconds) or seconds <= 0:
            raise GenerationError(f"length must be positive, got {seconds} s")
        frames = int(round(seconds * self.fps))
        if frames > self.window:
            raise GenerationError(f"length {seconds} s is longer than the model's window "
                                  f"({self.window / self.fps:g} s = {self.window} frames at {self.fps:g} fps)")
        if frames < 2:
            raise GenerationError(f"length {seconds} s is under two frames at {self.fps:g} fps")
        return frames

    def check_frames(self, frames: int) -> int:
        """``frames`` when the model can make a motion that long (2 to its window)."""
        if not 2 <= frames <= self.window:
            raise GenerationError(f"length {frames} frames is outside 2..{self.window} (the model's window)")
        return frames

    def draw_frames(self, label: str | None, rng: np.random.Generator) -> int:
        """A length (frames) drawn from the training length distribution of ``label`` (all windows for None)."""
        hists = self.info.get("length_hist") or {}
        hist = hists.get(label if label is not None else "*") or hists.get("*")
        if not hist:
            return self.window
        frames, counts = np.asarray(hist, dtype=np.int64).T
        return int(rng.choice(frames, p=counts / counts.sum()))

    # --- sampling -------------------------------------------------------------------------------
    @property
    def sampling(self) -> SamplingConfig:
        """The checkpoint's default steps, sampler and guidance (what its distilled student serves)."""
        return self.module.sampling

    def sample(self, labels: Sequence[str | None] | None = None, steps: int | None = None,
               sampler: str | None = None, guidance: float | None = None, seconds: float | None = None,
               seed: int = 0, plant_feet: bool = True, texts: Sequence[str | None] | None = None,
               frames: Sequence[int] | None = None) -> GenerationResult:
        """One motion per entry of ``labels`` or of ``texts`` (free-text prompts; None: unconditional);
        ``steps``, ``sampler`` and ``guidance`` default to the checkpoint's (:attr:`sampling`); the length
        of each is ``frames[i]``, else ``seconds``, else drawn (see the module docstring)."""
        default = self.sampling
        steps = default.steps if steps is None else steps
        sampler = default.sampler if sampler is None else sampler
        guidance = default.guidance if guidance is None else guidance
        if sampler not in SAMPLERS:
            raise GenerationError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")
        if steps < 1:
            raise GenerationError(f"steps must be at least 1, got {steps}")
        if labels is not None and texts is not None:
            raise GenerationError("ask with labels or with texts, not both")
        n = len(texts) if texts is not None else len(labels or [])
        if n < 1:
            raise GenerationError("nothing to generate (n must be at least 1)")
        labels = list(labels) if labels is not None else [None] * n
        y, prompts = self.condition(labels, texts)
        seeds = [int(seed) + i for i in range(n)]
        if frames is not None:
            if len(frames) != n:
                raise GenerationError(f"{len(frames)} lengths for {n} motions")
            frames = [self.check_frames(int(f)) for f in frames]
        elif seconds is not None:
            frames = [self.frames_for_seconds(seconds)] * n
        else:
            frames = [self.draw_frames(lab, np.random.default_rng(s)) for lab, s in zip(labels, seeds)]
        length_s = torch.tensor(frames, dtype=torch.float32) / self.fps
        # The valid frames: a bucketed VAE decodes each motion with its length range's decoder.
        valid = torch.arange(self.window)[None, :] < torch.tensor(frames)[:, None]
        latent_shape = tuple(int(v) for v in self.module.latent_shape.tolist())
        noise = torch.stack([torch.randn(latent_shape, generator=torch.Generator().manual_seed(s)) for s in seeds])
        generator = torch.Generator().manual_seed(int(seed))
        motions: list[np.ndarray] = []
        for a in range(0, n, MAX_BATCH):
            b = min(n, a + MAX_BATCH)
            out = self.module.sample(b - a, None if y is None else y[a:b], steps=steps, sampler=sampler,
                                     guidance=guidance, generator=generator,
                                     cond={"length": length_s[a:b]},
                                     noise=noise[a:b], decode_mask=valid[a:b])
            out = out.float().cpu()
            if plant_feet and self.skeleton.feet:
                shift = planting_shift(out.numpy(), self.skeleton, self.fps, mask=valid[a:b].numpy())
                with torch.inference_mode():  # ``out`` is an inference tensor: in place, torch adds it fastest
                    out += torch.from_numpy(shift)[:, :, None, :]
            out = out.numpy()
            motions += [np.ascontiguousarray(out[i, :frames[a + i]]) for i in range(b - a)]
        settings = {"steps": steps, "sampler": sampler, "guidance": guidance, "seed": seed, "seconds": seconds,
                    "n": n, "plant_feet": plant_feet, "checkpoint": self.checkpoint,
                    "rigid_skeleton": self.rest_offsets is not None,
                    "guidance_distilled": self.module.hparams.get("student_guidance") == guidance}
        if self.text:
            settings["text_encoder"] = ENCODER
        return GenerationResult(motions, labels, frames, seeds, settings, prompts)


def _generator(checkpoint: str | os.PathLike[str] | MotionGenerator) -> MotionGenerator:
    return checkpoint if isinstance(checkpoint, MotionGenerator) else MotionGenerator.load(checkpoint)


def _per_motion(values: str | Sequence[str | None] | None, n: int, what: str) -> list[str | None]:
    if values is None or isinstance(values, str):
        return [values] * n
    values = list(values)
    if len(values) == 1:
        return values * n
    if len(values) != n:
        raise GenerationError(f"{len(values)} {what}s for n={n} motions (give one {what} or n {what}s)")
    return values


def generate(checkpoint: str | os.PathLike[str] | MotionGenerator, labels: str | Sequence[str | None] | None = None,
             n: int = 1, steps: int | None = None, sampler: str | None = None, guidance: float | None = None,
             seconds: float | None = None, seed: int = 0, plant_feet: bool = True,
             text: str | Sequence[str | None] | None = None) -> list[np.ndarray]:
    """Generate ``n`` motions: a list of (T_i, J, 3) float32 arrays in metres, each cut to its length.

    Args:
        checkpoint: a motion diffusion checkpoint (or a loaded :class:`MotionGenerator`).
        labels: one label for all, one per motion, or None.
        n: number of motions.
        steps, sampler, guidance: reverse process settings ("ddim", "dpmsolver++" or "ddpm"); default:
            the checkpoint's.
        seconds: length of every motion; None draws each length from its label's training lengths.
        seed: the same seed (and settings) gives the same motions.
        plant_feet: keep the stance foot from sliding (see the module docstring).
        text: one prompt for all, one per motion (instead of ``labels``); neither: unconditional.
    """
    texts = None if text is None else _per_motion(text, n, "prompt")
    labels_n = None if text is not None else _per_motion(labels, n, "label")
    return _generator(checkpoint).sample(labels_n, steps, sampler, guidance, seconds, seed, plant_feet,
                                         texts=texts).motions


# --- export ------------------------------------------------------------------------------------------------
def check_output_dir(out_dir: str | os.PathLike[str], overwrite: bool = False) -> Path:
    """Fail early (before any sampling) when ``out_dir`` cannot receive the results.

    An existing non-empty folder is replaced only with ``overwrite`` and only when it holds an
    earlier ``index.json`` (so a mistyped ``--out`` never wipes an unrelated folder).
    """
    out = Path(out_dir)
    if out.exists():
        if not out.is_dir():
            raise GenerationError(f"{out}: exists and is not a folder")
        if any(out.iterdir()):
            if not overwrite:
                raise GenerationError(f"{out}: folder exists and is not empty (pass --overwrite to replace it)")
            if not (out / "index.json").is_file():
                raise GenerationError(f"{out}: not an earlier generation output (no index.json); "
                                      "refusing to replace it")
    parent = out.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise GenerationError(f"{out}: cannot create it ({parent} is not a folder)")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise GenerationError(f"{out}: cannot write in {parent} (permission denied)")
    return out


def _slug(name: str | None) -> str:
    text = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in (name or "any").strip().lower())
    text = "_".join(part for part in text.split("_") if part)
    return text[:40] or "any"


def export_motions(motions: Sequence[np.ndarray], out_dir: str | os.PathLike[str], fps: float,
                   skeleton: Skeleton, labels: Sequence[str | None] | None = None,
                   seeds: Sequence[int] | None = None, settings: dict[str, Any] | None = None,
                   video: VideoFormat = "auto", bvh: bool = True,
                   overwrite: bool = False, progress: bool = True,
                   prompts: Sequence[str | None] | None = None, glb: bool = True, viewer: bool = True,
                   body_model: str | os.PathLike[str] | None = None, gender: str = "neutral",
                   character: TargetRig | None = None) -> Path:
    """Write each motion as ``.npy`` (HumanML3D new_joints: float32 (T, J, 3)), a stick-figure video,
    ``.bvh`` and ``.glb`` (glTF 2.0), plus ``index.json`` (settings; per motion its label, prompt, seed,
    length and files) and ``index.html`` (:func:`ramos.motion.viewer.write_viewer`, a page that plays
    them in 3D).

    ``video``: "auto" (MP4 where ffmpeg is available, else GIF), "gif", "mp4" or "none".
    ``body_model``: an SMPL-H model folder; each motion is also written as AMASS-layout SMPL-H
    parameters (``_smplh.npz``, :func:`ramos.motion.export.save_smpl_npz`). ``character``: a skeleton
    from the user's BVH file (:func:`ramos.motion.export.load_target`); each motion is also written on
    it (``_<character>.bvh``). Everything is written into a temporary folder renamed to ``out_dir`` at
    the end: a failure leaves nothing.
    """
    from tqdm import tqdm

    from ramos.motion.export import save_bvh, save_glb, save_npy, save_retargeted_bvh, save_smpl_npz
    from ramos.motion.render import mp4_available, render_gif, render_mp4
    from ramos.motion.viewer import write_viewer
    from ramos.utils.atomic import atomic_dir, write_json

    labels = list(labels) if labels is not None else [None] * len(motions)
    prompts = list(prompts) if prompts is not None else [None] * len(motions)
    if len(labels) != len(motions) or len(prompts) != len(motions) or (seeds is not None and len(seeds) != len(motions)):
        raise GenerationError(f"{len(labels)} labels / {len(prompts)} prompts / {len(seeds or [])} seeds for "
                              f"{len(motions)} motions")
    if video == "mp4" and not mp4_available():
        raise GenerationError("MP4 needs ffmpeg (pip install imageio-ffmpeg); use --video gif")
    kind = ("mp4" if mp4_available() else "gif") if video == "auto" else video
    out = check_output_dir(out_dir, overwrite)
    entries = []
    with atomic_dir(out, overwrite=True) as tmp:
        bar = tqdm(list(enumerate(zip(motions, labels, prompts))), desc="export", unit="motion",
                   disable=not progress or None, dynamic_ncols=True)
        for i, (motion, label, prompt) in bar:
            stem = f"{i:03d}_{_slug(label or prompt)}"
            files = {"npy": f"{stem}.npy"}
            save_npy(motion, tmp / files["npy"], skeleton)
            name = label or (prompt if prompt is None or len(prompt) <= 48 else prompt[:47] + "...")
            title = f"{name or 'unconditional'} ({motion.shape[0] / fps:.1f} s)"
            if kind == "gif":
                files["video"] = f"{stem}.gif"
                render_gif(motion, skeleton, tmp / files["video"], fps, title=title)
            elif kind == "mp4":
                files["video"] = f"{stem}.mp4"
                render_mp4(motion, skeleton, tmp / files["video"], fps, title=title)
            if bvh:
                files["bvh"] = f"{stem}.bvh"
                save_bvh(motion, tmp / files["bvh"], skeleton, fps)
            if glb:
                files["glb"] = f"{stem}.glb"
                save_glb(motion, tmp / files["glb"], skeleton, fps)
            if body_model is not None:
                files["smplh"] = f"{stem}_smplh.npz"
                save_smpl_npz(motion, tmp / files["smplh"], body_model, fps, gender, skeleton)
            if character is not None:
                files["character_bvh"] = f"{stem}_{_slug(character.path.stem)}.bvh"
                save_retargeted_bvh(motion, tmp / files["character_bvh"], character, fps, skeleton)
            entries.append({"index": i, "label": label, "prompt": prompt,
                            "seed": None if seeds is None else int(seeds[i]),
                            "frames": int(motion.shape[0]),
                            "seconds": round(motion.shape[0] / fps, 4), "files": files})
        write_json(tmp / "index.json", {
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "settings": dict(settings or {}),
            "fps": fps,
            "joints": list(skeleton.names),
            "format": {k: v for k, v in FILE_FORMATS.items() if any(k in e["files"] for e in entries)},
            "character": None if character is None else {
                "file": str(character.path), "joint_map": character.joint_map, "units": character.units,
                "axes": character.axes_text},
            "motions": entries,
        })
        if viewer:
            write_viewer(tmp, title=out.name)
    return out
