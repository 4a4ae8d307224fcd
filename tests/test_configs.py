"""The packaged configs: every file instantiates as its stage's dataclass and holds only what differs."""

from __future__ import annotations

import dataclasses
from importlib.resources import files

import pytest
import yaml

from ramos import configs
from ramos.utils.config import ConfigError, load_config

PACKAGED = [(stage, name) for stage in sorted(configs.CONFIG_CLASSES) for name in configs.names(stage)]


def test_every_config_folder_is_registered():
    root = files("ramos.configs")
    folders = {f.name for f in root.iterdir() if f.is_dir() and not f.name.startswith("__")}
    assert folders, "no packaged config folders"
    assert folders <= set(configs.CONFIG_CLASSES), f"unregistered: {folders - set(configs.CONFIG_CLASSES)}"


@pytest.mark.parametrize("stage", sorted(configs.CONFIG_CLASSES))
def test_every_stage_config_class_builds_from_its_defaults(stage):
    cls = configs.config_class(stage)
    assert dataclasses.is_dataclass(cls)
    assert configs.load(stage) == cls()


def _leaves(tree: dict, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value and key not in ("overrides", "reader", "label_map"):
            out.update(_leaves(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


@pytest.mark.parametrize("stage,name", PACKAGED, ids=[f"{s}/{n}" for s, n in PACKAGED])
def test_packaged_file_instantiates_and_repeats_no_default(stage, name):
    cfg = configs.load(stage, name)
    assert isinstance(cfg, configs.config_class(stage))
    defaults = dataclasses.asdict(configs.config_class(stage)())
    written = _leaves(yaml.safe_load(configs.packaged(stage, name).read_text(encoding="utf-8")) or {})
    flat_defaults = _leaves(defaults)
    repeated = [k for k, v in written.items() if k in flat_defaults and flat_defaults[k] == v]
    assert not repeated, f"{stage}/{name}.yaml repeats defaults (they live in the dataclass): {repeated}"


def test_config_argument_takes_a_packaged_name_or_a_path(tmp_path):
    assert configs.load("evaluation", "tiny").n_per_label == 2
    own = tmp_path / "mine.yaml"
    own.write_text("n_per_label: 3\n")
    assert configs.load("evaluation", own).n_per_label == 3
    assert configs.load("evaluation", str(own), {"seed": 7}).seed == 7
    with pytest.raises(ConfigError, match="no such evaluation config.*tiny"):
        configs.load("evaluation", "tinny")
    with pytest.raises(ConfigError, match="missing.yaml: config file not found"):
        configs.load("evaluation", tmp_path / "missing.yaml")


def test_typos_and_wrong_types_are_errors_naming_the_file(tmp_path):
    from ramos.stages.mnist.config import MnistConfig

    bad = tmp_path / "bad.yaml"
    bad.write_text("vae:\n  latnet_dim: 8\n")
    with pytest.raises(ConfigError, match="bad.yaml"):
        load_config(MnistConfig, bad)
    bad.write_text("diffusion:\n  epochs: many\n")
    with pytest.raises(ConfigError, match="bad.yaml"):
        load_config(MnistConfig, bad)
    with pytest.raises(ConfigError, match="no config class registered"):
        configs.config_class("nonexistent")
