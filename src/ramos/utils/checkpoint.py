"""Loading checkpoints without executing pickled code."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable, or not the kind the caller expected."""


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a Lightning/torch checkpoint with ``weights_only=True`` (no arbitrary unpickling)."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p}: checkpoint not found")
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt or unsafe files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{p}: not a loadable checkpoint ({first})") from exc
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{p}: not a checkpoint dictionary")
    return ckpt
