"""Every YAML file under configs/ instantiates as the dataclass registered for its folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from ramos.config_registry import CONFIG_CLASSES, config_class, load_config_file
from ramos.utils.config import ConfigError, load_config, to_dict

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
FILES = sorted(p for p in CONFIGS.rglob("*.y*ml") if p.suffix in (".yaml", ".yml"))


def test_there_are_config_files_and_every_folder_is_registered():
    assert FILES, f"no config files under {CONFIGS}"
    folders = {p.parent.name for p in FILES}
    assert folders <= set(CONFIG_CLASSES), f"unregistered config folders: {folders - set(CONFIG_CLASSES)}"
    assert all(p.parent.parent == CONFIGS for p in FILES), "configs live one folder deep: configs/<stage>/*.yaml"


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(CONFIGS)) for p in FILES])
def test_config_file_instantiates(path):
    cfg = load_config_file(path)
    assert isinstance(cfg, config_class(path.parent.name))


def test_default_mnist_config_file_equals_the_built_in_defaults():
    from ramos.mnist.config import MnistConfig

    assert to_dict(load_config_file(CONFIGS / "mnist" / "default.yaml")) == to_dict(MnistConfig())


def test_typos_and_wrong_types_are_errors_naming_the_file(tmp_path):
    from ramos.mnist.config import MnistConfig

    bad = tmp_path / "bad.yaml"
    bad.write_text("vae:\n  latnet_dim: 8\n")
    with pytest.raises(ConfigError, match="bad.yaml"):
        load_config(MnistConfig, bad)
    bad.write_text("diffusion:\n  epochs: many\n")
    with pytest.raises(ConfigError, match="bad.yaml"):
        load_config(MnistConfig, bad)
    with pytest.raises(ConfigError, match="no config class registered"):
        config_class("nonexistent")
