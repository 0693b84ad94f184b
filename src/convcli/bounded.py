"""Reading what a path or stream holds with a bound, and without waiting forever.

Inputs come from anywhere: a name can be a FIFO nobody writes to (``open`` would wait for a
writer forever), ``/dev/zero`` (endless), a ``/proc`` file (its size says 0) or a 2 GiB
stream on stdin. Every read here stops at a limit the caller derives from convcli's limits,
and a FIFO is opened without waiting for a writer (with none, it reads as empty).

A bottom-level module: it imports nothing of convcli but the errors.

>>> import io
>>> read_stream(io.BytesIO(b"abc"), 10, lambda: "too much")
b'abc'
>>> file_kind(__file__)
'a regular file'
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterator
from typing import BinaryIO

from convcli.errors import LimitError

CHUNK = 1 << 20

_KINDS = {
    stat.S_IFREG: "a regular file",
    stat.S_IFDIR: "a directory",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


def file_kind(path: str | os.PathLike[str]) -> str:
    """What kind of file a path names (following links): ``'a regular file'``,
    ``'a FIFO'``, ``'a character device'``, ..."""
    return _KINDS.get(stat.S_IFMT(os.stat(path).st_mode), "not a regular file")


def is_regular(path: str | os.PathLike[str]) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def open_without_waiting(path: str | os.PathLike[str]) -> BinaryIO:
    """Open a file for reading; a FIFO without a writer opens at once (and reads as empty)
    rather than waiting for one forever."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
        os.set_blocking(fd, True)  # reads wait for data while a writer is there
        return os.fdopen(fd, "rb", buffering=0)
    except BaseException:
        os.close(fd)
        raise


def read_stream(stream: BinaryIO, limit: int, too_much: Callable[[], str]) -> bytes:
    """Everything ``stream`` holds, refused with ``LimitError(too_much())`` as soon as it
    holds more than ``limit`` bytes (never more than ``limit`` + one chunk is read)."""
    parts: list[bytes] = []
    size = 0
    for chunk in chunks(stream):
        size += len(chunk)
        if size > limit:
            raise LimitError(too_much())
        parts.append(chunk)
    return b"".join(parts)


def chunks(stream: BinaryIO, size: int = CHUNK) -> Iterator[bytes]:
    """The bytes of a stream, a chunk at a time, to its end."""
    while True:
        try:
            chunk = stream.read(size)
        except InterruptedError:
            continue
        except BlockingIOError:  # (a stream left non-blocking by whoever opened it)
            import select

            select.select([stream], [], [])
            continue
        if not chunk:
            return
        yield chunk


def read_path(path: str | os.PathLike[str], limit: int, too_much: Callable[[], str]) -> bytes:
    """The bytes of a file, FIFO or device, bounded as :func:`read_stream` (a directory
    raises IsADirectoryError, as ``open`` does)."""
    with open_without_waiting(path) as stream:
        return read_stream(stream, limit, too_much)
