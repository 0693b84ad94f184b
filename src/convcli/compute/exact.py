"""Integer kernels on 8- and 16-bit images, in integer arithmetic: the same numbers as the
general float path, computed on the interleaved samples in one OpenCV call per band.

The general path splits an image into planes, converts them to the working float type,
filters each plane and merges the mapped planes again. When the kernel's weights are whole
numbers (sobel, laplacian, prewitt, ...) and every sum fits the float type's mantissa, that
float result is exact: it is the integer sum. The integer sum does not depend on the order
of the additions, so OpenCV may compute it however it likes (on the interleaved channels,
from the 8-bit samples directly, in 16-bit integers): the output samples are bit-identical
to the general path's. Only OpenCV's spatial ``filter2D`` is exact; a kernel large enough
for its DFT, a separable plan (whose factors are not whole numbers) and everything the
general path does not compute with OpenCV stay on the general path.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from convcli.compute.backends import Backend
from convcli.compute.boundary import OPENCV, Boundary, Mode, source_index
from convcli.compute.evaluate import OPENCV_DFT_TAPS, StripEngine, read_rows
from convcli.compute.pixels import Filtered, Layout
from convcli.io.rows import RowReader
from convcli.kernels.model import Kernel

#: bytes of samples and sums per OpenCV call: the mapping passes after the filter then read
#: the sums from the caches (measured on a 12 MP photo: about 30 rows a call are fastest; 8
#: rows pay OpenCV's per-call cost, whole-image calls take 2-4x longer in all)
CACHE_BYTES = 1024 * 1024


@dataclass(frozen=True)
class ExactFilter:
    """One integer kernel on an image's interleaved samples, as exact integer sums."""

    weights: np.ndarray  # correlation weights, whole numbers, as float32 for OpenCV
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

    def sums(self, reader: RowReader, r0: int, r1: int) -> np.ndarray:
        """The exact sums of output rows r0:r1, interleaved like the samples."""
        parts = [sums for _, sums in self._pieces(reader, r0, r1)]
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)

    def _window(self, reader: RowReader, r0: int, r1: int) -> np.ndarray:
        """The input rows (extended by the boundary) that outputs r0:r1 read, read once."""
        sources = source_index(
            np.arange(r0 - self.top, r1 - self.top + self.kh), self.height, self.boundary
        )
        inside = sources >= 0
        lo, hi = int(sources[inside].min()), int(sources[inside].max()) + 1
        if inside.all() and hi - lo == len(sources) and sources[0] == lo:
            window = reader.read(lo, hi)  # rows inside the image: a view, no copy
        else:
            wanted = np.unique(sources[inside])
            rows = read_rows(reader, wanted)
            window = rows[np.searchsorted(wanted, np.where(inside, sources, lo))]
            window[~inside] = 0  # fill rows (only a zero fill comes here)
        return window if window.flags.c_contiguous else np.ascontiguousarray(window)

    def _pieces(self, reader: RowReader, r0: int, r1: int) -> Iterator[tuple[int, np.ndarray]]:
        """(first row within the band, exact sums) of every run of ``sub_rows`` outputs."""
        import cv2

        window = self._window(reader, r0, r1)
        cy = self.anchor[1]
        for a in range(r0, r1, self.sub_rows):
            b = min(a + self.sub_rows, r1)
            block = window[a - r0 : b - r0 + self.kh - 1]
            # the anchor on the centre row and OpenCV's border for the columns: rows cy.. of
            # the filtered block are the outputs whose windows lie within it
            if self.factors is not None:
                row, col = self.factors
                out = cv2.sepFilter2D(
                    block, self.depth, row, col, anchor=self.anchor, borderType=self.border
                )
            else:
                out = cv2.filter2D(
                    block, self.depth, self.weights, anchor=self.anchor, borderType=self.border
                )
            yield a - r0, out[cy : cy + b - a]

    def values(self, sums: np.ndarray, compute: np.dtype) -> np.ndarray:
        """The general path's float results: the sums in its working dtype, plus the offset."""
        values = sums.astype(compute)
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
    ) -> np.ndarray:
        """Output samples of rows r0:r1, mapped by the layout's rules."""
        out: np.ndarray | None = None
        for at, sums in self._pieces(reader, r0, r1):
            fast = None if self.offset else layout.integer_samples(sums, self.reach, stats, span)
            if fast is None:
                fast = layout.interleaved_samples(self.values(sums, layout.compute), stats, span)
            if out is None:
                out = np.empty((r1 - r0, *fast.shape[1:]), fast.dtype)
            out[at : at + len(fast)] = fast
        assert out is not None
        return out

    def span(self, reader: RowReader, layout: Layout, r0: int, r1: int) -> tuple[float, float]:
        """min and max of the mapped results of rows r0:r1 (what ``--range rescale`` takes)."""
        return layout.interleaved_span(self.values(self.sums(reader, r0, r1), layout.compute))


def exact_filter(
    engine: StripEngine, layout: Layout, backend: Backend, shape: tuple[int, ...]
) -> ExactFilter | None:
    """The integer computation of ``engine``'s operation, where it gives the general path's
    numbers exactly; None where it does not apply."""
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
    # the general path's spatial filter2D (its DFT and its separable passes are not exact)
    if plan.method != "direct" or kh * kw >= OPENCV_DFT_TAPS or not plan.is_same:
        return None
    if not np.all(np.isfinite(weights)) or not np.array_equal(weights, np.round(weights)):
        return None
    reach = float(np.abs(weights).sum()) * layout.in_max
    mantissa = {np.dtype(np.float32): 2.0**24, np.dtype(np.float64): 2.0**53}.get(layout.compute)
    if mantissa is None or reach >= mantissa:
        return None  # the general path's float sums may round: not the integer sums
    depth = _depth(layout.in_dtype, reach)
    if depth is None:
        return None
    import cv2

    row_bytes = (
        shape[1] * layout.channels * (layout.in_dtype.itemsize + np.dtype(_DTYPES[depth]).itemsize)
    )
    sub_rows = max(8, CACHE_BYTES // max(row_bytes, 1) - (kh - 1))
    return ExactFilter(
        np.ascontiguousarray(weights, np.float32),
        integer_factors(weights),
        (plan.centre[1], plan.centre[0]),
        plan.pads[0][0],
        kh,
        shape[0],
        opts.boundary,
        int(getattr(cv2, OPENCV[opts.boundary])),
        depth,
        float(plan.offset),
        int(reach),
        sub_rows,
    )


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
