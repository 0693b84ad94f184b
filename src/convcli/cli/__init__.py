"""The command line: Typer commands, rich rendering, and everything process-wide."""

from convcli.cli import apply_command, kernel_commands  # noqa: F401 (they register commands)
from convcli.cli.program import app, main

__all__ = ["app", "main"]
