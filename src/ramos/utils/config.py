"""Typed YAML configuration: a dataclass per stage, checked by jsonargparse.

Unknown keys and wrongly typed values are errors naming the file and the key, so a typo in a
config file cannot silently fall back to a default. A dataclass lists its removed options in a class
attribute ``RETIRED = {"old_key": "what replaced it"}``: a file that still sets one gets a one-line
error saying what to write instead.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import yaml
from jsonargparse import ArgumentParser

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration file is missing, malformed or does not match its dataclass."""


def from_dict(cls: type[T], data: dict[str, Any], source: str = "<dict>") -> T:
    """Build the dataclass ``cls`` from a plain dictionary, checking every key and type."""
    _check_retired(cls, data, source)
    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(cls, "cfg")
    try:
        ns = parser.parse_object({"cfg": data})
        return parser.instantiate(ns).cfg
    except Exception as exc:  # jsonargparse raises ArgumentError / ValueError / TypeError
        msg = " ".join(str(exc).split())
        raise ConfigError(f"{source}: {msg}") from exc


def _check_retired(cls: type[Any], data: dict[str, Any], source: str, prefix: str = "") -> None:
    """A :class:`ConfigError` naming the key when ``data`` sets an option ``cls`` (or a nested config) retired."""
    for key, instead in getattr(cls, "RETIRED", {}).items():
        if key in data:
            raise ConfigError(f"{source}: {prefix}{key} is no longer an option: {instead}")
    try:
        hints = typing.get_type_hints(cls)
    except (NameError, TypeError):  # an annotation that does not resolve: jsonargparse reports it
        return
    for f in dataclasses.fields(cls):
        sub, kind = data.get(f.name), hints.get(f.name)
        if isinstance(sub, dict) and isinstance(kind, type) and dataclasses.is_dataclass(kind):
            _check_retired(kind, sub, source, f"{prefix}{f.name}.")


def load_config(cls: type[T], path: str | os.PathLike[str] | Traversable | None = None,
                overrides: dict[str, Any] | None = None) -> T:
    """Load ``cls`` from a YAML file (or defaults when ``path`` is None) plus dotted overrides.

    ``path`` is a file path or a :class:`~importlib.resources.abc.Traversable` (a packaged file).
    The file holds only what differs from the dataclass defaults.
    """
    data: dict[str, Any] = {}
    source = "--set" if overrides else "<defaults>"
    if path is not None:
        p = Path(path) if isinstance(path, (str, os.PathLike)) else path
        source = f"{p} with --set" if overrides else str(p)
        if not p.is_file():
            raise ConfigError(f"{p}: config file not found")
        try:
            loaded = yaml.safe_load(p.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{p}: not valid YAML ({' '.join(str(exc).split())[:200]})") from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{p}: top level must be a mapping")
        data = loaded or {}
    for dotted, value in (overrides or {}).items():
        node = data
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return from_dict(cls, data, source)


def to_dict(cfg: Any) -> dict[str, Any]:
    """A dataclass config as plain data (for saving beside checkpoints)."""
    return dataclasses.asdict(cfg)


def save_config(cfg: Any, path: str | os.PathLike[str]) -> None:
    """Write a dataclass config as YAML, atomically."""
    from ramos.utils.atomic import write_text

    write_text(path, yaml.safe_dump(to_dict(cfg), sort_keys=False))
