"""``ramos data prepare / analyze / preview`` end to end on small sets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from ramos.cli import main
from ramos.motion.dataset import MotionDataset
from ramos.stages.data.prepare import load_prepare_config
from ramos.utils.config import to_dict


@pytest.fixture()
def small_config(tmp_path: Path) -> Path:
    cfg = to_dict(load_prepare_config("builtin"))
    cfg["augment"]["copies"] = 1
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_prepare_analyze_preview(tmp_path: Path, small_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ds"
    assert main(["data", "prepare", "--source", "builtin", "--config", str(small_config), "--out", str(out),
                 "--workers", "2"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("prepared 120 windows (train 80 / val 20 / test 20) from 20 clips of 20 items")
    assert MotionDataset(out).manifest["config"]["augment"]["copies"] == 1

    assert main(["data", "analyze", str(out)]) == 0
    assert (out / "report.md").is_file() and (out / "speeds.png").is_file()

    gifs = tmp_path / "gifs"
    assert main(["data", "preview", str(out), "--ids", "humanoid3d_kick", "--split", "val", "--out", str(gifs)]) == 0
    data = MotionDataset(out)
    index = next(i for i, m in enumerate(data.meta) if m["clip_id"] == "humanoid3d_kick" and m["split"] == "val")
    files = sorted(gifs.iterdir())
    assert [f.name for f in files] == [data.meta[index]["id"].replace(":", "_") + ".gif"]
    with Image.open(files[0]) as im:
        assert im.n_frames == data.lengths[index]  # the valid frames only, not the padding
        assert np.asarray(im.convert("RGB")).std() > 0  # something was drawn

    raw = tmp_path / "raw"
    assert main(["data", "preview", "--source", "builtin", "--n", "1", "--max-seconds", "0.5", "--out", str(raw)]) == 0
    assert len(list(raw.glob("*.gif"))) == 1


def test_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "prepare", "--source", "amass", "--out", str(tmp_path / "x")]) == 2
    assert capsys.readouterr().err.strip() == "ramos: error: --root is required for --source amass"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["data", "prepare", "--source", "humanml3d", "--root", str(empty), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ramos: error:") and "\n" not in err
    assert main(["data", "analyze", str(empty)]) == 2
    assert "not a prepared data set" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_every_source_has_a_reader_and_a_packaged_config():
    from ramos import configs
    from ramos.commands.data import SOURCES
    from ramos.motion.io import READERS

    assert set(SOURCES) == set(READERS) == set(configs.names("data"))


def test_prepare_without_training_windows_fails_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A HumanML3D folder whose clips are all held out: exit 2, one line, no data set folder."""
    root = tmp_path / "hml"
    (root / "new_joints").mkdir(parents=True)
    walk = np.cumsum(np.random.default_rng(0).normal(scale=0.002, size=(60, 22, 3)), axis=0) + np.linspace(0, 1.7, 22)[
        None, :, None] * [0, 1, 0]
    for sid in ("000001", "000002"):
        np.save(root / "new_joints" / f"{sid}.npy", walk.astype(np.float32))
    (root / "train.txt").write_text("")
    (root / "val.txt").write_text("000001\n")
    (root / "test.txt").write_text("000002\n")
    out = tmp_path / "out" / "ds"
    assert main(["data", "prepare", "--source", "humanml3d", "--root", str(root), "--out", str(out),
                 "--workers", "1"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()  # logged warnings (no captions) first, then the error
    assert lines[-1].startswith("ramos: error: 0 training windows from 2 humanml3d item(s) (train 0, val 1, test 1")
    assert not any(line.startswith(("Traceback", "ramos: error")) for line in lines[:-1])
    assert not out.exists() and list((tmp_path / "out").iterdir()) == []
