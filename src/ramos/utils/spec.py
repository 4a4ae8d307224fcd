"""Buildable modules: networks that remember how they were built.

Stages meet through checkpoints. A checkpoint stores each network's *spec* (an import path inside
the ``ramos`` package plus plain init arguments) next to its weights, so a later stage rebuilds
the network from the checkpoint alone, without unpickling anything.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from typing import Any

from torch import nn

_ALLOWED_PREFIX = "ramos."

MOVED: dict[str, str] = {
    "ramos.motion.motion_losses.MaskedMotionLoss": "ramos.motion.losses.MaskedMotionLoss",
}
"""Class paths that checkpoints of earlier versions record -> where each class lives now, so that
those checkpoints keep loading (tests/test_checkpoint_compat.py)."""

RETIRED_ARGS: dict[str, dict[str, Any]] = {
    "ramos.motion.nets.motion.BucketedMotionEncoder": {"root_mode": "velocity"},
    "ramos.motion.nets.motion.BucketedMotionDecoder": {"root_mode": "velocity", "smooth": False},
    "ramos.motion.losses.MaskedMotionLoss": {"root_mode": "velocity"},
    "ramos.motion.nets.raw_denoiser.RawMotionDenoiser": {"root_mode": "velocity"},
}
"""Init arguments that earlier versions recorded for options since removed (measured worse, numbers in
the docs), with the one value that stayed: a spec holding that value builds as before; any other
value is a clear error."""


class Buildable(nn.Module):
    """An ``nn.Module`` whose constructor arguments are recorded in ``self.spec``.

    Subclasses must take only plain arguments (numbers, strings, bools, lists, dicts) so that the
    spec survives ``torch.load(weights_only=True)``.
    """

    spec: dict[str, Any]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None:
            return
        signature = inspect.signature(init)

        @functools.wraps(init)
        def recording_init(self: Buildable, *args: Any, **kw: Any) -> None:
            init(self, *args, **kw)
            # The most derived class records last, so its spec wins over its parents'.
            if type(self) is cls:
                bound = signature.bind(self, *args, **kw)
                bound.apply_defaults()
                init_args = {k: v for k, v in bound.arguments.items() if k != "self"}
                object.__setattr__(self, "spec", {
                    "class_path": f"{cls.__module__}.{cls.__qualname__}",
                    "init_args": _plain(init_args, cls.__qualname__),
                })

        cls.__init__ = recording_init  # type: ignore[method-assign]


def _plain(value: Any, owner: str) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v, owner) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v, owner) for k, v in value.items()}
    raise TypeError(f"{owner}: init argument of type {type(value).__name__} is not a plain value")


def build(spec: dict[str, Any]) -> nn.Module:
    """Instantiate a network from its spec; only classes inside the ``ramos`` package are allowed."""
    class_path = spec.get("class_path")
    if not isinstance(class_path, str) or not class_path.startswith(_ALLOWED_PREFIX):
        raise ValueError(f"refusing to build {class_path!r}: only ramos.* classes can be rebuilt")
    class_path = MOVED.get(class_path, class_path)
    module_name, _, qualname = class_path.rpartition(".")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError):
        raise ValueError(f"{class_path} does not exist in this version of RaMoS (a network removed since; "
                         "docs/motion_vae.md lists the retired motion VAE families)") from None
    if not (isinstance(obj, type) and issubclass(obj, nn.Module)):
        raise ValueError(f"{class_path} is not an nn.Module")
    init_args = dict(spec.get("init_args", {}))
    for name, kept in RETIRED_ARGS.get(class_path, {}).items():
        if name in init_args:
            value = init_args.pop(name)
            if value != kept:
                raise ValueError(f"{class_path}: {name}={value!r} is no longer supported (only {kept!r} is; the "
                                 "alternative measured worse, see the docs)")
    return obj(**init_args)


def spec_of(net: nn.Module) -> dict[str, Any]:
    """The spec of a :class:`Buildable` network (a clear error for any other module)."""
    spec = getattr(net, "spec", None)
    if spec is None:
        raise TypeError(f"{type(net).__name__} is not Buildable: it cannot be rebuilt from a checkpoint")
    return spec
