"""RunReport: what a training run did (steps, time, data size) and the warnings of a run cut short."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from ramos.utils.training import RunReport, late_drop

pytestmark = pytest.mark.usefixtures("one_thread")


class _Regression(L.LightningModule):
    """A linear regression with noisy targets: its loss falls to the noise floor (0.01) and stays there."""

    def __init__(self, lr: float = 0.05) -> None:
        super().__init__()
        self.net = torch.nn.Linear(8, 1)
        self.lr = lr

    def _loss(self, batch: list[torch.Tensor]) -> torch.Tensor:
        x, y = batch
        return torch.nn.functional.mse_loss(self.net(x), y)

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self._loss(batch)
        self.log("train/loss", loss)
        return loss

    def validation_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        self.log("val/loss", self._loss(batch))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.lr)


def _data(n: int, seed: int) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    w = torch.arange(1.0, 9.0)[:, None] / 4
    return TensorDataset(x, x @ w + 0.1 * torch.randn(n, 1, generator=g))


def _fit(tmp_path: Path, steps: int, windows: int = 256, **trainer: object) -> RunReport:
    L.seed_everything(0, verbose=False)
    report = RunReport("toy", train_windows=windows, batch_size=32, summary_path=tmp_path / "summary.json")
    t = L.Trainer(max_steps=steps, max_epochs=-1, accelerator="cpu", logger=False, enable_progress_bar=False,
                  enable_model_summary=False, enable_checkpointing=False, default_root_dir=tmp_path,
                  val_check_interval=max(1, steps // 20), check_val_every_n_epoch=None, num_sanity_val_steps=0,
                  callbacks=[report], **trainer)  # type: ignore[arg-type]
    t.fit(_Regression(), DataLoader(_data(windows, 0), batch_size=32, shuffle=True, drop_last=True),
          DataLoader(_data(128, 1), batch_size=128))
    return report


def test_a_converged_run_has_no_warning_and_its_numbers(tmp_path: Path) -> None:
    report = _fit(tmp_path, 600)
    s = report.summary
    assert report.warnings == [] and s["warnings"] == []
    assert s["steps"] == 600 and s["stopped_by"] == "max_steps" and s["epochs"] == 75
    assert s["train_windows"] == 256 and s["batch_size"] == 32 and s["passes"] == 75.0
    assert s["wall_seconds"] > 0 and s["val_loss"] == pytest.approx(0.01, rel=0.5) and s["train_loss"] < 0.05
    assert abs(s["late_drop"]) < 0.03 and len(s["val_curve"]) == 20
    assert json.loads((tmp_path / "summary.json").read_text())["run"]["steps"] == 600


def test_a_cut_short_run_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING"):
        report = _fit(tmp_path, 40)
    text = " | ".join(report.warnings)
    assert "only 40 optimiser steps" in text and "validation loss was still falling" in text
    assert report.summary["late_drop"] > 0.3
    assert "toy: only 40 optimiser steps" in caplog.text
    assert json.loads((tmp_path / "summary.json").read_text())["run"]["warnings"] == report.warnings


def test_too_few_passes_and_the_time_limit_warn(tmp_path: Path) -> None:
    report = _fit(tmp_path, 600, windows=256)
    report.train_windows = 100_000  # as if the data were 400 times larger: 600 steps see a fifth of it
    assert any("0.19 passes over the 100000 training windows" in w for w in report.report(_Stopped(600))["warnings"])
    timed = _fit(tmp_path, 10_000, max_time={"seconds": 0})
    assert timed.summary["stopped_by"] == "max_time" and timed.summary["steps"] < 10_000
    assert any("wall-time limit" in w for w in timed.warnings)


class _Stopped:
    """The little of a Trainer that RunReport.report reads, after a run of ``steps`` steps."""

    def __init__(self, steps: int) -> None:
        self.global_step = self.max_steps = steps
        self.current_epoch = 0
        self.max_epochs = -1
        self.callbacks: list[L.Callback] = []


def test_late_drop() -> None:
    flat = [(s, 1.0) for s in range(0, 1000, 100)]
    assert late_drop(flat) == 0.0
    halving = [(s, 2.0 ** (-s / 200)) for s in range(0, 1001, 100)]  # halves every 200 steps
    assert late_drop(halving) == pytest.approx(0.5, abs=0.05)
    assert late_drop([(0, 1.0)]) is None and late_drop([]) is None
