"""Pixels: how an image's samples become planes to filter (gray, alpha, working dtype) and
how float results become samples again (depth, abs, offset, rescale, rounding, clipping).

Everything here is per pixel, so it applies to any band of rows as well as to a whole image.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from convcli.compute.plan import work_dtype
from convcli.errors import InputError, UsageError
from convcli.machine import has_opencv
from convcli.numeric import finite
from convcli.vocabulary import ALPHA_MODES, DEPTHS, RANGES

if TYPE_CHECKING:  # linear light only: imported where --linear is used
    from convcli.compute.transfer import Transfer

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
    #: of the planes that clipped: their results' total magnitude (sum of |r|) and the part
    #: of it clipping cut off, and how many results ``--range abs`` or ``--offset 50%``
    #: would have clipped instead (what the clipping warning may truthfully suggest)
    magnitude: float = 0.0
    lost: float = 0.0
    abs_clipped: int = 0
    offset_clipped: int = 0
    #: a plane that did not clip would with --offset 50% (not counted, to save a pass)
    offset_unknown: bool = False

    def add(self, counts: Filtered) -> None:
        """Add the counts of another band or plane."""
        self.clipped += counts.clipped
        self.total += counts.total
        self.magnitude += counts.magnitude
        self.lost += counts.lost
        self.abs_clipped += counts.abs_clipped
        self.offset_clipped += counts.offset_clipped
        self.offset_unknown |= counts.offset_unknown


def clip_counts(
    r: np.ndarray, low: float, high: float, out_max: float, options: PixelOptions
) -> Filtered:
    """:func:`clipping` of mapped results ``r`` whose extremes are ``low`` and ``high``;
    for a plane that does not clip, only whether ``--offset 50%`` would."""
    if not (np.isfinite(low) and np.isfinite(high)):
        raise InputError(overflow(options))  # else clipped to a white or black image
    if low < -0.5 or high > out_max + 0.5:
        return clipping(r, out_max, options)
    counts = Filtered(np.empty(0), None)
    counts.offset_unknown = not options.offset and high > out_max / 2.0 + 0.5
    return counts


def clipping(
    r: np.ndarray, out_max: float, options: PixelOptions, counts: np.ndarray | None = None
) -> Filtered:
    """How clipping mapped results ``r`` (in output units) to 0..out_max cuts them: the
    count, the magnitude lost, and what the alternatives would clip. Called only for
    planes that clip (the extra passes cost nothing otherwise). With ``counts``, ``r``
    holds distinct whole-number values and ``counts`` how many results take each (a
    histogram): the same counts and sums, exactly."""
    low, high = -0.5, out_max + 0.5

    def number(where: np.ndarray) -> int:
        return int(np.count_nonzero(where) if counts is None else counts[where].sum())

    def total(x: np.ndarray, where: np.ndarray | None = None) -> float:
        if counts is None:
            if where is None:
                return float(np.sum(x, dtype=np.float64))
            return float(np.sum(x, where=where, dtype=np.float64))
        weights = counts if where is None else counts[where]
        return float(np.dot((x if where is None else x[where]).astype(np.float64), weights))

    below, above = r < low, r > high
    clipped = number(below) + number(above)
    lost = total(low - r, below) + total(r - high, above)
    magnitude = total(np.abs(r))
    result = Filtered(np.empty(0), None, clipped, 0, magnitude, lost, clipped, clipped)
    if options.range == "clip":
        result.abs_clipped = number(np.abs(r) > high)
    if not options.offset:
        half = out_max / 2.0
        result.offset_clipped = number((r < low - half) | (r > high - half))
    return result


def integer_histogram(sums: np.ndarray, reach: int, shift: int = 0) -> np.ndarray:
    """How many of the 16-bit integers ``sums`` take each value -reach..reach once ``shift``
    (0, or ``reach`` itself) is taken off them (OpenCV's histogram, exact below 2**24 counts
    a call)."""
    import cv2

    # as unsigned 16-bit integers, without a pass: shifted sums are 0..2 x reach as they
    # are; unshifted, -x reads as 65536 - x and every 16-bit value needs its bin
    flat = sums.reshape(sums.shape[0], -1).view(np.uint16)
    bins = 2 * reach + 1 if shift else 2**16
    total = np.zeros(bins, np.int64)
    step = max(1, _HISTOGRAM_COUNTS // flat.shape[1])
    for r in range(0, flat.shape[0], step):
        part = flat[r : r + step]
        total += cv2.calcHist([part], [0], None, [bins], [0, bins]).ravel().astype(np.int64)
    if shift:
        return total
    return np.concatenate([total[2**16 - reach :], total[: reach + 1]])


def _saturated(
    sums: np.ndarray, absolute: bool, offset: int, into: np.ndarray | None = None, shift: int = 0
) -> np.ndarray:
    """16-bit integers less ``shift`` (|sums - shift| + |offset| <= 32767: nothing wraps
    around), their magnitudes with ``absolute``, plus ``offset``, clipped to 0..255 as 8-bit
    samples: in one OpenCV pass where it saturates exactly so (on one channel: a scalar adds
    to every sample; the shift is taken in the same pass). ``into``: a contiguous 8-bit
    array of the same shape that OpenCV writes them into."""
    import cv2

    flat = sums.reshape(sums.shape[0], -1)
    dst = None if into is None else into.reshape(flat.shape)
    if not absolute:
        out = cv2.add(flat, offset - shift, dst=dst, dtype=cv2.CV_8U)
    elif offset >= 0:  # min(255, |x|) + offset saturates as |x| + offset does
        out = cv2.convertScaleAbs(flat, dst=dst, alpha=1, beta=-shift)
        if offset:
            out = cv2.add(out, offset, dst=out)
    else:
        exact = sums.astype(np.int32) - shift if shift else sums
        out = np.clip(np.abs(exact) + offset, 0, 255).astype(np.uint8)
    return out.reshape(sums.shape)


#: OpenCV's histograms count in float32: whole numbers up to 2**24 (rows per call below it)
_HISTOGRAM_COUNTS = 2**24


def luminance(colour: np.ndarray) -> np.ndarray:
    """Gray from RGB with Pillow's weights, in float (no rounding before filtering)."""
    if colour.ndim == 2:
        return colour
    return colour.astype(np.float64) @ LUMA


@dataclass(frozen=True)
class Layout:
    """How samples become planes to filter, and results become samples again.

    Everything here is per pixel, so it applies to any band of rows as well as to the whole
    image. Planes are (N, rows, W): the colour channels (one for gray), then alpha when it is
    filtered (``filter``) or used to premultiply (``premultiplied``). Arrays of numbers use a
    layout without alpha or gray, whose channels are just planes.
    """

    options: PixelOptions
    in_dtype: np.dtype
    channels: int  # of the input: images 1 gray, 2 gray + alpha, 3 RGB, 4 RGBA
    compute: np.dtype  # the convolution's dtype
    in_max: float  # the input value of full intensity
    out_dtype: np.dtype
    image: bool = True  # False: numbers, no alpha or gray
    #: --linear: colours are decoded to linear light before filtering and re-encoded after
    #: (see :mod:`convcli.compute.transfer`); None filters the samples as they are
    transfer: Transfer | None = None

    @classmethod
    def of(
        cls,
        dtype: np.dtype,
        shape: tuple[int, ...],
        options: PixelOptions,
        compute: Any = None,
        transfer: Transfer | None = None,
    ) -> Layout:
        """The layout of an image (filtered in linear light by ``transfer`` when given)."""
        dtype = np.dtype(dtype)
        channels = shape[2] if len(shape) == 3 else 1
        if channels not in (1, 2, 3, 4):
            raise UsageError(f"an image has 1 to 4 channels, this one has {channels}")
        return cls(
            options,
            dtype,
            channels,
            np.dtype(compute) if compute is not None else work_dtype(dtype),
            sample_max(dtype),
            output_dtype(dtype, options.depth),
            transfer=transfer,
        )

    @classmethod
    def of_numbers(
        cls,
        dtype: np.dtype,
        shape: tuple[int, ...],
        options: PixelOptions,
        out_dtype: np.dtype,
        compute: Any = None,
    ) -> Layout:
        """The layout of an array of numbers written as ``out_dtype``: values are taken as
        they are (integer outputs: as levels of that type)."""
        dtype, out_dtype = np.dtype(dtype), np.dtype(out_dtype)
        full = sample_max(out_dtype) if out_dtype.kind in "ui" else 1.0
        plain = replace(options, gray=False, alpha="keep")
        return cls(
            plain,
            dtype,
            shape[2] if len(shape) == 3 else 1,
            np.dtype(compute) if compute is not None else work_dtype(dtype),
            full,
            out_dtype,
            image=False,
        )

    @property
    def has_alpha(self) -> bool:
        return self.image and self.channels in (2, 4)

    @property
    def gray(self) -> bool:
        if not self.image:
            return self.channels == 1
        return self.channels <= 2 or self.options.gray

    @property
    def colour_planes(self) -> int:
        if not self.image:
            return self.channels
        return 1 if self.gray else 3

    @property
    def alpha_filtered(self) -> bool:
        return self.has_alpha and self.options.alpha != "keep"

    @property
    def out_channels(self) -> int:
        return self.colour_planes + (1 if self.has_alpha else 0)

    def planes(self, rows: np.ndarray) -> np.ndarray:
        """The planes to filter, from image rows (rows, W[, C])."""
        channels = _split(rows)
        alpha = channels.pop() if self.has_alpha else None
        if self.transfer is not None:
            channels = [
                self.transfer.decode(c, i, self.in_max, self.compute)
                for i, c in enumerate(channels)
            ]
        if self.options.gray and len(channels) == 3:
            channels = [luminance(np.stack(channels, axis=-1))]
        planes = np.empty((len(channels) + self.alpha_filtered, *rows.shape[:2]), self.compute)
        for plane, channel in zip(planes, channels, strict=False):
            plane[...] = channel
        if alpha is not None and self.options.alpha == "premultiplied":
            weight = (alpha / self.in_max).astype(self.compute)
            planes[: len(channels)] *= weight
            planes[-1] = weight
        elif alpha is not None and self.alpha_filtered:
            planes[-1] = alpha
        return planes

    def alpha_plane(self, rows: np.ndarray) -> np.ndarray:
        """Alpha as one plane, for carrying it through untouched (``keep``)."""
        return rows[np.newaxis, :, :, -1].astype(self.compute)

    def samples(
        self,
        result: np.ndarray,
        kept_alpha: np.ndarray | None,
        stats: Filtered | None = None,
        span: tuple[float, float] | None = None,
    ) -> np.ndarray:
        """Output samples (rows, W[, C]) from filtered planes (N, rows, W) of one stack member
        and, for ``keep``, the aligned alpha plane. Plane by plane: every step is a
        contiguous pass (OpenCV's, where installed, for the rounding to integers)."""
        colour = list(result[: self.colour_planes])
        alpha = None
        if self.alpha_filtered:
            alpha = result[self.colour_planes]
            if self.options.alpha == "premultiplied":
                covered = alpha > 1e-12
                safe = np.where(covered, alpha, 1.0)
                colour = [np.where(covered, c / safe, 0.0) for c in colour]
                alpha = alpha * self.in_max
        elif kept_alpha is not None:
            alpha = kept_alpha[0]
        if self.transfer is not None:
            colour = [self.transfer.encode(c, i, self.in_max) for i, c in enumerate(colour)]
        planes = []
        for plane in colour:
            counts = Filtered(np.empty(0), None)
            samples, _, total = plane_samples(
                plane, self.in_max, self.out_dtype, self.options, span, counts
            )
            planes.append(samples)
            if stats is not None:
                counts.total = total
                stats.add(counts)
        if alpha is not None:
            planes.append(_alpha_samples(alpha, self.in_max, self.out_dtype))
        return _merge(planes)

    def interleaved_samples(
        self, values: np.ndarray, stats: Filtered, span: tuple[float, float] | None = None
    ) -> np.ndarray:
        """Output samples from float results laid out like the samples (rows, W[, C]) of an
        image whose planes are its channels (no gray, no alpha): the rules of
        :meth:`samples`, element by element, in one pass over all channels."""
        flat = values.reshape(values.shape[0], -1)
        samples, clipped, total = plane_samples(
            flat, self.in_max, self.out_dtype, self.options, span
        )
        stats.clipped += clipped
        stats.total += total
        return samples.reshape(values.shape)

    def interleaved_span(self, values: np.ndarray) -> tuple[float, float]:
        """:meth:`span` of results laid out like the samples (see
        :meth:`interleaved_samples`)."""
        mapped = _mapped(values, self.in_max, self.out_dtype, self.options)
        return float(mapped.min()), float(mapped.max())

    def integer_samples(
        self,
        sums: np.ndarray,
        reach: int,
        stats: Filtered,
        span: tuple[float, float] | None,
        into: np.ndarray | None = None,
        shift: int = 0,
    ) -> np.ndarray | None:
        """8-bit samples straight from exact 16-bit integer results (at most ``reach`` in
        magnitude once ``shift`` is taken off: 0, or ``reach``) laid out like the samples,
        where the mapping keeps them whole numbers: 8-bit in and out, clip or abs, an offset
        of whole levels. Rounding whole numbers changes nothing, so this is
        :meth:`interleaved_samples` of the same values, bit for bit, without converting to
        float; what clipping cuts is counted exactly from a histogram of the integers. None
        where the mapping needs the general rules. ``into``: where to write them (a
        contiguous array of their shape)."""
        o = self.options
        if not (
            sums.dtype == np.int16
            and self.in_max == 255
            and self.out_dtype == np.uint8
            and o.range in ("clip", "abs")
            and o.quantize == "nearest"
            and sums.size > CV_SCALAR_SIZE
        ):
            return None
        offset = o.offset / 100.0 * 255 if o.offset_percent else o.offset
        if offset != round(offset) or reach + abs(offset) > 32767:
            return None
        offset = int(offset)
        counts = integer_histogram(sums, reach, shift)
        values = np.arange(-reach, reach + 1)
        if o.range == "abs":
            values = np.abs(values)
        values += offset
        present = values[counts > 0]  # not empty: sums holds more than a few results
        stats.total += sums.size
        if present.min() < 0 or present.max() > 255:
            stats.add(clipping(values, 255, o, counts))
        elif not o.offset and present.max() > 255 / 2.0 + 0.5:
            stats.offset_unknown = True  # as clip_counts says of a plane that does not clip
        return _saturated(sums, o.range == "abs", offset, into, shift)

    def rounded_samples(
        self,
        values: np.ndarray,
        bounds: tuple[float, float],
        stats: Filtered,
        into: np.ndarray | None = None,
    ) -> np.ndarray | None:
        """8-bit samples from float results laid out like the samples, where ``bounds``
        (what the results can reach, rounding included) prove that nothing clips: the
        rounding to nearest alone, in one saturating OpenCV pass. :meth:`interleaved_samples`
        of the same values, bit for bit; None where the mapping needs more. ``into``: where
        to write them (a contiguous array of their shape)."""
        if not (
            values.dtype == np.float32
            and values.size > CV_SCALAR_SIZE
            and self.rounds_alone(bounds, signed=True)
        ):
            return None
        import cv2

        self.count_rounded(values.size, bounds, stats)
        # |x| rounded to nearest (ties to even) and saturated: for x >= -0.5 the rounding
        flat = values.reshape(values.shape[0], -1)
        dst = None if into is None else into.reshape(flat.shape)
        return cv2.convertScaleAbs(flat, dst=dst).reshape(values.shape)

    def rounds_alone(self, bounds: tuple[float, float], signed: bool) -> bool:
        """Whether float results within ``bounds`` (rounding included) become 8-bit samples
        by rounding to nearest alone: nothing they can reach clips. ``signed``: the rounding
        also takes their magnitude (what ``--range abs`` asks for); unsigned, it does not, so
        no result may be below -0.5."""
        o = self.options
        if not (
            self.out_dtype == np.uint8
            and self.in_max == 255
            and o.range in ("clip", "abs")
            and not o.offset
            and o.quantize == "nearest"
        ):
            return False
        low, high = bounds
        if o.range == "abs" and signed:
            low, high = 0.0, max(abs(low), abs(high))
        return low >= -0.5 and high <= 255.5

    def count_rounded(self, size: int, bounds: tuple[float, float], stats: Filtered) -> None:
        """What :meth:`interleaved_samples` counts of ``size`` results that nothing clips."""
        stats.total += size
        # a plane that does not clip: whether --offset 50% would is not measured
        stats.offset_unknown |= max(abs(b) for b in bounds) > 255 / 2.0 + 0.5

    def mapping(self) -> str:
        """How float results become output samples, in words (for --explain): the very
        rules :meth:`samples` applies."""
        o, out = self.options, self.out_dtype
        parts = []
        if self.has_alpha:
            parts.append(f"alpha {o.alpha}")
        integer = out.kind in "ui"
        top = sample_max(out) if integer else 1.0
        if integer and top != self.in_max:
            parts.append(f"scaled x{top / self.in_max:g}")
        if o.range == "abs":
            parts.append("absolute value")
        if o.offset:
            full = top if integer else self.in_max
            parts.append(
                f"plus {o.offset:g}% of {full:g}" if o.offset_percent else f"plus {o.offset:g}"
            )
        if o.range == "rescale":
            parts.append(f"min..max stretched to 0..{top:g}")
        if not integer:
            if o.range != "rescale":
                parts.append("raw float results" + (" in the input's units" if self.image else ""))
            return ", ".join(parts)
        if o.range != "rescale":
            if o.quantize == "imagemagick" and top == 255:
                parts.append("rounded to 16 bits then truncated to 8 (ImageMagick Q16)")
            elif o.quantize == "half-up":
                parts.append("rounded half up")
            else:
                parts.append("rounded to nearest (ties to even)")
            parts.append(f"clipped to 0..{top:g}")
        return ", ".join(parts)

    def span(self, result: np.ndarray) -> tuple[float, float]:
        """min and max of the mapped colour values of a band (for ``--range rescale``)."""
        colour = result[: self.colour_planes]
        if self.options.alpha == "premultiplied" and self.alpha_filtered:
            alpha = result[self.colour_planes]
            colour = np.where(alpha > 1e-12, colour / np.where(alpha > 1e-12, alpha, 1.0), 0.0)
        if self.transfer is not None:
            colour = np.stack(
                [self.transfer.encode(c, i, self.in_max) for i, c in enumerate(colour)]
            )
        values = _mapped(colour, self.in_max, self.out_dtype, self.options)
        return float(values.min()), float(values.max())


def _split(rows: np.ndarray) -> list[np.ndarray]:
    """The channels of (rows, W[, C]) samples as contiguous planes (OpenCV's split is one
    vectorised pass; numpy's strided copies are many times slower)."""
    if rows.ndim == 2:
        return [rows]
    if has_opencv() and rows.shape[2] <= 4 and rows.dtype in _CV_DEPTHS:
        import cv2

        return list(cv2.split(np.ascontiguousarray(rows)))
    return [np.ascontiguousarray(rows[:, :, c]) for c in range(rows.shape[2])]


def _merge(planes: list[np.ndarray]) -> np.ndarray:
    """Planes back to (rows, W[, C]) samples."""
    if len(planes) == 1:
        return planes[0]
    if has_opencv() and len(planes) <= 4 and planes[0].dtype in _CV_DEPTHS:
        import cv2

        return cv2.merge([np.ascontiguousarray(p) for p in planes])
    return np.stack(planes, axis=-1)


#: OpenCV's Python binding reads an array of up to 4 numbers as a Scalar (a 1x1 image plus 0
#: gave 4 samples): planes this small take numpy's path
CV_SCALAR_SIZE = 4

#: sample types OpenCV's split, merge and saturating conversions take
_CV_DEPTHS = {np.dtype(t) for t in (np.uint8, np.uint16, np.int32, np.float32, np.float64)}


def plane_samples(
    plane: np.ndarray,
    in_max: float,
    out_dtype: np.dtype,
    options: PixelOptions,
    span: tuple[float, float] | None = None,
    counts: Filtered | None = None,
) -> tuple[np.ndarray, int, int]:
    """:func:`to_samples` of one plane, the same numbers; 8- and 16-bit results rounded and
    saturated by OpenCV in one pass when it is installed (its rounding is numpy's: to
    nearest, ties to even). ``counts`` gets the :func:`clipping` of a plane that clips."""
    fast = (
        out_dtype in (np.uint8, np.uint16)
        and options.quantize == "nearest"
        and options.range != "rescale"
        and plane.size > CV_SCALAR_SIZE
        and has_opencv()
    )
    if not fast:
        return to_samples(plane, in_max, out_dtype, options, span, counts)
    import cv2

    out_max = sample_max(out_dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        r = _mapped(plane, in_max, out_dtype, options)
        low, high = cv2.minMaxLoc(np.ascontiguousarray(r))[:2]
        cut = clip_counts(r, low, high, out_max, options)
        if counts is not None:
            counts.add(cut)
        clipped = cut.clipped
        depth = cv2.CV_8U if out_dtype == np.uint8 else cv2.CV_16U
        # adding 0 with an integer dtype is OpenCV's saturating, rounding conversion
        rounded = cv2.add(np.ascontiguousarray(r), 0.0, dtype=depth)
        return rounded, clipped, r.size


#: why a result cannot be written
OVERFLOW = (
    "the result overflows to infinity (the input's values times the kernel exceed the "
    "float range); scale the kernel down"
)


def overflow(options: PixelOptions) -> str:
    """Why a result overflowed, naming --offset when it is what went beyond the range."""
    if options.offset and not options.offset_percent and abs(options.offset) > 1e30:
        return f"--offset {options.offset:g} takes the result beyond the float range"
    return OVERFLOW


def _mapped(
    result: np.ndarray, in_max: float, out_dtype: np.dtype, options: PixelOptions
) -> np.ndarray:
    """Results in output units: depth scaling, abs and offset (before rescale or clipping)."""
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
    return r


def to_samples(
    result: np.ndarray,
    in_max: float,
    out_dtype: np.dtype,
    options: PixelOptions,
    span: tuple[float, float] | None = None,
    counts: Filtered | None = None,
) -> tuple[np.ndarray, int, int]:
    """Map float results to output samples: depth scaling, abs, offset, rescale or clip.

    Float output keeps the input's units (the raw convolution); integer output is rounded
    to nearest and clipped to the type's range. ``span`` is the (min, max) that ``rescale``
    stretches (the result's own when not given). Returns (samples, clipped count, total).
    """
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported, not warned
        return _to_samples(result, in_max, out_dtype, options, span, counts)


def _to_samples(
    result: np.ndarray,
    in_max: float,
    out_dtype: np.dtype,
    options: PixelOptions,
    span: tuple[float, float] | None,
    counts: Filtered | None,
) -> tuple[np.ndarray, int, int]:
    integer = out_dtype.kind in "ui"
    out_max = sample_max(out_dtype) if integer else in_max
    r = _mapped(result, in_max, out_dtype, options)
    if options.range == "rescale":
        low, high = span if span is not None else (float(r.min()), float(r.max()))
        if not (np.isfinite(low) and np.isfinite(high)):
            raise InputError(overflow(options))
        top = out_max if integer else 1.0
        r = (r - low) * (top / (high - low)) if high > low else np.zeros_like(r)
    if not integer:
        out = r.astype(out_dtype)
        if not finite(out):
            raise InputError(overflow(options))
        return out, 0, r.size
    low, high = (float(r.min()), float(r.max())) if r.size else (0.0, 0.0)
    cut = clip_counts(r, low, high, out_max, options)
    if counts is not None:
        counts.add(cut)
    clipped = cut.clipped
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
