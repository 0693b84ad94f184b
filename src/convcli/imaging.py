"""Image semantics on top of :func:`convcli.convolve`: gray, alpha, bit depth, offset, range.

``convolve`` filters numbers. An image also has an alpha channel that must not be blurred
into the colours, samples of a fixed bit depth that results must be mapped back into, and
signed results (edges) that need a policy. This module holds those rules, once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .engine import align, as_operation, convolve
from .errors import UsageError
from .vocabulary import ALPHA_MODES, DEPTHS, RANGES

#: ITU-R 601-2 luma, as Pillow's convert("L")
LUMA = np.array([0.299, 0.587, 0.114])
_DEPTH_DTYPES: dict[str, np.dtype] = {
    "8": np.dtype(np.uint8),
    "16": np.dtype(np.uint16),
    "float": np.dtype(np.float32),
}


@dataclass(frozen=True)
class PixelOptions:
    """How an image's samples are prepared and how results become samples again."""

    gray: bool = False
    alpha: str = "keep"
    depth: str = "same"
    range: str = "clip"
    offset: float = 0.0
    offset_percent: bool = False  # offset is a percentage of the output range
    #: "nearest" rounds to the nearest level, ties to even (numpy, OpenCV); "half-up" rounds
    #: ties up (Pillow); "imagemagick" reproduces ImageMagick 6 Q16: results rounded to 16
    #: bits, then truncated to 8 (measured: IM's 8-bit output is the floor)
    quantize: str = "nearest"

    def __post_init__(self) -> None:
        for value, allowed, what in (
            (self.alpha, ALPHA_MODES, "alpha"),
            (self.depth, DEPTHS, "depth"),
            (self.range, RANGES, "range"),
        ):
            if value not in allowed:
                raise UsageError(f"{what} {value!r} is not one of {', '.join(allowed)}")
        if not np.isfinite(self.offset):
            raise UsageError(f"offset must be a finite number, got {self.offset}")
        if self.quantize not in ("nearest", "half-up", "imagemagick"):
            raise UsageError(
                f"quantize {self.quantize!r} is not one of nearest, half-up, imagemagick"
            )
        if self.range == "rescale" and self.offset:
            raise UsageError(
                "--offset has no effect with --range rescale (which sets the "
                "output range itself); drop one of them"
            )


def parse_offset(text: str) -> tuple[float, bool]:
    """``"12"`` -> (12, False); ``"50%"`` -> (50, True)."""
    raw = text.strip()
    percent = raw.endswith("%")
    try:
        value = float(raw[:-1] if percent else raw)
    except ValueError:
        raise UsageError(f"offset {text!r} is not a number or a percentage like 50%") from None
    return value, percent


def sample_max(dtype: np.dtype) -> float:
    """The value of full intensity for a sample type (float images are 0..1)."""
    if dtype == np.uint8:
        return 255.0
    if dtype in (np.uint16, np.int32):
        return 65535.0
    return 1.0


def output_dtype(input_dtype: np.dtype, depth: str) -> np.dtype:
    if depth == "same":
        return np.dtype(np.float32) if input_dtype.kind == "f" else np.dtype(input_dtype)
    return _DEPTH_DTYPES[depth]


@dataclass
class Filtered:
    """A filtered image: its samples, and how many results the range mapping clipped."""

    pixels: np.ndarray  # (H, W[, C]), or (K, H, W[, C]) when a bank stacked
    stacked: int | None
    clipped: int = 0
    total: int = 0


def split_alpha(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """(colour, alpha): gray + alpha (H, W, 2) and RGBA (H, W, 4) carry alpha last."""
    if pixels.ndim == 3 and pixels.shape[2] in (2, 4):
        colour = pixels[:, :, :-1]
        return (colour[:, :, 0] if colour.shape[2] == 1 else colour), pixels[:, :, -1]
    return pixels, None


def luminance(colour: np.ndarray) -> np.ndarray:
    """Gray from RGB with Pillow's weights, in float (no rounding before filtering)."""
    if colour.ndim == 2:
        return colour
    return colour.astype(np.float64) @ LUMA


def filter_image(
    pixels: np.ndarray, kernel: Any, options: PixelOptions = PixelOptions(), **conv: Any
) -> Filtered:
    """Filter an image's colour channels and map the results back to samples.

    ``conv`` takes :func:`convolve`'s keyword arguments (mode, boundary, backend, ...).
    Alpha is carried through untouched (``keep``), filtered like a colour (``filter``), or
    used to premultiply the colours before filtering and divided out after
    (``premultiplied``, which leaves no dark fringes around transparent areas).
    """
    pixels = np.asarray(pixels)
    operation = as_operation(kernel, conv.pop("combine", None))
    in_max = sample_max(pixels.dtype)
    out_dtype = output_dtype(pixels.dtype, options.depth)
    colour, alpha = split_alpha(pixels)
    if options.gray:
        colour = luminance(colour)
        if pixels.dtype == np.uint8:
            conv.setdefault("dtype", np.float32)  # keep the 8-bit precision policy
    gray = colour.ndim == 2
    with_alpha = alpha is not None and options.alpha != "keep"
    if alpha is not None and options.alpha == "premultiplied":
        weight = alpha.astype(np.float64) / in_max
        data = np.dstack([colour * (weight if gray else weight[:, :, np.newaxis]), weight])
    elif alpha is not None and with_alpha:
        data = np.dstack([colour, alpha])
    else:
        data = colour
    result = convolve(data, operation, **conv)
    stacked = result.shape[0] if result.ndim == data.ndim + 1 else None
    out_alpha: np.ndarray | None = None
    if with_alpha:
        result, out_alpha = result[..., :-1], result[..., -1]
        if options.alpha == "premultiplied":
            covered = out_alpha[..., np.newaxis] > 1e-12
            result = np.where(
                covered, result / np.where(covered, out_alpha[..., np.newaxis], 1.0), 0.0
            )
            out_alpha = out_alpha * in_max
        if gray:
            result = result[..., 0]
    elif alpha is not None:
        out_alpha = align(alpha, operation, **conv)
        if stacked:
            out_alpha = np.broadcast_to(out_alpha, (stacked, *out_alpha.shape))
    samples, clipped, total = to_samples(result, in_max, out_dtype, options)
    if out_alpha is not None:
        alpha_samples = _alpha_samples(out_alpha, in_max, out_dtype)
        colour_part = samples[..., np.newaxis] if gray else samples
        samples = np.concatenate([colour_part, alpha_samples[..., np.newaxis]], axis=-1)
    return Filtered(samples, stacked, clipped, total)


def to_samples(
    result: np.ndarray, in_max: float, out_dtype: np.dtype, options: PixelOptions
) -> tuple[np.ndarray, int, int]:
    """Map float results to output samples: depth scaling, abs, offset, rescale or clip.

    Float output keeps the input's units (the raw convolution); integer output is rounded
    to nearest and clipped to the type's range. Returns (samples, clipped count, total).
    """
    integer = out_dtype.kind in "ui"
    out_max = sample_max(out_dtype) if integer else in_max
    r: npt.NDArray[np.floating[Any]] = np.asarray(
        result, dtype=np.float64 if out_dtype.itemsize > 1 else np.float32
    )
    if integer and out_max != in_max:
        r = r * (out_max / in_max)
    if options.range == "abs":
        r = np.abs(r)
    if options.offset:
        r = r + (options.offset / 100.0 * out_max if options.offset_percent else options.offset)
    if options.range == "rescale":
        low, high = float(r.min()), float(r.max())
        top = out_max if integer else 1.0
        r = (r - low) * (top / (high - low)) if high > low else np.zeros_like(r)
    if not integer:
        return r.astype(out_dtype), 0, r.size
    clipped = int(np.count_nonzero((r < -0.5) | (r > out_max + 0.5)))
    if options.quantize == "imagemagick" and out_max == 255:
        r = np.floor(np.rint(r * 257.0) / 257.0)
    elif options.quantize == "half-up":
        r = np.floor(r + 0.5)
    samples = np.rint(np.clip(r, 0, out_max, out=r if r.flags.writeable else None))
    return samples.astype(out_dtype), clipped, r.size


def _alpha_samples(alpha: np.ndarray, in_max: float, out_dtype: np.dtype) -> np.ndarray:
    if out_dtype.kind not in "ui":
        return alpha.astype(out_dtype)
    out_max = sample_max(out_dtype)
    scaled = alpha * (out_max / in_max)
    return np.rint(np.clip(scaled, 0, out_max)).astype(out_dtype)
