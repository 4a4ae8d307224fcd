"""The data set report: plots and report.md on the embedded set and on a captioned set."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_dataset import FakeReader

from ramos.stages.data.analysis import analyze_dataset, caption_keywords
from ramos.stages.data.config import PrepareConfig
from ramos.stages.data.prepare import load_prepare_config, prepare_dataset

PLOTS = ("motions.png", "lengths.png", "speeds.png", "rejections.png")


@pytest.fixture(scope="module")
def builtin_ds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cfg = load_prepare_config("builtin")
    cfg.augment.copies = 1
    cfg.filters.max_speed_mps = 12.0  # low enough to cut the backflip and spinkick peaks
    out = tmp_path_factory.mktemp("an") / "builtin"
    prepare_dataset("builtin", out, cfg, workers=1, progress=False)
    return out


def test_report_on_embedded_set(builtin_ds: Path) -> None:
    report = analyze_dataset(builtin_ds)
    assert report == builtin_ds / "report.md"
    text = report.read_text()
    for png in PLOTS:
        with Image.open(builtin_ds / png) as im:
            assert im.format == "PNG" and im.size[0] >= 500
        assert f"]({png})" in text
    assert "| turn_left | 2 |" in text and "By labels" in text
    assert "Filter threshold: 12 m/s (cut)" in text
    # The backflip (13.9 m/s) and spinkick (12.8 m/s) peaks are cut out; what is left is below 12 m/s.
    assert int(re.search(r"(\d+) frames cut out", text).group(1)) > 0
    speed_line = next(line for line in text.splitlines() if line.startswith("Fastest joint"))
    assert float(speed_line.split("max ")[1].split(" m/s")[0]) < 12.0
    assert "Nothing was rejected." in text


def test_report_into_other_folder_with_captions(tmp_path: Path) -> None:
    spec = {"a": {"captions": ["a person walks forward slowly"], "labels": []},
            "b": {"captions": ["someone walks in a circle"], "labels": []},
            "c": {"captions": ["a man jumps up and down"], "labels": []},
            "bad": {"error": "broken header"}}
    cfg = PrepareConfig()
    prepare_dataset("fake", tmp_path / "ds", cfg, workers=1, reader=FakeReader(spec), progress=False)
    report = analyze_dataset(tmp_path / "ds", tmp_path / "rep")
    text = report.read_text()
    assert report.parent == tmp_path / "rep" and not (tmp_path / "ds" / "report.md").exists()
    assert "By caption keywords" in text and "| walks | 2 |" in text
    assert "| read_error | 1 |" in text and "`bad`: bad.npy: broken header" in text
    assert sorted(p.name for p in (tmp_path / "rep").iterdir()) == sorted([*PLOTS, "report.md"])


def test_caption_keywords_counts_once_per_clip() -> None:
    got = dict(caption_keywords([["a person walks", "the person walks fast"], ["walks and waves"]]))
    assert got["walks"] == 2 and got["waves"] == 1 and "person" not in got and "the" not in got
    assert np.isclose(sum(got.values()), 4)
