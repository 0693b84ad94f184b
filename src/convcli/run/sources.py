"""The inputs of a batch: files, image bytes on stdin, inline arrays, and directory walks."""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from convcli import bounded
from convcli.errors import UsageError
from convcli.io.allowed import allowed_formats, load_plugins
from convcli.io.formats import is_array_path
from convcli.memory import format_size


@dataclass(frozen=True)
class Source:
    """One input: a file, image bytes on stdin, or an inline JSON array."""

    label: str  # how messages name it
    path: Path | None = None
    inline: str | None = None
    stdin: bytes | None = None
    rel: Path | None = None  # path below the directory it was found in (kept by -d)

    @property
    def is_array(self) -> bool:
        return self.inline is not None or (self.path is not None and is_array_path(self.path))

    @property
    def stem(self) -> str:
        if self.path is not None:
            return self.path.stem
        return "stdin" if self.stdin is not None else "array"


def image_suffixes() -> set[str]:
    """Every extension of the image formats decoded (see :mod:`convcli.io.allowed`; Pillow's
    plugins are loaded: only for directory walks). A stray file of another format in a
    folder (an ``.eps``) is left alone, as notes are."""
    from PIL import Image

    allowed = allowed_formats()
    load_plugins(allowed)
    extensions = Image.EXTENSION
    return {
        ext
        for ext, fmt in extensions.items()
        if fmt in Image.OPEN and (allowed is None or fmt in allowed)
    }


def discover(
    inputs: Iterable[str],
    *,
    recursive: bool = False,
    stdin: Callable[[], bytes] | None = None,
) -> Iterator[Source]:
    """Expand the command line's inputs: files, ``-``, inline arrays and directories.

    A directory needs ``recursive``; its images and .npy arrays are taken in sorted order,
    each remembering its path below the directory so that ``-d`` can keep the layout.
    """
    suffixes: set[str] | None = None
    for item in inputs:
        if item == "-":
            if stdin is None:
                raise UsageError("'-' (stdin) can only be given once")
            data = stdin()
            stdin = None
            yield Source("<stdin>", stdin=data)
            continue
        path = Path(item)
        if item.lstrip().startswith("[") and not os.path.exists(path):
            yield Source(_short(item), inline=item)
            continue
        if os.path.isdir(path):
            if not recursive:
                yield Source(item, path=path)  # reported as "is a directory (give -r ...)"
                continue
            # images and .npy arrays; text arrays (.csv .txt .json) only when named, since
            # photo folders are full of notes
            suffixes = suffixes or image_suffixes() | {".npy"}
            for found in _walk(path, suffixes):
                yield Source(str(found), path=found, rel=found.relative_to(path))
            continue
        yield Source(item, path=path)


def _walk(root: Path, suffixes: set[str]) -> Iterator[Path]:
    """Files below ``root`` with a known suffix, hidden ones skipped, in path order."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        found += [
            Path(dirpath) / name
            for name in filenames
            if not name.startswith(".") and Path(name).suffix.lower() in suffixes
        ]
    return iter(sorted(found))


def read_list(data: bytes, null: bool) -> list[str]:
    """Paths from ``--files-from``: one per line, or NUL-separated with ``-0``."""
    return read_list_stream(io.BytesIO(data), null, len(data) + 1, "--files-from")


#: the longest name a list may hold (Linux's PATH_MAX)
MAX_NAME = 4096


def read_list_stream(stream: BinaryIO, null: bool, limit: int, label: str) -> list[str]:
    """Paths from a stream, as :func:`read_list`, read a chunk at a time and refused (a usage
    error naming ``label``) past ``limit`` bytes or at a name longer than any path can be:
    ``/dev/zero`` is refused at once, not read forever."""
    sep = b"\0" if null else b"\n"
    items: list[str] = []
    pending = b""
    size = 0

    def take(raw: bytes) -> None:
        if not null:
            raw = raw.rstrip(b"\r")
        if len(raw) > MAX_NAME:
            what = "entry" if null else "line"
            raise UsageError(
                f"{label}: {what} {len(items) + 1} is longer than {MAX_NAME} bytes, which no "
                "file name is (not a list of names?)"
            )
        if raw.strip():
            items.append(os.fsdecode(raw))

    for chunk in bounded.chunks(stream):
        size += len(chunk)
        if size > limit:
            raise UsageError(
                f"{label}: more than {format_size(limit)} of names, a quarter of the memory "
                "budget (raise --memory or CONVCLI_MEMORY)"
            )
        data = pending + chunk
        if data.count(sep) == len(data):  # separators only (-0 on /dev/zero): no names
            pending = b""
            continue
        *whole, pending = data.split(sep)
        for raw in whole:
            take(raw)
        if len(pending) > MAX_NAME:
            take(pending)
    take(pending)
    return items


def _short(text: str) -> str:
    return text if len(text) <= 40 else text[:37] + "..."
