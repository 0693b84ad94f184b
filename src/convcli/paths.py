"""Paths as users type them: asking about them never raises.

A path can hold a NUL byte, be longer than the filesystem allows or start with ``~nosuchuser``;
``Path.expanduser`` raises for some of those, and a caller wants one clear reason for the
others. (For a yes or no, ``os.path.isfile``, ``isdir`` and ``exists`` never raise: they answer
False for a NUL byte or any OSError, where ``Path.is_file`` and friends may raise.)
"""

from __future__ import annotations

import errno
import os
from pathlib import Path


def expand(text: str) -> Path:
    """``~`` and ``~user`` expanded where they can be; the text as it is otherwise."""
    path = Path(text)
    try:
        return path.expanduser()
    except (RuntimeError, KeyError, ValueError):
        return path


def problem(path: Path | str) -> str | None:
    """Why ``path`` cannot be opened, in a few words, or None if it can be stat'ed."""
    try:
        os.stat(path)
    except ValueError:
        return "the name holds a NUL byte"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symbolic link loop"
        if exc.errno == errno.ENAMETOOLONG:
            return "file name too long"
        if os.path.islink(path):
            return "broken symbolic link (its target does not exist)"
        if exc.errno == errno.ENOENT:
            return "no such file"
        return exc.strerror or str(exc)
    return None
