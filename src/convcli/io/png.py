"""A PNG writer that compresses on every core.

PNG is the slowest format to write: a 12-megapixel photo takes libpng (through Pillow or
OpenCV) 0.4-1 s at zlib level 1, on one core. Deflate streams can be cut at byte-aligned
sync points and joined, so this writer filters the rows (PNG's Sub filter, one vectorised
pass), compresses bands of rows on several threads (zlib releases the GIL) and joins them into
one standard zlib stream, whose Adler-32 is combined from the bands'. Any PNG reader reads the
result; on two cores it writes in about half the time of libpng.

It writes 8- and 16-bit gray, gray + alpha, RGB and RGBA, with an optional ICC profile (which
neither OpenCV nor Pillow writes for 16-bit gray + alpha).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from convcli.errors import InputError

SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: channels -> PNG colour type
COLOUR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}
_ADLER_BASE = 65521
BAND_BYTES = 4 * 1024 * 1024


def write(
    out: Any,
    pixels: np.ndarray,
    *,
    level: int = 1,
    threads: int = 1,
    icc_profile: bytes | None = None,
) -> None:
    """Write (H, W[, C]) uint8 or uint16 samples as a PNG into the binary file ``out``."""
    if pixels.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"PNG holds 8- or 16-bit samples, not {pixels.dtype}")
    h, w = pixels.shape[:2]
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    out.write(SIGNATURE)
    header = struct.pack(
        ">IIBBBBB", w, h, 8 * pixels.dtype.itemsize, COLOUR_TYPES[channels], 0, 0, 0
    )
    _write_chunk(out, b"IHDR", header)
    if icc_profile:
        _write_chunk(out, b"iCCP", b"ICC Profile\0\0" + zlib.compress(icc_profile))
    bpp = channels * pixels.dtype.itemsize  # bytes per pixel: the Sub filter's distance
    # one IDAT chunk per piece: a chunk holds under 2 GiB, and the pieces are never joined
    for piece in _compressed(_scanlines(pixels), bpp, level, threads):
        _write_chunk(out, b"IDAT", piece)
    _write_chunk(out, b"IEND", b"")


def _scanlines(pixels: np.ndarray) -> np.ndarray:
    """The rows as bytes (16-bit samples big-endian, as PNG stores them)."""
    data = pixels.astype(">u2", copy=False) if pixels.dtype == np.uint16 else pixels
    return np.ascontiguousarray(data).view(np.uint8).reshape(pixels.shape[0], -1)


def _filtered(rows: np.ndarray, bpp: int) -> np.ndarray:
    """Rows with PNG's Sub filter (each byte minus the same byte of the pixel to its left,
    modulo 256), each led by its filter type byte (1)."""
    filtered = np.empty((rows.shape[0], rows.shape[1] + 1), np.uint8)
    filtered[:, 0] = 1
    filtered[:, 1 : bpp + 1] = rows[:, :bpp]
    np.subtract(rows[:, bpp:], rows[:, :-bpp], out=filtered[:, bpp + 1 :])
    return filtered


def _compressed(rows: np.ndarray, bpp: int, level: int, threads: int) -> list[bytes]:
    """One zlib stream in pieces (header, one per band of rows, checksum); each band is
    filtered and deflated on its own."""
    h = rows.shape[0]
    # bands of about 4 MB, whatever the thread count: the same image gives the same bytes
    count = max(1, min(h, rows.size // BAND_BYTES))
    cuts = [h * i // count for i in range(count + 1)]

    def deflate(i: int) -> tuple[bytes, int, int]:
        band = _filtered(rows[cuts[i] : cuts[i + 1]], bpp).data.cast("B")
        co = zlib.compressobj(level, zlib.DEFLATED, -15, 9)
        flush = zlib.Z_FINISH if i == count - 1 else zlib.Z_SYNC_FLUSH  # byte-aligned joins
        return co.compress(band) + co.flush(flush), zlib.adler32(band), len(band)

    if threads > 1 and count > 1:
        with ThreadPoolExecutor(threads, thread_name_prefix="convcli-png") as pool:
            parts = list(pool.map(deflate, range(count)))
    else:
        parts = [deflate(i) for i in range(count)]
    adler = parts[0][1]
    for _, band_adler, length in parts[1:]:
        adler = _adler32_combine(adler, band_adler, length)
    header = bytes([0x78, 0x01 if level <= 1 else 0x9C])
    return [header, *(p[0] for p in parts), struct.pack(">I", adler)]


def _adler32_combine(first: int, second: int, second_length: int) -> int:
    """The Adler-32 of two byte strings joined, from theirs (zlib's adler32_combine)."""
    rem = second_length % _ADLER_BASE
    a1, b1 = first & 0xFFFF, first >> 16
    a2, b2 = second & 0xFFFF, second >> 16
    a = (a1 + a2 - 1) % _ADLER_BASE
    b = (b1 + b2 + rem * a1 - rem) % _ADLER_BASE
    return (b << 16) | a


def _write_chunk(out: Any, kind: bytes, data: bytes) -> None:
    """A chunk, written without copying its (perhaps large) data."""
    out.write(struct.pack(">I", len(data)) + kind)
    out.write(data)
    out.write(struct.pack(">I", zlib.crc32(data, zlib.crc32(kind))))


def chunks(fh: Any, size: int, label: str) -> Iterator[tuple[bytes, int, int]]:
    """``(kind, offset of the data, length)`` of the chunks of a PNG of ``size`` bytes, to
    IEND, read from their headers only; a chunk whose length runs past the end of the file
    is refused before any decoder allocates what it claims (a 56-byte file can claim 4 GB)."""
    pos = 8
    while pos + 8 <= size:
        fh.seek(pos)
        length, kind = struct.unpack(">I4s", fh.read(8))
        if pos + 12 + length > size:
            raise InputError(
                f"corrupt or truncated PNG (its {kind.decode('latin-1')!r} chunk runs past "
                "the end of the file)",
                subject=label,
            )
        yield kind, pos + 8, length
        if kind == b"IEND":
            return
        pos += 12 + length
