"""An interrupted stage resumes from its last checkpoint and ends exactly where an uninterrupted run ends."""

from __future__ import annotations

import lightning as L
import numpy as np
import pytest
import torch

from ramos.mnist.data import write_idx
from ramos.stages.mnist.config import FAST_OVERRIDES, MnistConfig
from ramos.stages.mnist.training import Run, StageConfigMismatch
from ramos.utils.config import load_config


class SimulatedCrash(RuntimeError):
    pass


class CrashAt(L.Callback):
    """Raise in the middle of training, after ``step`` optimiser steps."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            raise SimulatedCrash(f"simulated crash at step {self.step}")


@pytest.fixture(scope="module")
def idx_dir(tmp_path_factory):
    # Blurry random blobs are enough to train on; what matters here is the bookkeeping.
    d = tmp_path_factory.mktemp("idx")
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 160), ("t10k", 32)):
        write_idx(d / f"{prefix}-images-idx3-ubyte", (rng.random((n, 28, 28)) ** 3 * 255).astype(np.uint8))
        write_idx(d / f"{prefix}-labels-idx1-ubyte", rng.integers(0, 10, n).astype(np.uint8))
    return d


def _cfg(idx_dir) -> MnistConfig:
    return load_config(MnistConfig, None, {
        **FAST_OVERRIDES, "data.data_dir": str(idx_dir), "data.limit": None, "data.val_size": 32,
        "vae.batch_size": 32, "vae.epochs": 3, "vae.channels": [8, 16], "vae.hidden": 32,
        "diffusion.batch_size": 32, "diffusion.epochs": 3, "diffusion.width": 32, "diffusion.depth": 1,
        "diffusion.ema_decay": 0.9, "trainer.progress_bar": False, "threads": 1,
    })


def _state(path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["state_dict"]


def test_interrupted_stages_resume_to_the_same_result(tmp_path, idx_dir):
    cfg = _cfg(idx_dir)
    reference = Run(cfg, tmp_path / "a", progress=False)
    ref_vae = _state(reference.train_vae().checkpoint)
    ref_diffusion = _state(reference.train_diffusion().checkpoint)

    run = Run(cfg, tmp_path / "b", progress=False)
    # 128 training images / 32 = 4 steps per epoch: step 6 is in the middle of the second epoch.
    with pytest.raises(SimulatedCrash):
        run.train_vae(callbacks=[CrashAt(6)])
    assert (run.stage_dir("vae") / "checkpoints" / "last.ckpt").is_file()
    assert not run.final_checkpoint("vae").exists()
    resumed_vae = _state(run.train_vae().checkpoint)
    assert resumed_vae.keys() == ref_vae.keys()
    for k in ref_vae:
        assert torch.equal(resumed_vae[k], ref_vae[k]), k

    with pytest.raises(SimulatedCrash):
        run.train_diffusion(callbacks=[CrashAt(9)])
    resumed = _state(run.train_diffusion().checkpoint)
    # Denoiser, its EMA and the latent statistics all match the uninterrupted run.
    assert any(k.startswith("ema.") for k in resumed) and "latent_scale" in resumed
    for k in ref_diffusion:
        assert torch.equal(resumed[k], ref_diffusion[k]), k

    # A finished stage is reused, not retrained; a changed config is refused.
    again = run.train_vae()
    assert again.skipped and torch.equal(_state(again.checkpoint)["encoder.head.3.weight"], ref_vae["encoder.head.3.weight"])
    changed = load_config(MnistConfig, None, {**FAST_OVERRIDES, "data.data_dir": str(idx_dir), "vae.kl_weight": 0.5})
    with pytest.raises(StageConfigMismatch, match=r"vae/config.yaml: this stage was trained with a different config \(sections data, vae\)"):
        Run(changed, tmp_path / "b", progress=False).train_vae()


def test_diverging_stage_stops_with_a_clear_error_and_no_final_checkpoint(tmp_path, idx_dir):
    from ramos.utils.training import NonFiniteLossError

    cfg = load_config(MnistConfig, None, {
        **FAST_OVERRIDES, "data.data_dir": str(idx_dir), "data.limit": None, "data.val_size": 32,
        "vae.batch_size": 32, "vae.epochs": 3, "vae.channels": [8, 16], "vae.hidden": 32, "vae.lr": 1e12,
        "trainer.progress_bar": False, "threads": 1,
    })
    run = Run(cfg, tmp_path / "nan", progress=False)
    with pytest.raises(NonFiniteLossError, match=r"VAE: loss became (nan|inf) at step \d+; stopping"):
        run.train_vae()
    assert not run.final_checkpoint("vae").exists()
    for ckpt in (run.stage_dir("vae") / "checkpoints").glob("*.ckpt"):
        assert all(torch.isfinite(v).all() for v in _state(ckpt).values())
