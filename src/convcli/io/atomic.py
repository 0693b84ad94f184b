"""Atomic writes: a result appears at its path only once complete, never half-written, and
the part files of killed writers are cleaned up.

Part files are named ``.NAME.PID-TOKEN.part`` beside the output (``NAME`` shortened, with a
hash of the whole name, when it is long, so that the part name stays within the 255 bytes a
file name may have). ``TOKEN`` starts with a tag of the machine, so that a writer removes
only part files of its own machine's processes, and only of processes that are gone (or
zombies): two convcli runs sharing a folder, or a cluster's workers sharing a filesystem,
never delete each other's work. The first write of a process into a directory removes every
such stale part file there (what a batch stopped by ``kill -9`` left), and so does a resumed
batch for the outputs it skips.

An output that is not a regular file (a device such as ``/dev/null``, a FIFO, or
``/dev/stdout``) is written to as a stream, never replaced by a rename; a write error there
(``/dev/full``: no space left) is an :class:`OutputError`. An output that is a symbolic link
to a regular file is followed: the file it points to is replaced, the link stays. A replaced
file keeps its permission bits, and its owner and group as far as the writer may set them.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import stat
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from convcli.errors import OutputError
from convcli.memory import format_size

#: the longest output name (in bytes) a part name keeps whole: the rest of a part name (a
#: dot, the pid, the token, ``.part``) needs at most 30 more of the 255 a name may have
PART_NAME_KEEPS = 200
_PART = re.compile(r"^\.(?P<name>.+)\.(?P<pid>[0-9]+)-(?P<host>[0-9a-f]{4})[0-9a-f]{4}\.part$")


#: the most bytes one write(2) hands the kernel: on this project's Linux machines (6.18,
#: ext4) one write of 4 MB or more into a new file runs at a tenth of the speed of writes of
#: a megabyte or less (a 36 MB TIFF's pixels: 82 ms in one write, 7-10 ms in 256 KB pieces)
WRITE_PIECE = 256 * 1024


class _PieceWrites(io.BufferedRandom):
    """A part file whose large writes go to the kernel :data:`WRITE_PIECE` bytes at a time."""

    def write(self, data: Any) -> int:
        view = memoryview(data)
        if view.nbytes <= WRITE_PIECE or not view.c_contiguous:
            return super().write(view)
        flat = view.cast("B")
        for start in range(0, flat.nbytes, WRITE_PIECE):
            super().write(flat[start : start + WRITE_PIECE])
        return flat.nbytes


def row_pieces(pixels: np.ndarray) -> Iterator[np.ndarray]:
    """``pixels`` (made C-contiguous) in runs of whole rows of about :data:`WRITE_PIECE`
    bytes: for writers that hand each array to the kernel in one write (``ndarray.tofile``)."""
    pixels = np.ascontiguousarray(pixels)
    row_bytes = max(1, pixels.nbytes // max(len(pixels), 1))
    rows = max(1, WRITE_PIECE // row_bytes)
    for r in range(0, len(pixels), rows):
        yield pixels[r : r + rows]


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that no reader ever sees half a file (see
    :func:`atomic_file`)."""
    with atomic_file(path) as fh:
        fh.write(data)


def is_stream(path: str | Path) -> bool:
    """Is ``path`` an output to write to as a stream (a device, FIFO or socket, or a name
    of one of this process's descriptors such as ``/dev/stdout``) rather than a file to
    replace?"""
    name = os.path.abspath(path)
    for _ in range(40):  # the kernel's own limit on links followed
        if name.startswith(("/proc/", "/dev/fd/")):
            return True
        if not os.path.islink(name):
            break
        name = os.path.normpath(os.path.join(os.path.dirname(name), os.readlink(name)))
    try:
        return not stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False  # absent (or a dangling link): a new file


def final_path(path: Path) -> Path:
    """Where an output is really written: a symbolic link's target (followed, so that the
    link stays a link), else the path itself."""
    if os.path.islink(path):
        return Path(os.path.realpath(path))
    return path


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[Any]:
    """A binary file object whose content appears at ``path`` only once complete.

    The data goes to a hidden part file in the same directory, renamed over ``path`` when
    the block ends and removed on any error or interruption (see the module's docstring for
    streams, links and the clean-up of stale part files).
    """
    if is_stream(path):
        with stream_file(path) as fh:
            yield fh
        return
    path = final_path(path)
    directory = path.parent if str(path.parent) else Path(".")
    sweep_stale_parts(directory)
    # The part file's name is known before the file exists, so that a signal arriving at any
    # point after its creation still finds it to remove (mkstemp names it only on return).
    tmp: Path | None = None
    try:
        for _ in range(100):
            tmp = directory / part_name(path.name)
            try:  # mode 0o666 less the umask, as for any new file
                fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
                break
            except FileExistsError:
                continue  # another writer's part file: never ours to remove
        else:
            tmp = None
            raise OutputError("cannot find a free temporary name beside it", subject=str(path))
        raw = io.FileIO(fd, "r+")
        raw.name = str(tmp)  # writers such as tifffile want the file's name, not its number
        with _PieceWrites(raw) as fh:
            yield fh
            fh.flush()
            keep_owner_and_mode(fh.fileno(), path)
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
        if isinstance(exc, OSError) and not isinstance(exc, OutputError):
            raise _output_error(exc, path) from None
        raise


def _output_error(exc: BaseException, path: Path | str) -> BaseException:
    if isinstance(exc, OutputError) or not isinstance(exc, OSError):
        return exc
    if isinstance(exc, PermissionError):
        return OutputError("permission denied (cannot write in its directory)", subject=str(path))
    return OutputError(exc.strerror or str(exc), subject=str(path))


@contextlib.contextmanager
def stream_file(path: str | Path) -> Iterator[Any]:
    """An output that is not a regular file, opened for writing as it is (appending, so that
    a regular file behind ``/dev/stdout`` keeps what was written before); any error writing
    it, at the last flush included, is an :class:`OutputError`."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise _output_error(exc, path) from None
    try:
        with open(fd, "wb") as fh:
            yield fh
            fh.flush()
    except OSError as exc:
        raise _output_error(exc, path) from None


def keep_owner_and_mode(fd: int, path: Path) -> None:
    """Give the part file the permission bits, owner and group of the file it replaces
    (a new file keeps the umask's mode); an owner the writer may not give is left as is."""
    try:
        old = os.stat(path)
    except OSError:
        return
    if not stat.S_ISREG(old.st_mode):
        return
    os.fchmod(fd, stat.S_IMODE(old.st_mode))
    new = os.fstat(fd)
    if (new.st_uid, new.st_gid) != (old.st_uid, old.st_gid):
        with contextlib.suppress(OSError):
            os.fchown(fd, old.st_uid, old.st_gid)
            return
        with contextlib.suppress(OSError):  # not root: the group, where we are a member
            os.fchown(fd, -1, old.st_gid)
        os.fchmod(fd, stat.S_IMODE(old.st_mode))  # chown may clear set-id bits


def part_name(name: str) -> str:
    """A fresh part file name for output ``name``: ``.NAME.PID-TOKEN.part``."""
    return f".{_short(name)}.{os.getpid()}-{HOST_TAG}{os.urandom(2).hex()}.part"


def _short(name: str) -> str:
    raw = os.fsencode(name)
    if len(raw) <= PART_NAME_KEEPS:
        return name
    import hashlib  # only for long names (hashlib and its OpenSSL take 3 ms to import)

    digest = hashlib.sha256(raw).hexdigest()[:12]
    return os.fsdecode(raw[: PART_NAME_KEEPS - 20]) + "~" + digest


def _host_tag() -> str:
    """Four hex digits naming this machine (and its pid namespace) in part file names."""
    if hasattr(os, "uname"):
        seed = os.uname().nodename  # the host name, without importing socket
    else:  # pragma: no cover - not POSIX
        import socket

        seed = socket.gethostname()
    with contextlib.suppress(OSError):
        seed += os.readlink("/proc/self/ns/pid")
    return f"{zlib.crc32(seed.encode('utf-8', 'surrogateescape')) & 0xFFFF:04x}"


HOST_TAG = _host_tag()
_swept: set[str] = set()


def sweep_stale_parts(directory: Path) -> None:
    """Remove the part files in ``directory`` that this machine's writers left when they
    were killed (their process is gone, or a zombie), the first time this process comes to
    the directory. Once only: listing a folder at every write would cost a batch time that
    grows with the square of its size (5 ms a write in a folder of 10,000 files). A batch
    input whose worker died is tried again in a fresh worker, which sweeps afresh; on a
    cluster, whose workers live on, every worker sweeps the batch's output folders again
    when the batch ends (:func:`convcli.run.cluster.sweep_again`)."""
    key = os.path.realpath(directory)
    if key in _swept:
        return
    _swept.add(key)
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        match = _PART.match(name)
        if match and match["host"] == HOST_TAG and not _alive(int(match["pid"])):
            with contextlib.suppress(OSError):
                os.unlink(directory / name)


def forget_sweeps() -> None:
    """Sweep every directory again at its next write (a forked worker starts afresh)."""
    _swept.clear()


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
    size = int(np.prod(shape)) * np.dtype(dtype).itemsize
    if not compress:
        check_free_space(path, size)
    if fmt == "NPY":
        with atomic_file(path) as fh:
            _write_npy_bands(fh, path, shape, dtype, bands, stacked)
        return
    if fmt != "TIFF":
        raise OutputError(
            f"a streamed result is written as TIFF or .npy, not {fmt}", subject=str(path)
        )
    import tifffile

    channels = shape[2] if len(shape) == 3 else 1
    photometric = "rgb" if channels >= 3 else "minisblack"
    extras = ["unassalpha"] if channels in (2, 4) else None
    data = (band for _, _, band in bands)
    if not compress:  # written as they come, contiguously: in pieces of whole rows
        data = (piece for band in data for piece in row_pieces(band))
    with atomic_file(path) as fh:
        tifffile.imwrite(
            fh,
            data,
            shape=tuple(shape),
            dtype=dtype,
            photometric=photometric,
            extrasamples=extras,
            rowsperstrip=rows_per_band,
            compression="zlib" if compress else None,
        )


def _write_npy_bands(
    fh: Any,
    path: Path,
    shape: tuple[int, ...],
    dtype: np.dtype,
    bands: Iterator[tuple[int, int, np.ndarray]],
    stacked: bool,
) -> None:
    """A .npy written band by band through ordinary writes, which raise on a full disk
    (a memory map of a file the disk has no room for dies by SIGBUS instead)."""
    np.lib.format.write_array_header_2_0(
        fh,
        {
            "descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
            "fortran_order": False,
            "shape": tuple(shape),
        },
    )
    offset = fh.tell()
    if not stacked:
        for _, _, band in bands:  # in order: the rows follow each other
            fh.write(np.ascontiguousarray(band, dtype).data)
        return
    if is_stream(path):
        raise OutputError(
            "a stack is written member after member, which a stream cannot take; "
            "write it to a file",
            subject=str(path),
        )
    members, rows = shape[0], shape[1]
    member_bytes = int(np.prod(shape[1:])) * np.dtype(dtype).itemsize
    row_bytes = member_bytes // rows
    for r0, _, band in bands:
        for m in range(members):
            fh.seek(offset + m * member_bytes + r0 * row_bytes)
            fh.write(np.ascontiguousarray(band[m], dtype).data)


def check_free_space(path: Path, size: int) -> None:
    """Refuse, before writing, an output larger than the free space of its filesystem."""
    if is_stream(path):
        return
    directory = final_path(path).parent
    try:
        fs = os.statvfs(directory if str(directory) else ".")
    except (OSError, AttributeError):
        return  # no statvfs (or no directory yet): the writes themselves will say
    free = fs.f_bavail * fs.f_frsize
    if size > free:
        raise OutputError(
            f"not enough free space: the result needs {format_size(size)} and its "
            f"filesystem has {format_size(free)} free",
            subject=str(path),
        )


def _alive(pid: int) -> bool:
    """Is process ``pid`` running? A zombie (killed, not yet reaped by its parent) is not."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            state = fh.read().rpartition(b")")[2].split()[0]
    except (OSError, IndexError):
        return True  # no /proc (not Linux): running, as far as can be told
    return state not in (b"Z", b"X")
