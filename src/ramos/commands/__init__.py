"""Subcommands of the ``ramos`` CLI; each module has ``register(subparsers)``."""
