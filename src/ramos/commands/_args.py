"""What every subcommand shares: the user-error type, ``--config``/``--set`` handling, the default data set.

Kept free of heavy imports (torch, Lightning): ``ramos --help`` imports every command module.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any


class UserError(Exception):
    """An error caused by the user's input: printed as one line, exit code 2, no traceback."""


def parse_override(text: str) -> tuple[str, Any]:
    """``"optim.lr=3e-4"`` -> ``("optim.lr", 0.0003)`` (the value is read as YAML); an argparse type."""
    import yaml

    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, e.g. optim.max_minutes=5; got {text!r}")
    try:
        return key.strip(), yaml.safe_load(value)
    except yaml.YAMLError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: the value is not valid YAML ({' '.join(str(exc).split())})")


def add_config_args(p: argparse.ArgumentParser, stage: str, default: str | None = None) -> None:
    """``--config`` (a YAML file, or a packaged name of ``configs/<stage>/``) and repeatable ``--set KEY=VALUE``."""
    from ramos import configs

    packaged = ", ".join(configs.names(stage))
    p.add_argument("--config", default=default,
                   help=f"YAML file, or a packaged name ({packaged or 'none'}); it holds only what differs from "
                        f"the defaults (default: {default or 'the built-in defaults'})")
    p.add_argument("--set", dest="overrides", type=parse_override, action="append", default=[], metavar="KEY=VALUE",
                   help="override one value by its dotted key, the value read as YAML (repeatable), e.g. "
                        "--set a.b=0.001")


def load_stage_config(stage: str, args: argparse.Namespace, extra: dict[str, Any] | None = None) -> Any:
    """The stage's config from ``--config`` and ``--set`` (then ``extra``, e.g. from other flags)."""
    from ramos import configs

    overrides = dict(args.overrides)
    overrides.update(extra or {})
    return configs.load(stage, args.config, overrides)


def add_dataset_arg(p: argparse.ArgumentParser) -> None:
    """``--dataset``: a prepared data set folder; the embedded set when omitted."""
    p.add_argument("--dataset", type=Path, default=None,
                   help="prepared data set folder (default: the embedded set, prepared on first use)")


def resolve_dataset(path: str | os.PathLike[str] | None, progress: bool = True) -> Path:
    """The given prepared data set folder, or the embedded default set (prepared on first use)."""
    if path is not None:
        return Path(path)
    from ramos.stages.data.prepare import ensure_builtin_dataset

    return ensure_builtin_dataset(progress=progress)


TRAINER_FLAGS: tuple[tuple[str, type, str], ...] = (
    ("accelerator", str, "cpu, gpu, mps or auto (default: cpu)"),
    ("devices", int, "devices (GPUs, or CPU processes with --strategy ddp) per node (default: 1)"),
    ("num_nodes", int, "machines (default: 1)"),
    ("strategy", str, "auto, ddp, ddp_spawn... (default: auto)"),
    ("precision", str, "32-true, bf16-mixed (GPU), 16-mixed (default: 32-true)"),
)
"""The Lightning settings every training command takes (:class:`ramos.utils.training.TrainerConfig`)."""


def add_trainer_args(p: argparse.ArgumentParser) -> None:
    """``--accelerator``, ``--devices``, ``--num-nodes``, ``--strategy``, ``--precision``: Lightning's own."""
    group = p.add_argument_group("where to train (Lightning)")
    for name, kind, text in TRAINER_FLAGS:
        group.add_argument(f"--{name.replace('_', '-')}", dest=f"trainer_{name}", type=kind, default=None,
                           metavar=name.upper(), help=text)


def trainer_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The trainer flags given, as ``trainer.<name>`` overrides."""
    return {f"trainer.{name}": getattr(args, f"trainer_{name}") for name, _, _ in TRAINER_FLAGS
            if getattr(args, f"trainer_{name}", None) is not None}
