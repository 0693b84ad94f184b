"""Input files before a decoder sees them, and a decoder's failure in a few words."""

from __future__ import annotations

import os
from pathlib import Path

from convcli import paths
from convcli.errors import InputError


def check_readable(path: Path, label: str) -> None:
    """Refuse a path that is no readable, non-empty file, saying why."""
    problem = paths.problem(path)
    if problem is not None:
        raise InputError(problem, subject=label)
    if path.is_dir():
        raise InputError("is a directory (give -r to process a directory)", subject=label)
    if not os.access(path, os.R_OK):
        raise InputError("permission denied", subject=label)
    if path.stat().st_size == 0:
        raise InputError("empty file (0 bytes)", subject=label)


def reason(exc: BaseException) -> str:
    """A decoder's exception in a few words: its first line, or its type's name."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:120]
