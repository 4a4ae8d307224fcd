"""The ``ramos`` command. Thin: each subcommand lives in ``ramos.commands.<name>``.

Every command module exposes ``register(subparsers)``, which adds its parser and sets
``func`` to a callable taking the parsed namespace and returning an exit code. Heavy imports
(torch, lightning) happen inside those callables so that ``ramos --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from ramos.commands._args import UserError

# Order is the order shown in --help.
COMMANDS: tuple[str, ...] = (
    "mnist", "data", "train", "study", "analyze", "generate", "view", "evaluate", "pipeline",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ramos", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="show debug logs")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"ramos.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"ramos.commands.{name}":
                continue  # command not built yet
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ramos`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    # Lightning prints through its own handler; without this every line of it appears twice.
    logging.getLogger("lightning").propagate = False
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("ramos: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        # Errors that name a file and a problem are the user's to fix: one line, no traceback.
        # Every error class RaMoS defines (ClipError, DataError, CheckpointError, ConfigError,
        # GenerationError, NonFiniteLossError...) is such an error; so are missing/unwritable files.
        own = type(exc).__module__.startswith("ramos.") and isinstance(exc, (ValueError, ArithmeticError))
        if own or isinstance(exc, (UserError, FileNotFoundError, FileExistsError, PermissionError)):
            print(f"ramos: error: {exc}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
