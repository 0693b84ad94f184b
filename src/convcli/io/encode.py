"""Images out: Pillow's encoders, convcli's own PNG writer, OpenCV's JPEG encoder where
it is installed (Pillow's very bytes, faster), tifffile for colour TIFFs that Pillow cannot
write (16-bit, float); arrays through :mod:`convcli.io.arrays`."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from convcli.errors import OutputError
from convcli.io.arrays import encode_array_into
from convcli.io.atomic import atomic_file, atomic_write, is_stream, row_pieces
from convcli.io.decode import bgr_to_rgb
from convcli.io.formats import ARRAY_FORMATS, format_for
from convcli.io.inputs import reason
from convcli.machine import has_opencv, has_tifffile, threads_per_worker


def write_image(
    pixels: np.ndarray,
    path: str | Path,
    *,
    format: str | None = None,
    quality: int | None = None,
    compress: int | None = None,
    icc_profile: bytes | None = None,
    bgr: bool = False,
) -> None:
    """Write an image (or array, for .npy/.csv/.json/.txt) atomically; ``bgr``: colour
    pixels in OpenCV's order, blue first (see :func:`encode_into`).

    The data goes straight into a temporary file beside ``path`` that is renamed into place,
    so a reader never sees half a file.
    """
    fmt = format_for(path, format)
    options: dict[str, Any] = {"quality": quality, "compress": compress, "icc_profile": icc_profile}
    if is_stream(path):  # a device or FIFO: encoders that seek cannot write into it
        atomic_write(Path(path), encode(pixels, fmt, bgr=bgr, **options))
        return
    with atomic_file(Path(path)) as fh:
        encode_into(fh, pixels, fmt, bgr=bgr, **options)


def encode(
    pixels: np.ndarray,
    fmt: str,
    *,
    quality: int | None = None,
    compress: int | None = None,
    icc_profile: bytes | None = None,
    bgr: bool = False,
) -> bytes:
    """Encode an image or array into the bytes of format ``fmt`` (see :func:`encode_into`)."""
    buffer = io.BytesIO()
    encode_into(
        buffer, pixels, fmt, quality=quality, compress=compress, icc_profile=icc_profile, bgr=bgr
    )
    return buffer.getvalue()


def encode_into(
    out: Any,
    pixels: np.ndarray,
    fmt: str,
    *,
    quality: int | None = None,
    compress: int | None = None,
    icc_profile: bytes | None = None,
    bgr: bool = False,
) -> None:
    """Encode an image or array as ``fmt`` into the binary file object ``out``. ``bgr``: the
    colour pixels are in OpenCV's order, blue first (as OpenCV decodes them): OpenCV's JPEG
    encoder takes them so, every other encoder gets them swapped first."""
    pixels = np.asarray(pixels)
    if bgr and not _opencv_jpeg(fmt, pixels, quality, icc_profile):
        pixels, bgr = bgr_to_rgb(pixels), False
    if fmt in ARRAY_FORMATS.values():
        encode_array_into(out, pixels, fmt)
        return
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    if pixels.ndim not in (2, 3) or (pixels.ndim == 3 and pixels.shape[2] not in (2, 3, 4)):
        shape = "x".join(map(str, pixels.shape))
        raise OutputError(f"a {shape} array is not an image; write it as .npy")
    colour = pixels.ndim == 3
    if fmt == "PNG" and pixels.dtype in (np.uint8, np.uint16):
        from convcli.io import png

        # convcli's own writer: standard PNG, compressed on every core
        png.write(
            out,
            pixels,
            level=1 if compress is None else compress,
            threads=threads_per_worker(),
            icc_profile=icc_profile,
        )
    elif pixels.dtype == np.uint16 and colour:
        _encode_colour16(out, pixels, fmt, compress)
    elif pixels.dtype == np.int32 and colour:
        _encode_int32_colour(out, pixels, fmt, compress)
    elif pixels.dtype.kind == "f" and colour:
        _encode_float_colour(out, pixels, fmt)
    elif fmt == "TIFF" and pixels.dtype == np.uint8 and not icc_profile and has_tifffile():
        _write_tifffile(out, pixels, compress)  # 13 ms for a 12 MP photo, Pillow's 80 ms
    elif _opencv_jpeg(fmt, pixels, quality, icc_profile):
        _encode_jpeg_opencv(out, pixels, 90 if quality is None else quality, bgr)
    else:
        _encode_pillow(out, pixels, fmt, quality, compress, icc_profile)


def _opencv_jpeg(
    fmt: str, pixels: np.ndarray, quality: int | None, icc_profile: bytes | None
) -> bool:
    """Whether OpenCV's encoder writes this image (8-bit JPEG without a colour profile)."""
    return (
        fmt == "JPEG"
        and pixels.dtype == np.uint8
        and not icc_profile
        and (quality is None or 1 <= quality <= 100)
        and has_opencv()
    )


def _encode_jpeg_opencv(out: Any, pixels: np.ndarray, quality: int, bgr: bool) -> None:
    """8-bit JPEG through OpenCV's libjpeg-turbo: the very bytes Pillow's encoder writes at
    the same quality (both baseline, 4:2:0 for colour; tests/test_image_io.py compares
    them), without Pillow's copy of the samples into an image of its own (a third less
    time on a 2 MP photo). JPEG has no alpha channel: only the colours are written, in
    OpenCV's order (swapped here unless ``bgr`` says they are in it)."""
    import cv2

    if pixels.ndim == 3 and pixels.shape[2] == 2:
        pixels = pixels[:, :, 0]
    elif pixels.ndim == 3:
        colour = pixels[:, :, :3]
        pixels = np.ascontiguousarray(colour) if bgr else bgr_to_rgb(colour)
    ok, data = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise OutputError("OpenCV could not encode the JPEG")
    out.write(data)


def _encode_pillow(
    out: Any,
    pixels: np.ndarray,
    fmt: str,
    quality: int | None,
    compress: int | None,
    icc_profile: bytes | None,
) -> None:
    from PIL import Image

    if pixels.dtype == np.uint16:
        if fmt not in ("PNG", "TIFF"):
            raise OutputError(f"{fmt} cannot store 16-bit samples; use PNG or TIFF, or --depth 8")
        im = Image.fromarray(pixels.astype(np.uint16, copy=False))  # mode I;16
    elif pixels.dtype == np.int32:
        if fmt != "TIFF":
            raise OutputError(f"{fmt} cannot store 32-bit integer samples; use TIFF or --depth 16")
        im = Image.fromarray(pixels)  # mode I
    elif pixels.dtype == np.float32:
        if fmt != "TIFF":
            raise OutputError(f"{fmt} cannot store float samples; use TIFF or .npy, or --depth 8")
        im = Image.fromarray(pixels)  # mode F
    elif pixels.dtype == np.uint8:
        im = Image.fromarray(pixels)
    else:
        raise OutputError(f"cannot write {pixels.dtype} samples as an image")
    if fmt == "JPEG" and im.mode in ("LA", "RGBA"):
        im = im.convert("L" if im.mode == "LA" else "RGB")  # JPEG has no alpha channel
    options: dict[str, Any] = {}
    if icc_profile and fmt in ("PNG", "JPEG", "TIFF", "WEBP"):
        options["icc_profile"] = icc_profile
    if fmt == "PNG":
        options["compress_level"] = 1 if compress is None else compress
    elif fmt in ("JPEG", "WEBP"):
        options["quality"] = 90 if quality is None else quality
        if fmt == "WEBP":
            options["method"] = 1
    elif fmt == "TIFF" and compress:
        options["compression"] = "tiff_adobe_deflate"
    try:
        im.save(out, format=fmt, **options)
    except (OSError, ValueError, KeyError) as exc:
        raise OutputError(f"cannot write this image as {fmt}: {reason(exc)}") from None


def _encode_colour16(out: Any, pixels: np.ndarray, fmt: str, compress: int | None) -> None:
    """16-bit colour TIFF (PNG has its own writer)."""
    if fmt != "TIFF":
        raise OutputError(f"{fmt} cannot store 16-bit samples; use PNG or TIFF, or --depth 8")
    if has_tifffile():
        _write_tifffile(out, pixels, compress)
    elif has_opencv():
        import cv2

        ok, buf = cv2.imencode(".tif", bgr_to_rgb(pixels))
        if not ok:
            raise OutputError("OpenCV could not encode the 16-bit TIFF")
        out.write(buf)
    else:
        raise OutputError(
            "writing 16-bit colour TIFF needs tifffile: pip install "
            "'convcli[tiff]' (or use PNG, or --depth 8)"
        )


def _encode_int32_colour(out: Any, pixels: np.ndarray, fmt: str, compress: int | None) -> None:
    """32-bit integer colour (an int32 RGB TIFF input kept at --depth same): only TIFF holds
    it, and only tifffile writes it (Pillow has no 32-bit colour mode)."""
    if fmt != "TIFF":
        raise OutputError(f"{fmt} cannot store 32-bit integer samples; use TIFF or --depth 16")
    if not has_tifffile():
        raise OutputError(
            "writing 32-bit integer colour TIFF needs tifffile: pip install 'convcli[tiff]' "
            "(or use --depth 16)"
        )
    _write_tifffile(out, pixels, compress)


def _encode_float_colour(out: Any, pixels: np.ndarray, fmt: str) -> None:
    if fmt != "TIFF":
        raise OutputError(f"{fmt} cannot store float samples; use TIFF or .npy, or --depth 8")
    if not has_tifffile():
        raise OutputError("writing float colour TIFF needs tifffile: pip install 'convcli[tiff]'")
    _write_tifffile(out, pixels.astype(np.float32, copy=False), None)


def _write_tifffile(out: Any, pixels: np.ndarray, compress: int | None) -> None:
    """A baseline TIFF of gray or colour, with unassociated alpha as Pillow writes it;
    deflate with ``compress``."""
    channels = pixels.shape[2] if pixels.ndim == 3 else 1
    photometric = "rgb" if channels >= 3 else "minisblack"
    extras = ["unassalpha"] if channels in (2, 4) else None
    import tifffile

    # uncompressed, the pixels follow the header as they are: in pieces of whole rows, which
    # tifffile writes one by one (one write of them all is slow: atomic.WRITE_PIECE)
    data = pixels if compress else row_pieces(pixels)
    tifffile.imwrite(
        out,
        data,
        shape=pixels.shape,
        dtype=pixels.dtype,
        photometric=photometric,
        extrasamples=extras,
        compression="zlib" if compress else None,
        metadata=None,  # no tifffile JSON description
    )
