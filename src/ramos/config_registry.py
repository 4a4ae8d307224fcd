"""Which dataclass each folder of ``configs/`` holds.

Every YAML file under ``configs/<folder>/`` must load as the dataclass registered for
``<folder>`` (a test instantiates all of them). A new stage adds one line here, pointing at its
config dataclass as ``"module:QualName"`` so that nothing heavy is imported until it is used.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

from ramos.utils.config import ConfigError, load_config

CONFIG_CLASSES: dict[str, str] = {
    "mnist": "ramos.mnist.config:MnistConfig",
    "data": "ramos.motion.preprocess:PrepareConfig",
    "motion_vae": "ramos.motion.motion_vae:MotionVAEConfig",
    "motion_diffusion": "ramos.motion.diffusion_stage:MotionDiffusionConfig",
    "pose_vae": "ramos.studies.pose_vae:PoseVAEStudyConfig",
    "raw_baseline": "ramos.motion.baseline:RawBaselineConfig",
    "evaluator": "ramos.motion.evaluate:EvaluationConfig",
    "pipeline": "ramos.pipeline:PipelineConfig",
}


def config_class(folder: str) -> type:
    """The dataclass registered for ``configs/<folder>/``."""
    try:
        target = CONFIG_CLASSES[folder]
    except KeyError:
        raise ConfigError(f"configs/{folder}: no config class registered for this folder "
                          f"(add it to ramos.config_registry.CONFIG_CLASSES)") from None
    module_name, _, qualname = target.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def load_config_file(path: str | os.PathLike[str]) -> Any:
    """Load a file under ``configs/<folder>/`` as the dataclass registered for its folder."""
    p = Path(path)
    return load_config(config_class(p.parent.name), p)
