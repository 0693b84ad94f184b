"""TIFFs through tifffile: the header checked before decoding, and the colour TIFFs (16-bit,
float) that Pillow would truncate or cannot open."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from convcli.errors import ConvcliError, InputError
from convcli.io.inputs import reason
from convcli.io.limits import check_pixels
from convcli.machine import has_tifffile
from convcli.numeric import finite


def is_tiff(source: Path | bytes) -> bool:
    if isinstance(source, bytes):
        head = source[:4]
    else:
        with source.open("rb") as fh:
            head = fh.read(4)
    return head in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+")


def needs_tifffile(im: Any) -> bool:
    bits = im.tag_v2.get(258)  # BitsPerSample
    samples = im.tag_v2.get(277, 1)  # SamplesPerPixel
    bits = bits[0] if isinstance(bits, tuple) else bits
    return samples > 1 and bits is not None and bits > 8


def page_shape(page: Any, label: str) -> tuple[int, ...]:
    """The (H, W[, C]) shape of a TIFF page as it is decoded (planar pages interleaved),
    refused unless it is a 2-D image of 1 to 4 samples a pixel."""
    shape = tuple(int(n) for n in page.shape)
    if page.planarconfig == 2 and len(shape) == 3:
        shape = (shape[1], shape[2], shape[0])
    if len(shape) == 3 and shape[2] == 1:
        shape = shape[:2]
    if len(shape) not in (2, 3) or 0 in shape or (len(shape) == 3 and shape[2] > 4):
        raise InputError(
            f"unsupported TIFF layout {'x'.join(map(str, shape)) or '(empty)'} "
            "(convcli reads 2-D images with 1 to 4 samples per pixel)",
            subject=label,
        )
    return shape


def tiff_header(tif: Any, label: str) -> tuple[tuple[int, ...], np.dtype]:
    """The (H, W[, C]) shape and sample type tifffile will decode, checked before decoding."""
    if not len(tif.pages):
        raise InputError("the TIFF holds no images (0 pages)", subject=label)
    page = tif.pages.first
    shape = page_shape(page, label)
    check_pixels(shape[1], shape[0], label)
    return shape, _tiff_sample_type(np.dtype(page.dtype), label)


def _tiff_sample_type(dtype: np.dtype, label: str) -> np.dtype:
    """The documented sample type a TIFF's samples are read as."""
    if dtype in (np.uint8, np.uint16, np.float32, np.int32):
        return dtype
    if dtype == np.bool_:
        return np.dtype(np.uint8)
    if dtype.kind == "f":
        return np.dtype(np.float32)
    if dtype.kind in "iu" and dtype.itemsize <= 4:
        return np.dtype(np.int32)
    raise InputError(f"unsupported TIFF samples ({dtype})", subject=label)


def _check_tifffile(label: str) -> None:
    if not has_tifffile():
        raise InputError(
            "16-bit or float colour TIFF needs tifffile: pip install 'convcli[tiff]'", subject=label
        )


def decode_tiff(source: Path | bytes, label: str) -> np.ndarray:
    _check_tifffile(label)
    import tifffile

    with tifffile.TiffFile(io.BytesIO(source) if isinstance(source, bytes) else source) as tif:
        shape, dtype = tiff_header(tif, label)
        page = tif.pages.first
        pixels = page.asarray()
        if page.planarconfig == 2 and pixels.ndim == 3:
            pixels = np.moveaxis(pixels, 0, -1)
    pixels = pixels.reshape(shape)
    if not finite(pixels):
        raise InputError("the float image holds NaN or infinity", subject=label)
    if pixels.dtype == np.bool_:
        return pixels.astype(np.uint8) * np.uint8(255)
    if pixels.dtype == np.uint32:  # as int32, clipped: the documented 32-bit type
        pixels = np.minimum(pixels, np.iinfo(np.int32).max)
    return np.ascontiguousarray(pixels, dtype=dtype)


def probe_tiff(source: Path | bytes, label: str) -> tuple[tuple[int, ...], str]:
    """The shape and sample type tifffile would decode, from the header."""
    _check_tifffile(label)
    import tifffile

    try:
        with tifffile.TiffFile(io.BytesIO(source) if isinstance(source, bytes) else source) as tif:
            shape, dtype = tiff_header(tif, label)
    except ConvcliError:
        raise
    except Exception as exc:
        raise InputError(f"corrupt or unsupported TIFF ({reason(exc)})", subject=label) from None
    return shape, str(dtype)
