"""Atomic writing, buildable specs, typed configs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest
import torch

from ramos.diffusion.nets import ResidualMLPDenoiser
from ramos.utils.atomic import atomic_dir, atomic_path, write_json
from ramos.utils.config import ConfigError, load_config
from ramos.utils.spec import build, spec_of


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_atomic_path_keeps_the_suffix_for_format_sniffing_writers(tmp_path):
    with atomic_path(tmp_path / "a.npy") as tmp:
        assert tmp.suffix == ".npy"
        tmp.write_bytes(b"x")
    assert (tmp_path / "a.npy").read_bytes() == b"x"


def test_atomic_dir_replaces_whole_or_not_at_all(tmp_path):
    target = tmp_path / "ds"
    with atomic_dir(target) as d:
        (d / "a").write_text("1")
    with pytest.raises(ValueError):
        with atomic_dir(target) as d:
            (d / "b").write_text("2")
            raise ValueError("boom")
    assert sorted(p.name for p in target.iterdir()) == ["a"]
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]
    write_json(target / "m.json", {"x": torch.tensor(1.5).numpy()})
    assert (target / "m.json").read_text().strip().startswith("{")


def test_spec_round_trip_rebuilds_same_architecture():
    net = ResidualMLPDenoiser(dim=8, width=16, depth=1, num_classes=3, cond_scalars=["length"])
    spec = spec_of(net)
    assert spec["class_path"] == "ramos.diffusion.nets.ResidualMLPDenoiser"
    clone = build(spec)
    clone.load_state_dict(net.state_dict())
    x, t, y = torch.randn(2, 8), torch.tensor([1, 5]), torch.tensor([0, 3])
    assert torch.equal(clone(x, t, y, length=torch.tensor([1.0, 2.0])), net(x, t, y, length=torch.tensor([1.0, 2.0])))


def test_build_refuses_classes_outside_the_package():
    with pytest.raises(ValueError, match="only ramos"):
        build({"class_path": "os.system", "init_args": {}})


@dataclass
class _Inner:
    depth: int = 2
    kind: Literal["a", "b"] = "a"


@dataclass
class _Cfg:
    inner: _Inner = field(default_factory=_Inner)
    lr: float = 1e-3


def test_config_types_are_checked(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("inner:\n  depth: 5\n  kind: b\nlr: 0.1\n")
    cfg = load_config(_Cfg, good, overrides={"inner.depth": 7})
    assert cfg == _Cfg(_Inner(7, "b"), 0.1)
    bad = tmp_path / "bad.yaml"
    bad.write_text("inner:\n  depth: deep\n")
    with pytest.raises(ConfigError, match="bad.yaml"):
        load_config(_Cfg, bad)
    typo = tmp_path / "typo.yaml"
    typo.write_text("lrr: 0.1\n")
    with pytest.raises(ConfigError, match="typo.yaml"):
        load_config(_Cfg, typo)
    with pytest.raises(ConfigError, match="not found"):
        load_config(_Cfg, tmp_path / "missing.yaml")
