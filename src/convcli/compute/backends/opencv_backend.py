"""The OpenCV backend: convcli's fastest exact CPU engine.

OpenCV's filters are SIMD-vectorised (IPP where available) and threaded. ``cv2.filter2D``
switches to a tiled DFT by itself once a kernel is large, so ``direct`` and ``fft`` both run
through it; ``separable`` runs ``cv2.sepFilter2D`` once per factor pair. ``same`` mode with
the reflect, mirror, nearest or zero-fill boundary uses OpenCV's own border handling (no
padded copy); ``wrap``, a non-zero fill and ``full`` mode extend each plane with
``cv2.copyMakeBorder`` (which extends as far as numpy.pad does) and keep the valid part.

The ``fft`` method is convcli's own overlap-save in fixed blocks on OpenCV's DFT
(:mod:`convcli.compute.blocks`): OpenCV's filter2D sizes its DFT blocks per call and
transforms the kernel in every call. The evaluator computes DFT kernels in tiles of rows
(the same in every band, so results do not depend on how an image is cut), side by side.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import cv2
import numpy as np

from convcli.compute.backends.base import Backend, Plan
from convcli.compute.blocks import correlator
from convcli.compute.boundary import OPENCV, Boundary
from convcli.compute.evaluate import OPENCV_DFT_TAPS

_BORDER = {boundary: int(getattr(cv2, name)) for boundary, name in OPENCV.items()}
#: OpenCV's type for the results in each working dtype (the filters' ``ddepth``: given, not
#: -1, so that 8-bit samples may come in and float results go out)
_DEPTHS = {
    np.dtype(np.uint8): cv2.CV_8U,
    np.dtype(np.float32): cv2.CV_32F,
    np.dtype(np.float64): cv2.CV_64F,
}

#: filter(src, dst, anchor (x, y), border) writes the filtered src into dst (of src's shape)
Filter = Callable[[np.ndarray, np.ndarray, tuple[int, int], int], None]


class OpenCVBackend(Backend):
    name = "opencv"

    def correlate(
        self, planes: np.ndarray, plan: Plan, boundary: Boundary, fill: float
    ) -> np.ndarray:
        n, h, w = planes.shape
        kh, kw = plan.shape
        (top, bottom), (left, right) = plan.pads
        cy, cx = plan.centre
        anchor = (cx, cy)
        if plan.method == "fft":
            return _blocks_fft(planes, plan, boundary, fill)
        filt = filter_for(plan, planes.dtype)
        # Every call puts the anchor on the kernel's centre, whatever the extension, so that
        # OpenCV runs the same arithmetic (its symmetric-kernel paths included) for a pixel
        # whether its neighbours come from OpenCV's border, from rows extended beforehand
        # (a band of a larger image) or from an extended copy: results are bit-identical.
        # filter2D's BORDER_CONSTANT is 0 and it knows no wrap: only those cases, and pads
        # other than `same`'s, need an extended copy.
        native = boundary is not Boundary.WRAP and not (boundary is Boundary.FILL and fill != 0)
        if native and plan.is_same:
            out = np.empty(planes.shape, planes.dtype)  # C order, whatever the input's
            for i in range(n):
                filt(_rows_contiguous(planes[i]), out[i], anchor, _BORDER[boundary])
            return out
        if native and plan.rows_extended:
            # rows already extended (a band): filter with OpenCV's border for the columns and
            # drop the rows whose windows reach past the block (a view: no copy)
            out = np.empty(planes.shape, planes.dtype)  # C order, whatever the input's
            for i in range(n):
                filt(_rows_contiguous(planes[i]), out[i], anchor, _BORDER[boundary])
            return out[:, cy : cy + h - kh + 1]
        size = (h + top + bottom, w + left + right)
        out = np.empty((n, *size), planes.dtype)
        ext = np.empty(size, planes.dtype) if any(plan.pads[0]) or any(plan.pads[1]) else None
        for i in range(n):
            src = _rows_contiguous(planes[i])
            if ext is not None:
                cv2.copyMakeBorder(
                    src, top, bottom, left, right, _BORDER[boundary], dst=ext, value=fill
                )
                src = ext
            # pixel (cy + i, cx + j) of the filtered extension is the valid correlation at
            # (i, j); the rows and columns around it read OpenCV's own border and are dropped
            filt(src, out[i], anchor, cv2.BORDER_REPLICATE)
        return out[:, cy : cy + size[0] - kh + 1, cx : cx + size[1] - kw + 1]


def _blocks_fft(planes: np.ndarray, plan: Plan, boundary: Boundary, fill: float) -> np.ndarray:
    """The FFT method: each plane's valid correlation, extended as the plan says (rows a
    band brings already extended), in fixed blocks with the kernel's spectrum made once
    (:mod:`convcli.compute.blocks`), each block copied from the plane with its extension."""
    n, h, w = planes.shape
    kh, kw = plan.shape
    (top, bottom), (left, right) = plan.pads
    blocks = correlator(np.ascontiguousarray(plan.weights, planes.dtype))
    out = np.empty((n, h + top + bottom - kh + 1, w + left + right - kw + 1), planes.dtype)
    for i in range(n):
        blocks.valid(planes[i], out[i], plan.pads, boundary, fill)
    return out


def _rows_contiguous(plane: np.ndarray) -> np.ndarray:
    """OpenCV takes any row stride but needs the pixels of a row side by side."""
    return plane if plane.strides[1] == plane.itemsize else np.ascontiguousarray(plane)


def filter_for(plan: Plan, dtype: np.dtype) -> Filter:
    """The OpenCV call for the plan's method, with the weights cast once to the planes' dtype
    (OpenCV would otherwise convert them on every call). The results' type is ``dst``'s.

    Spatial filters get the end of every row computed again (:func:`_whole_vectors`), so that
    each sample has OpenCV's vectorised arithmetic whatever the row's length and however its
    channels are laid out."""
    kh, kw = plan.shape
    if two_passes(plan):
        return _whole_vectors(_separable(plan, dtype), kw + 1)  # a zero tap may follow
    # direct and fft; also a 1-row or 1-column kernel, which is one pass anyway
    weights = np.ascontiguousarray(plan.weights, dtype)

    def direct(src: np.ndarray, dst: np.ndarray, anchor: tuple[int, int], border: int) -> None:
        depth = _DEPTHS.get(dst.dtype, -1)
        cv2.filter2D(src, depth, weights, dst=dst, anchor=anchor, borderType=border)

    # a kernel this large may run through OpenCV's DFT, which works on whole blocks anyway
    return direct if kh * kw >= OPENCV_DFT_TAPS else _whole_vectors(direct, kw)


def two_passes(plan: Plan) -> bool:
    """Whether :func:`filter_for` runs the plan as sepFilter2D's row and column passes (a
    kernel of one row or column is one filter2D pass whatever the method)."""
    return plan.method == "separable" and min(plan.shape) > 1


def _separable(plan: Plan, dtype: np.dtype) -> Filter:
    """sepFilter2D (threaded by OpenCV) per factor pair, summed when the rank is above 1."""
    as_given = [
        (np.ascontiguousarray(row, dtype), np.ascontiguousarray(col, dtype))
        for col, row in plan.factors
    ]
    # float32 samples get the rows in tap order; 8-bit samples are summed so already, and a
    # zero tap would cost their pass 9% (a 12 MP photo's 5x5: 16.8 -> 18.4 ms)
    in_order = [(_in_tap_order(row), col) for row, col in as_given]
    scratch: list[np.ndarray] = []  # one buffer for the terms of rank > 1, reused per plane

    def separable(src: np.ndarray, dst: np.ndarray, anchor: tuple[int, int], border: int) -> None:
        depth = _DEPTHS.get(dst.dtype, -1)
        pairs = in_order if src.dtype == np.float32 else as_given
        row, col = pairs[0]
        cv2.sepFilter2D(src, depth, row, col, dst=dst, anchor=anchor, borderType=border)
        for row, col in pairs[1:]:
            if not scratch or scratch[0].shape != dst.shape:
                scratch[:] = [np.empty_like(dst)]
            term = scratch[0]
            cv2.sepFilter2D(src, depth, row, col, dst=term, anchor=anchor, borderType=border)
            cv2.add(dst, term, dst=dst)

    return separable


def _in_tap_order(row: np.ndarray) -> np.ndarray:
    """A float32 row of 3 or 5 (anti)symmetric taps with a zero tap after its last; any other
    row as it is. For float32 samples only.

    OpenCV sums float32 rows of such kernels in pairs (``w1 (x[-1] + x[1]) + ...``) but rows
    of 8-bit samples, like any other kernel's, tap by tap: the zero tap, which adds exactly
    nothing (the samples are finite: NaN and infinity are refused), makes the float32 pass
    sum tap by tap too. A float32 plane converted from 8-bit samples then gets the numbers of
    the samples filtered as they are, which lets the 8-bit route read them without a
    conversion pass (a 12 MP photo's gaussian:size=5 in one OpenCV call). The float32 pass
    costs about 8% more (a 12 MP plane, 5 taps: 9.9 -> 10.9 ms)."""
    if row.dtype != np.float32 or len(row) not in (3, 5):
        return row
    if not (np.array_equal(row, row[::-1]) or np.array_equal(row, -row[::-1])):
        return row
    return np.append(row, np.float32(0))


#: samples at the end of a row that OpenCV may sum one by one, after its vectors: 31 at
#: most measured (8-bit rows in, 32 a step); twice that, for wider vector units
ROW_TAIL = 64


def _whole_vectors(filt: Filter, kw: int) -> Filter:
    """``filt`` with the last ``ROW_TAIL`` samples of every row computed again, as part of a
    strip of the row's end a whole number of ``ROW_TAIL`` samples wide.

    OpenCV sums the samples left over at the end of a row (after its last whole vector)
    with scalar code whose rounding differs from the vectors'. Which samples those are
    depends on the row's length in samples, so a plane and the same channel interleaved
    with others would get different last bits there. Computed again in a strip of whole
    vectors, every sample gets the vectors' arithmetic: the same numbers for any width and
    any layout of the channels. The strip starts far enough left that the outputs kept read
    only real samples. Where the image is wide enough, it is a view of the image's last
    columns (no copy), so OpenCV extends its right end by the call's own border; else a
    copy, extended on the right by that border."""

    def whole_vectors(
        src: np.ndarray, dst: np.ndarray, anchor: tuple[int, int], border: int
    ) -> None:
        filt(src, dst, anchor, border)
        width = src.shape[1]
        channels = src.shape[2] if src.ndim == 3 else 1
        if width * channels % ROW_TAIL == 0:
            return  # no samples left over
        keep = min(width, -(-ROW_TAIL // channels))  # pixels computed again
        start = max(0, width - keep - anchor[0])  # outputs kept read columns from here on
        step = ROW_TAIL // np.gcd(channels, ROW_TAIL)  # strip widths of whole vectors
        rows = src.shape[0]
        strip = width - start  # the columns the kept outputs read
        view = -(-strip // step) * step  # the image's last columns, whole vectors wide
        if view <= width:
            out = _scratch("out", (rows, view, *dst.shape[2:]), dst.dtype)
            filt(src[:, width - view :], out, anchor, border)
            dst[:, width - keep :] = out[:, view - keep :]
            return
        wide = -(-(strip + kw - 1 - anchor[0]) // step) * step
        ext = _scratch("ext", (rows, wide, *src.shape[2:]), src.dtype)
        out = _scratch("out", (rows, wide, *dst.shape[2:]), dst.dtype)
        ext = cv2.copyMakeBorder(src[:, start:], 0, 0, 0, wide - strip, border, dst=ext)
        filt(ext, out, anchor, border)
        dst[:, width - keep :] = out[:, strip - keep : strip]

    return whole_vectors


#: each thread's buffers for the row ends (a thread filters one strip at a time)
_buffers = threading.local()


def _scratch(name: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """A buffer of this thread's, kept for the next call of the same shape. Allocating the
    strip afresh every call costs more than filtering it: blocks of a megabyte or more come
    from fresh pages, which the kernel faults in one by one (a 16 MP plane: 4 ms against 0.5)."""
    kept = getattr(_buffers, name, None)
    if kept is None or kept.shape != shape or kept.dtype != dtype:
        kept = np.empty(shape, dtype)
        setattr(_buffers, name, kept)
    return kept
