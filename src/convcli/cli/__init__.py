"""The command line: Typer commands, rich rendering, and everything process-wide."""

from convcli.cli.commands import app, main

__all__ = ["app", "main"]
