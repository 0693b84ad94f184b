"""8- and 16-bit images filtered on their interleaved samples: exactly the general path's
numbers, without splitting the image into planes and merging them again.

The general path splits an image into planes, converts them to the working float type,
filters each plane and merges the mapped planes again. Two routes give its samples bit for
bit from the interleaved samples, in cache-sized blocks of rows:

- **integer**: when the kernel's weights are whole numbers (sobel, laplacian, prewitt, ...)
  and every sum fits the float type's mantissa, the float result is exact: it is the integer
  sum, which does not depend on the order of the additions, so OpenCV may compute it however
  it likes (from the 8-bit samples, in 16-bit integers). The clipping counts come from a
  histogram of those integers.
- **float**: any other kernel the general path runs through OpenCV's spatial filters
  (``filter2D`` below its DFT size, ``sepFilter2D``): the block is converted to the working
  float type (or read as 8-bit samples, OpenCV converting them) and filtered by the very
  calls the general path makes on each plane. Where a probe shows OpenCV computing each
  sample of the interleaved image with the operations, in the order, of the per-plane call
  (most kernels; the backend gives every sample the same vectorised arithmetic at any
  width), the results are the general path's; where the kernel's bounds prove nothing
  clips and the probe shows OpenCV's rounding to be the general path's, the filter writes
  the 8-bit samples itself (tests/test_exact.py checks every library kernel).

A kernel large enough for OpenCV's DFT, chains and banks, and everything the general path
does not compute with OpenCV stay on the general path.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from convcli.compute.backends import Backend
from convcli.compute.backends.base import Plan
from convcli.compute.boundary import OPENCV, Boundary, Mode, source_index
from convcli.compute.evaluate import OPENCV_DFT_TAPS, StripEngine, read_rows
from convcli.compute.pixels import CV_SCALAR_SIZE, Filtered, Layout
from convcli.io.rows import RowReader
from convcli.kernels.model import Kernel

if TYPE_CHECKING:  # OpenCV is imported only where the backend is used
    from convcli.compute.backends.opencv_backend import Filter

_INT16_MAX = 32767

#: bytes of samples and results per OpenCV call: blocks several times a large kernel's
#: height, whose halo rows are recomputed per call, and few calls an image (measured on the
#: 12 MP photo, sobel-x on one thread: 1 MB a call 113 ms, 4 MB 82 ms, 8 MB 77 ms, 16 MB
#: 77 ms; a 17x17 Gaussian: 8 MB 2x faster than 1 MB)
CACHE_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class ExactFilter:
    """One kernel on an image's interleaved samples, with the general path's numbers: as
    exact integer sums (``depth`` an OpenCV type) or by the general path's own float calls
    (``float_filter``)."""

    weights: np.ndarray  # correlation weights (whole numbers, as float32, for the integer route)
    #: whole-number (row, column) factors of rank-1 weights: two passes, OpenCV's fastest
    #: 8-bit route (its 16-bit integer buffer between them holds every partial sum)
    factors: tuple[np.ndarray, np.ndarray] | None
    anchor: tuple[int, int]  # (x, y): the weight on the output pixel
    top: int  # rows the extension adds above the image
    kh: int
    height: int
    boundary: Boundary
    border: int  # OpenCV's border for the columns
    depth: int  # OpenCV's type of the sums: CV_16S, CV_32F or CV_64F
    offset: float  # the kernel's offset, added in the working dtype as the general path does
    reach: int  # the largest magnitude a sum can have (sum of |weights| x full intensity)
    sub_rows: int  # output rows per OpenCV call
    #: the float route: the OpenCV call the general path makes on each plane, and the
    #: working dtype the samples are converted to first (None: the integer route)
    float_filter: Filter | None = None
    compute: np.dtype | None = None
    #: the float route reads the samples as they are (OpenCV converts them in its first
    #: pass) where that gives its float results for converted samples bit for bit
    samples_in: bool = False
    #: what the float results can reach, rounding included (no clipping within 0..max)
    bounds: tuple[float, float] = (-np.inf, np.inf)
    #: the float route's filter writes the 8-bit samples itself (rounding its float results
    #: to nearest): where nothing can clip and a probe shows its rounding is the general path's
    rounds: bool = False

    @property
    def one_pass(self) -> bool:
        """Whether OpenCV's filter reads the input samples and writes the output samples,
        with nothing between (no conversion, no mapping pass)."""
        return self.rounds and self.samples_in

    def sums(self, reader: RowReader, r0: int, r1: int) -> np.ndarray:
        """The results of output rows r0:r1 before the offset, interleaved like the samples."""
        parts = list(self._pieces(reader, r0, r1))
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)

    def _window(self, reader: RowReader, r0: int, r1: int) -> tuple[np.ndarray, int]:
        """The input rows that outputs r0:r1 read, read once, and the image row of its
        first. Where OpenCV's border is the boundary for the rows too (the kernel no taller
        than the image), the window is the image's own rows (a view), clipped to the image:
        OpenCV extends it at the image's ends as the boundary does. Else the rows outside
        are gathered into a copy, extended by the boundary."""
        first, last = r0 - self.top, r1 - self.top + self.kh - 1
        if self.kh <= self.height:
            first, last = max(first, 0), min(last, self.height)
            window = reader.read(first, last)
            return (window if window.flags.c_contiguous else np.ascontiguousarray(window)), first
        sources = source_index(np.arange(first, last), self.height, self.boundary)
        inside = sources >= 0
        lo = int(sources[inside].min())
        wanted = np.unique(sources[inside])
        rows = read_rows(reader, wanted)
        window = rows[np.searchsorted(wanted, np.where(inside, sources, lo))]
        window[~inside] = 0  # fill rows (only a zero fill comes here)
        return window, first

    def _pieces(
        self, reader: RowReader, r0: int, r1: int, rounded: bool = False, shift: int = 0
    ) -> Iterator[np.ndarray]:
        """The results of every run of ``sub_rows`` outputs, in order; with ``rounded``, the
        float route's results as 8-bit samples; the integer route's sums plus ``shift``
        (which OpenCV adds exactly, as its ``delta``)."""
        import cv2

        window, first = self._window(reader, r0, r1)
        end = first + len(window)
        for a in range(r0, r1, self.sub_rows):
            b = min(a + self.sub_rows, r1)
            # the rows outputs a:b read, within the window; OpenCV's anchor puts output a on
            # row ``at`` of the filtered block (the kernel's centre row, less the rows the
            # block lacks above it at the image's top edge), and its border extends the
            # block's columns (and its rows at the image's ends)
            p0, p1 = max(a - self.top, first), min(b - self.top + self.kh - 1, end)
            block = window[p0 - first : p1 - first]
            at = a - self.top + self.anchor[1] - p0
            if self.float_filter is not None:
                src = block if self.samples_in else block.astype(self.compute)
                out = np.empty(block.shape, np.uint8 if rounded else self.compute)
                self.float_filter(src, out, self.anchor, self.border)
            elif self.factors is not None:
                row, col = self.factors
                out = cv2.sepFilter2D(
                    block,
                    self.depth,
                    row,
                    col,
                    anchor=self.anchor,
                    delta=shift,
                    borderType=self.border,
                )
            else:
                out = cv2.filter2D(
                    block,
                    self.depth,
                    self.weights,
                    anchor=self.anchor,
                    delta=shift,
                    borderType=self.border,
                )
            yield out[at : at + b - a]

    def values(self, sums: np.ndarray, compute: np.dtype, shift: int = 0) -> np.ndarray:
        """The general path's float results: the sums (less the ``shift`` they were given)
        in its working dtype, plus the offset."""
        if shift:
            sums = sums.astype(np.int32) - shift
        values = sums.astype(compute, copy=False)
        if self.offset:
            values = values + compute.type(self.offset)
        return values

    def samples(
        self,
        reader: RowReader,
        layout: Layout,
        r0: int,
        r1: int,
        stats: Filtered,
        span: tuple[float, float] | None,
        into: np.ndarray | None = None,
    ) -> np.ndarray:
        """Output samples of rows r0:r1, mapped by the layout's rules; written into ``into``
        (the result's rows r0:r1, contiguous) when given, which the mapping passes then
        write straight into, rather than into arrays of their own copied there after."""
        parts = []
        done = 0  # rows of ``into`` written
        # integer sums come shifted by the reach, all at least 0: their histogram then
        # needs 2 x reach + 1 bins, not 65536 (a 12 MP photo's sobel-x: about half of
        # this route's time went to the 65536 bins)
        integer = self.float_filter is None and not self.offset
        shift = self.reach if integer and 2 * self.reach <= _INT16_MAX else 0
        for sums in self._pieces(reader, r0, r1, self.rounds, shift):
            dst = None if into is None else into[done : done + len(sums)]
            fast: np.ndarray | None = None
            if self.rounds:
                layout.count_rounded(sums.size, self.bounds, stats)
                fast = sums
            elif self.float_filter is not None:
                values = self.values(sums, layout.compute)
                fast = layout.rounded_samples(values, self.bounds, stats, dst)
            elif not self.offset:
                fast = layout.integer_samples(sums, self.reach, stats, span, dst, shift)
            if fast is None:
                values = self.values(sums, layout.compute, shift)
                fast = layout.interleaved_samples(values, stats, span)
            if dst is None:
                parts.append(fast)
            else:
                if not np.may_share_memory(fast, dst):
                    dst[...] = fast
                done += len(sums)
        if into is not None:
            return into
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)

    def span(self, reader: RowReader, layout: Layout, r0: int, r1: int) -> tuple[float, float]:
        """min and max of the mapped results of rows r0:r1 (what ``--range rescale`` takes)."""
        return layout.interleaved_span(self.values(self.sums(reader, r0, r1), layout.compute))


def exact_filter(
    engine: StripEngine, layout: Layout, backend: Backend, shape: tuple[int, ...]
) -> ExactFilter | None:
    """The interleaved computation of ``engine``'s operation, where it gives the general
    path's numbers exactly; None where it does not apply."""
    operation, opts = engine.operation, engine.options
    if backend.name != "opencv" or not isinstance(operation, Kernel) or engine.align:
        return None
    if not layout.image or layout.in_dtype not in (np.uint8, np.uint16):
        return None
    if layout.transfer is not None:  # linear light: the values filtered are not the samples
        return None
    # the planes the general path filters are the samples themselves (no gray, no alpha)
    if layout.channels not in (1, 3) or (layout.channels == 3 and layout.gray):
        return None
    if opts.mode is not Mode.SAME or opts.keep_edges or opts.boundary is Boundary.WRAP:
        return None
    if opts.boundary is Boundary.FILL and opts.fill_value != 0:
        return None
    plan = engine.steps()[0].plan
    weights = plan.weights
    kh, kw = plan.shape
    if not plan.is_same or not np.all(np.isfinite(weights)):
        return None
    import cv2

    from convcli.compute.backends.opencv_backend import filter_for, two_passes

    separable = two_passes(plan)
    # OpenCV's spatial filters only: its DFT (filter2D of a large kernel) works per tile
    if plan.method not in ("direct", "separable") or (not separable and kh * kw >= OPENCV_DFT_TAPS):
        return None

    common = (
        (plan.centre[1], plan.centre[0]),
        plan.pads[0][0],
        kh,
        shape[0],
        opts.boundary,
        int(getattr(cv2, OPENCV[opts.boundary])),
    )
    reach = float(np.abs(weights).sum()) * layout.in_max
    mantissa = {np.dtype(np.float32): 2.0**24, np.dtype(np.float64): 2.0**53}.get(layout.compute)
    depth = _depth(layout.in_dtype, reach)
    integer = (
        not separable
        and np.array_equal(weights, np.round(weights))
        and mantissa is not None
        and reach < mantissa  # else the general path's float sums may round
        and depth is not None
    )
    if not integer:
        compute = layout.compute
        float_filter = filter_for(plan, compute)
        bounds = _bounds(weights, plan.offset, layout.in_max, compute)
        # the filter may round its own results where the general path only rounds them:
        # one pass, its rank-1 (a sum of rank-1 terms would round each term)
        may_round = (
            compute == np.float32
            and layout.in_dtype == np.uint8
            and not plan.offset
            and not (separable and len(plan.factors) > 1)
            and shape[1] * layout.channels > CV_SCALAR_SIZE
            and layout.rounds_alone(bounds, signed=False)
        )
        route = _float_route(plan, float_filter, layout, common, may_round)
        if route is None:
            return None
        return ExactFilter(
            np.ascontiguousarray(weights, compute),
            None,
            *common,
            _CV_32F if compute == np.float32 else _CV_64F,
            float(plan.offset),
            int(min(reach, 2**62)),
            # rounded in the filter, no pass reads the results after it: one call a band
            shape[0] if route[1] else _sub_rows(shape, layout, kh, 2 * compute.itemsize),
            float_filter=float_filter,
            compute=compute,
            samples_in=route[0],
            bounds=bounds,
            rounds=route[1],
        )
    assert depth is not None
    return ExactFilter(
        np.ascontiguousarray(weights, np.float32),
        integer_factors(weights),
        *common,
        depth,
        float(plan.offset),
        int(reach),
        _sub_rows(shape, layout, kh, np.dtype(_DTYPES[depth]).itemsize),
    )


def _sub_rows(shape: tuple[int, ...], layout: Layout, kh: int, result_bytes: int) -> int:
    """Output rows per OpenCV call: about :data:`CACHE_BYTES` of samples and results."""
    row_bytes = shape[1] * layout.channels * (layout.in_dtype.itemsize + result_bytes)
    return max(8, CACHE_BYTES // max(row_bytes, 1) - (kh - 1))


def _bounds(
    weights: np.ndarray, offset: float, in_max: float, compute: np.dtype
) -> tuple[float, float]:
    """The least and greatest float result of ``weights`` on samples 0..in_max: the exact
    extremes widened by a bound on the rounding of every product and partial sum (a sum of
    n terms in a float type of unit roundoff u is off by at most n u times the sum of the
    terms' magnitudes; two separable passes stay within that of the 2-D sum)."""
    w = weights.astype(np.float64)
    magnitude = float(np.abs(w).sum()) * in_max
    slack = 2.0 * (w.size + 2) * float(np.finfo(compute).eps) * magnitude + abs(offset) * 1e-6
    low = float(w[w < 0].sum()) * in_max + offset - slack
    high = float(w[w > 0].sum()) * in_max + offset + slack
    return low, high


def _float_route(
    plan: Plan, float_filter: Filter, layout: Layout, common: tuple, may_round: bool
) -> tuple[bool, bool] | None:
    """How the float route computes the general path's numbers: (whether it reads the
    samples as they are, OpenCV converting them in its first pass, rather than converting
    them first; whether its filter may round the results to 8-bit samples itself, given
    ``may_round``); None where it cannot.

    OpenCV's passes over 8-bit and over float rows, over one channel and several interleaved
    ones, and into float or 8-bit results, are separate code: the same arithmetic for most
    kernels, but not for all (it sums the float rows of small symmetric kernels in pairs, and
    turns some kernels into fixed-point integers for 8-bit results). So a block of random
    samples is filtered each way: a different order of operations changes the last bit of
    most results, a different rounding many samples. Every sample gets the arithmetic of
    whole vectors whatever the row's length (``opencv_backend._whole_vectors``), so one
    width, with samples left over at the end of its rows, stands for all."""
    compute = layout.compute
    factors = tuple(np.asarray(f).tobytes() for pair in plan.factors for f in pair)
    key: tuple = (plan.method, plan.weights.tobytes(), plan.shape, factors)
    key += (layout.channels, layout.in_dtype, compute, common[:2], common[5], may_round)
    if key in _ROUTES:
        return _ROUTES[key]
    import cv2

    from convcli.compute.backends.opencv_backend import ROW_TAIL, two_passes

    anchor, border = common[0], common[5]
    rng = np.random.default_rng(0)
    width = ROW_TAIL * (3 + plan.shape[1] // ROW_TAIL) + 37
    rows = max(2 * common[2], 64)
    shape = (rows, width, layout.channels) if layout.channels > 1 else (rows, width)
    samples = rng.integers(0, int(layout.in_max) + 1, shape).astype(layout.in_dtype)
    converted = samples.astype(compute)

    def run(src: np.ndarray, dtype: np.dtype = compute) -> np.ndarray:
        out = np.empty(src.shape, dtype)
        float_filter(src, out, anchor, border)
        return out

    if layout.channels > 1:  # the general path: plane by plane
        general = np.stack(
            [run(np.ascontiguousarray(converted[..., c])) for c in range(layout.channels)], -1
        )
    else:
        general = run(converted)
    route = None
    if np.array_equal(run(samples), general):
        route = samples
    elif layout.channels > 1 and np.array_equal(run(converted), general):
        route = converted
    found = None
    if route is not None:
        # filter2D takes no results narrower than its samples; sepFilter2D does
        rounds = may_round and (route is samples or two_passes(plan))
        if rounds:
            rounded = cv2.convertScaleAbs(general.reshape(rows, -1)).reshape(shape)
            rounds = np.array_equal(run(route, np.dtype(np.uint8)), rounded)
        found = (route is samples, bool(rounds))
    if len(_ROUTES) > 256:
        _ROUTES.clear()
    _ROUTES[key] = found
    return found


#: what :func:`_float_route` found, by kernel call and layout
_ROUTES: dict[tuple, tuple[bool, bool] | None] = {}


def integer_factors(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Whole-number row and column vectors whose outer product is ``weights`` (a rank-1
    matrix of whole numbers, more than one row and column), as float32; None if there are
    none. The row is the largest row divided by the common divisor of its entries."""
    kh, kw = weights.shape
    if kh == 1 or kw == 1 or not weights.any():
        return None
    i = int(np.argmax(np.abs(weights).max(axis=1)))
    pivot = weights[i].astype(np.int64)
    divisor = int(np.gcd.reduce(np.abs(pivot[pivot != 0])))
    row = pivot // divisor
    j = int(np.argmax(np.abs(row)))
    col = weights[:, j] / row[j]
    if not np.array_equal(col, np.round(col)) or not np.array_equal(np.outer(col, row), weights):
        return None
    return row.astype(np.float32), col.astype(np.float32)


#: OpenCV depth codes (cv2.CV_16S, CV_32F, CV_64F) and the dtypes they give
_CV_16S, _CV_32F, _CV_64F = 3, 5, 6
_DTYPES: dict[int, Any] = {_CV_16S: np.int16, _CV_32F: np.float32, _CV_64F: np.float64}


def _depth(in_dtype: np.dtype, reach: float) -> int | None:
    """The narrowest type OpenCV sums the samples into exactly (its 8-bit filter takes
    16-bit integer or float outputs, its 16-bit filter float ones)."""
    if in_dtype == np.uint8 and reach <= 32767:
        return _CV_16S
    if reach < 2.0**24:
        return _CV_32F
    return _CV_64F
