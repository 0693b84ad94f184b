"""The bad-input catalogue: every hostile input convcli may meet when it runs unattended.

The contract (README, "Safety and exit codes"), checked for every case below:

* the right exit code: 2 for a usage error (bad option, unknown kernel, bad kernel file,
  conflicting options), 1 for a failed input (the other inputs are still processed);
* exactly one line on stderr, ``convcli: error: <the input or spec>: <the problem>``, that names
  the input (or the offending spec or option) and says what is wrong, and no traceback;
* no file left behind: no output, no partial output, no hidden ``.*.part`` temporary;
* the inputs are never modified.

Each case runs in its own empty directory (the working directory of the run, so that names on
the command line and in messages are short and exact); the whole tree is snapshotted before and
after the run, which checks both the last two points at once.

A file name holding a newline cannot be named on one line verbatim: the sensible behaviour, and
what the case below asks for, is to print the name with the newline escaped (``new\\nline.png``,
as ``repr`` would). A name that is not UTF-8 should be printed as its bytes (as convcli prints
the paths it writes on stdout) or with the bad bytes escaped as ``\\xff``.
"""

from __future__ import annotations

import functools
import io
import json
import os
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import hostile_inputs as hostile
from conftest import write_png

ROOT_USER = hasattr(os, "geteuid") and os.geteuid() == 0
ERROR = "convcli: error: "
MAX_LINE = 500  # an error line longer than this is not a usable diagnostic
PILLOW_MAX_IMAGE_PIXELS = 1024 * 1024 * 1024 // 4 // 3  # Pillow's default bomb limit


# -- hostile files ---------------------------------------------------------------------------
_PIL_FORMAT = {"png": "PNG", "jpg": "JPEG", "tif": "TIFF", "gif": "GIF"}


@functools.cache
def image_bytes(ext: str) -> bytes:
    """A valid 24x32 RGB image in the format of ``ext`` (uncompressed for TIFF)."""
    pixels = (np.random.default_rng(7).random((24, 32, 3)) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=_PIL_FORMAT[ext])
    return buffer.getvalue()


def gray_png(height: int, width: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((height, width), 128, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def truncated(ext: str) -> bytes:
    """A valid image cut in half."""
    data = image_bytes(ext)
    return data[: len(data) // 2]


def corrupt(ext: str) -> bytes:
    """A valid image with 16 bytes flipped in the middle."""
    data = bytearray(image_bytes(ext))
    middle = len(data) // 2
    for i in range(middle, middle + 16):
        data[i] ^= 0xFF
    return bytes(data)


def npy_bytes(array: np.ndarray, allow_pickle: bool = False) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


@functools.cache
def png_bomb(width: int = 50_000, height: int = 50_000) -> bytes:
    """A tiny PNG whose header declares ``width`` x ``height`` 8-bit gray pixels (a
    decompression bomb: 2.5 gigapixels from a few hundred bytes); only its first rows have
    data, so a decoder that does not refuse it first would work for a long time."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = zlib.compress(b"\0" * ((width + 1) * 4), 9)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", rows)
        + _png_chunk(b"IEND", b"")
    )


def tiff_bomb(width: int, height: int) -> bytes:
    """A small TIFF declaring ``width`` x ``height`` 8-bit gray pixels: one row per strip, and
    every strip points at the same row of zeros, so the file is 9 bytes a row."""
    tags = [
        (256, 4, 1, width),
        (257, 4, 1, height),
        (258, 3, 1, 8),  # bits per sample
        (259, 3, 1, 1),  # no compression
        (262, 3, 1, 1),  # black is zero
        (273, 4, height, 0),  # strip offsets (filled in below)
        (277, 3, 1, 1),  # samples per pixel
        (278, 4, 1, 1),  # rows per strip
        (279, 4, height, 0),  # strip byte counts (filled in below)
    ]
    offsets_at = 8 + 2 + 12 * len(tags) + 4
    counts_at = offsets_at + 4 * height
    data_at = counts_at + 4 * height
    out = bytearray(b"II*\0" + struct.pack("<IH", 8, len(tags)))
    for tag, kind, count, value in tags:
        value = {273: offsets_at, 279: counts_at}.get(tag, value)
        out += struct.pack("<HHI", tag, kind, count)
        out += struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value)
    out += struct.pack("<I", 0)
    out += struct.pack(f"<{height}I", *[data_at] * height)
    out += struct.pack(f"<{height}I", *[width] * height)
    return bytes(out + bytes(width))


def animated_gif(frames: int = 3) -> bytes:
    """A valid animated GIF of ``frames`` different 16x20 frames."""
    rng = np.random.default_rng(11)
    images = [
        Image.fromarray((rng.random((16, 20, 3)) * 255).astype(np.uint8)) for _ in range(frames)
    ]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], duration=40)
    return buffer.getvalue()


def gif_frame_bomb(width: int, height: int, frames: int) -> bytes:
    """A small GIF of ``frames`` 1x1 frames on a ``width`` x ``height`` canvas: a viewer (and
    a decoder that composes frames) holds a whole canvas per frame."""
    from convcli.io import gif

    palette, data, _ = gif.frame_bytes(np.zeros((1, 1, 3), np.uint8))
    one = (
        b"!\xf9\x04\x04\x01\x00\x00\x00"
        + b","
        + struct.pack("<HHHHB", 0, 0, 1, 1, 0x87)
        + palette
        + data
    )
    return b"GIF89a" + struct.pack("<HHBBB", width, height, 0, 0, 0) + one * frames + b";"


def apng_frame_bomb(width: int, height: int, frames: int) -> bytes:
    """An APNG header declaring ``frames`` frames of ``width`` x ``height`` (no pixel data
    to speak of: refused from the chunks alone)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    actl = struct.pack(">II", frames, 0)
    controls = b"".join(
        _png_chunk(b"fcTL", struct.pack(">IIIIIHHBB", i, width, height, 0, 0, 1, 10, 0, 0))
        for i in range(frames)
    )
    rows = zlib.compress(b"\0" * (width + 1), 9)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"acTL", actl)
        + controls[: len(controls) // frames]
        + _png_chunk(b"IDAT", rows)
        + controls[len(controls) // frames :]
        + _png_chunk(b"IEND", b"")
    )


# A GIF with a header, a 10x10 logical screen, no image block and the trailer: zero frames.
GIF_NO_FRAMES = b"GIF89a" + struct.pack("<HHBBB", 10, 10, 0, 0, 0) + b";"
# A TIFF whose first IFD has no entries (a page with no tags: no size, no pixels).
TIFF_EMPTY_IFD = b"II*\0" + struct.pack("<IHI", 8, 0, 0)
# A TIFF whose first-IFD offset is 0: no pages at all.
TIFF_NO_PAGES = b"II*\0" + struct.pack("<I", 0)

IMG = image_bytes("png")  # the good input of most cases
ANIM_GIF = animated_gif()  # a good multi-frame input


def kernel_path(tmp: Path) -> None:
    """User kernels for the bank cases: a bank naming itself and one naming a missing kernel."""
    (tmp / "kp").mkdir()
    (tmp / "kp" / "selfy.toml").write_text('name = "selfy"\n[[kernels]]\nname = "selfy"\n')
    (tmp / "kp" / "mb.toml").write_text('name = "mb"\n[[kernels]]\nname = "nonesuch"\n')


def symlink_loop(tmp: Path) -> None:
    (tmp / "ring-a.png").symlink_to("ring-b.png")
    (tmp / "ring-b.png").symlink_to("ring-a.png")


def unreadable_file(tmp: Path) -> None:
    (tmp / "locked.png").chmod(0)


def unreadable_dir(tmp: Path) -> None:
    (tmp / "locked").mkdir()
    (tmp / "locked" / "in.png").write_bytes(IMG)
    (tmp / "locked").chmod(0)


def _needs_dev_full() -> None:
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")


def _int32_rgb_tiff(path: Path) -> None:
    tifffile = pytest.importorskip("tifffile")
    pixels = (np.random.default_rng(8).random((12, 16, 3)) * 60000).astype(np.int32)
    tifffile.imwrite(path, pixels, photometric="rgb")


#: ``stdin=CLOSED``: the run's stdin is a closed descriptor (``<&-``)
CLOSED = b"<closed>"


# -- the table -------------------------------------------------------------------------------
Words = tuple[str | tuple[str, ...], ...]  # each entry: a word, or a tuple of alternatives


@dataclass(frozen=True)
class Case:
    args: tuple[str, ...]  # after ``convcli apply``; ``{tmp}`` is the case's directory
    code: int  # the exit code
    names: tuple[str, ...]  # the input / spec / option the error line must name (verbatim)
    words: Words  # key words of the problem (case-insensitive)
    files: dict[str, bytes] = field(default_factory=dict)  # created before the run
    setup: Callable[[Path], None] | None = None  # extra preparation (links, modes, dirs)
    env: dict[str, str] = field(default_factory=dict)
    stdin: bytes | None = None
    subprocess: bool = False  # run ``python -m convcli`` (what a real process prints)
    # Pillow's own bomb limit: "fresh" in force (a single command), "off" turned off (as
    # convcli's open_image leaves it for the rest of the process: later inputs of a batch)
    pillow: str = ""
    seconds: float | None = None  # must be refused within this time


def case(
    id: str, *args: str, xfail: str | None = None, skip: str | None = None, **fields
) -> object:
    marks = []
    if xfail:
        marks.append(pytest.mark.xfail(strict=True, reason=f"BUG: {xfail}"))
    if skip:
        marks.append(pytest.mark.skipif(True, reason=skip))
    return pytest.param(Case(args=args, **fields), id=id, marks=marks)


K = ("-k", "box")  # a good kernel
OUT = ("-d", "out")

CASES = [
    # --- broken image files ---------------------------------------------------------------------
    *(
        case(
            f"zero-byte-{ext}",
            *K,
            *OUT,
            f"empty.{ext}",
            code=1,
            names=(f"empty.{ext}",),
            words=("empty", "0 bytes"),
            files={f"empty.{ext}": b""},
        )
        for ext in ("png", "jpg", "tif", "gif")
    ),
    *(
        case(
            f"truncated-{ext}",
            *K,
            *OUT,
            f"half.{ext}",
            code=1,
            names=(f"half.{ext}",),
            words=("truncated",),
            files={f"half.{ext}": truncated(ext)},
        )
        for ext in ("png", "jpg", "tif", "gif")
    ),
    case(
        "text-file-named-png",
        *K,
        *OUT,
        "notes.png",
        code=1,
        names=("notes.png",),
        words=("not an image",),
        files={"notes.png": b"these are my notes, not a picture\n"},
    ),
    case(
        "directory-without-r",
        *K,
        *OUT,
        "photos",
        code=1,
        names=("photos",),
        words=("directory", "-r"),
        setup=lambda tmp: (tmp / "photos").mkdir(),
    ),
    case(
        "missing-file",
        *K,
        *OUT,
        "missing.png",
        code=1,
        names=("missing.png",),
        words=("no such file",),
    ),
    case(
        "dangling-symlink",
        *K,
        *OUT,
        "dangling.png",
        code=1,
        names=("dangling.png",),
        words=("broken symbolic link",),
        setup=lambda tmp: (tmp / "dangling.png").symlink_to("nowhere.png"),
    ),
    case(
        "symlink-loop",
        *K,
        *OUT,
        "ring-a.png",
        code=1,
        names=("ring-a.png",),
        words=(("loop", "too many levels of symbolic links"),),
        setup=symlink_loop,
    ),
    case(
        "unreadable-file",
        *K,
        *OUT,
        "locked.png",
        code=1,
        names=("locked.png",),
        words=("permission denied",),
        files={"locked.png": IMG},
        setup=unreadable_file,
        skip="root reads a chmod 000 file (checked: convcli then filters it)"
        if ROOT_USER
        else None,
    ),
    case(
        "file-in-unreadable-directory",
        *K,
        *OUT,
        "locked/in.png",
        code=1,
        names=("locked/in.png",),
        words=("permission denied",),
        setup=unreadable_dir,
        skip="root reads files in a chmod 000 directory (checked: convcli then filters them)"
        if ROOT_USER
        else None,
    ),
    case(
        "name-with-spaces",
        *K,
        *OUT,
        "my holiday photo.png",
        code=1,
        names=("my holiday photo.png",),
        words=("truncated",),
        files={"my holiday photo.png": truncated("png")},
    ),
    case(
        "name-with-newline",
        *K,
        *OUT,
        "new\nline.png",
        code=1,
        names=("new\\nline.png",),
        words=("truncated",),
        files={"new\nline.png": truncated("png")},
    ),
    case(
        "empty-stdin",
        *K,
        "-o",
        "out/x.png",
        "-",
        code=1,
        names=("<stdin>",),
        words=("empty",),
        stdin=b"",
        setup=lambda tmp: (tmp / "out").mkdir(),
    ),
    case(
        "garbage-stdin",
        *K,
        "-o",
        "out/x.png",
        "-",
        code=1,
        names=("<stdin>",),
        words=("not an image",),
        stdin=b"GIF87a but not really",
        setup=lambda tmp: (tmp / "out").mkdir(),
    ),
    case(
        "zero-frame-gif",
        *K,
        *OUT,
        "noframes.gif",
        code=1,
        names=("noframes.gif",),
        words=("not an image",),
        files={"noframes.gif": GIF_NO_FRAMES},
    ),
    case(
        "tiff-page-without-tags",
        *K,
        *OUT,
        "empty-ifd.tif",
        code=1,
        names=("empty-ifd.tif",),
        words=("empty",),
        files={"empty-ifd.tif": TIFF_EMPTY_IFD},
    ),
    case(
        "zero-page-tiff",
        *K,
        *OUT,
        "nopages.tif",
        code=1,
        names=("nopages.tif",),
        words=(("no pages", "no images", "no frames"),),
        files={"nopages.tif": TIFF_NO_PAGES},
        subprocess=True,  # the extra line is a tifffile log warning, which pytest would capture
    ),
    # --- arrays ---------------------------------------------------------------------------
    case(
        "ragged-csv",
        *K,
        *OUT,
        "ragged.csv",
        code=1,
        names=("ragged.csv",),
        words=("line 2", "expected 3"),
        files={"ragged.csv": b"1,2,3\n4,5\n"},
    ),
    case(
        "nan-csv",
        *K,
        *OUT,
        "nan.csv",
        code=1,
        names=("nan.csv",),
        words=("line 2", "nan", "finite"),
        files={"nan.csv": b"1,2\nnan,3\n"},
    ),
    case(
        "inf-csv",
        *K,
        *OUT,
        "inf.csv",
        code=1,
        names=("inf.csv",),
        words=("line 1", "inf", "finite"),
        files={"inf.csv": b"1,-inf\n2,3\n"},
    ),
    case(
        "non-numeric-csv",
        *K,
        *OUT,
        "words.csv",
        code=1,
        names=("words.csv",),
        words=("line 2", "'abc'", "not a number"),
        files={"words.csv": b"1,2\nabc,3\n"},
    ),
    case(
        "ragged-json",
        *K,
        *OUT,
        "ragged.json",
        code=1,
        names=("ragged.json",),
        words=("row 2", "expected 2"),
        files={"ragged.json": b"[[1, 2], [3]]"},
    ),
    case(
        "nan-json",
        *K,
        *OUT,
        "nan.json",
        code=1,
        names=("nan.json",),
        words=("nan", "finite"),
        files={"nan.json": b"[[1, NaN], [3, 4]]"},
    ),
    case(
        "0d-npy",
        *K,
        *OUT,
        "scalar.npy",
        code=1,
        names=("scalar.npy",),
        words=("0-d",),
        files={"scalar.npy": npy_bytes(np.array(3.0))},
    ),
    case(
        "4d-npy",
        *K,
        *OUT,
        "four.npy",
        code=1,
        names=("four.npy",),
        words=("4-d",),
        files={"four.npy": npy_bytes(np.zeros((2, 2, 2, 2)))},
    ),
    case(
        "pickled-object-npy",
        *K,
        *OUT,
        "pickled.npy",
        code=1,
        names=("pickled.npy",),
        words=("Python objects", "not numbers"),
        files={"pickled.npy": npy_bytes(np.array([{"a": 1}], dtype=object), allow_pickle=True)},
    ),
    case(
        "truncated-npy",
        *K,
        *OUT,
        "half.npy",
        code=1,
        names=("half.npy",),
        words=(".npy",),
        files={"half.npy": npy_bytes(np.zeros((50, 50)))[:1000]},
    ),
    case(
        "bad-inline-array-input",
        *K,
        "[1,2",
        code=1,
        names=("[1,2",),
        words=("not a valid json array",),
    ),
    # --- kernels --------------------------------------------------------------------------
    case(
        "kernel-empty",
        "-k",
        "[]",
        *OUT,
        "in.png",
        code=2,
        names=("'[]'",),
        words=("empty",),
        files={"in.png": IMG},
    ),
    case(
        "kernel-empty-row",
        "-k",
        "[[]]",
        *OUT,
        "in.png",
        code=2,
        names=("'[[]]'",),
        words=("empty",),
        files={"in.png": IMG},
    ),
    case(
        "kernel-ragged",
        "-k",
        "[[1,2],[3]]",
        *OUT,
        "in.png",
        code=2,
        names=("[[1,2],[3]]",),
        words=("row 2", "expected 2"),
        files={"in.png": IMG},
    ),
    case(
        "kernel-nan",
        "-k",
        "[[1,NaN],[1,1]]",
        *OUT,
        "in.png",
        code=2,
        names=("[[1,NaN],[1,1]]",),
        words=("nan", "finite"),
        files={"in.png": IMG},
    ),
    case(
        "kernel-non-numeric",
        "-k",
        '[1,"a",3]',
        *OUT,
        "in.png",
        code=2,
        names=('[1,"a",3]',),
        words=("'a'", "not a number"),
        files={"in.png": IMG},
    ),
    case(
        "kernel-malformed-inline-json",
        "-k",
        "[[1,2],[3,4]",
        *OUT,
        "in.png",
        code=2,
        names=("[[1,2],[3,4]",),
        words=("not a valid json array",),
        files={"in.png": IMG},
    ),
    case(
        "kernel-box-size-5000",
        "-k",
        "box:size=5000",
        *OUT,
        "in.png",
        code=2,
        names=("box",),
        words=("5000 taps", "limit of 1025", "CONVCLI_MAX_KERNEL_SIZE"),
        files={"in.png": IMG},
    ),
    case(
        "kernel-inline-2x2001",
        "-k",
        json.dumps([[0] * 2001] * 2, separators=(",", ":")),
        *OUT,
        "in.png",
        code=2,
        names=("[[0,0,0",),
        words=("2x2001", "limit of 1025", "CONVCLI_MAX_KERNEL_SIZE"),
        files={"in.png": IMG},
    ),
    case(
        "kernel-file-1x2001",
        "-k",
        "wide.json",
        *OUT,
        "in.png",
        code=2,
        names=("wide",),
        words=("1x2001", "limit of 1025", "CONVCLI_MAX_KERNEL_SIZE"),
        files={"in.png": IMG, "wide.json": json.dumps([[1] * 2001]).encode()},
    ),
    case(
        "kernel-gaussian-sigma-1e12",
        "-k",
        "gaussian:sigma=1e12",
        *OUT,
        "in.png",
        code=2,
        names=("gaussian",),
        words=("limit of 1025", "CONVCLI_MAX_KERNEL_SIZE"),
        files={"in.png": IMG},
    ),
    case(
        "kernel-box-1d-size-1e12",
        "-k",
        "box-1d:size=1000000000000",
        *OUT,
        "in.png",
        code=2,
        names=("box-1d",),
        words=("limit of 1025", "CONVCLI_MAX_KERNEL_SIZE"),
        files={"in.png": IMG},
    ),
    case(
        "kernel-box-size-1e12",
        "-k",
        "box:size=1000000000000",
        *OUT,
        "in.png",
        code=2,
        names=("box",),
        words=("limit of 1025", "CONVCLI_MAX_KERNEL_SIZE"),
        files={"in.png": IMG},
    ),
    case(
        "kernel-larger-than-image-valid-mode",
        "-k",
        "box:size=41",
        "--mode",
        "valid",
        *OUT,
        "in.png",
        code=1,
        names=("in.png", "box:size=41"),
        words=("larger than", "valid"),
        files={"in.png": IMG},
    ),
    case(
        "kernel-file-malformed-toml",
        "-k",
        "bad.toml",
        *OUT,
        "in.png",
        code=2,
        names=("bad.toml",),
        words=("invalid toml",),
        files={"in.png": IMG, "bad.toml": b'name = "x"\nmatrix = [[1, 2]\n'},
    ),
    case(
        "kernel-file-malformed-json",
        "-k",
        "bad.json",
        *OUT,
        "in.png",
        code=2,
        names=("bad.json",),
        words=("invalid json",),
        files={"in.png": IMG, "bad.json": b'{"name": "x", "matrix": [[1, 2]'},
    ),
    case(
        "kernel-file-unknown-key",
        "-k",
        "typo.toml",
        *OUT,
        "in.png",
        code=2,
        names=("'x'",),
        words=("unknown key", "colour"),
        files={"in.png": IMG, "typo.toml": b'name = "x"\nmatrix = [[1, 2]]\ncolour = 3\n'},
    ),
    case(
        "kernel-file-missing",
        "-k",
        "nope.toml",
        *OUT,
        "in.png",
        code=2,
        names=("nope.toml",),
        words=("no such file",),
        files={"in.png": IMG},
    ),
    case(
        "kernel-file-is-a-directory",
        "-k",
        "kdir/",
        *OUT,
        "in.png",
        code=2,
        names=("kdir",),
        words=("is a directory",),
        files={"in.png": IMG},
        setup=lambda tmp: (tmp / "kdir").mkdir(),
    ),
    case(
        "bank-refers-to-itself",
        "-k",
        "selfy",
        *OUT,
        "in.png",
        code=2,
        names=("selfy",),
        words=("refers to itself",),
        files={"in.png": IMG},
        setup=kernel_path,
        env={"CONVCLI_KERNEL_PATH": "{tmp}/kp"},
    ),
    case(
        "bank-file-refers-to-itself",
        "-k",
        "kp/selfy.toml",
        *OUT,
        "in.png",
        code=2,
        names=("selfy",),
        words=("refers to itself",),
        files={"in.png": IMG},
        setup=kernel_path,
        env={"CONVCLI_KERNEL_PATH": "{tmp}/kp"},
    ),
    case(
        "bank-member-missing",
        "-k",
        "mb",
        *OUT,
        "in.png",
        code=2,
        names=("mb", "nonesuch"),
        words=("member 1", "unknown kernel"),
        files={"in.png": IMG},
        setup=kernel_path,
        env={"CONVCLI_KERNEL_PATH": "{tmp}/kp"},
    ),
    case(
        "unknown-kernel",
        "-k",
        "nosuch",
        *OUT,
        "in.png",
        code=2,
        names=("nosuch",),
        words=("unknown kernel",),
        files={"in.png": IMG},
    ),
    case(
        "unknown-kernel-parameter",
        "-k",
        "gaussian:sigmaa=2",
        *OUT,
        "in.png",
        code=2,
        names=("gaussian", "sigmaa"),
        words=("unknown parameter",),
        files={"in.png": IMG},
    ),
    case(
        "kernel-parameter-not-a-number",
        "-k",
        "gaussian:sigma=abc",
        *OUT,
        "in.png",
        code=2,
        names=("gaussian", "abc"),
        words=("not a number",),
        files={"in.png": IMG},
    ),
    case(
        "parameters-on-a-bank",
        "-k",
        "sobel:size=3",
        *OUT,
        "in.png",
        code=2,
        names=("sobel",),
        words=("takes no parameters",),
        files={"in.png": IMG},
    ),
    case(
        "normalize-zero-sum-kernel",
        "-k",
        "laplacian",
        "--normalize",
        *OUT,
        "in.png",
        code=2,
        names=("laplacian",),
        words=("normalize", "sum is 0"),
        files={"in.png": IMG},
    ),
    # --- options --------------------------------------------------------------------------
    case(
        "unknown-option",
        *K,
        "--frobnicate",
        *OUT,
        "in.png",
        code=2,
        names=("--frobnicate",),
        words=("no such option",),
        files={"in.png": IMG},
    ),
    case(
        "bad-option-value",
        *K,
        "--mode",
        "bogus",
        *OUT,
        "in.png",
        code=2,
        names=("--mode", "bogus"),
        words=("full", "same", "valid"),
        files={"in.png": IMG},
    ),
    case(
        "option-out-of-range",
        *K,
        "--quality",
        "500",
        *OUT,
        "in.png",
        code=2,
        names=("--quality",),
        words=("100",),
        files={"in.png": IMG},
    ),
    case(
        "no-kernel",
        *OUT,
        "in.png",
        code=2,
        names=("-k",),
        words=("kernel",),
        files={"in.png": IMG},
    ),
    case(
        "bad-offset",
        *K,
        "--offset",
        "abc",
        *OUT,
        "in.png",
        code=2,
        names=("offset", "abc"),
        words=("not a number",),
        files={"in.png": IMG},
    ),
    case(
        "conflict-o-and-d",
        *K,
        "-o",
        "out/x.png",
        *OUT,
        "in.png",
        code=2,
        names=("-o", "-d"),
        words=("conflict",),
        files={"in.png": IMG},
        setup=lambda tmp: (tmp / "out").mkdir(),
    ),
    case(
        "conflict-in-place-and-d",
        *K,
        "--in-place",
        *OUT,
        "in.png",
        code=2,
        names=("--in-place", "-d"),
        words=("conflicts",),
        files={"in.png": IMG},
    ),
    case(
        "conflict-in-place-and-format",
        *K,
        "--in-place",
        "--format",
        "png",
        "in.png",
        code=2,
        names=("--in-place", "--format"),
        words=("format",),
        files={"in.png": IMG},
    ),
    case(
        "conflict-o-with-two-inputs",
        *K,
        "-o",
        "out/x.png",
        "a.png",
        "b.png",
        code=2,
        names=("-o",),
        words=("one input", "got 2", "-d"),
        files={"a.png": IMG, "b.png": IMG},
        setup=lambda tmp: (tmp / "out").mkdir(),
    ),
    case(
        "conflict-stdin-and-files-from-stdin",
        *K,
        *OUT,
        "--files-from",
        "-",
        "-",
        code=2,
        names=("'-'", "--files-from -"),
        words=("stdin", "once"),
        files={"in.png": IMG},
        stdin=b"in.png\n",
    ),
    case(
        "conflict-offset-and-range-rescale",
        *K,
        "--offset",
        "10",
        "--range",
        "rescale",
        *OUT,
        "in.png",
        code=2,
        names=("--offset", "--range rescale"),
        words=("no effect",),
        files={"in.png": IMG},
    ),
    case(
        "stdout-without-format",
        *K,
        "-o",
        "-",
        "in.png",
        code=2,
        names=("-o -",),
        words=("--format",),
        files={"in.png": IMG},
    ),
    case(
        "files-from-missing-list",
        *K,
        *OUT,
        "--files-from",
        "list.txt",
        code=2,
        names=("--files-from", "list.txt"),
        words=("no such file",),
    ),
    # --- second round: outputs, streams, printing and the library ------------------------
    case(
        "name-extension-contradicts-format",
        *K,
        "--name",
        "{stem}.x.tif",
        "--format",
        "png",
        *OUT,
        "in.png",
        code=2,
        names=("--name", "{stem}.x.tif"),
        words=("--format", "png"),
        files={"in.png": IMG},
    ),
    case(
        "output-extension-contradicts-format",
        *K,
        "-o",
        "q.jpg",
        "--format",
        "png",
        "in.png",
        code=2,
        names=("q.jpg",),
        words=("JPEG", "--format"),
        files={"in.png": IMG},
    ),
    case(
        "output-on-dev-full",
        *K,
        "-o",
        "/dev/full",
        "--format",
        "png",
        "in.png",
        code=1,
        names=("in.png", "/dev/full"),
        words=("no space",),
        files={"in.png": IMG},
        setup=lambda tmp: _needs_dev_full(),
    ),
    case(
        "array-output-on-dev-full",
        *K,
        "-o",
        "/dev/full",
        "--format",
        "npy",
        "a.npy",
        code=1,
        names=("a.npy", "/dev/full"),
        words=("no space",),
        files={"a.npy": npy_bytes(np.ones((5, 5)))},
        setup=lambda tmp: _needs_dev_full(),
    ),
    case(
        "int32-colour-result-as-png",
        *K,
        "-o",
        "out.png",
        "rgb32.tif",
        code=1,
        names=("rgb32.tif",),
        words=("32-bit",),
        setup=lambda tmp: _int32_rgb_tiff(tmp / "rgb32.tif"),
    ),
    case(
        "kernel-values-sum-beyond-float",
        "-k",
        "[[1e308,1e308],[1e308,1e308]]",
        *OUT,
        "in.png",
        code=2,
        names=("kernel",),
        words=("too large", "overflow"),
        files={"in.png": IMG},
        env={"PYTHONWARNINGS": "error"},
        subprocess=True,  # a stray RuntimeWarning would be a second line
    ),
    case(
        "normalize-kernel-values-sum-beyond-float",
        "-k",
        "[[1e308,1e308]]",
        "--normalize",
        *OUT,
        "in.png",
        code=2,
        names=("kernel",),
        words=("overflow",),
        files={"in.png": IMG},
        env={"PYTHONWARNINGS": "error"},
        subprocess=True,  # was "cannot normalize, its sum is 0" after a RuntimeWarning
    ),
    case(
        "kernel-beyond-float32-for-8-bit-input",
        "-k",
        "unsharp:sigma=1,amount=1e300",
        *OUT,
        "in.png",
        code=2,
        names=("unsharp:sigma=1,amount=1e300",),
        words=("float32",),
        files={"in.png": IMG},
        env={"PYTHONWARNINGS": "error"},
        subprocess=True,
    ),
    case(
        "fill-value-beyond-float32",
        *K,
        "--boundary",
        "fill",
        "--fill-value",
        "1e308",
        *OUT,
        "in.png",
        code=2,
        names=("--fill-value",),
        words=("float32",),
        files={"in.png": IMG},
        env={"PYTHONWARNINGS": "error"},
        subprocess=True,
    ),
    case(
        "offset-beyond-float",
        *K,
        "--offset",
        "1e308",
        *OUT,
        "in.png",
        code=1,
        names=("in.png", "--offset"),
        words=("beyond the float range",),
        files={"in.png": IMG},
        env={"PYTHONWARNINGS": "error"},
        subprocess=True,  # was an all-white image, exit 0
    ),
    case(
        "chain-overflows-to-infinity",
        "-k",
        "[[1e30]]",
        "-k",
        "[[1e30]]",
        *OUT,
        "in.png",
        code=1,
        names=("in.png",),
        words=("overflows",),
        files={"in.png": IMG},
        env={"PYTHONWARNINGS": "error"},
        subprocess=True,  # was an image of clipped infinities, exit 0
    ),
    case(
        "array-chain-overflows-to-infinity",
        "-k",
        "[[1e200]]",
        "-k",
        "[[1e200]]",
        "[[1,2],[3,4]]",
        code=1,
        names=("[[1,2],[3,4]]",),
        words=("overflows",),
        env={"PYTHONWARNINGS": "error"},
        subprocess=True,
    ),
    case(
        "closed-stdin-as-input",
        *K,
        "-",
        "-o",
        "out.png",
        code=2,
        names=("stdin",),
        words=("closed",),
        subprocess=True,
        stdin=CLOSED,
    ),
    case(
        "closed-stdin-for-files-from",
        *K,
        "--files-from",
        "-",
        *OUT,
        code=2,
        names=("stdin",),
        words=("closed",),
        subprocess=True,
        stdin=CLOSED,
    ),
    # (cases for outputs that are not regular files, in-place, printing and warnings go here)
    # --- outputs --------------------------------------------------------------------------
    case(
        "out-dir-under-a-regular-file",
        *K,
        "-d",
        "blocker/sub",
        "in.png",
        code=1,
        names=("blocker/sub",),
        words=("not a directory",),
        files={"in.png": IMG, "blocker": b"a regular file"},
    ),
    case(
        "out-dir-is-a-regular-file",
        *K,
        "-d",
        "blocker",
        "in.png",
        code=1,
        names=("blocker",),
        words=("not a directory",),
        files={"in.png": IMG, "blocker": b"a regular file"},
    ),
    case(
        "output-under-a-regular-file",
        *K,
        "-o",
        "blocker/x.png",
        "in.png",
        code=1,
        names=("blocker/x.png",),
        words=("not a directory",),
        files={"in.png": IMG, "blocker": b"a regular file"},
    ),
    case(
        "output-directory-missing",
        *K,
        "-o",
        "nodir/x.png",
        "in.png",
        code=1,
        names=("nodir/x.png",),
        words=("does not exist",),
        files={"in.png": IMG},
    ),
    case(
        "name-template-leaves-out-dir",
        *K,
        *OUT,
        "--name",
        "../x.png",
        "in.png",
        code=2,
        names=("--name", "../x.png"),
        words=("directory",),
        files={"in.png": IMG},
    ),
    case(
        "output-is-the-input",
        *K,
        "-o",
        "in.png",
        "in.png",
        code=1,
        names=("in.png",),
        words=("overwrite the input",),
        files={"in.png": IMG},
    ),
    case(
        "output-is-a-symlink-to-the-input",
        *K,
        "-o",
        "alias.png",
        "in.png",
        code=1,
        names=("in.png",),
        words=("overwrite the input",),
        files={"in.png": IMG},
        setup=lambda tmp: (tmp / "alias.png").symlink_to("in.png"),
    ),
    case(
        "name-template-overwrites-input-beside-it",
        *K,
        "--name",
        "{stem}{ext}",
        "in.png",
        code=1,
        names=("in.png",),
        words=("overwrite the input",),
        files={"in.png": IMG},
    ),
    case(
        "name-template-overwrites-input-in-out-dir",
        *K,
        "-d",
        ".",
        "--name",
        "{stem}{ext}",
        "in.png",
        code=1,
        names=("in.png",),
        words=("overwrite the input",),
        files={"in.png": IMG},
    ),
    # --- limits ---------------------------------------------------------------------------
    case(
        "over-the-pixel-limit",
        *K,
        *OUT,
        "in.png",
        code=1,
        names=("in.png",),
        words=("50x40", "1000", "limit", "CONVCLI_MAX_PIXELS"),
        files={"in.png": gray_png(40, 50)},  # 2000 pixels
        env={"CONVCLI_MAX_PIXELS": "1000"},
    ),
    case(
        "pixel-limit-not-a-number",
        *K,
        *OUT,
        "in.png",
        code=2,
        names=("CONVCLI_MAX_PIXELS", "abc"),
        words=("number",),
        files={"in.png": IMG},
        env={"CONVCLI_MAX_PIXELS": "abc"},
    ),
    case(
        "decompression-bomb",
        *K,
        *OUT,
        "bomb.png",
        code=1,
        names=("bomb.png",),
        words=("50000x50000", "limit", "CONVCLI_MAX_PIXELS"),
        files={"bomb.png": png_bomb()},
        pillow="fresh",
        seconds=5.0,  # decoding it would take minutes and 2.5 GB
    ),
    case(
        "decompression-bomb-after-another-image",
        *K,
        *OUT,
        "bomb.png",
        code=1,
        names=("bomb.png",),
        words=("50000x50000", "limit", "CONVCLI_MAX_PIXELS"),
        files={"bomb.png": png_bomb()},
        pillow="off",
        seconds=5.0,
    ),
    case(
        "tiff-bomb-streamed-past-the-pixel-limit",
        *K,
        *OUT,
        "--memory",
        "8M",
        "bomb.tif",
        code=1,
        names=("bomb.tif",),
        words=("4000x4000", "limit", "CONVCLI_MAX_PIXELS"),
        files={"bomb.tif": tiff_bomb(4000, 4000)},  # 36 KB
        env={"CONVCLI_MAX_PIXELS": "1000000"},
        pillow="fresh",
    ),
    case(
        "decompression-bomb-explain",
        *K,
        "--explain",
        *OUT,
        "bomb.png",
        code=1,
        names=("bomb.png",),
        words=("50000x50000", "limit", "CONVCLI_MAX_PIXELS"),
        files={"bomb.png": png_bomb()},
        pillow="fresh",
    ),
    # --- second round: inputs, formats, lists and limits ---------------------------------
    # (cases for format allow-lists, container bombs, endless streams and size bounds go here)
    # --- frames: bad --frames selections and frame bombs ---------------------------------
    *(
        case(
            f"frames-{name}",
            *K,
            "--frames",
            value,
            *OUT,
            "anim.gif",
            code=2,
            names=("--frames",),
            words=(word,),
            files={"anim.gif": ANIM_GIF},
        )
        for name, value, word in [
            ("not-a-number", "one", "not a number"),
            ("empty", "", "empty"),
            ("empty-item", "0,,2", "empty"),
            ("backwards-range", "3-1", "backwards"),
            ("decreasing", "2,1", "increasing"),
            ("repeated", "1,1", "increasing"),
            ("negative", "-1", "not a number"),
            ("huge", "99999999999", "beyond"),
        ]
    ),
    case(
        "frames-out-of-range",
        *K,
        "--frames",
        "1-5",
        *OUT,
        "anim.gif",
        code=1,
        names=("anim.gif",),
        words=("3 frames", "frame 5"),
        files={"anim.gif": ANIM_GIF},
    ),
    case(
        "frames-of-a-one-frame-image",
        *K,
        "--frames",
        "1",
        *OUT,
        "in.png",
        code=1,
        names=("in.png",),
        words=("1 frame",),
        files={"in.png": IMG},
    ),
    case(
        "frames-of-an-array",
        *K,
        "--frames",
        "0",
        *OUT,
        "a.npy",
        code=1,
        names=("a.npy",),
        words=("array",),
        files={"a.npy": npy_bytes(np.zeros((4, 4)))},
    ),
    case(
        "frames-to-stdout-in-a-one-frame-format",
        *K,
        "-o",
        "-",
        "--format",
        "png",
        "anim.gif",
        code=2,
        names=("anim.gif",),
        words=("one file per frame",),
        files={"anim.gif": ANIM_GIF},
    ),
    case(
        "frames-truncated-animation",
        *K,
        *OUT,
        "cut.gif",
        code=1,
        names=("cut.gif",),
        words=("truncated",),
        files={"cut.gif": ANIM_GIF[: len(ANIM_GIF) * 2 // 3]},
    ),
    case(
        "frame-bomb-gif-large-canvas",
        *K,
        *OUT,
        "bomb.gif",
        code=1,
        names=("bomb.gif",),
        words=("frames", "CONVCLI_MAX_PIXELS"),
        files={"bomb.gif": gif_frame_bomb(16000, 16000, 2)},
        seconds=10,
    ),
    case(
        "frame-bomb-gif-many-frames",
        *K,
        *OUT,
        "many.gif",
        code=1,
        names=("many.gif",),
        words=("3000 frames", "CONVCLI_MAX_PIXELS"),
        files={"many.gif": gif_frame_bomb(200, 200, 3000)},
        env={"CONVCLI_MAX_PIXELS": "1000000"},
        seconds=10,
    ),
    case(
        "frame-bomb-apng",
        *K,
        *OUT,
        "bomb.png",
        code=1,
        names=("bomb.png",),
        words=("frames", "CONVCLI_MAX_PIXELS"),
        files={"bomb.png": apng_frame_bomb(12000, 12000, 3)},
        seconds=10,
    ),
    case(
        "frame-bomb-explain",
        *K,
        "--explain",
        "bomb.gif",
        code=1,
        names=("bomb.gif",),
        words=("frames", "CONVCLI_MAX_PIXELS"),
        files={"bomb.gif": gif_frame_bomb(16000, 16000, 2)},
        seconds=10,
    ),
    case(
        "truncated-photo-jpeg",  # OpenCV would "recover" it, 90% flat gray
        *K,
        "-o",
        "t.png",
        "half.jpg",
        code=1,
        names=("half.jpg",),
        words=("truncated",),
        files={"half.jpg": hostile.coffee_cut()},
    ),
    case(
        "eps-is-not-decoded",  # Pillow's EPS plugin runs Ghostscript on the PostScript
        *K,
        *OUT,
        "stray.eps",
        code=1,
        names=("stray.eps",),
        words=("EPS", "--formats", "CONVCLI_FORMATS"),
        files={"stray.eps": b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n{} loop\n"},
        seconds=30,
    ),
    case(
        "ppm-on-stdin-is-not-decoded",
        *K,
        "-o",
        "out.png",
        "-",
        code=1,
        names=("<stdin>",),
        words=("PPM", "--formats"),
        stdin=b"P5\n2 2\n255\n\0\0\0\0",
    ),
    case(
        "ico-holding-a-png-bomb",
        *K,
        *OUT,
        "bomb.ico",
        code=1,
        names=("bomb.ico",),
        words=("50000x50000", "CONVCLI_MAX_PIXELS"),
        files={"bomb.ico": hostile.ico_bomb()},
        env={"CONVCLI_FORMATS": "default,ico"},
        seconds=30,
    ),
    case(
        "icns-holding-a-png-bomb",
        *K,
        "--formats",
        "default,icns",
        *OUT,
        "bomb.icns",
        code=1,
        names=("bomb.icns",),
        words=("50000x50000", "CONVCLI_MAX_PIXELS"),
        files={"bomb.icns": hostile.icns_bomb()},
        seconds=30,
    ),
    case(
        "gif-with-one-huge-frame",
        *K,
        *OUT,
        "bomb.gif",
        code=1,
        names=("bomb.gif",),
        words=("65535x65535", "CONVCLI_MAX_PIXELS"),
        files={"bomb.gif": hostile.gif_frame_bomb()},
        seconds=30,
    ),
    case(
        "jpeg-too-small-for-its-size",
        *K,
        *OUT,
        "big.jpg",
        code=1,
        names=("big.jpg",),
        words=("16000x16000", "truncated"),
        files={"big.jpg": hostile.jpeg_declaring(16000, 16000)},
        seconds=30,
    ),
    case(
        "zeros-on-stdin",
        *K,
        "-o",
        "out.png",
        "-",
        code=1,
        names=("<stdin>",),
        words=("not an image",),
        stdin=bytes(4 << 20),
    ),
    case(
        "stdin-over-the-memory-budget",
        *K,
        "--memory",
        "1MiB",
        "-o",
        "out.png",
        "-",
        code=1,
        names=("<stdin>",),
        words=("1.0 MiB", "--memory"),
        stdin=hostile.noise_png(700, 700),
    ),
    case(
        "kernel-file-dev-zero",
        "-k",
        "/dev/zero",
        *OUT,
        "in.png",
        code=2,
        names=("/dev/zero",),
        words=("larger than", "CONVCLI_MAX_KERNEL_SIZE"),
        files={"in.png": IMG},
        seconds=30,
    ),
    case(
        "kernel-file-fifo-without-writer",
        "-k",
        "./k.toml",
        *OUT,
        "in.png",
        code=2,
        names=("k.toml",),
        words=("no matrix",),
        files={"in.png": IMG},
        setup=hostile.fifo("k.toml"),
        seconds=30,
    ),
    case(
        "files-from-dev-zero",
        *K,
        *OUT,
        "--files-from",
        "/dev/zero",
        code=2,
        names=("--files-from /dev/zero",),
        words=("longer than 4096 bytes",),
        seconds=30,
    ),
    case(
        "files-from-dev-zero-nul-separated",
        *K,
        *OUT,
        "--memory",
        "16MiB",
        "-0",
        "--files-from",
        "/dev/zero",
        code=2,
        names=("--files-from /dev/zero",),
        words=("4.0 MiB of names", "--memory"),
        seconds=30,
    ),
    case(
        "files-from-fifo-without-writer",
        *K,
        *OUT,
        "--files-from",
        "list",
        code=2,
        names=(),
        words=("no input given",),
        setup=hostile.fifo("list"),
        seconds=30,
    ),
    case(
        "input-fifo-without-writer",
        *K,
        *OUT,
        "pipe.png",
        code=1,
        names=("pipe.png",),
        words=("not a regular file", "FIFO"),
        setup=hostile.fifo("pipe.png"),
        seconds=30,
    ),
    case(
        "input-dev-zero",
        *K,
        *OUT,
        "/dev/zero",
        code=1,
        names=("/dev/zero",),
        words=("not a regular file", "character device"),
        seconds=30,
    ),
    case(
        "input-proc-file",
        *K,
        *OUT,
        "/proc/self/status",
        code=1,
        names=("/proc/self/status",),
        words=("not a regular file", "/proc"),
    ),
    case(
        "files-from-name-with-nul",
        *K,
        *OUT,
        "--files-from",
        "list.txt",
        code=1,
        names=("bad\\x00name.png",),
        words=("NUL byte",),
        files={"list.txt": b"bad\0name.png\n"},
    ),
    case(
        "bank-dag-of-2-to-the-25",
        "-k",
        "l0",
        *OUT,
        "in.png",
        code=2,
        names=("l0",),
        words=("4096 kernels", "CONVCLI_MAX_KERNELS"),
        files={"in.png": IMG},
        setup=hostile.dag_banks,
        env={"CONVCLI_KERNEL_PATH": "{tmp}"},
        seconds=60,
    ),
    case(
        "bank-of-1500-largest-kernels",
        "-k",
        "./bank.toml",
        "--mode",
        "full",
        *OUT,
        "in.png",
        code=2,
        names=("box:size=1025",),
        words=("taps", "CONVCLI_MAX_KERNEL_SIZE"),
        files={"in.png": hostile.tiny_png(), "bank.toml": hostile.big_bank()},
        seconds=60,
    ),
    case(
        "full-mode-chain-of-20-large-kernels",
        *(a for _ in range(20) for a in ("-k", "box:size=1025")),
        "--mode",
        "full",
        *OUT,
        "in.png",
        code=1,
        names=("in.png", "box:size=1025"),
        words=("16392x16392", "CONVCLI_MAX_PIXELS"),
        files={"in.png": hostile.tiny_png()},
        seconds=90,
    ),
    case(
        "kernel-file-naming-itself-by-path",
        "-k",
        "./a.toml",
        *OUT,
        "in.png",
        code=2,
        names=("a.toml",),
        words=("refers to itself",),
        files={"in.png": IMG, "a.toml": b'kernels = ["./a.toml"]\n'},
    ),
    case(
        "kernel-files-a-b-a-by-path",
        "-k",
        "a.toml",
        *OUT,
        "in.png",
        code=2,
        names=("a.toml", "b.toml"),
        words=("refers to itself",),
        files={
            "in.png": IMG,
            "a.toml": b'kernels = ["box", "./b.toml"]\n',
            "b.toml": b'combine = "max"\nkernels = ["./a.toml"]\n',
        },
    ),
    *(
        case(
            f"memory-{value}",
            *K,
            "--memory",
            value,
            *OUT,
            "in.png",
            "in.png",
            code=2,
            names=("--memory", value),
            words=(("not like", "less than one byte"),),
            files={"in.png": IMG},
        )
        for value in ("1e400", "0.5", "1e-9", "nan")
    ),
    *(
        case(
            f"env-{name.lower()}-{value}",
            *K,
            *OUT,
            "in.png",
            "in.png",
            code=2,
            names=(name, value),
            words=(("not like", "at least 1", "less than one byte", "unknown image format"),),
            files={"in.png": IMG},
            env={name: value},
        )
        for name, value in [
            ("CONVCLI_MEMORY", "1e400"),
            ("CONVCLI_MEMORY", "0.5"),
            ("CONVCLI_MAX_PIXELS", "1e400"),
            ("CONVCLI_MAX_PIXELS", "0"),
            ("CONVCLI_MAX_PIXELS", "-5"),
            ("CONVCLI_MAX_KERNEL_SIZE", "-1"),
            ("CONVCLI_MAX_KERNELS", "0"),
            ("CONVCLI_FORMATS", "bogus"),
        ]
    ),
    case(
        "formats-option-unknown",
        *K,
        "--formats",
        "png,nosuch",
        *OUT,
        "in.png",
        code=2,
        names=("--formats", "nosuch"),
        words=("unknown image format",),
        files={"in.png": IMG},
    ),
    case(
        "csv-with-digit-separators",
        "-k",
        "box-1d",
        "-o",
        "out.npy",
        "us.csv",
        code=1,
        names=("us.csv", "1_000"),
        words=("not a number",),
        files={"us.csv": b"1_000,2,3\n"},
    ),
    case(
        "csv-over-the-memory-budget",
        "-k",
        "box-1d",
        "--memory",
        "1MiB",
        "-o",
        "out.npy",
        "big.csv",
        code=1,
        names=("big.csv",),
        words=("budget of 1.0 MiB", "--memory"),
        files={"big.csv": b"1," * 400_000 + b"1\n"},
    ),
    case(
        "json-over-the-memory-budget",
        "-k",
        "box-1d",
        "--memory",
        "1MiB",
        "-o",
        "out.npy",
        "big.json",
        code=1,
        names=("big.json",),
        words=("budget of 1.0 MiB", "--memory"),
        files={"big.json": b"[" + b"1," * 400_000 + b"1]"},
    ),
    case(
        "npy-signal-over-the-memory-budget",
        "-k",
        "box-1d",
        "--memory",
        "4MiB",
        "-o",
        "out.npy",
        "long.npy",
        code=1,
        names=("long.npy",),
        words=("1-D signal of 1000000 samples", "--memory"),
        files={"long.npy": hostile.npy(np.zeros(1_000_000))},
    ),
]


# -- running a case ------------------------------------------------------------------------
def snapshot(root: Path) -> dict[str, object]:
    """Every file below ``root`` (hidden ones included): its bytes, or where a link points."""
    files: dict[str, object] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                files[rel] = ("link", os.readlink(path))
            elif path.is_file():
                try:
                    files[rel] = path.read_bytes()
                except OSError:
                    st = path.stat()
                    files[rel] = ("unreadable", st.st_size, st.st_mtime_ns)
    return files


def restore_permissions(root: Path) -> None:
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            if not path.is_symlink():
                path.chmod(0o755)


@dataclass
class Run:
    code: int
    stdout: bytes
    stderr: str
    seconds: float


def run_convcli(cli, case: Case, tmp: Path) -> Run:
    args = ["apply", *(a.replace("{tmp}", str(tmp)) for a in case.args)]
    started = time.perf_counter()
    if case.subprocess:
        env = {**os.environ, **{k: v.replace("{tmp}", str(tmp)) for k, v in case.env.items()}}
        closed = case.stdin == CLOSED
        proc = subprocess.run(
            [sys.executable, "-m", "convcli", *args],
            input=None if closed else case.stdin or b"",
            capture_output=True,
            cwd=tmp,
            env=env,
            timeout=60,
            preexec_fn=(lambda: os.close(0)) if closed else None,
        )
        stderr = proc.stderr.decode("utf-8", "surrogateescape")
        return Run(proc.returncode, proc.stdout, stderr, time.perf_counter() - started)
    try:
        result = cli(*args, input=case.stdin, cwd=tmp)
    except Exception as exc:  # in a real run: a traceback
        pytest.fail(f"convcli raised {type(exc).__name__}: {str(exc)[:300]} (a traceback)")
    return Run(result.exit_code, result.stdout_bytes, result.stderr, time.perf_counter() - started)


def error_line(stderr: str) -> str:
    """The one line of stderr, checked to be a ``convcli: error:`` line and nothing else."""
    assert "Traceback" not in stderr, stderr[-2000:]
    lines = stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}: {stderr[:1000]!r}"
    line = lines[0]
    assert line.startswith(ERROR), line[:MAX_LINE]
    assert len(line) <= MAX_LINE, f"a {len(line)}-character error line: {line[:200]}..."
    assert "internal error" not in line, line
    return line


def check_words(line: str, names: tuple[str, ...], words: Words) -> None:
    for name in names:
        assert name in line, f"{name!r} not named in {line!r}"
    low = line.lower()
    for word in words:
        choices = word if isinstance(word, tuple) else (word,)
        assert any(w.lower() in low for w in choices), f"{choices} not in {line!r}"


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_refused_cleanly(case: Case, cli, tmp_path, monkeypatch):
    for name, data in case.files.items():
        (tmp_path / name).write_bytes(data)
    for key, value in case.env.items():
        monkeypatch.setenv(key, value.replace("{tmp}", str(tmp_path)))
    if case.pillow:  # Pillow's own limit as the host program left it: default, or off
        limit = PILLOW_MAX_IMAGE_PIXELS if case.pillow == "fresh" else None
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
    try:
        if case.setup is not None:
            case.setup(tmp_path)
        before = snapshot(tmp_path)
        run = run_convcli(cli, case, tmp_path)
        after = snapshot(tmp_path)
    finally:
        restore_permissions(tmp_path)

    line = error_line(run.stderr)
    check_words(line, case.names, case.words)
    assert run.code == case.code, f"exit {run.code}, expected {case.code}: {line}"
    assert run.stdout == b"", run.stdout[:500]
    assert sorted(after) == sorted(before), "files appeared or vanished"
    for rel, content in before.items():
        assert after[rel] == content, f"{rel} was modified"
    if case.seconds is not None:
        assert run.seconds < case.seconds, f"took {run.seconds:.1f} s"


def test_the_bombs_are_tiny_on_disk(monkeypatch):
    """The bombs of the table are real ones: small files declaring many pixels."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)  # Pillow's own limit would refuse them
    for data, size, most in [
        (png_bomb(), (50_000, 50_000), 1_000),
        (tiff_bomb(4000, 4000), (4000, 4000), 40_000),
    ]:
        assert len(data) < most
        with Image.open(io.BytesIO(data)) as im:  # Pillow reads the header only
            assert im.size == size


# -- names that are not UTF-8 --------------------------------------------------------------
def test_non_utf8_name_is_named(tmp_path):
    raw = b"bad\xff.png"
    name = os.fsdecode(raw)
    (tmp_path / name).write_bytes(truncated("png"))
    before = snapshot(tmp_path)
    code, stderr = run_with_process_stderr(["apply", "-k", "box", "-d", "out", name], tmp_path)
    assert code == 1
    assert b"Traceback" not in stderr
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(ERROR.encode()), stderr
    assert b"truncated" in lines[0]
    assert snapshot(tmp_path) == before
    assert raw in lines[0] or b"bad\\xff.png" in lines[0], lines[0]


def run_with_process_stderr(args: list[str], cwd: Path) -> tuple[int, bytes]:
    """Run convcli in-process like the ``cli`` fixture, but with stderr as a real interpreter
    sets it up (UTF-8, errors="backslashreplace"; the fixture's is strict, where convcli's
    error() raises UnicodeEncodeError for a name that is not UTF-8)."""
    from convcli.cli import app

    out, err = io.BytesIO(), io.BytesIO()
    out_text = io.TextIOWrapper(out, "utf-8", write_through=True)
    err_text = io.TextIOWrapper(err, "utf-8", errors="backslashreplace", write_through=True)
    in_text = io.TextIOWrapper(io.BytesIO(b""), "utf-8")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sys, "stdout", out_text)
        mp.setattr(sys, "stderr", err_text)
        mp.setattr(sys, "stdin", in_text)
        mp.chdir(cwd)
        code = app(args=args, prog_name="convcli", standalone_mode=False)
    return int(code or 0), err.getvalue()


# -- decoders that tolerate damage -----------------------------------------------------------
@pytest.mark.parametrize("ext", ["png", "jpg", "tif", "gif"])
def test_corrupt_image_gives_a_clean_error_or_a_whole_image(ext, cli, tmp_path):
    """Bytes flipped in the middle of a valid file. Some decoders notice (PNG's zlib stream,
    GIF's LZW), some cannot (JPEG entropy data decodes to other pixels, uncompressed TIFF
    samples are just other samples). Either is fine; a crash or a half-written file is not:
    a refusal follows the contract above, a success writes a complete image."""
    name = f"flipped.{ext}"
    (tmp_path / name).write_bytes(corrupt(ext))
    before = snapshot(tmp_path)
    r = cli("apply", "-k", "box", "-d", "out", name, cwd=tmp_path)
    after = snapshot(tmp_path)
    assert before[name] == after[name], "the input was modified"
    assert "Traceback" not in r.stderr
    if r.exit_code == 0:
        out = f"out/flipped.box.{ext}"
        assert r.stdout == f"{out}\n"
        assert r.stderr == ""
        assert sorted(after) == sorted([*before, out])
        with Image.open(tmp_path / out) as im:
            im.load()  # complete: decodes to the end
            assert im.size == (32, 24)
    else:
        assert r.exit_code == 1
        check_words(error_line(r.stderr), (name,), (("corrupt", "truncated", "not an image"),))
        assert r.stdout == ""
        assert after == before


# -- a batch with a good and a bad input ---------------------------------------------------
@pytest.mark.parametrize("jobs", ["1", "2"])
def test_batch_with_a_good_and_a_bad_input(jobs, cli, tmp_path, photos):
    write_png(tmp_path / "good.png", photos["astronaut"][:64, :80])
    (tmp_path / "bad.png").write_bytes(truncated("png"))
    inputs = snapshot(tmp_path)

    r = cli("apply", "-k", "box", "-d", "out", "-j", jobs, "good.png", "bad.png", cwd=tmp_path)
    assert r.exit_code == 1
    assert "Traceback" not in r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith(ERROR)]
    others = [line for line in r.stderr.splitlines() if not line.startswith(ERROR)]
    assert len(errors) == 1, r.stderr
    check_words(errors[0], ("bad.png",), ("truncated",))
    assert all(line.startswith("convcli: 1 done, 0 skipped, 1 failed") for line in others), others
    assert r.stdout == "out/good.box.png\n"

    # the good output is complete: the same bytes as the good input alone gives
    alone = cli("apply", "-k", "box", "-o", "alone.png", "good.png", cwd=tmp_path)
    assert alone.exit_code == 0, alone.stderr
    assert (tmp_path / "out" / "good.box.png").read_bytes() == (tmp_path / "alone.png").read_bytes()
    assert sorted(os.listdir(tmp_path / "out")) == ["good.box.png"]  # no part file
    after = snapshot(tmp_path)
    for rel, content in inputs.items():
        assert after[rel] == content, f"{rel} was modified"


def test_the_catalogue_is_large_enough():
    assert len(CASES) >= 150
