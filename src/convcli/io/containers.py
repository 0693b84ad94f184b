"""Sizes a file declares inside its container, read before anything is decoded.

The pixel limit (:mod:`convcli.io.limits`) is checked against the size a decoder reports from
the header, and some formats hold images whose size that header does not say: an ICO, CUR or
ICNS icon holds whole PNG (or JPEG 2000) files, and Pillow decodes the largest; a GIF's
frames each have their own size, larger than the screen they are drawn on if they like. So
those sizes are read here, from the entries' own headers, and checked against the limit
first. A JPEG declares its size in a header of a few hundred bytes: one too small to hold
the entropy-coded data of that many pixels is refused before a decoder allocates them.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from convcli.errors import InputError
from convcli.io.limits import check_pixels

_PNG = b"\x89PNG\r\n\x1a\n"
_JP2 = b"\x00\x00\x00\x0cjP  \r\n\x87\n"
_J2K = b"\xff\x4f\xff\x51"
#: a Huffman-coded JPEG spends at least one bit on each 8x8 block of its full-resolution
#: component (the DC code), so a file holds at least one byte per 512 pixels
_JPEG_PIXELS_PER_BYTE = 512
#: at most this many GIF blocks are walked (a GIF of more is left to the decoder's checks)
_GIF_MAX_BLOCKS = 1 << 20


#: the formats whose Pillow plugins decode an embedded image while opening the file: their
#: sizes are checked before Pillow opens it (the others' once it has read their header)
CHECKED_BEFORE_OPENING = ("ICO", "CUR", "ICNS")


def check_contained(fmt: str | None, source: Path | bytes, label: str) -> None:
    """Refuse an image whose embedded images or frames are over the pixel limit, or a JPEG
    too small for the size it declares, before it is decoded."""
    if fmt not in ("ICO", "CUR", "ICNS", "GIF", "JPEG", "MPO"):
        return
    with _open(source) as fh:
        size = fh.seek(0, io.SEEK_END)
        if fmt in ("JPEG", "MPO"):
            _check_jpeg(fh, size, label)
            return
        sizes = {"ICO": _ico_sizes, "CUR": _ico_sizes, "ICNS": _icns_sizes, "GIF": _gif_sizes}
        for w, h in sizes[fmt](fh, size):
            check_pixels(w, h, label)


def _open(source: Path | bytes) -> BinaryIO:
    return io.BytesIO(source) if isinstance(source, bytes) else source.open("rb")


def _read(fh: BinaryIO, offset: int, n: int) -> bytes:
    fh.seek(offset)
    return fh.read(n)


def _embedded(fh: BinaryIO, offset: int, dib: bool = False) -> tuple[int, int] | None:
    """The size a PNG or JPEG 2000 file at ``offset`` declares (or, with ``dib``, the bitmap
    header of an icon's BMP entry, whose height counts the mask's rows too)."""
    head = _read(fh, offset, 256)
    if dib and len(head) >= 12 and struct.unpack("<I", head[:4])[0] in (40, 52, 56, 108, 124):
        w, h = struct.unpack("<ii", head[4:12])
        return abs(w), abs(h) // 2
    if head.startswith(_PNG) and len(head) >= 24:
        w, h = struct.unpack(">II", head[16:24])
        return w, h
    if head.startswith(_JP2):  # the image header box: height, width
        at = head.find(b"ihdr")
        if at >= 0 and len(head) >= at + 12:
            h, w = struct.unpack(">II", head[at + 4 : at + 12])
            return w, h
    if head.startswith(_J2K) and len(head) >= 16:  # SIZ: Xsiz, Ysiz (offsets ignored)
        w, h = struct.unpack(">II", head[8:16])
        return w, h
    return None


def _ico_sizes(fh: BinaryIO, size: int) -> Iterator[tuple[int, int]]:
    head = _read(fh, 0, 6)
    if len(head) < 6:
        return
    (count,) = struct.unpack("<H", head[4:6])
    for i in range(count):
        entry = _read(fh, 6 + 16 * i, 16)
        if len(entry) < 16:
            return
        w, h = entry[0] or 256, entry[1] or 256
        yield w, h
        (offset,) = struct.unpack("<I", entry[12:16])
        if offset < size:
            found = _embedded(fh, offset, dib=True)
            if found is not None:
                yield found


def _icns_sizes(fh: BinaryIO, size: int) -> Iterator[tuple[int, int]]:
    pos = 8
    while pos + 8 <= size:
        kind_length = _read(fh, pos, 8)
        (length,) = struct.unpack(">I", kind_length[4:8])
        if length < 8:
            return
        found = _embedded(fh, pos + 8)
        if found is not None:
            yield found
        pos += length


def _gif_sizes(fh: BinaryIO, size: int) -> Iterator[tuple[int, int]]:
    """The logical screen, then each frame's size, from the image descriptors (the LZW data
    is skipped a sub-block at a time, never decoded)."""
    head = _read(fh, 0, 13)
    if len(head) < 13:
        return
    w, h, flags = struct.unpack("<HHB", head[6:11])
    yield w, h
    pos = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    for _ in range(_GIF_MAX_BLOCKS):
        marker = _read(fh, pos, 1)
        if marker == b",":  # an image descriptor
            desc = _read(fh, pos + 1, 9)
            if len(desc) < 9:
                return
            fw, fh_, fflags = struct.unpack("<HHB", desc[4:9])
            yield fw, fh_
            pos += 10 + (3 << ((fflags & 7) + 1) if fflags & 0x80 else 0) + 1  # + LZW size
        elif marker == b"!":  # an extension: its label, then sub-blocks
            pos += 2
        else:
            return  # the trailer, or the end of the file
        pos = _skip_sub_blocks(fh, pos, size)
        if pos < 0:
            return


def _skip_sub_blocks(fh: BinaryIO, pos: int, size: int) -> int:
    while pos < size:
        length = _read(fh, pos, 1)
        if not length:
            return -1
        pos += 1 + length[0]
        if length[0] == 0:
            return pos
    return -1


def _check_jpeg(fh: BinaryIO, size: int, label: str) -> None:
    """Refuse a JPEG whose file is too small for the pixels its frame header declares (a
    333-byte file declaring 16000x16000 is truncated, or a bomb); arithmetic-coded JPEGs,
    which can spend less than a bit a block, are left alone."""
    pos = 2
    while pos + 4 <= size:
        marker = _read(fh, pos, 4)
        if marker[0] != 0xFF:
            return
        kind = marker[1]
        if kind == 0xFF:  # fill byte
            pos += 1
            continue
        if kind in (0xD8, 0x01) or 0xD0 <= kind <= 0xD7:
            pos += 2
            continue
        (length,) = struct.unpack(">H", marker[2:4])
        if 0xC0 <= kind <= 0xCF and kind not in (0xC4, 0xC8, 0xCC):
            if kind >= 0xC9:  # arithmetic coding
                return
            frame = _read(fh, pos + 5, 4)
            if len(frame) < 4:
                return
            h, w = struct.unpack(">HH", frame)
            least = w * h // _JPEG_PIXELS_PER_BYTE
            if size < least:
                raise InputError(
                    f"declares {w}x{h} pixels in {size} bytes, fewer than any JPEG of that "
                    f"size holds (at least {least}): truncated, or a decompression bomb",
                    subject=label,
                )
            return
        if kind == 0xDA:  # the scan starts before any frame header: not for this check
            return
        pos += 2 + length
