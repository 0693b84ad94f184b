"""GIF animations block by block: their frames found without decoding (so that a frame bomb
is refused from the file's structure), each frame decoded on its own and composed the way
browsers and ImageMagick's ``-coalesce`` show it, and animations written back frame by frame.

Pillow decodes every frame's LZW data; the composition is convcli's because Pillow follows
the letter of the GIF specification where viewers do not: a frame disposed "to background"
leaves transparency in browsers and ImageMagick, and the background colour in Pillow. Pillow's
animation writer also merges identical frames into one (adding their durations), which would
change the frame count; here every frame is written as given.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from convcli.errors import InputError

SIGNATURES = (b"GIF87a", b"GIF89a")
DISPOSAL_NAMES = {0: "unspecified", 1: "none", 2: "background", 3: "previous"}


@dataclass(frozen=True)
class GifFrame:
    """One image block of a GIF and its graphic control extension."""

    left: int
    top: int
    width: int
    height: int
    delay: int  # hundredths of a second
    disposal: int  # 0-3 (see DISPOSAL_NAMES)
    transparent: int | None  # the palette index that is transparent
    interlaced: bool
    palette: bytes | None  # the local colour table
    data: bytes  # the LZW minimum code size and the data sub-blocks with their terminator


@dataclass(frozen=True)
class GifFile:
    width: int
    height: int
    palette: bytes | None  # the global colour table
    loop: int | None  # the NETSCAPE2.0 loop count (0: forever), None if absent
    frames: tuple[GifFrame, ...]


def is_gif(head: bytes) -> bool:
    return head[:6] in SIGNATURES


class NoImages(InputError):
    """The file ends, or stops being a GIF, before its first image starts."""


def parse(data: bytes, label: str) -> GifFile:
    """The blocks of a GIF, checked to lie within the file (nothing is decoded). A file that
    goes wrong before its first image raises :class:`NoImages`; one that goes wrong after,
    a plain InputError (a damaged animation, which must not pass for its first frames)."""
    images: list[GifFrame] = []
    try:
        return _parse(data, label, images)
    except InputError as exc:
        if images or exc.message.startswith("corrupt or truncated GIF (an image"):
            raise
        raise NoImages(exc.message, subject=label) from None


def _parse(data: bytes, label: str, frames: list[GifFrame]) -> GifFile:
    reader = _Reader(data, label)
    reader.take(6)
    width, height, flags, _background, _aspect = struct.unpack("<HHBBB", reader.take(7))
    palette = reader.take(3 << ((flags & 7) + 1)) if flags & 0x80 else None
    loop: int | None = None
    control = (0, 0, None)  # delay, disposal, transparent index of the next image
    while True:
        kind = reader.take(1)
        if kind == b";":
            break
        if kind == b"!":
            label_byte = reader.take(1)[0]
            blocks = reader.sub_blocks()
            if label_byte == 0xF9 and blocks and len(blocks[0]) >= 4:
                packed, delay, index = struct.unpack("<BHB", blocks[0][:4])
                control = (delay, (packed >> 2) & 7, index if packed & 1 else None)
            elif label_byte == 0xFF and _loop_block(blocks):
                loop = struct.unpack("<H", blocks[1][1:3])[0]
            continue
        if kind == b",":
            reader.within_image = True
            left, top, w, h, image_flags = struct.unpack("<HHHHB", reader.take(9))
            local = reader.take(3 << ((image_flags & 7) + 1)) if image_flags & 0x80 else None
            start = reader.pos
            reader.take(1)  # the LZW minimum code size
            reader.sub_blocks()
            delay, disposal, transparent = control
            frames.append(
                GifFrame(
                    left,
                    top,
                    w,
                    h,
                    delay,
                    disposal if disposal <= 3 else 0,
                    transparent,
                    bool(image_flags & 0x40),
                    local,
                    data[start : reader.pos],
                )
            )
            control = (0, 0, None)
            continue
        if not frames:
            raise InputError(f"corrupt GIF (unknown block {kind!r})", subject=label)
        break  # junk after the last frame: what viewers show ends there too
    return GifFile(width, height, palette, loop, tuple(frames))


def _loop_block(blocks: list[bytes]) -> bool:
    """Whether an application extension is the loop count of Netscape (or AnimExts)."""
    named = bool(blocks) and blocks[0][:11] in (b"NETSCAPE2.0", b"ANIMEXTS1.0")
    return named and len(blocks) > 1 and len(blocks[1]) >= 3 and blocks[1][0] == 1


class _Reader:
    def __init__(self, data: bytes, label: str) -> None:
        self.data, self.label, self.pos = data, label, 0
        self.within_image = False

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            where = "an image" if self.within_image else "a block"
            raise InputError(
                f"corrupt or truncated GIF ({where} runs past the end of the file)",
                subject=self.label,
            )
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def sub_blocks(self) -> list[bytes]:
        blocks: list[bytes] = []
        while True:
            size = self.take(1)[0]
            if size == 0:
                return blocks
            blocks.append(self.take(size))


def has_alpha(gif: GifFile, frames: list[int] | None = None) -> bool:
    """Whether any composed frame can hold a transparent pixel, from the blocks alone: a
    frame with a transparent index, a first frame short of the canvas, or a frame disposed to
    the background (which viewers clear to transparency) before another."""
    first = gif.frames[0]
    if (first.left, first.top, first.width, first.height) != (0, 0, gif.width, gif.height):
        return True
    return any(f.transparent is not None for f in gif.frames) or any(
        f.disposal == 2 for f in gif.frames[:-1]
    )


def decode_frame(gif: GifFile, frame: GifFrame) -> np.ndarray:
    """One frame's own pixels as RGBA (transparent where its transparent index is), decoded
    by Pillow from a one-frame GIF made of this frame's blocks."""
    from PIL import Image

    palette = frame.palette if frame.palette is not None else gif.palette
    if palette is None:  # no colour table: gray ramp, as viewers do
        palette = bytes(v for i in range(256) for v in (i, i, i))
    bits = max(1, (len(palette) // 3 - 1).bit_length())
    palette = palette.ljust(3 << bits, b"\0")[: 3 << bits]
    head = b"GIF89a" + struct.pack("<HHBBB", frame.width, frame.height, 0x80 | (bits - 1), 0, 0)
    control = b""
    if frame.transparent is not None:
        control = b"!\xf9\x04" + struct.pack("<BHB", 1, 0, frame.transparent) + b"\0"
    flags = 0x40 if frame.interlaced else 0
    image = b"," + struct.pack("<HHHHB", 0, 0, frame.width, frame.height, flags)
    with Image.open(io.BytesIO(head + palette + control + image + frame.data + b";")) as im:
        im.load()
        return np.asarray(im.convert("RGBA"))


class Composer:
    """The canvas a viewer shows, frame after frame (ImageMagick's ``-coalesce``): it starts
    transparent; each frame is drawn over it where the frame is opaque; then the frame's
    disposal leaves it (none), clears its area to transparency (background), or restores
    what was there before it (previous)."""

    def __init__(self, gif: GifFile) -> None:
        self.gif = gif
        self.canvas = np.zeros((gif.height, gif.width, 4), np.uint8)

    def show(self, frame: GifFrame) -> np.ndarray:
        """The canvas with ``frame`` drawn (a new array), leaving the disposal for the next."""
        pixels = decode_frame(self.gif, frame)
        before = self.canvas.copy() if frame.disposal == 3 else None
        y0, x0 = min(frame.top, self.gif.height), min(frame.left, self.gif.width)
        y1 = min(frame.top + frame.height, self.gif.height)
        x1 = min(frame.left + frame.width, self.gif.width)
        part = pixels[: y1 - y0, : x1 - x0]
        region = self.canvas[y0:y1, x0:x1]
        opaque = part[..., 3] > 0
        region[opaque] = part[opaque]
        shown = self.canvas.copy()
        if frame.disposal == 2:
            region[...] = 0
        elif before is not None:
            self.canvas = before
        return shown


def frame_bytes(pixels: np.ndarray) -> tuple[bytes, bytes, int | None]:
    """An 8-bit RGB(A) frame as GIF data: its colour table, its LZW data and its transparent
    index. Colours are reduced to a palette by :func:`quantize`; alpha becomes on (>= 128)
    or off, the transparent pixels taking the last palette entry."""
    from PIL import Image

    indices, palette = quantize(pixels)
    transparent = None
    if pixels.shape[-1] == 4 and (pixels[..., 3] < 128).any():
        transparent = 255
        indices[pixels[..., 3] < 128] = transparent
    indexed = Image.fromarray(indices, "P")
    indexed.putpalette(palette)
    buffer = io.BytesIO()
    indexed.save(buffer, format="GIF", optimize=False, interlace=False)
    return palette, parse(buffer.getvalue(), "<frame>").frames[0].data, transparent


def quantize(pixels: np.ndarray) -> tuple[np.ndarray, bytes]:
    """The palette indices and the 256-entry colour table (768 bytes) of an 8-bit RGB(A)
    frame. A frame of at most 256 colours (255 when it has transparent pixels, alpha < 128,
    which take the last entry) keeps them exactly; others are reduced by Pillow's fast
    octree without dithering, so that the same frame always gives the same palette (its
    median cut is as good to the eye and hundreds of times slower)."""
    from PIL import Image

    clear = pixels.shape[-1] == 4 and bool((pixels[..., 3] < 128).any())
    most = 255 if clear else 256
    rgb = np.ascontiguousarray(pixels[..., :3])
    packed = (rgb[..., 0].astype(np.uint32) << 16) | (rgb[..., 1].astype(np.uint32) << 8)
    packed |= rgb[..., 2]
    colours, inverse = np.unique(packed, return_inverse=True)
    if len(colours) <= most:
        table = np.stack([colours >> 16, (colours >> 8) & 255, colours & 255], axis=1)
        palette = table.astype(np.uint8).tobytes().ljust(3 * 256, b"\0")
        return inverse.reshape(rgb.shape[:2]).astype(np.uint8), palette
    indexed = Image.fromarray(rgb, "RGB").quantize(most, method=Image.Quantize.FASTOCTREE)
    palette = bytes(indexed.getpalette() or [])[: 3 * 256].ljust(3 * 256, b"\0")
    return np.array(indexed), palette


def write(
    out: Any,
    size: tuple[int, int],
    frames: list[tuple[bytes, bytes, int | None]],
    delays: list[int],
    disposals: list[int],
    loop: int | None,
) -> None:
    """An animated GIF of full-canvas frames (each a ``frame_bytes`` triple), with the given
    delays (hundredths of a second), disposals and loop count, written as given."""
    width, height = size
    out.write(b"GIF89a" + struct.pack("<HHBBB", width, height, 0, 0, 0))
    if loop is not None:
        out.write(b"!\xff\x0bNETSCAPE2.0\x03\x01" + struct.pack("<H", loop) + b"\0")
    for (palette, data, transparent), delay, disposal in zip(
        frames, delays, disposals, strict=True
    ):
        packed = (disposal << 2) | (1 if transparent is not None else 0)
        out.write(b"!\xf9\x04" + struct.pack("<BHB", packed, delay, transparent or 0) + b"\0")
        out.write(b"," + struct.pack("<HHHHB", 0, 0, width, height, 0x80 | 7))
        out.write(palette)
        out.write(data)
    out.write(b";")
