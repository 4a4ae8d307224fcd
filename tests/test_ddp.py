"""Scale-out: a stage trains unchanged under Lightning DDP with 2 CPU processes (gloo)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from ramos.mnist.data import write_idx
from ramos.vae.module import VAEModule

# Lightning's DDP launcher re-runs the script for rank 1, so the stage is driven by a real script file.
SCRIPT = textwrap.dedent("""
    import json, sys
    from ramos.stages.mnist.config import FAST_OVERRIDES, MnistConfig
    from ramos.stages.mnist.training import Run
    from ramos.utils.config import load_config

    out, overrides = sys.argv[1], json.loads(sys.argv[2])
    cfg = load_config(MnistConfig, None, {**FAST_OVERRIDES, **overrides})
    Run(cfg, out, progress=False).train_vae()
""")


def _run_script(tmp_path, name: str, text: str, args: list[str]) -> subprocess.CompletedProcess:
    """Run ``text`` as the script ``tmp_path/name`` with ``args``: Lightning's DDP launcher reruns the
    script file for rank 1, so each stage is driven by a real file."""
    script = tmp_path / name
    script.write_text(text)
    src = os.path.join(os.path.dirname(__file__), os.pardir, "src")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.path.abspath(src), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(script), *args], cwd=tmp_path, env=env, capture_output=True,
                          check=False, text=True, timeout=400)


@pytest.mark.slow
def test_vae_stage_trains_with_two_gloo_processes(tmp_path):
    rng = np.random.default_rng(0)
    data = tmp_path / "idx"
    for prefix, n in (("train", 96), ("t10k", 8)):
        write_idx(data / f"{prefix}-images-idx3-ubyte", (rng.random((n, 28, 28)) ** 3 * 255).astype(np.uint8))
        write_idx(data / f"{prefix}-labels-idx1-ubyte", rng.integers(0, 10, n).astype(np.uint8))
    overrides = {"data.data_dir": str(data), "data.limit": None, "data.val_size": 32, "vae.batch_size": 16,
                 "vae.epochs": 2, "vae.channels": [8, 16], "vae.hidden": 32, "threads": 1,
                 "trainer.devices": 2, "trainer.strategy": "ddp", "trainer.progress_bar": False}
    result = _run_script(tmp_path, "train_ddp.py", SCRIPT, [str(tmp_path / "out"), json.dumps(overrides)])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "distributed_backend=gloo" in result.stderr + result.stdout
    final = tmp_path / "out" / "vae" / "vae.ckpt"
    ckpt = torch.load(final, weights_only=True)
    # 64 training images, 16 per batch, split over 2 ranks: 2 steps per epoch, not 4.
    assert ckpt["global_step"] == 2 * 2
    vae = VAEModule.load(final)
    mu, _ = vae.encode(torch.rand(3, 1, 28, 28))
    assert mu.shape == (3, 16) and torch.isfinite(mu).all()


DISTILL_SCRIPT = textwrap.dedent("""
    import sys
    import lightning as L
    import torch
    from torch.utils.data import DataLoader
    from ramos.diffusion import DecoderTuning, GuidanceDistillation, LatentDiffusionModule
    from ramos.diffusion.nets import ResidualMLPDenoiser
    from ramos.motion.losses import MaskedMotionLoss
    from ramos.vae import VAEModule
    from ramos.vae.nets import MLPDecoder, MLPEncoder

    class Items(torch.utils.data.Dataset):
        def __init__(self):
            g = torch.Generator().manual_seed(0)
            self.y = torch.arange(64) % 2
            self.x = ((self.y[:, None].float() * 4 - 2) + 0.3 * torch.randn(64, 6, generator=g)).view(64, 2, 1, 3)
        def __len__(self):
            return 64
        def __getitem__(self, i):
            return {"x": self.x[i], "label": self.y[i]}

    out = sys.argv[1]
    torch.manual_seed(0)
    vae = VAEModule(MLPEncoder([2, 1, 3], 3, [8]), MLPDecoder([2, 1, 3], 3, [8]), MaskedMotionLoss(velocity_weight=0.0, key="x"))
    model = LatentDiffusionModule(ResidualMLPDenoiser(dim=3, width=16, depth=1, num_classes=2), vae, num_classes=2)

    def fit(module, steps):
        trainer = L.Trainer(max_steps=steps, accelerator="cpu", devices=2, strategy="ddp", logger=False,
                            enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False)
        trainer.fit(module, DataLoader(Items(), batch_size=8))
        return trainer

    fit(model, 4)
    before = {k: v.clone() for k, v in model.ema.module.state_dict().items()}
    fit(GuidanceDistillation(model), 4)
    assert all(torch.equal(v, model.ema.module.state_dict()[k]) for k, v in before.items())  # teacher kept
    assert any(not torch.equal(p, q) for p, q in zip(model.student.parameters(), model.ema.module.parameters()))
    kept = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("autoencoder.decoder.")}
    decoder = {k: v.clone() for k, v in vae.decoder.state_dict().items()}
    trainer = fit(DecoderTuning(model, 1e-2, mix=0.5, max_timestep=100), 4)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in kept.items())  # only the decoder moves
    assert any(not torch.equal(v, vae.decoder.state_dict()[k]) for k, v in decoder.items())
    if trainer.is_global_zero:
        model.save(out)
""")


@pytest.mark.slow
def test_guidance_distillation_and_decoder_tuning_train_with_two_gloo_processes(tmp_path):
    """The distillation and decoder-tuning phases under DDP: only the student, then only the decoder,
    has gradients to synchronise."""
    from ramos.diffusion import LatentDiffusionModule

    out = tmp_path / "distilled.ckpt"
    result = _run_script(tmp_path, "distill_ddp.py", DISTILL_SCRIPT, [str(out)])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "distributed_backend=gloo" in result.stderr + result.stdout
    module = LatentDiffusionModule.load(out)
    assert module.hparams.student_guidance == 2.0
    x = module.sample(4, torch.tensor([0, 1, 0, 1]), steps=5, guidance=2.0, generator=torch.Generator().manual_seed(0))
    assert x.shape == (4, 2, 1, 3) and torch.isfinite(x).all()  # decoded by the tuned decoder


CLI_SCRIPT = textwrap.dedent("""
    import sys
    from ramos.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def _run_cli(tmp_path, args: list[str]) -> subprocess.CompletedProcess:
    """``ramos ARGS`` from a script file."""
    return _run_script(tmp_path, "ramos_cli.py", CLI_SCRIPT, args)


@pytest.mark.slow
def test_motion_stages_train_with_two_gloo_processes_from_the_command_line(tmp_path):
    """`ramos train motion-vae` and `motion-diffusion` with --devices 2 --strategy ddp: both ranks train
    (the batches are split between them), rank 0 alone evaluates and writes; the results load."""
    from test_motion_vae import write_toy_dataset

    from ramos.diffusion.module import LatentDiffusionModule

    data = write_toy_dataset(tmp_path / "toy", n=64)
    ddp = ["--no-progress", "--devices", "2", "--strategy", "ddp", "--accelerator", "cpu"]
    vae = _run_cli(tmp_path, ["train", "motion-vae", "--dataset", str(data), "--out", str(tmp_path / "vae"), *ddp,
                              "--set", "optim.max_steps=3", "--set", "net.latent_dim=16", "--set", "net.residual=16",
                              "--set", "optim.batch_size=8", "--set", "optim.render_every_n_steps=0",
                              "--set", "optim.val_every_n_steps=3", "--set", "optim.crop_prob=0"])
    assert vae.returncode == 0, vae.stderr[-3000:]
    assert "distributed_backend=gloo" in vae.stderr + vae.stdout
    ckpt = torch.load(tmp_path / "vae" / "motion_vae.ckpt", weights_only=False)
    assert ckpt["global_step"] == 3
    metrics = json.loads((tmp_path / "vae" / "metrics.json").read_text())
    assert metrics["steps"] == 3 and np.isfinite(metrics["val"]["mpjpe_mm"])
    assert vae.stdout.count("motion VAE: val MPJPE") == 1  # one summary: rank 1 stopped after training

    diff = _run_cli(tmp_path, ["train", "motion-diffusion", "--dataset", str(data), "--vae",
                               str(tmp_path / "vae" / "motion_vae.ckpt"), "--out", str(tmp_path / "diff"), *ddp,
                               "--set", "steps=4", "--set", "batch_size=8", "--set", "val_every_n_steps=4",
                               "--set", "strip_labels=1", "--set", "strip_steps=2", "--set", "denoiser.width=32",
                               "--set", "denoiser.depth=1", "--set", "distill_steps=2", "--set", "decoder_steps=2",
                               "--set", "decoder_batch_size=4"])
    assert diff.returncode == 0, diff.stderr[-3000:]
    summary = json.loads((tmp_path / "diff" / "summary.json").read_text())
    assert summary["steps"] == 4 and summary["distill_steps"] == 2 and summary["decoder_steps"] == 2
    model = LatentDiffusionModule.load(tmp_path / "diff" / "last.ckpt")
    assert model.is_conditional


def test_trainer_flags_reach_the_training_stages():
    """--accelerator/--devices/--strategy/--precision of `ramos pipeline` and `ramos train` set the stages'
    trainer; a stage's own trainer override wins over the pipeline's; the rest keeps the defaults."""
    from ramos.cli import build_parser
    from ramos.commands._args import load_stage_config, trainer_overrides
    from ramos.stages.pipeline import StageSettings, _stage_config
    from ramos.utils.training import TrainerConfig

    args = build_parser().parse_args(["pipeline", "--devices", "2", "--strategy", "ddp", "--precision",
                                      "bf16-mixed", "--accelerator", "gpu"])
    cfg = load_stage_config("pipeline", args, trainer_overrides(args))
    assert cfg.trainer == TrainerConfig(accelerator="gpu", devices=2, strategy="ddp", precision="bf16-mixed")
    assert cfg.distributed
    vae = _stage_config("motion_vae", StageSettings(overrides={"trainer.precision": "32-true"}), trainer=cfg.trainer)
    assert (vae.trainer.devices, vae.trainer.strategy, vae.trainer.precision) == (2, "ddp", "32-true")
    assert vae.trainer.kwargs(routed=True)["strategy"] == "ddp_find_unused_parameters_true"
    args = build_parser().parse_args(["train", "motion-diffusion", "--vae", "v.ckpt", "--out", "o",
                                      "--num-nodes", "2"])
    diff = load_stage_config("motion_diffusion", args, trainer_overrides(args))
    assert diff.trainer == TrainerConfig(num_nodes=2)


@pytest.mark.slow
def test_pipeline_with_two_gloo_processes(tmp_path):
    """`ramos pipeline --devices 2 --strategy ddp`: rank 1 reruns the command, joins the two training
    stages and stops; rank 0 alone records, generates, evaluates and prints the summary."""
    out = tmp_path / "run"
    run = _run_cli(tmp_path, ["pipeline", "--config", "tiny", "--devices", "2", "--strategy", "ddp", "--out", str(out),
                              "--no-progress"])
    assert run.returncode == 0, run.stderr[-3000:]
    assert "distributed_backend=gloo" in run.stderr + run.stdout
    assert run.stdout.count("pipeline finished in") == 1
    record = json.loads((out / "pipeline.json").read_text())
    assert list(record["stages"]) == ["data", "pose_vae", "motion_vae", "motion_diffusion", "generate", "evaluate"]
    assert np.isfinite(record["stages"]["motion_vae"]["val"]["mpjpe_mm"])
    assert (out / "reports" / "generation.md").is_file() and (out / "samples" / "index.json").is_file()


def test_bad_trainer_settings_are_one_line_errors_before_any_work(tmp_path, capsys):
    from ramos.cli import main

    for flag, value, needle in (("--strategy", "nonsense", "trainer.strategy: 'nonsense'"),
                                ("--precision", "bogus", "trainer.precision: 'bogus'"),
                                ("--devices", "0", "trainer.devices: 0")):
        assert main(["train", "motion-vae", flag, value, "--out", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and needle in err, err
    assert not (tmp_path / "out").exists()
