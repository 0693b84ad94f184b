"""Hostile inputs of the second round (inputs, formats, lists and limits), built in code: the
cases of tests/test_hostile.py and tests/test_hostile_inputs.py use them."""

from __future__ import annotations

import functools
import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

COFFEE = Path(__file__).resolve().parents[1] / "examples" / "images" / "coffee.jpg"
#: where the issue cut the photograph: about half of it, the rest flat gray once "recovered"
COFFEE_CUT = 36163


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


@functools.cache
def png_header_only(width: int, height: int) -> bytes:
    """A PNG declaring ``width`` x ``height`` gray pixels with four rows of data."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = zlib.compress(b"\0" * ((width + 1) * 4), 9)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", rows)
        + _chunk(b"IEND", b"")
    )


def ico_bomb() -> bytes:
    """An icon whose one entry (256x256 by its directory) is a PNG of 50000x50000."""
    png = png_header_only(50_000, 50_000)
    return (
        struct.pack("<HHH", 0, 1, 1)
        + struct.pack("<BBBBHHII", 0, 0, 0, 0, 1, 32, len(png), 22)
        + png
    )


def icns_bomb() -> bytes:
    """An Apple icon whose 'ic10' entry is a PNG of 50000x50000."""
    png = png_header_only(50_000, 50_000)
    body = b"ic10" + struct.pack(">I", 8 + len(png)) + png
    return b"icns" + struct.pack(">I", 8 + len(body)) + body


def gif_frame_bomb() -> bytes:
    """A GIF of a 10x10 screen with one 65535x65535 frame (29 bytes)."""
    screen = b"GIF89a" + struct.pack("<HHBBB", 10, 10, 0, 0, 0)
    frame = b"," + struct.pack("<HHHHB", 0, 0, 65535, 65535, 0) + b"\x08\x02\x4c\x01\x00"
    return screen + frame + b";"


def jpeg_declaring(width: int, height: int) -> bytes:
    """A valid 16x16 JPEG whose frame header is edited to declare ``width`` x ``height``."""
    buffer = io.BytesIO()
    Image.new("L", (16, 16), 90).save(buffer, format="JPEG")
    data = buffer.getvalue()
    at = data.find(b"\xff\xc0")
    return data[: at + 5] + struct.pack(">HH", height, width) + data[at + 9 :]


def coffee_cut() -> bytes:
    return COFFEE.read_bytes()[:COFFEE_CUT]


def noise_png(height: int, width: int) -> bytes:
    """A PNG that does not compress (random RGB): about 3 bytes a pixel."""
    pixels = np.random.default_rng(3).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=0)
    return buffer.getvalue()


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def dag_banks(tmp: Path, levels: int = 25) -> None:
    """Banks l0 .. l{levels-1}, each naming the next twice: 2^levels kernels if expanded."""
    for i in range(levels - 1):
        (tmp / f"l{i}.toml").write_text(f'combine = "sum"\nkernels = ["l{i + 1}", "l{i + 1}"]\n')
    (tmp / f"l{levels - 1}.toml").write_text("matrix = [[1]]\n")


def big_bank() -> bytes:
    """A stacked bank of 1500 members of the largest size allowed."""
    members = ", ".join(['"box:size=1025"'] * 1500)
    return f'combine = "stack"\nkernels = [{members}]\n'.encode()


def fifo(name: str):
    """A setup making a FIFO that nobody writes to."""

    def make(tmp: Path) -> None:
        os.mkfifo(tmp / name)

    return make


def tiny_png() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((8, 8), 100, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()
