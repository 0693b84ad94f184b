"""Atomic writes: a result appears at its path only once complete, never half-written, and
the part files of killed writers are cleaned up."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from convcli.errors import OutputError


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that no reader ever sees half a file (see
    :func:`atomic_file`)."""
    with atomic_file(path) as fh:
        fh.write(data)


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[Any]:
    """A binary file object whose content appears at ``path`` only once complete.

    The data goes to a hidden ``.NAME.PID-XXXX.part`` file in the same directory, renamed
    over ``path`` when the block ends and removed on any error or interruption. A part file
    left by a process that was killed (``kill -9``) is removed by the next write of the same
    output, once its process is gone.
    """
    directory = path.parent if str(path.parent) else Path(".")
    remove_stale_parts(path)
    # The part file's name is known before the file exists, so that a signal arriving at any
    # point after its creation still finds it to remove (mkstemp names it only on return).
    tmp: Path | None = None
    try:
        for _ in range(100):
            tmp = directory / f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.part"
            try:  # mode 0o666 less the umask, as for any new file
                os.close(os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666))
                break
            except FileExistsError:
                continue  # another writer's part file: never ours to remove
        else:
            tmp = None
            raise OutputError("cannot find a free temporary name beside it", subject=str(path))
        with open(tmp, "w+b") as fh:  # by name: writers such as tifffile want one
            yield fh
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        if isinstance(exc, FileNotFoundError) and not directory.is_dir():
            raise OutputError(
                "the output directory does not exist (create it, or use -d, which creates it)",
                subject=str(path),
            ) from None
        if isinstance(exc, PermissionError):
            raise OutputError(
                "permission denied (cannot write in its directory)", subject=str(path)
            ) from None
        if isinstance(exc, OSError):
            raise OutputError(exc.strerror or str(exc), subject=str(path)) from None
        raise


def write_bands(
    path: Path,
    fmt: str,
    shape: tuple[int, ...],
    dtype: np.dtype,
    bands: Iterator[tuple[int, int, np.ndarray]],
    *,
    rows_per_band: int,
    stacked: bool = False,
    compress: int | None = None,
) -> None:
    """Write an image or array that arrives band by band (rows ``r0:r1``), atomically, never
    holding more than one band: a striped TIFF, or a ``.npy`` (a stack's bands carry the stack
    axis first)."""
    if fmt == "NPY":
        with atomic_file(path) as fh:
            np.lib.format.write_array_header_2_0(
                fh,
                {
                    "descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                    "fortran_order": False,
                    "shape": tuple(shape),
                },
            )
            offset = fh.tell()
            fh.truncate(offset + int(np.prod(shape)) * np.dtype(dtype).itemsize)
            mm = np.memmap(fh, dtype=dtype, mode="r+", offset=offset, shape=tuple(shape))
            for r0, r1, band in bands:
                if stacked:
                    mm[:, r0:r1] = band
                else:
                    mm[r0:r1] = band
            mm.flush()
            del mm
        return
    if fmt != "TIFF":
        raise OutputError(
            f"a streamed result is written as TIFF or .npy, not {fmt}", subject=str(path)
        )
    import tifffile

    channels = shape[2] if len(shape) == 3 else 1
    photometric = "rgb" if channels >= 3 else "minisblack"
    extras = ["unassalpha"] if channels in (2, 4) else None
    with atomic_file(path) as fh:
        tifffile.imwrite(
            fh,
            (band for _, _, band in bands),
            shape=tuple(shape),
            dtype=dtype,
            photometric=photometric,
            extrasamples=extras,
            rowsperstrip=rows_per_band,
            compression="zlib" if compress else None,
        )


def remove_stale_parts(path: Path) -> None:
    """Delete part files of ``path`` whose writing process no longer exists."""
    directory = path.parent if str(path.parent) else Path(".")
    try:
        candidates = list(directory.glob(f".{glob_escape(path.name)}.*-*.part"))
    except OSError:
        return
    for part in candidates:
        pid_text = part.name[len(path.name) + 2 :].split("-", 1)[0]
        if pid_text.isdigit() and not _alive(int(pid_text)):
            with contextlib.suppress(OSError):
                part.unlink()


def glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
