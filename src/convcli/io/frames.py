"""Multi-frame images: animated GIF, APNG and animated WebP, and multi-page TIFF.

:func:`probe` finds an input's frames from the file's structure (GIF blocks, PNG and WebP
chunks, TIFF pages), so that the frame count, the canvas and the timing are known, and frame
bombs refused, before any pixel is decoded. :func:`read` gives the frames one at a time as a
viewer shows them (each composed over what the earlier frames left, as ImageMagick's
``-coalesce``); :func:`write` writes them back as the same kind of file.

Written animations hold full-canvas frames that replace the canvas (APNG blend "source",
WebP "do not blend"; a GIF frame whose successor has transparent pixels is disposed to the
background), so that a viewer shows each written frame exactly; the disposal each frame had
is written too wherever that does not change what is shown.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from convcli.errors import ConvcliError, InputError, LimitError, OutputError
from convcli.io import gif, png
from convcli.io.inputs import check_readable, reason
from convcli.io.limits import max_pixels, pillow_limit_error
from convcli.io.tiff import page_shape
from convcli.machine import has_tifffile
from convcli.numeric import finite

#: the kinds of multi-frame file, and the output format that keeps all their frames
KIND_FORMAT = {"GIF": "GIF", "APNG": "PNG", "WEBP": "WEBP", "TIFF": "TIFF"}
KIND_NAMES = {
    "GIF": "animated GIF",
    "APNG": "APNG",
    "WEBP": "animated WebP",
    "TIFF": "multi-page TIFF",
}
#: a frame costs at least this many pixels against the limit (each has a fixed cost)
MIN_FRAME_PIXELS = 64 * 64
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class Animation:
    """What a multi-frame file holds, from its structure: the frames' count, decoded shape
    and sample type, and (animations) their timing, disposal, blending and loop count."""

    kind: str  # a key of KIND_FORMAT
    count: int
    shapes: tuple[tuple[int, ...], ...]  # each frame as read: (H, W) or (H, W, C)
    dtypes: tuple[str, ...]
    delays: tuple[tuple[int, int], ...] = ()  # seconds as (numerator, denominator)
    disposals: tuple[int, ...] = ()  # the format's own codes
    blends: tuple[int, ...] = ()  # APNG and WebP: 0 source / no blend, 1 over
    loop: int | None = None  # 0: forever; None: the file says nothing (plays once)
    lossless: bool = False  # WebP: every frame is VP8L
    background: bytes = b""  # WebP: the ANIM chunk's colour (B, G, R, A)

    @property
    def name(self) -> str:
        return KIND_NAMES[self.kind]

    @property
    def format(self) -> str:
        return KIND_FORMAT[self.kind]

    def duration_ms(self, index: int) -> float:
        num, den = self.delays[index]
        return 1000.0 * num / (den or 100)


def _bytes(source: Path | bytes, label: str) -> bytes:
    if isinstance(source, bytes):
        return source
    check_readable(source, label)
    return source.read_bytes()


def _head(source: Path | bytes, label: str) -> bytes:
    if isinstance(source, bytes):
        return source[:16]
    check_readable(source, label)
    with source.open("rb") as fh:
        return fh.read(16)


def probe(source: Path | bytes, label: str) -> Animation | None:
    """The frames of a multi-frame image, or None for a one-frame image (or not an image of
    these kinds: the ordinary decoder then reads it, or says why not). A file whose frames
    would together exceed the pixel limit is refused."""
    head = _head(source, label)
    found: Animation | None
    if gif.is_gif(head):
        found = _probe_gif(_bytes(source, label), label)
    elif head.startswith(PNG_SIGNATURE):
        found = _probe_apng(source, label)
    elif head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        found = _probe_webp(_bytes(source, label), label)
    elif head[:4] in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"):
        found = _probe_tiff(source, label)
    else:
        return None
    if found is not None:
        check_frame_pixels(found, label)
    return found


def check_frame_pixels(animation: Animation, label: str) -> None:
    """Refuse frames whose pixels together exceed the pixel limit (frame bombs: a small
    file can hold thousands of frames of a large canvas)."""
    total = sum(max(s[0] * s[1], MIN_FRAME_PIXELS) for s in animation.shapes)
    limit = max_pixels()
    if total > limit:
        h, w = animation.shapes[0][:2]
        raise LimitError(
            f"its {animation.count} frames of {w}x{h} are {total} pixels together (a frame "
            f"counts at least {MIN_FRAME_PIXELS}), over the limit of {limit} pixels "
            "(set CONVCLI_MAX_PIXELS to raise it)",
            subject=label,
        )


# -- GIF -------------------------------------------------------------------------------------
def _probe_gif(data: bytes, label: str) -> Animation | None:
    try:
        parsed = gif.parse(data, label)
    except gif.NoImages:
        return None  # not a GIF after all: the ordinary decoder says so
    if len(parsed.frames) < 2:
        return None
    channels = 4 if gif.has_alpha(parsed) else 3
    shape = (parsed.height, parsed.width, channels)
    n = len(parsed.frames)
    return Animation(
        "GIF",
        n,
        (shape,) * n,
        ("uint8",) * n,
        delays=tuple((f.delay, 100) for f in parsed.frames),
        disposals=tuple(f.disposal for f in parsed.frames),
        loop=parsed.loop,
    )


def _read_gif(data: bytes, label: str, animation: Animation, wanted: set[int]) -> Iterator[Any]:
    parsed = gif.parse(data, label)
    composer = gif.Composer(parsed)
    channels = animation.shapes[0][2]
    for index, frame in enumerate(parsed.frames[: max(wanted) + 1]):
        shown = composer.show(frame)
        if index in wanted:
            yield shown if channels == 4 else np.ascontiguousarray(shown[..., :3])


def _gif_disposals(animation: Animation, selected: list[int], frames: list[Any]) -> list[int]:
    """Each frame's disposal as the input had it, unless the next frame has transparent
    pixels: what shows through them must then be transparency (disposal to background)."""
    out = []
    for i, index in enumerate(selected):
        disposal = animation.disposals[index]
        following = frames[i + 1] if i + 1 < len(frames) else None
        if following is not None and following[2] is not None:
            disposal = 2
        out.append(disposal)
    return out


# -- APNG ------------------------------------------------------------------------------------
def _open(source: Path | bytes) -> Any:
    return io.BytesIO(source) if isinstance(source, bytes) else source.open("rb")


def _probe_apng(source: Path | bytes, label: str) -> Animation | None:
    with _open(source) as fh:
        size = fh.seek(0, io.SEEK_END)
        controls: list[bytes] = []
        ihdr = b""
        frames_declared = 0
        seen_idat = control_before_idat = False
        for kind, offset, _ in png.chunks(fh, size, label):
            fh.seek(offset)
            if kind == b"IHDR":
                ihdr = fh.read(13)
            elif kind == b"acTL" and not seen_idat:
                frames_declared = struct.unpack(">I", fh.read(4))[0]
            elif kind == b"fcTL" and frames_declared:
                controls.append(fh.read(26))
                control_before_idat = control_before_idat or not seen_idat
            elif kind == b"IDAT":
                if not frames_declared:
                    return None  # a plain PNG: only its header chunks are walked
                seen_idat = True
    if frames_declared < 2 or len(controls) < 2 or len(ihdr) < 13:
        return None
    if not control_before_idat:
        raise InputError(
            "an APNG whose default image is not one of its frames is not supported (its "
            f"{len(controls)} frames would not be kept as they are)",
            subject=label,
        )
    width, height, depth, colour = struct.unpack(">IIBB", ihdr[:10])
    if depth == 16:
        raise InputError(
            f"a 16-bit APNG ({len(controls)} frames) is not supported: its frames would be "
            "read as 8-bit",
            subject=label,
        )
    channels = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}.get(colour, 4)
    if colour in (0, 2, 3) and _png_has_chunk(source, label, b"tRNS"):
        channels = 4 if colour in (2, 3) else 2
    shape = (height, width) if channels == 1 else (height, width, channels)
    n = len(controls)
    fields = [struct.unpack(">IIIIIHHBB", c) for c in controls]
    return Animation(
        "APNG",
        n,
        (shape,) * n,
        ("uint8",) * n,
        delays=tuple((f[5], f[6] or 100) for f in fields),
        disposals=tuple(f[7] for f in fields),
        blends=tuple(f[8] for f in fields),
        loop=_apng_loop(source, label),
    )


def _png_has_chunk(source: Path | bytes, label: str, wanted: bytes) -> bool:
    with _open(source) as fh:
        size = fh.seek(0, io.SEEK_END)
        return any(kind == wanted for kind, _, _ in png.chunks(fh, size, label))


def _apng_loop(source: Path | bytes, label: str) -> int:
    with _open(source) as fh:
        size = fh.seek(0, io.SEEK_END)
        for kind, offset, _ in png.chunks(fh, size, label):
            if kind == b"acTL":
                fh.seek(offset + 4)
                return int(struct.unpack(">I", fh.read(4))[0])
    return 0


def _read_pillow(
    source: Path | bytes, animation: Animation, wanted: set[int]
) -> Iterator[np.ndarray]:
    """Frames composed by Pillow (its APNG and WebP plugins follow those specifications),
    in the layout of the animation's shape."""
    from PIL import Image

    shape = animation.shapes[0]
    channels = 1 if len(shape) == 2 else shape[2]
    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[channels]
    with _open(source) as fh, Image.open(fh) as im:
        for index in range(max(wanted) + 1):
            im.seek(index)
            if index in wanted:
                frame = im if im.mode == mode else im.convert(mode)
                yield np.array(frame)


def _png_frame(pixels: np.ndarray, compress: int | None) -> list[tuple[bytes, bytes]]:
    """One frame as the chunks of a still PNG from convcli's PNG writer."""
    from convcli.io import png
    from convcli.machine import threads_per_worker

    buffer = io.BytesIO()
    png.write(
        buffer, pixels, level=1 if compress is None else compress, threads=threads_per_worker()
    )
    data = buffer.getvalue()
    chunks = []
    pos = 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        chunks.append((kind, data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    return chunks


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _write_apng(
    out: Any,
    animation: Animation,
    selected: list[int],
    frames: Iterable[np.ndarray],
    compress: int | None,
    icc_profile: bytes | None,
) -> None:
    sequence = 0
    for i, pixels in enumerate(frames):
        chunks = _png_frame(pixels, compress)
        height, width = pixels.shape[:2]
        index = selected[i]
        num, den = animation.delays[index]
        control = struct.pack(
            ">IIIIIHHBB", sequence, width, height, 0, 0, num, den, animation.disposals[index], 0
        )
        sequence += 1
        if i == 0:
            out.write(PNG_SIGNATURE)
            out.write(_chunk(b"IHDR", chunks[0][1]))
            out.write(_chunk(b"acTL", struct.pack(">II", len(selected), animation.loop or 0)))
            if icc_profile:
                out.write(_chunk(b"iCCP", b"icc\0\0" + zlib.compress(icc_profile)))
            out.write(_chunk(b"fcTL", control))
            for kind, data in chunks:
                if kind == b"IDAT":
                    out.write(_chunk(kind, data))
            continue
        out.write(_chunk(b"fcTL", control))
        for kind, data in chunks:
            if kind == b"IDAT":
                out.write(_chunk(b"fdAT", struct.pack(">I", sequence) + data))
                sequence += 1
    out.write(_chunk(b"IEND", b""))


# -- WebP ------------------------------------------------------------------------------------
def _riff_chunks(data: bytes, start: int, end: int) -> Iterator[tuple[bytes, bytes]]:
    pos = start
    while pos + 8 <= end:
        kind = data[pos : pos + 4]
        (length,) = struct.unpack("<I", data[pos + 4 : pos + 8])
        yield kind, data[pos + 8 : pos + 8 + length]
        pos += 8 + length + (length & 1)


def _probe_webp(data: bytes, label: str) -> Animation | None:
    chunks = list(_riff_chunks(data, 12, len(data)))
    if not chunks or chunks[0][0] != b"VP8X" or not chunks[0][1][0] & 0x02:
        return None
    header = chunks[0][1]
    width = 1 + int.from_bytes(header[4:7], "little")
    height = 1 + int.from_bytes(header[7:10], "little")
    anim = next((c for k, c in chunks if k == b"ANIM"), b"\0\0\0\0\0\0")
    frames = [c for k, c in chunks if k == b"ANMF"]
    if len(frames) < 2:
        return None
    if any(len(f) < 16 for f in frames):
        raise InputError("corrupt animated WebP (a frame header is cut short)", subject=label)
    channels = 4 if header[0] & 0x10 else 3
    shape = (height, width, channels)
    n = len(frames)
    return Animation(
        "WEBP",
        n,
        (shape,) * n,
        ("uint8",) * n,
        delays=tuple((int.from_bytes(f[12:15], "little"), 1000) for f in frames),
        disposals=tuple(f[15] & 1 for f in frames),
        blends=tuple(0 if f[15] & 2 else 1 for f in frames),
        loop=int(struct.unpack("<H", anim[4:6])[0]),
        lossless=all(any(k == b"VP8L" for k, _ in _riff_chunks(f, 16, len(f))) for f in frames),
        background=anim[:4],
    )


def _webp_frame(pixels: np.ndarray, lossless: bool, quality: int | None) -> bytes:
    """One frame as the chunks of a still WebP (ALPH and VP8, or VP8L) from Pillow."""
    from PIL import Image

    buffer = io.BytesIO()
    options: dict[str, Any] = {"lossless": lossless, "exact": True, "method": 1}
    options["quality"] = 90 if quality is None else quality
    Image.fromarray(pixels).save(buffer, format="WEBP", **options)
    data = buffer.getvalue()
    return b"".join(
        kind + struct.pack("<I", len(body)) + body + (b"\0" if len(body) & 1 else b"")
        for kind, body in _riff_chunks(data, 12, len(data))
        if kind in (b"ALPH", b"VP8 ", b"VP8L")
    )


def _write_webp(
    out: Any,
    animation: Animation,
    selected: list[int],
    frames: Iterable[np.ndarray],
    quality: int | None,
    icc_profile: bytes | None,
) -> None:
    body = io.BytesIO()
    size = (0, 0)
    alpha = False
    for i, pixels in enumerate(frames):
        height, width = pixels.shape[:2]
        size = (width, height)
        alpha = alpha or pixels.shape[-1] == 4
        index = selected[i]
        num, den = animation.delays[index]
        duration = min(round(num * 1000 / (den or 1000)), 0xFFFFFF)
        flags = 0x02 | (animation.disposals[index] & 1)  # do not blend: the frame is whole
        frame = (
            (0).to_bytes(3, "little") * 2
            + (width - 1).to_bytes(3, "little")
            + (height - 1).to_bytes(3, "little")
            + duration.to_bytes(3, "little")
            + bytes([flags])
            + _webp_frame(pixels, animation.lossless, quality)
        )
        body.write(b"ANMF" + struct.pack("<I", len(frame)) + frame + b"\0" * (len(frame) & 1))
    width, height = size
    icc = icc_profile or b""
    vp8x = bytes([0x02 | (0x10 if alpha else 0) | (0x20 if icc else 0), 0, 0, 0])
    vp8x += (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    anim = (animation.background or b"\0\0\0\0") + struct.pack("<H", animation.loop or 0)
    payload = (
        b"WEBP"
        + b"VP8X"
        + struct.pack("<I", len(vp8x))
        + vp8x
        + (b"ICCP" + struct.pack("<I", len(icc)) + icc + b"\0" * (len(icc) & 1) if icc else b"")
        + b"ANIM"
        + struct.pack("<I", len(anim))
        + anim
        + body.getvalue()
    )
    out.write(b"RIFF" + struct.pack("<I", len(payload)) + payload)


# -- TIFF ------------------------------------------------------------------------------------
def _tiff_more_pages(source: Path | bytes) -> bool:
    """Whether the first IFD points to another (read from the header alone)."""
    with _open(source) as fh:
        head = fh.read(16)
        order = "<" if head[:2] == b"II" else ">"
        big = head[2:4] in (b"+\0", b"\0+")
        try:
            if big:
                (first,) = struct.unpack(order + "Q", head[8:16])
                fh.seek(first)
                (entries,) = struct.unpack(order + "Q", fh.read(8))
                fh.seek(first + 8 + 20 * entries)
                (following,) = struct.unpack(order + "Q", fh.read(8))
            else:
                (first,) = struct.unpack(order + "I", head[4:8])
                fh.seek(first)
                (entries,) = struct.unpack(order + "H", fh.read(2))
                fh.seek(first + 2 + 12 * entries)
                (following,) = struct.unpack(order + "I", fh.read(4))
        except struct.error:
            return False  # cut short: the ordinary decoder says why
    return bool(following)


def _probe_tiff(source: Path | bytes, label: str) -> Animation | None:
    if not _tiff_more_pages(source):
        return None
    if not has_tifffile():
        raise InputError(
            "a multi-page TIFF needs tifffile to keep every page: pip install 'convcli[tiff]'",
            subject=label,
        )
    import tifffile

    try:
        with _open(source) as fh, tifffile.TiffFile(fh) as tif:
            pages = [_page_layout(page, label) for page in tif.pages]
    except (InputError, LimitError):
        raise
    except Exception as exc:
        raise InputError(f"corrupt multi-page TIFF ({exc})", subject=label) from None
    if len(pages) < 2:
        return None
    return Animation(
        "TIFF",
        len(pages),
        tuple(p[0] for p in pages),
        tuple(p[1] for p in pages),
    )


#: TIFF sample types -> the documented type they are read as
_TIFF_TYPES = {"uint8": "uint8", "uint16": "uint16", "float32": "float32", "int32": "int32"}


def _page_layout(page: Any, label: str) -> tuple[tuple[int, ...], str]:
    shape = page_shape(page, label)
    dtype = np.dtype(page.dtype)
    if dtype == np.bool_:
        return shape, "uint8"
    if str(dtype) in _TIFF_TYPES:
        return shape, _TIFF_TYPES[str(dtype)]
    if dtype.kind == "f":  # as one-page TIFFs are read: float32, and int32 for integers
        return shape, "float32"
    if dtype.kind in "iu" and dtype.itemsize <= 4:
        return shape, "int32"
    raise InputError(f"unsupported TIFF page samples ({dtype})", subject=label)


def _read_tiff(source: Path | bytes, animation: Animation, wanted: set[int]) -> Iterator[Any]:
    import tifffile

    with _open(source) as fh, tifffile.TiffFile(fh) as tif:
        for index in sorted(wanted):
            page: Any = tif.pages[index]
            pixels = page.asarray()
            if page.planarconfig == 2 and pixels.ndim == 3:
                pixels = np.moveaxis(pixels, 0, -1)
            pixels = pixels.reshape(animation.shapes[index])
            if pixels.dtype == np.bool_:
                pixels = pixels.astype(np.uint8) * np.uint8(255)
            if pixels.dtype == np.uint32:  # as int32, clipped: the documented 32-bit type
                pixels = np.minimum(pixels, np.iinfo(np.int32).max)
            yield np.ascontiguousarray(pixels, dtype=animation.dtypes[index])


def _write_tiff(
    out: Any, frames: Iterable[np.ndarray], compress: int | None, icc_profile: bytes | None
) -> None:
    if not has_tifffile():
        raise OutputError("writing a multi-page TIFF needs tifffile: pip install 'convcli[tiff]'")
    import tifffile

    with tifffile.TiffWriter(out) as writer:
        for pixels in frames:
            colour = pixels.ndim == 3 and pixels.shape[2] >= 3
            extras = pixels.ndim == 3 and pixels.shape[2] in (2, 4)
            writer.write(
                pixels,
                photometric="rgb" if colour else "minisblack",
                extrasamples=["unassalpha"] if extras else None,
                compression="zlib" if compress else None,
                contiguous=False,
                iccprofile=icc_profile,
            )


# -- the entry points ------------------------------------------------------------------------
def read_frames(path: str | Path, frames: Iterable[int] | None = None) -> Iterator[np.ndarray]:
    """The frames of an image file, one array at a time, each as a viewer shows it (the
    frames of an animation composed; the pages of a TIFF as they are); a one-frame image
    gives its one frame. ``frames`` selects some (increasing indices, from 0).

    >>> import numpy as np, tempfile, os
    >>> from PIL import Image
    >>> p = os.path.join(tempfile.mkdtemp(), "a.gif")
    >>> red, blue = (Image.new("RGB", (4, 2), c) for c in ("red", "blue"))
    >>> red.save(p, save_all=True, append_images=[blue], duration=100)
    >>> [f[0, 0, :3].tolist() for f in read_frames(p)]
    [[255, 0, 0], [0, 0, 255]]
    """
    source = Path(path)
    label = str(path)
    animation = probe(source, label)
    count = animation.count if animation is not None else 1
    selected = list(range(count)) if frames is None else [int(i) for i in frames]
    if any(i < 0 or i >= count for i in selected) or selected != sorted(set(selected)):
        raise InputError(
            f"has {count} frame(s); frames {selected} are not increasing indices below it",
            subject=label,
        )
    if animation is None:
        from convcli.io.decode import open_image

        if selected:
            yield open_image(source).pixels
        return
    if selected:
        yield from read(source, label, animation, selected)


def read(
    source: Path | bytes, label: str, animation: Animation, selected: list[int]
) -> Iterator[np.ndarray]:
    """The selected frames (increasing indices), one at a time, as a viewer shows them."""
    from PIL import Image

    wanted = set(selected)
    if animation.kind == "GIF":
        frames = _read_gif(_bytes(source, label), label, animation, wanted)
    elif animation.kind == "TIFF":
        frames = _read_tiff(source, animation, wanted)
    else:
        frames = _read_pillow(source, animation, wanted)
    done = 0
    try:
        for pixels in frames:
            if pixels.shape != animation.shapes[selected[done]]:
                raise InputError(
                    f"frame {selected[done]} decodes to {pixels.shape}, not the "
                    f"{animation.shapes[selected[done]]} its file declares",
                    subject=label,
                )
            if pixels.dtype.kind == "f" and not finite(pixels):
                raise InputError(f"frame {selected[done]} holds NaN or infinity", subject=label)
            done += 1
            yield pixels
    except (ConvcliError, MemoryError):
        raise
    except Image.DecompressionBombError:
        raise pillow_limit_error(source, label) from None
    except Exception as exc:  # decoders raise anything on a damaged file
        index = selected[done] if done < len(selected) else selected[-1]
        raise InputError(
            f"corrupt or truncated {animation.name} (frame {index}: {reason(exc)})",
            subject=label,
        ) from None


def write(
    out: Any,
    animation: Animation,
    selected: list[int],
    frames: Iterable[np.ndarray],
    *,
    quality: int | None = None,
    compress: int | None = None,
    icc_profile: bytes | None = None,
) -> None:
    """Write the filtered frames (of the ``selected`` input frames) as a file of the
    animation's own kind into the binary file ``out``."""
    if animation.kind == "TIFF":
        _write_tiff(out, frames, compress, icc_profile)
        return
    checked = (_eight_bit(pixels, animation) for pixels in frames)
    if animation.kind == "GIF":
        encoded = [gif.frame_bytes(_rgb(p)) for p in checked]
        height, width = animation.shapes[0][:2]
        gif.write(
            out,
            (width, height),
            encoded,
            [animation.delays[i][0] for i in selected],
            _gif_disposals(animation, selected, encoded),
            animation.loop,
        )
    elif animation.kind == "APNG":
        _write_apng(out, animation, selected, checked, compress, icc_profile)
    else:
        _write_webp(out, animation, selected, checked, quality, icc_profile)


def _eight_bit(pixels: np.ndarray, animation: Animation) -> np.ndarray:
    if pixels.dtype != np.uint8:
        raise OutputError(
            f"an {animation.name} holds 8-bit frames, not {pixels.dtype}; leave --depth "
            "alone, or write the frames to TIFF or PNG files"
        )
    return pixels


def _rgb(pixels: np.ndarray) -> np.ndarray:
    """GIF frames are colour: gray (+ alpha) results are spread to RGB (+ alpha)."""
    if pixels.ndim == 2:
        return np.dstack([pixels] * 3)
    if pixels.shape[2] == 2:
        return np.dstack([pixels[..., :1]] * 3 + [pixels[..., 1:]])
    return pixels
