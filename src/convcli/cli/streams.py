"""The standard streams when they are not there: a closed stdin or stdout (``<&-``, ``>&-``,
which leave Python's ``sys.stdin``/``sys.stdout`` as None) and a stdout that fails (a full
disk, ``> /dev/full``). Each ends the command with one line saying which stream and why."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import BinaryIO

from convcli.errors import ConvcliError, UsageError

#: a closed stdout: results and the names of files written are printed there
STDOUT_CLOSED = (
    "stdout is closed: convcli prints its results and the files it writes there "
    "(redirect it to /dev/null to discard them)"
)


def check_stdout() -> None:
    """Refuse to start a command whose stdout is closed (a usage error: nothing is done)."""
    if sys.stdout is None:
        raise UsageError(STDOUT_CLOSED)


def stdin_stream() -> BinaryIO:
    """stdin's bytes (read boundedly by the caller), or a usage error when it is closed."""
    if sys.stdin is None:
        raise UsageError("stdin is closed: '-' (or --files-from -) has nothing to read")
    return sys.stdin.buffer


class StdoutError(ConvcliError):
    """Writing stdout failed (no space left under it, an I/O error): what was printed is
    incomplete."""


@contextlib.contextmanager
def stdout_errors() -> Iterator[None]:
    """Writes to stdout within the block: their failure is one :class:`StdoutError` (a
    closed pipe stays a BrokenPipeError, which ends the command quietly)."""
    try:
        yield
    except BrokenPipeError:
        raise
    except OSError as exc:
        if isinstance(exc, ConvcliError):
            raise
        message = f"cannot write the output: {exc.strerror or exc}"
        raise StdoutError(message, subject="stdout") from None
