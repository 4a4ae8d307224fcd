"""The packaged YAML configs: ``ramos/configs/<stage>/<name>.yaml``.

The dataclass of each stage (:data:`CONFIG_CLASSES`) is the one source of truth for every default,
with the reason for each in its field docstrings. A YAML file here is a named variant: it holds
only the values that differ from those defaults (``pipeline/tiny.yaml``: a seconds-long run;
``data/humanml3d.yaml``: what a HumanML3D folder needs), and a test loads every file as its
stage's dataclass.

Commands take ``--config NAME`` (a file of this folder, e.g. ``tiny``) or ``--config PATH`` (a
user's file). Files are read with :mod:`importlib.resources`, so an installed wheel finds them as
a checkout does.
"""

from __future__ import annotations

import importlib
import os
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ramos.utils.config import ConfigError, load_config

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

CONFIG_CLASSES: dict[str, str] = {
    "mnist": "ramos.stages.mnist.config:MnistConfig",
    "data": "ramos.stages.data.config:PrepareConfig",
    "pose_vae": "ramos.stages.pose_vae.study:PoseVAEStudyConfig",
    "motion_vae": "ramos.stages.motion_vae.train:MotionVAEConfig",
    "motion_diffusion": "ramos.stages.motion_diffusion:MotionDiffusionConfig",
    "raw_baseline": "ramos.stages.raw_baseline:RawBaselineConfig",
    "evaluation": "ramos.stages.evaluation.config:EvaluationConfig",
    "pipeline": "ramos.stages.pipeline:PipelineConfig",
}
"""Stage folder -> its config dataclass, as ``"module:QualName"`` (imported only when used)."""


def config_class(stage: str) -> type:
    """The dataclass registered for ``configs/<stage>/``."""
    try:
        target = CONFIG_CLASSES[stage]
    except KeyError:
        raise ConfigError(f"configs/{stage}: no config class registered for this folder "
                          f"(add it to ramos.configs.CONFIG_CLASSES)") from None
    module_name, _, qualname = target.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def names(stage: str) -> list[str]:
    """The packaged config names of ``stage`` (file stems), sorted."""
    folder = files(__name__) / stage
    if not folder.is_dir():
        return []
    return sorted(f.name[: -len(".yaml")] for f in folder.iterdir() if f.name.endswith(".yaml"))


def packaged(stage: str, name: str) -> Traversable:
    """The packaged file ``configs/<stage>/<name>.yaml`` (a one-line error listing the names otherwise)."""
    f = files(__name__) / stage / f"{name}.yaml"
    if not f.is_file():
        known = ", ".join(names(stage)) or "none"
        raise ConfigError(f"{name}: no such {stage} config (a file path, or one of the packaged names: {known})")
    return f


def resolve(stage: str, config: str | os.PathLike[str] | Traversable | None) -> Path | Traversable | None:
    """Where ``--config`` points: an existing file as given, else a packaged name of ``stage``; None stays None."""
    if config is None or not isinstance(config, (str, os.PathLike)):
        return config  # already a packaged file
    path = Path(config)
    if path.is_file() or path.suffix in (".yaml", ".yml") or len(path.parts) > 1:
        return path  # a missing file is reported by load_config, naming it
    return packaged(stage, str(config))


def load(stage: str, config: str | os.PathLike[str] | Traversable | None = None,
         overrides: dict[str, Any] | None = None) -> Any:
    """The stage's config: its dataclass defaults, then ``config`` (a path or packaged name), then
    dotted ``overrides``; wrong keys and types are one-line errors naming the file."""
    return load_config(config_class(stage), resolve(stage, config), overrides)
