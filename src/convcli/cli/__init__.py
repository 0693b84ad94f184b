"""The command line: Typer commands, rich rendering, and everything process-wide."""

from convcli.cli import (  # noqa: F401 (they register commands)
    apply_command,
    deconvolve_command,
    fit_command,
    kernel_commands,
)
from convcli.cli.program import app, main

__all__ = ["app", "main"]
