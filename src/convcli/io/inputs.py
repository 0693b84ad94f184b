"""Input files before a decoder sees them, and a decoder's failure in a few words."""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

from convcli import bounded, paths
from convcli.errors import InputError, LimitError
from convcli.memory import format_size

#: the bytes of a stream looked at to tell whether it may be an image at all
PREFIX = 64


def check_readable(path: Path, label: str) -> None:
    """Refuse a path that is no readable, non-empty regular file, saying why (a FIFO would
    wait for a writer, a device never end, a /proc file says it is empty)."""
    problem = paths.problem(path)
    if problem is not None:
        raise InputError(problem, subject=label)
    if path.is_dir():
        raise InputError("is a directory (give -r to process a directory)", subject=label)
    if not bounded.is_regular(path):
        raise InputError(
            f"not a regular file ({bounded.file_kind(path)}); give its bytes on stdin as '-'",
            subject=label,
        )
    if not os.access(path, os.R_OK):
        raise InputError("permission denied", subject=label)
    if path.stat().st_size == 0:
        if _holds_bytes(path):
            raise InputError(
                "not a regular file (its size says 0 bytes but it holds some: a /proc or "
                "/sys file); give its bytes on stdin as '-'",
                subject=label,
            )
        raise InputError("empty file (0 bytes)", subject=label)


def _holds_bytes(path: Path) -> bool:
    try:
        with bounded.open_without_waiting(path) as fh:
            return bool(fh.read(1))
    except OSError:
        return False


def read_image_stream(stream: BinaryIO, limit: int, label: str) -> bytes:
    """Image bytes from a stream (stdin), at most ``limit`` (the memory budget). A stream
    whose first bytes begin no image of an allowed format is read no further: those bytes
    are returned for the decoder to name the problem (``/dev/zero`` ends at once)."""
    from convcli.io.allowed import may_be_image

    prefix = b""
    for chunk in bounded.chunks(stream, PREFIX):
        prefix += chunk
        if len(prefix) >= PREFIX:
            break
    if not may_be_image(prefix):
        return prefix

    def too_much() -> str:
        return (
            f"more than {format_size(limit)} of image bytes, over the memory budget "
            "(raise --memory or CONVCLI_MEMORY)"
        )

    try:
        return prefix + bounded.read_stream(stream, limit - len(prefix), too_much)
    except LimitError as exc:
        exc.subject = label
        raise


def reason(exc: BaseException) -> str:
    """A decoder's exception in a few words: its first line, or its type's name."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:120]
