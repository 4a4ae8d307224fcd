"""Motion latent diffusion: training command, generation API and CLI, exports, bad inputs.

One tiny model (2 s windows of the embedded data set, a small MLP VAE, a few diffusion steps) is
trained once for the module; the tests check behaviour, not motion quality.
"""

from __future__ import annotations

import json

import lightning as L
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from ramos.cli import main
from ramos.diffusion import LatentDiffusionModule
from ramos.motion.compose import context_condition, context_features
from ramos.motion.datamodule import WindowDataset
from ramos.motion.dataset import MotionDataset
from ramos.motion.generate import GenerationError, MotionGenerator, export_motions, generate
from ramos.motion.io.bvh import BvhItem, read_item
from ramos.motion.losses import MaskedMotionLoss
from ramos.stages.data.prepare import load_prepare_config, prepare_dataset
from ramos.stages.motion_diffusion import (
    MotionDiffusionConfig,
    MotionDiffusionError,
    SecondsDataModule,
    build_module,
)
from ramos.utils.checkpoint import CheckpointError
from ramos.vae import VAEModule
from ramos.vae.nets import MLPDecoder, MLPEncoder

WINDOW = 40  # 2 s at 20 fps


def _tiny_vae(window: int = WINDOW, latent: int = 8) -> VAEModule:
    return VAEModule(MLPEncoder([window, 22, 3], latent, [64]), MLPDecoder([window, 22, 3], latent, [64]),
                     MaskedMotionLoss(key="motion"), kl_weight=1e-4, lr=3e-3, input_key="motion")


def _fit(module: L.LightningModule, loader: DataLoader, steps: int) -> L.Trainer:
    trainer = L.Trainer(max_steps=steps, accelerator="cpu", logger=False, enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=False)
    trainer.fit(module, train_dataloaders=loader)
    return trainer


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models: thread synchronisation costs more than it saves, and on a busy machine far more."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _train_args(tmp) -> list[str]:
    return ["train", "motion-diffusion", "--vae", str(tmp / "vae.ckpt"), "--dataset", str(tmp / "data"),
            "--out", str(tmp / "run"), "--set", "steps=30", "--set", "batch_size=32", "--set", "denoiser.width=64",
            "--set", "denoiser.depth=2", "--set", "val_every_n_steps=30", "--set", "strip_steps=4",
            "--set", "strip_labels=2", "--set", "distill_steps=20", "--set", "distill_batch_size=32",
            "--set", "decoder_steps=10", "--set", "decoder_batch_size=16", "--no-progress"]


def train_tiny(tmp) -> tuple:
    """(data set folder, VAE checkpoint, diffusion checkpoint, out folder) of a tiny model trained in
    ``tmp``: 2 s windows of the embedded set, an MLP VAE, the diffusion stage through the command line."""
    cfg = load_prepare_config("builtin", overrides={"window": WINDOW, "augment.copies": 1, "augment.loop_seconds": 2.0})
    prepare_dataset("builtin", tmp / "data", cfg, workers=1, progress=False)
    torch.manual_seed(0)
    vae = _tiny_vae()
    loader = DataLoader(WindowDataset(MotionDataset(tmp / "data"), "train"), batch_size=64, shuffle=True)
    _fit(vae, loader, 40).save_checkpoint(tmp / "vae.ckpt")
    assert main(_train_args(tmp)) == 0
    return tmp / "data", tmp / "vae.ckpt", tmp / "run" / "last.ckpt", tmp / "run"


@pytest.fixture(scope="module")
def trained(one_thread, tmp_path_factory):
    """(data set folder, VAE checkpoint, diffusion checkpoint, out folder) of a tiny trained model."""
    return train_tiny(tmp_path_factory.mktemp("motion_diffusion"))


@pytest.fixture(scope="module")
def gen(trained):
    return MotionGenerator.load(trained[2])


def test_training_writes_checkpoint_config_strip_and_logs(trained):
    data_dir, _, ckpt, out = trained
    assert ckpt.is_file() and (out / "config.yaml").is_file()
    assert (out / "checkpoints" / "last.ckpt").is_file()  # the resume point
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 30 and np.isfinite(summary["train_loss"])
    assert summary["distill_steps"] == 20 and np.isfinite(summary["distill_loss"])
    assert (out / "checkpoints" / "trained.ckpt").is_file() and (out / "checkpoints" / "distill_last.ckpt").is_file()
    # Decoder tuning, last: the checkpoint's decoder moved, its encoder is the VAE's.
    assert summary["decoder_steps"] == 10 and np.isfinite(summary["decoder_loss"])
    assert (out / "checkpoints" / "decoder_last.ckpt").is_file()
    vae = VAEModule.load(trained[1])
    tuned = LatentDiffusionModule.load(ckpt).autoencoder
    for name, p in vae.named_parameters():
        same = torch.equal(p, tuned.get_parameter(name))
        assert same == name.startswith("encoder."), name
    assert list((out / "samples").glob("step_*.png"))
    assert list((out / "tb").glob("events.out.tfevents.*"))
    module = LatentDiffusionModule.load(ckpt)  # self-contained: the VAE is inside
    info = module.hparams.data_info
    data = MotionDataset(data_dir)
    # A text model: the labels are prompts, kept for users and for the length draws.
    assert module.hparams.text_dim == 384 and module.hparams.class_names is None
    assert info["labels"] == data.labels and module.hparams.cond_keys == ["length", "prefix", "suffix"]
    # The guidance-distilled student serves the generation default, and only that scale.
    assert module.student is not None and module.hparams.student_guidance == module.sampling.guidance == 2.0
    gen = MotionGenerator(module, str(ckpt))
    assert gen.sample(["walk"], steps=2, seed=0).settings["guidance_distilled"]
    assert not gen.sample(["walk"], steps=2, guidance=3.0, seed=0).settings["guidance_distilled"]
    assert info["fps"] == 20.0 and info["window"] == WINDOW and info["length_unit"] == "seconds"
    assert info["length_hist"] == json.loads(json.dumps(data.length_histograms()))


def test_running_again_resumes_instead_of_training_anew(trained):
    _, _, ckpt, out = trained
    before = torch.load(ckpt, weights_only=True)["state_dict"]
    assert main(_train_args(out.parent)) == 0
    assert json.loads((out / "summary.json").read_text())["steps"] == 30
    after = torch.load(ckpt, weights_only=True)["state_dict"]
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_length_histograms_count_training_windows_per_label(trained):
    data = MotionDataset(trained[0])
    hists = data.length_histograms()
    train = data.split_indices("train")
    assert sum(c for _, c in hists["*"]) == len(train)
    walk = [i for i in train if data.label_id(int(i)) == data.labels.index("walk")]
    assert sorted(f for f, c in hists["walk"] for _ in range(c)) == sorted(int(data.lengths[i]) for i in walk)


def test_generation_is_deterministic_and_cut_to_length(gen):
    a = generate(gen, "walk", n=3, seed=4)
    b = generate(gen, "walk", n=3, seed=4)
    c = generate(gen, "walk", n=3, seed=5)
    assert len(a) == 3
    for x, y in zip(a, b):
        assert x.dtype == np.float32 and x.shape[1:] == (22, 3)
        np.testing.assert_array_equal(x, y)
    assert any(x.shape != z.shape or not np.allclose(x, z) for x, z in zip(a, c))
    fixed = generate(gen, ["walk", "run"], n=2, seconds=1.5, seed=0)
    assert [m.shape[0] for m in fixed] == [30, 30]


def test_each_motion_is_reproduced_alone_from_its_seed(gen):
    batch = gen.sample(["walk", "run", "jump"], seed=10, sampler="dpmsolver++")
    assert batch.seeds == [10, 11, 12]
    alone = gen.sample(["jump"], seed=12, sampler="dpmsolver++")
    np.testing.assert_allclose(alone.motions[0], batch.motions[2], atol=1e-5)


def test_drawn_lengths_come_from_the_label_distribution(gen):
    hist = dict((f, c) for f, c in gen.info["length_hist"]["walk"])
    result = gen.sample(["walk"] * 12, seed=0)
    assert all(f in hist for f in result.frames)
    assert [m.shape[0] for m in result.motions] == result.frames


def test_samplers_and_guidance_change_the_output(gen):
    base = generate(gen, "walk", n=2, seconds=2.0, guidance=3.0, seed=1)
    for kwargs in ({"guidance": 1.0}, {"sampler": "ddim"}, {"steps": 5}):
        other = generate(gen, "walk", n=2, seconds=2.0, seed=1, **{"guidance": 3.0, **kwargs})
        assert not np.allclose(base[0], other[0]), kwargs
    uncond = generate(gen, None, n=2, seconds=2.0, seed=1)
    assert not np.allclose(base[0], uncond[0])


def test_planted_feet_shift_the_decoded_motion_only_horizontally(gen):
    """By default the stance foot is planted: the same motion as the decoder's output, each frame
    shifted horizontally as one piece (heights and pose unchanged); plant_feet=False is that output."""
    from ramos.motion.postprocess import plant_feet

    planted = gen.sample(["walk"] * 3, seconds=2.0, seed=4)
    raw = gen.sample(["walk"] * 3, seconds=2.0, seed=4, plant_feet=False)
    assert planted.settings["plant_feet"] and not raw.settings["plant_feet"]
    for p, r in zip(planted.motions, raw.motions):
        np.testing.assert_allclose(p, plant_feet(r, gen.skeleton, gen.fps), atol=1e-6)
        np.testing.assert_allclose(p[..., 1], r[..., 1], atol=1e-6)
        np.testing.assert_allclose(p - p[:, :1], r - r[:, :1], atol=1e-5)


def test_bad_generation_inputs_are_clear_errors(gen):
    with pytest.raises(GenerationError, match="unknown label 'fly'; known labels: backflip, cartwheel"):
        generate(gen, "fly")
    with pytest.raises(GenerationError, match="must be positive"):
        generate(gen, "walk", seconds=0)
    with pytest.raises(GenerationError, match=r"longer than the model's window \(2 s = 40 frames"):
        generate(gen, "walk", seconds=2.5)
    with pytest.raises(GenerationError, match="unknown sampler"):
        generate(gen, "walk", sampler="euler")
    with pytest.raises(GenerationError, match="3 labels for n=2"):
        generate(gen, ["walk", "run", "jump"], n=2)


def test_export_writes_npy_video_bvh_and_index(tmp_path, gen):
    result = gen.sample(["walk", None], seconds=1.0, seed=3)
    out = export_motions(result.motions, tmp_path / "out", gen.fps, gen.skeleton, result.labels, result.seeds,
                         result.settings, video="gif")
    index = json.loads((out / "index.json").read_text())
    assert index["settings"]["seed"] == 3 and index["settings"]["sampler"] == "dpmsolver++" and index["fps"] == 20.0
    assert [(m["label"], m["seed"], m["frames"]) for m in index["motions"]] == [("walk", 3, 20), (None, 4, 20)]
    files = sorted(p.name for p in out.iterdir())
    assert files == ["000_walk.bvh", "000_walk.gif", "000_walk.glb", "000_walk.npy", "001_any.bvh", "001_any.gif",
                     "001_any.glb", "001_any.npy", "index.html", "index.json"]
    arr = np.load(out / "000_walk.npy", allow_pickle=False)
    assert arr.dtype == np.float32 and arr.shape == (20, 22, 3)
    np.testing.assert_array_equal(arr, result.motions[0])
    (clip,) = read_item(BvhItem(str(out / "000_walk.bvh"), "x"), joint_map="humanml3d", scale=1.0)
    assert clip.positions.shape == arr.shape and clip.fps == pytest.approx(20.0)
    # same skeleton up to bone lengths: positions are close, the root exactly where it was
    np.testing.assert_allclose(clip.positions[:, 0], arr[:, 0], atol=1e-5)
    from PIL import Image

    with Image.open(out / "000_walk.gif") as im:
        assert im.n_frames == 20


def test_export_failure_leaves_nothing_behind(tmp_path, gen):
    motions = [np.zeros((10, 22, 3), np.float32), np.full((10, 22, 3), np.nan, np.float32)]
    with pytest.raises(ValueError, match="NaN"):
        export_motions(motions, tmp_path / "out", gen.fps, gen.skeleton, video="none")
    assert list(tmp_path.iterdir()) == []


def _cli(*args: str) -> int:
    return main(["generate", *args])


def test_cli_generates_and_refuses_to_overwrite(tmp_path, trained, capsys):
    ckpt = str(trained[2])
    out = tmp_path / "gen"
    assert _cli("--checkpoint", ckpt, "--label", "walk", "--n", "2", "--seconds", "1", "--video", "none",
                "--sampler", "dpmsolver++", "--out", str(out)) == 0
    assert "2 motions" in capsys.readouterr().out
    first = json.loads((out / "index.json").read_text())
    assert first["settings"]["sampler"] == "dpmsolver++" and len(first["motions"]) == 2
    assert _cli("--checkpoint", ckpt, "--out", str(out)) == 2
    assert "exists and is not empty (pass --overwrite" in capsys.readouterr().err
    assert _cli("--checkpoint", ckpt, "--n", "1", "--seconds", "1", "--video", "none", "--no-bvh", "--overwrite",
                "--out", str(out)) == 0
    assert sorted(p.name for p in out.iterdir()) == ["000_any.glb", "000_any.npy", "index.html", "index.json"]
    unrelated = tmp_path / "mine"
    unrelated.mkdir()
    (unrelated / "notes.txt").write_text("keep me")
    assert _cli("--checkpoint", ckpt, "--overwrite", "--out", str(unrelated)) == 2
    assert "refusing to replace" in capsys.readouterr().err
    assert (unrelated / "notes.txt").read_text() == "keep me"


@pytest.mark.parametrize("extra, message", [
    (["--label", "fly"], "unknown label 'fly'; known labels:"),
    (["--seconds", "-1"], "length must be positive"),
    (["--seconds", "60"], "longer than the model's window"),
    (["--n", "0"], "--n must be at least 1"),
])
def test_cli_bad_inputs_exit_non_zero_without_output(tmp_path, trained, capsys, extra, message):
    out = tmp_path / "gen"
    assert _cli("--checkpoint", str(trained[2]), *extra, "--out", str(out)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ramos: error:") and message in err and "\n" not in err
    assert list(tmp_path.iterdir()) == []


def test_cli_unwritable_output_is_a_clear_error(tmp_path, trained, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert _cli("--checkpoint", str(trained[2]), "--out", str(blocker / "out")) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert _cli("--checkpoint", str(trained[2]), "--out", str(blocker)) == 2
    assert "exists and is not a folder" in capsys.readouterr().err


def test_missing_foreign_and_mismatched_checkpoints_are_clear_errors(tmp_path, trained, capsys):
    _, vae_ckpt, ckpt, _ = trained
    out = str(tmp_path / "gen")
    assert _cli("--checkpoint", str(tmp_path / "none.ckpt"), "--out", out) == 2
    assert "none.ckpt: checkpoint not found" in capsys.readouterr().err
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint")
    assert _cli("--checkpoint", str(junk), "--out", out) == 2
    assert "junk.ckpt: not a loadable checkpoint" in capsys.readouterr().err
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {}}, foreign)
    assert _cli("--checkpoint", str(foreign), "--out", out) == 2
    assert "not a RaMoS checkpoint" in capsys.readouterr().err
    assert _cli("--checkpoint", str(vae_ckpt), "--out", out) == 2
    assert "a VAE checkpoint, not a diffusion one" in capsys.readouterr().err

    state = torch.load(ckpt, weights_only=True)
    other_skeleton = json.loads(json.dumps(state["hyper_parameters"]["data_info"]["skeleton"]))
    other_skeleton["names"].append("extra")
    other_skeleton["parents"].append(0)
    state["hyper_parameters"]["data_info"]["skeleton"] = other_skeleton
    torch.save(state, tmp_path / "skeleton.ckpt")
    with pytest.raises(CheckpointError, match=r"decodes \(40, 22, 3\) but the checkpoint's data is \(40, 23, 3\)"):
        MotionGenerator.load(tmp_path / "skeleton.ckpt")

    state = torch.load(ckpt, weights_only=True)
    state["ramos_specs"]["ae_decoder"]["init_args"]["latent_dim"] = 16  # a VAE of another latent size
    torch.save(state, tmp_path / "latent.ckpt")
    assert _cli("--checkpoint", str(tmp_path / "latent.ckpt"), "--out", out) == 2
    assert "networks and weights do not match" in capsys.readouterr().err

    state = torch.load(ckpt, weights_only=True)
    state["hyper_parameters"]["data_info"] = {}  # e.g. an MNIST diffusion checkpoint
    torch.save(state, tmp_path / "mnist.ckpt")
    with pytest.raises(CheckpointError, match="not a motion diffusion checkpoint"):
        MotionGenerator.load(tmp_path / "mnist.ckpt")
    assert not (tmp_path / "gen").exists()


def test_training_refuses_a_vae_of_another_window(trained):
    data = MotionDataset(trained[0])
    with pytest.raises(MotionDiffusionError, match="this VAE cannot encode"):
        build_module(_tiny_vae(window=30), data, MotionDiffusionConfig(), "other.ckpt")


def test_cached_latents_are_the_encoder_means_and_give_the_same_loss(trained):
    """Training batches carry latents encoded once; they equal what the encoder gives per batch, so
    the diffusion loss is the same with and without the cache. Each item carries one of its window's
    prompts (captions and label), drawn afresh."""
    from ramos.motion.text import prompt_table

    data_dir, vae_path, _, _ = trained
    dm = SecondsDataModule(data_dir, batch_size=8)
    module = build_module(VAEModule.load(vae_path), dm.dataset, MotionDiffusionConfig(), vae_path)
    plain = next(iter(DataLoader(dm.split("train"), batch_size=8)))
    table = prompt_table(dm.dataset)
    dm.cache_latents(module, table, batch_size=5)  # a batch size that does not divide the split
    cached = next(iter(DataLoader(dm.split("train"), batch_size=8)))
    assert "motion" not in cached and cached["latent"].shape == (8, 8) and cached["text"].shape == (8, 384)
    rows = dm.dataset.split_indices("train")[:8]
    for row, text in zip(rows, cached["text"]):
        choices = torch.from_numpy(table.embeddings[table.options[int(row)]])
        assert len(choices) >= 2 and (choices == text).all(1).any()  # captions and label: several prompts
    draws = {tuple(dm.split("train")[0]["text"][:4].tolist()) for _ in range(40)}
    assert len(draws) > 1  # not always the same prompt
    plain["text"] = cached["text"]
    # The known-frame conditions: the first and last 10 valid frames, standardised, flagged as given.
    stats = module.hparams.data_info["context"]
    prefix, suffix = context_features(plain["motion"].numpy(), plain["length"].numpy(), stats["frames"])
    assert np.allclose(cached["prefix"], context_condition(prefix, stats, "prefix"), atol=1e-5)
    assert np.allclose(cached["suffix"], context_condition(suffix, stats, "suffix"), atol=1e-5)
    assert (cached["prefix"][:, -1] == 1).all()
    plain["prefix"], plain["suffix"] = cached["prefix"], cached["suffix"]
    assert torch.equal(cached["length"], plain["length"]) and torch.equal(cached["label"], plain["label"])
    assert torch.allclose(cached["latent"], module.to_latent(plain["motion"], plain["mask"]), atol=1e-5)
    losses = []
    for batch in (plain, cached):
        torch.manual_seed(3)
        losses.append(module.diffusion_loss(dm.on_before_batch_transfer(batch, 0)))
    assert torch.allclose(losses[0], losses[1], atol=1e-5)


def test_length_crops_are_encoded_pieces_of_training_windows_after_them(trained):
    """``crops`` adds random-length pieces of training windows (normalised at their first frame) after
    the windows, each with its window's label and prompts; the windows themselves are unchanged, and
    decoder tuning still reads only them."""
    from ramos.motion.preprocess import crop_window

    data_dir, vae_path, _, _ = trained
    plain, dm = SecondsDataModule(data_dir, batch_size=8), SecondsDataModule(data_dir, batch_size=8)
    module = build_module(VAEModule.load(vae_path), dm.dataset, MotionDiffusionConfig(), vae_path)
    plain.cache_latents(module, batch_size=5)
    dm.cache_latents(module, batch_size=5, crops=0.5, seed=1)
    data, idx = dm.dataset, dm.dataset.split_indices("train")
    items, base = dm.latents["train"], plain.latents["train"]
    pieces = dm._crops(idx, 0.5, np.random.default_rng(1))
    assert len(items) == len(idx) + len(pieces) == len(idx) + round(0.5 * len(idx))
    assert torch.allclose(items.latents[:len(idx)], base.latents, atol=1e-5) and len(dm.latents["val"]) == len(plain.latents["val"])
    for k, (row, start, n) in enumerate(pieces[:4]):
        assert round(data.fps) <= n <= data.lengths[row] and start + n <= data.lengths[row]
        item = items[len(idx) + k]
        assert int(item["length"]) == n and int(item["label"]) == data.label_id(row)
        x = torch.from_numpy(crop_window(np.asarray(data.windows[row], np.float32), start, n, data.skeleton))[None]
        assert torch.allclose(item["latent"], module.to_latent(x, torch.arange(data.window)[None] < n)[0], atol=1e-5)
    assert len({int(items[len(idx) + k]["length"]) for k in range(len(pieces))}) > 3  # lengths vary
    dm.use_windows(1)
    assert len(dm.latents["train"]) == len(idx)


def test_the_checkpoint_records_its_sampling_and_generation_reads_it(trained):
    """One source for the sampling defaults: the config's, recorded in the checkpoint, where the student
    serves exactly that guidance and generation reads every default."""
    from ramos.diffusion import SamplingConfig

    gen = MotionGenerator.load(trained[2])
    assert gen.sampling == MotionDiffusionConfig().sampling == SamplingConfig()
    assert gen.module.hparams.student_guidance == gen.sampling.guidance
    settings = gen.sample(["walk"], seconds=1.0).settings
    assert (settings["steps"], settings["sampler"], settings["guidance"]) == (10, "dpmsolver++", 2.0)
    assert settings["guidance_distilled"] is True


def test_frozen_sampling_matches_eager_sampling(trained):
    """MotionGenerator.load samples through TorchScript-frozen copies (faster at batch 1); they must
    give the eager modules' motions, for every batch size (traces are kept per input shape)."""
    from ramos.diffusion import LatentDiffusionModule

    frozen = MotionGenerator.load(trained[2])
    eager = MotionGenerator(LatentDiffusionModule.load(trained[2]), str(trained[2]))
    for labels in (["walk"], ["walk", None, "run"], ["run"] * 9):
        a = frozen.sample(labels, seed=3, seconds=1.5)
        b = eager.sample(labels, seed=3, seconds=1.5)
        for x, y in zip(a.motions, b.motions, strict=True):
            np.testing.assert_allclose(x, y, atol=1e-4)
    assert frozen.module._frozen and eager.module._frozen is None


def test_a_resume_point_of_another_module_starts_the_phase_afresh(tmp_path, caplog):
    """An interrupted phase of an earlier version (its weights saved under other names) is not loaded
    into this version's module, which would stop with a traceback: the phase starts again, with a warning."""
    from ramos.diffusion.nets import ResidualMLPDenoiser
    from ramos.stages.motion_diffusion import _resume_point

    module = LatentDiffusionModule(ResidualMLPDenoiser(dim=4, width=8, depth=1))
    mine, other = tmp_path / "mine.ckpt", tmp_path / "other.ckpt"
    torch.save({"state_dict": module.state_dict()}, mine)
    torch.save({"state_dict": {f"model.{k}": v for k, v in module.state_dict().items()}}, other)
    assert _resume_point(mine, module, "distill") == mine
    assert _resume_point(tmp_path / "none.ckpt", module, "distill") is None
    with caplog.at_level("WARNING"):
        assert _resume_point(other, module, "distill") is None
    assert "not a resume point of this version's distill phase" in caplog.text


def test_text_prompts_condition_generation_and_a_label_is_its_prompt(gen):
    """Free text and labels take one path: a label asks exactly what its prompt asks."""
    by_label = gen.sample(["turn_left"], seconds=1.5, seed=3)
    by_text = gen.sample(texts=["turn left"], seconds=1.5, seed=3)
    np.testing.assert_array_equal(by_label.motions[0], by_text.motions[0])
    assert by_label.prompts == ["turn left"] and by_text.labels == [None]
    other = gen.sample(texts=["a person does a cartwheel"], seconds=1.5, seed=3)
    assert not np.allclose(other.motions[0], by_text.motions[0])
    unconditional = gen.sample(texts=[None], seconds=1.5, seed=3)
    assert unconditional.prompts == [None] and not np.allclose(unconditional.motions[0], by_text.motions[0])
    # The Python API: one prompt for all, or one per motion; lengths per motion.
    motions = generate(gen, text=["a person walks forward", "someone jumps"], n=2, seconds=1.0)
    assert [m.shape[0] for m in motions] == [20, 20]
    sized = gen.sample(texts=["walk", "run"], frames=[12, 30], seed=0)
    assert [m.shape[0] for m in sized.motions] == [12, 30]


@pytest.mark.parametrize("texts, message", [
    ([""], "empty prompt"),
    (["   "], "empty prompt"),
    (["walk " * 200], "tokens, over the limit of 128"),
])
def test_empty_and_over_long_prompts_are_one_line_errors(gen, texts, message):
    with pytest.raises(GenerationError, match=message) as err:
        gen.sample(texts=texts)
    assert "\n" not in str(err.value)


def test_cli_generates_from_text_and_a_prompts_file_and_records_each_prompt(tmp_path, trained, capsys):
    ckpt = str(trained[2])
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("# my batch\na person jumps forward\n\nsomeone crawls on the floor\n", encoding="utf-8")
    out = tmp_path / "gen"
    assert _cli("--checkpoint", ckpt, "--text", "a person walks forward", "--prompts", str(prompts),
                "--seconds", "1", "--video", "none", "--no-bvh", "--out", str(out)) == 0
    assert "3 motions" in capsys.readouterr().out
    index = json.loads((out / "index.json").read_text())
    assert [m["prompt"] for m in index["motions"]] == ["a person walks forward", "a person jumps forward",
                                                       "someone crawls on the floor"]
    assert index["motions"][0]["files"]["npy"] == "000_a_person_walks_forward.npy"
    assert index["settings"]["text_encoder"] == "all-MiniLM-L6-v2"
    # --n cycles through the prompts.
    assert _cli("--checkpoint", ckpt, "--text", "run", "--text", "jump", "--n", "3", "--seconds", "1",
                "--video", "none", "--no-bvh", "--overwrite", "--out", str(out)) == 0
    assert [m["prompt"] for m in json.loads((out / "index.json").read_text())["motions"]] == ["run", "jump", "run"]


@pytest.mark.parametrize("extra, message", [
    (["--text", ""], "--text 1: empty prompt"),
    (["--text", "walk", "--text", "  "], "--text 2: empty prompt"),
    (["--text", "walk " * 200], "over the limit of 128"),
    (["--text", "walk", "--label", "walk"], "not both"),
    (["--prompts", "{empty}"], "no prompts"),
    (["--prompts", "{missing}"], "cannot read prompts"),
])
def test_cli_bad_prompts_exit_non_zero_with_one_line(tmp_path, trained, capsys, extra, message):
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n\n", encoding="utf-8")
    extra = [a.format(empty=empty, missing=tmp_path / "nope.txt") for a in extra]
    out = tmp_path / "gen"
    assert _cli("--checkpoint", str(trained[2]), *extra, "--video", "none", "--out", str(out)) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_video_auto_writes_mp4_on_a_plain_install(tmp_path, gen):
    """imageio-ffmpeg ships ffmpeg in a wheel: --video auto gives MP4 without a system ffmpeg."""
    import imageio_ffmpeg

    result = gen.sample(["walk"], seconds=1.0, seed=3)
    out = export_motions(result.motions, tmp_path / "out", gen.fps, gen.skeleton, result.labels, result.seeds,
                         result.settings, bvh=False)
    index = json.loads((out / "index.json").read_text())
    video = out / index["motions"][0]["files"]["video"]
    assert video.suffix == ".mp4"
    frames, seconds = imageio_ffmpeg.count_frames_and_secs(str(video))
    assert frames == 20 and seconds == pytest.approx(1.0, abs=0.05)


def test_cli_writes_the_character_bvh_and_smpl_and_refuses_bad_ones_before_sampling(tmp_path, trained, capsys):
    """--skeleton and --body-model: the motion on the user's rig and as SMPL-H parameters; a bad rig or
    model is one line naming the file, and nothing is written."""
    from test_export_smpl import _t_pose, _write_model
    from test_retarget import bvh_text, mixamo_rig

    from ramos.motion.export import load_target, retarget
    from ramos.motion.io import amass, builtin

    ckpt = str(trained[2])
    rig = tmp_path / "hero.bvh"
    rig.write_text(bvh_text(mixamo_rig(), "Xposition Yposition Zposition Zrotation Xrotation Yrotation",
                            "Zrotation Xrotation Yrotation"))
    walk = next(c for c in builtin.load_all() if c.labels[0] == "walk").positions
    models = tmp_path / "smplh"
    _write_model(models / "neutral" / "model.npz", _t_pose(walk))
    out = tmp_path / "gen"
    assert _cli("--checkpoint", ckpt, "--label", "walk", "--n", "1", "--seconds", "1", "--video", "none",
                "--skeleton", str(rig), "--body-model", str(models), "--out", str(out)) == 0
    index = json.loads((out / "index.json").read_text())
    files = index["motions"][0]["files"]
    assert files["character_bvh"] == "000_walk_hero.bvh" and files["smplh"] == "000_walk_smplh.npz"
    assert index["character"]["joint_map"] == load_target(rig).joint_map
    motion = np.load(out / files["npy"])
    # The character file is the retargeting of exactly the exported motion, on the rig's own bones.
    assert (out / files["character_bvh"]).read_text() == retarget(motion, load_target(rig), fps=20.0).to_bvh()
    (item,) = amass.list_items(out / files["smplh"])
    (clip,) = amass.read_item(item, model_dir=models)
    # (How close the fit comes is tests/test_export_smpl.py's: this toy model's motions are no human.)
    assert clip.fps == 20.0 and clip.positions.shape == motion.shape

    bad = tmp_path / "broken.bvh"
    bad.write_text("HIERARCHY\nROOT Hips\n{\n  OFFSET 0 0\n")
    for flag, path, reason in (("--skeleton", bad, "broken.bvh"), ("--body-model", tmp_path / "nowhere", "nowhere")):
        again = tmp_path / f"again{flag}"
        assert _cli("--checkpoint", ckpt, "--n", "1", "--seconds", "1", flag, str(path), "--out", str(again)) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and reason in err, err
        assert not again.exists()
