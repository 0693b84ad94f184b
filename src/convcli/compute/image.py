"""Filtering an image (or an array of numbers) band by band: the plan for one input, made
once, that ``--explain`` prints and the run executes.

``convolve`` filters numbers. An image also has an alpha channel that must not be blurred
into the colours, samples of a fixed bit depth that results must be mapped back into, and
signed results (edges) that need a policy (see :mod:`convcli.compute.pixels`).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from convcli.compute.backends import get_backend
from convcli.compute.engine import Options, as_operation, check_finite_input
from convcli.compute.evaluate import (
    StepInfo,
    StripEngine,
    evaluate_band,
    ordered_map,
    read_rows,
    strip_height,
    thread_count,
)
from convcli.compute.evaluate import bands as stream_bands
from convcli.compute.exact import ExactFilter, exact_filter
from convcli.compute.pixels import Filtered, Layout, PixelOptions
from convcli.io.rows import ArrayRows, RowReader
from convcli.kernels.model import AnyKernel, Kernel

if TYPE_CHECKING:  # linear light only: imported where --linear is used
    from convcli.compute.transfer import Transfer

#: working memory of one band of rows (input window, blocks, results): large enough that the
#: per-band overhead vanishes, small enough to stay in the caches' neighbourhood
BAND_BYTES = 48 * 1024 * 1024
#: how many of the plan's bands one thread computes at once when it collects a whole result
SINGLE_THREAD_BANDS = 4


@dataclass(frozen=True)
class StepFacts:
    """One kernel as it runs, in plain values."""

    kernel: str
    size: str
    sum: float
    rank: int
    matrix: tuple[tuple[float, ...], ...]  # after normalisation
    method: str
    reason: str
    centre: tuple[int, int]
    pads: tuple[tuple[int, int], tuple[int, int]]
    in_shape: tuple[int, int]
    out_shape: tuple[int, int]
    member_of: str = ""


@dataclass(frozen=True)
class ComputePlan:
    """Everything decided about filtering one input before anything is computed: the
    kernels and how each runs, the backend and working dtype, the boundary, the output and
    how results become its samples, and the bands. :func:`plan_image` makes it once;
    ``--explain`` prints it and the run executes it."""

    backend: str
    work_dtype: str
    mode: str
    boundary: str
    fill_value: float
    correlate: bool  # the kernels as given (else flipped: convolution)
    keep_edges: bool  # the pixels a kernel does not fit over are copied (Pillow's way)
    steps: tuple[StepFacts, ...]
    in_shape: tuple[int, ...]
    in_dtype: str
    out_shape: tuple[int, ...]
    out_dtype: str
    mapping: str
    band_rows: int
    linear: str = ""  # --linear: the transfer step, in words ("" when filtered as encoded)


def _facts(info: StepInfo) -> StepFacts:
    k, plan = info.kernel, info.plan
    return StepFacts(
        k.name,
        k.size_text,
        float(k.sum),
        k.rank,
        _weights(k),
        plan.method,
        info.reason,
        plan.centre,
        plan.pads,
        info.in_shape,
        info.out_shape,
        info.member_of,
    )


@functools.lru_cache(maxsize=64)
def _weights(kernel: Kernel) -> tuple[tuple[float, ...], ...]:
    """A kernel's matrix as plain numbers, made once per kernel (the same for every image of
    a batch: a 17x17 Gaussian's 289 values took a tenth of a millisecond an image)."""
    return tuple(tuple(float(v) for v in row) for row in kernel.as_2d())


@dataclass
class BandJob:
    """One image's filtering, band by band: the engines, the layout and the output shape."""

    layout: Layout
    colour: StripEngine
    alpha: StripEngine | None
    reader: RowReader
    band_rows: int
    #: the same numbers in integer arithmetic on the interleaved samples, where that applies
    exact: ExactFilter | None = None

    @property
    def stacked(self) -> int | None:
        return self.colour.stacked

    @property
    def plan(self) -> ComputePlan:
        """What this job computes (it is derived from the engines that compute it)."""
        opts = self.colour.options
        return ComputePlan(
            backend=self.colour.backend.name,
            work_dtype=str(self.layout.compute),
            mode=opts.mode.value,
            boundary=opts.boundary.value,
            fill_value=opts.fill_value,
            correlate=opts.correlate,
            keep_edges=opts.keep_edges,
            steps=tuple(_facts(s) for s in self.colour.steps()),
            in_shape=tuple(self.reader.shape),
            in_dtype=str(self.reader.dtype),
            out_shape=self.out_shape,
            out_dtype=str(self.layout.out_dtype),
            mapping=self.layout.mapping(),
            band_rows=self.band_rows,
            linear=self.layout.transfer.describe() if self.layout.transfer else "",
        )

    @property
    def out_shape(self) -> tuple[int, ...]:
        h, w = self.colour.out_shape
        c = self.layout.out_channels
        shape = (h, w) if c == 1 else (h, w, c)
        return (self.stacked, *shape) if self.stacked else shape

    def bands(
        self,
        stats: Filtered | None = None,
        rows: tuple[int, int] | None = None,
        span: tuple[float, float] | None = None,
        band_rows: int | None = None,
        into: np.ndarray | None = None,
    ) -> Iterator[tuple[int, int, np.ndarray]]:
        """``(r0, r1, samples)`` for every band of output rows in order (only those within
        ``rows`` when given); samples carry the stack axis first when a bank stacked.
        ``--range rescale`` takes the whole result's ``span``, measured first if not given.
        Bands are computed on several threads (the libraries release the GIL) and come back
        in order. ``band_rows`` overrides the plan's rows per band (the numbers do not
        depend on the cut). ``into``: the whole result's array, which the interleaved
        route writes its bands' samples straight into (the samples yielded are its rows)."""
        if self.layout.options.range == "rescale" and span is None:
            span = self.span(rows)

        def work(band: tuple[int, int]) -> tuple[int, int, np.ndarray, Filtered]:
            r0, r1 = band
            counts = Filtered(np.empty(0), None)
            if self.exact is not None:
                dst = None if into is None else into[r0:r1]
                samples = self.exact.samples(self.reader, self.layout, r0, r1, counts, span, dst)
                return r0, r1, samples, counts
            result, alpha = self._band(r0, r1)
            out = [self.layout.samples(m, alpha, counts, span) for m in self._members(result)]
            return r0, r1, (np.stack(out) if self.stacked else out[0]), counts

        for r0, r1, samples, counts in ordered_map(work, self._ranges(rows, band_rows)):
            if stats is not None:
                stats.add(counts)
            yield r0, r1, samples

    def collect(self, stats: Filtered | None = None) -> np.ndarray:
        """The whole result in one array (bands written into it as they come)."""
        out: np.ndarray | None = None
        # On one thread, bands buy no parallelism, and each one pays its halo rows and, at
        # the image's edges, a gathered copy of its rows: bands of up to 4x the plan's rows
        # (a 2 MP photo in one piece) save a sixth of the time of a batch worker's image.
        merged = SINGLE_THREAD_BANDS * self.band_rows if thread_count() == 1 else None
        if self.exact is not None and self.exact.one_pass and isinstance(self.reader, ArrayRows):
            # samples in, samples out, nothing between: one OpenCV call on the image, which
            # OpenCV threads itself, written straight into the result
            merged = self.reader.shape[0]
        elif self.exact is not None and not self.stacked:
            # the mapping passes write every band's samples into the result itself: no
            # copy of the whole result (on one thread, a 12 MP photo's gaussian:size=5
            # 52 -> 46 ms, sobel-x 68 -> 65 ms)
            out = np.empty(self.out_shape, dtype=self.layout.out_dtype)
            for _ in self.bands(stats, band_rows=merged, into=out):
                pass
            return out
        for r0, r1, samples in self.bands(stats, band_rows=merged):
            if out is None:
                whole = samples.shape == self.out_shape and samples.flags.c_contiguous
                if whole and samples.dtype == self.layout.out_dtype:
                    return samples  # the whole result in one band, in its own array: no copy
                out = np.empty(self.out_shape, dtype=self.layout.out_dtype)
            if self.stacked:
                out[:, r0:r1] = samples
            else:
                out[r0:r1] = samples
        return np.empty(self.out_shape, dtype=self.layout.out_dtype) if out is None else out

    def span(self, rows: tuple[int, int] | None = None) -> tuple[float, float]:
        """min and max of the mapped results (within ``rows``): what rescale stretches."""

        def work(band: tuple[int, int]) -> tuple[float, float]:
            if self.exact is not None:
                return self.exact.span(self.reader, self.layout, *band)
            spans = [self.layout.span(m) for m in self._members(self._band(*band)[0])]
            return min(s[0] for s in spans), max(s[1] for s in spans)

        found = list(ordered_map(work, self._ranges(rows)))
        return min(s[0] for s in found), max(s[1] for s in found)

    def _ranges(
        self, rows: tuple[int, int] | None, band_rows: int | None = None
    ) -> list[tuple[int, int]]:
        height = self.colour.out_shape[0]
        return list(stream_bands(height, band_rows or self.band_rows, rows))

    def _members(self, result: np.ndarray) -> np.ndarray:
        if self.stacked:
            return result.reshape(self.stacked, -1, *result.shape[1:])
        return result[np.newaxis]

    def _band(self, r0: int, r1: int) -> tuple[np.ndarray, np.ndarray | None]:
        """The filtered planes of output rows r0:r1 (and the aligned alpha, for keep)."""
        layout, reader = self.layout, self.reader
        result = evaluate_band(
            self.colour, lambda wanted: layout.planes(read_rows(reader, wanted)), r0, r1
        )
        if self.alpha is None:
            return result, None
        alpha = evaluate_band(
            self.alpha, lambda wanted: layout.alpha_plane(read_rows(reader, wanted)), r0, r1
        )
        return result, alpha


def plan_image(
    reader: RowReader,
    operation: AnyKernel,
    pixels: PixelOptions = PixelOptions(),
    *,
    options: Options = Options(),
    backend: str = "auto",
    device: str = "auto",
    band_bytes: int = BAND_BYTES,
    layout: Layout | None = None,
    dtype: Any = None,
    transfer: Transfer | None = None,
) -> BandJob:
    """Prepare filtering an image (or a 2-D/3-D array, given its ``layout``) read band by
    band: ``reader`` gives its rows. ``dtype`` is the working dtype (by default float32 for
    8-bit and float32 samples, float64 otherwise); ``transfer`` filters an image's colours
    in linear light (``--linear``)."""
    opts, compute = options, dtype
    if layout is None:
        layout = Layout.of(reader.dtype, reader.shape, pixels, compute, transfer)
    chosen = get_backend(backend, boundary=opts.boundary, fill=opts.fill_value, device=device)
    shape = (reader.shape[0], reader.shape[1])
    colour = StripEngine(operation, opts, chosen, shape, dtype=layout.compute)
    alpha = None
    if layout.has_alpha and not layout.alpha_filtered:
        alpha = StripEngine(operation, opts, chosen, shape, align=True, dtype=layout.compute)
    planes = layout.colour_planes + (1 if layout.has_alpha else 0)
    rows = strip_height(
        shape[1],
        planes,
        layout.compute.itemsize,
        colour.halo,
        band_bytes,
        planes * (colour.stacked or 1),
    )
    # a band much thinner than the kernel's reach would recompute its halo over and over
    rows = max(rows, min(shape[0], 2 * colour.halo + 16))
    exact = exact_filter(colour, layout, chosen, tuple(reader.shape)) if alpha is None else None
    return BandJob(layout, colour, alpha, reader, rows, exact)


def filter_image(
    pixels: np.ndarray,
    kernel: Any,
    options: PixelOptions = PixelOptions(),
    *,
    band_bytes: int = BAND_BYTES,
    **conv: Any,
) -> Filtered:
    """Filter an image's colour channels and map the results back to samples.

    ``conv`` takes :func:`convolve`'s keyword arguments (mode, boundary, backend, ...), and
    ``transfer`` (a :class:`convcli.compute.transfer.Transfer`, such as ``SRGB``) filters the
    colours in linear light.
    Alpha is carried through untouched (``keep``), filtered like a colour (``filter``), or
    used to premultiply the colours before filtering and divided out after
    (``premultiplied``, which leaves no dark fringes around transparent areas). The work is
    done in bands of rows (``band_bytes`` of working memory each) with the same numbers as
    filtering the whole image at once.
    """
    conv = dict(conv)
    transfer = conv.pop("transfer", None)
    operation = as_operation(kernel, conv.pop("combine", None))
    backend, device = conv.pop("backend", "auto"), conv.pop("device", "auto")
    dtype = conv.pop("dtype", None)
    pixels = np.asarray(pixels)
    check_finite_input(pixels)
    job = plan_image(
        ArrayRows(pixels),
        operation,
        options,
        options=Options.make(**conv),
        backend=backend,
        device=device,
        band_bytes=band_bytes,
        dtype=dtype,
        transfer=transfer,
    )
    stats = Filtered(np.empty(0), job.stacked)
    stats.pixels = job.collect(stats)
    return stats
