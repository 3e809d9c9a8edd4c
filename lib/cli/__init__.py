"""The ``dovecote`` command: one module per group of subcommands."""

from ._main import main, run

__all__ = ["main", "run"]
