"""``ramos train <model>``: train one stage; each trainable model is a sub-subcommand.

To add a stage (``ramos train diffusion`` ...), write an ``_add_<stage>(sub)`` function that adds
its parser and ``func``, and list it in :data:`STAGES`. Each stage's logic lives in the library;
these functions only parse arguments, build the config and call it.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

CONFIG_DIR = Path(__file__).resolve().parents[3] / "configs"
log = logging.getLogger(__name__)


def parse_overrides(pairs: list[str] | None) -> dict[str, Any]:
    """``["optim.lr=3e-4", "net.family=mlp"]`` -> ``{"optim.lr": 0.0003, "net.family": "mlp"}`` (YAML values)."""
    from ramos.cli import UserError

    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UserError(f"--set {pair!r}: expected KEY=VALUE, e.g. --set optim.max_minutes=5")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise UserError(f"--set {pair!r}: value is not valid YAML ({exc})") from exc
    return out


def resolve_dataset(path: str | None, progress: bool = True) -> Path:
    """The given prepared data set folder, or the embedded default set (prepared on first use)."""
    from ramos.motion.dataset import ensure_builtin_dataset

    if path is not None:
        return Path(path)
    return ensure_builtin_dataset(progress=progress)


def _add_common(p: argparse.ArgumentParser, default_config: Path) -> None:
    p.add_argument("--config", default=str(default_config) if default_config.is_file() else None,
                   help=f"YAML config (default: {default_config.relative_to(CONFIG_DIR.parent)})")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value by its dotted key (repeatable), e.g. optim.max_minutes=5")
    p.add_argument("--out", required=True, help="output folder (checkpoint, metrics.json, TensorBoard logs)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


# --- motion-vae --------------------------------------------------------------------------------------------
def _add_motion_vae(sub: Any) -> None:
    p = sub.add_parser("motion-vae", help="motion VAE: 200-frame windows -> latent vectors",
                       description="Train the motion VAE on a prepared data set and evaluate it on the held-out "
                                   "split (writes OUT/motion_vae.ckpt, OUT/metrics.json, OUT/tb/).")
    p.add_argument("--dataset", default=None,
                   help="prepared data set folder (default: the embedded set, prepared on first use)")
    _add_common(p, CONFIG_DIR / "motion_vae" / "default.yaml")
    p.set_defaults(func=_run_motion_vae)


def _run_motion_vae(args: argparse.Namespace) -> int:
    from ramos.motion.motion_vae import MotionVAEConfig, summary_line, train_motion_vae
    from ramos.utils.config import load_config

    cfg = load_config(MotionVAEConfig, args.config, parse_overrides(args.set))
    dataset = resolve_dataset(args.dataset, progress=not args.no_progress)
    result = train_motion_vae(cfg, dataset, args.out, progress=not args.no_progress)
    print(summary_line(result))
    return 0


def _add_motion_diffusion(sub: Any) -> None:
    from ramos.commands._motion_diffusion import register

    register(sub)


STAGES: dict[str, Callable[[Any], None]] = {
    "motion-vae": _add_motion_vae,
    "motion-diffusion": _add_motion_diffusion,
}


def register(subparsers: Any) -> None:
    """Add ``ramos train`` and its per-model sub-subcommands."""
    p = subparsers.add_parser("train", help="train a model stage (motion-vae, ...)",
                              description="Train one model stage; see `ramos train MODEL --help`.")
    sub = p.add_subparsers(dest="model", metavar="MODEL", required=True)
    for add in STAGES.values():
        add(sub)
