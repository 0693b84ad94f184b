"""The OpenCV backend: convcli's fastest exact CPU engine.

OpenCV's filters are SIMD-vectorised (IPP where available) and threaded. ``cv2.filter2D``
switches to a tiled DFT by itself once a kernel is large, so ``direct`` and ``fft`` both run
through it; ``separable`` runs ``cv2.sepFilter2D`` once per factor pair. ``same`` mode with
the reflect, mirror, nearest or zero-fill boundary uses OpenCV's own border handling (no
padded copy); ``wrap``, a non-zero fill and ``full`` mode extend each plane with
``cv2.copyMakeBorder`` (which extends as far as numpy.pad does) and keep the valid part.

OpenCV runs its DFT path on one thread, so large images going that way are cut into stripes
that are filtered side by side (see :func:`_striped`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np

from convcli.compute.backends.base import Backend, Plan
from convcli.compute.boundary import OPENCV, Boundary

_BORDER = {boundary: int(getattr(cv2, name)) for boundary, name in OPENCV.items()}

#: filter(src, dst, anchor (x, y), border) writes the filtered src into dst (of src's shape)
_Filter = Callable[[np.ndarray, np.ndarray, tuple[int, int], int], None]

#: CV_CPU_SSE3 of OpenCV's core/cvdef.h (the Python module does not export the constant)
_CV_CPU_SSE3 = 3

#: images smaller than this are not worth starting threads for
_MIN_STRIPED_PIXELS = 1 << 18


class OpenCVBackend(Backend):
    name = "opencv"

    def correlate(
        self, planes: np.ndarray, plan: Plan, boundary: Boundary, fill: float
    ) -> np.ndarray:
        n, h, w = planes.shape
        kh, kw = plan.shape
        (top, bottom), (left, right) = plan.pads
        filt = _filter_for(plan, planes.dtype)
        # filter2D's BORDER_CONSTANT is 0 and it knows no wrap: only those cases, and pads
        # other than `same`'s, need an extended copy.
        if (
            plan.is_same
            and boundary is not Boundary.WRAP
            and not (boundary is Boundary.FILL and fill != 0)
        ):
            out = np.empty_like(planes)
            anchor = (plan.centre[1], plan.centre[0])
            for i in range(n):
                filt(_rows_contiguous(planes[i]), out[i], anchor, _BORDER[boundary])
            return out
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
            # With the anchor on the first weight, pixel (i, j) of the filtered extension is
            # the valid correlation at (i, j); the last kh-1 rows and kw-1 columns read
            # OpenCV's own border and are dropped (a view: no copy).
            filt(src, out[i], (0, 0), cv2.BORDER_REPLICATE)
        return out[:, : size[0] - kh + 1, : size[1] - kw + 1]


def _rows_contiguous(plane: np.ndarray) -> np.ndarray:
    """OpenCV takes any row stride but needs the pixels of a row side by side."""
    return plane if plane.strides[1] == plane.itemsize else np.ascontiguousarray(plane)


def _filter_for(plan: Plan, dtype: np.dtype) -> _Filter:
    """The OpenCV call for the plan's method, with the weights cast once to the planes' dtype
    (OpenCV would otherwise convert them on every call)."""
    kh, kw = plan.shape
    if plan.method == "separable" and kh > 1 and kw > 1:
        return _separable(plan, dtype)
    # direct and fft; also a 1-row or 1-column kernel, which is one pass anyway
    weights = np.ascontiguousarray(plan.weights, dtype)

    def direct(src: np.ndarray, dst: np.ndarray, anchor: tuple[int, int], border: int) -> None:
        cv2.filter2D(src, -1, weights, dst=dst, anchor=anchor, borderType=border)

    if _uses_dft(kh * kw, dtype):
        return lambda src, dst, anchor, border: _striped(direct, src, dst, anchor, border, kh, kw)
    return direct


def _separable(plan: Plan, dtype: np.dtype) -> _Filter:
    """sepFilter2D (threaded by OpenCV) per factor pair, summed when the rank is above 1."""
    pairs = [
        (np.ascontiguousarray(row, dtype), np.ascontiguousarray(col, dtype))
        for col, row in plan.factors
    ]
    scratch: list[np.ndarray] = []  # one buffer for the terms of rank > 1, reused per plane

    def separable(src: np.ndarray, dst: np.ndarray, anchor: tuple[int, int], border: int) -> None:
        row, col = pairs[0]
        cv2.sepFilter2D(src, -1, row, col, dst=dst, anchor=anchor, borderType=border)
        for row, col in pairs[1:]:
            if not scratch or scratch[0].shape != dst.shape:
                scratch[:] = [np.empty_like(dst)]
            term = scratch[0]
            cv2.sepFilter2D(src, -1, row, col, dst=term, anchor=anchor, borderType=border)
            cv2.add(dst, term, dst=dst)

    return separable


def _uses_dft(taps: int, dtype: np.dtype) -> bool:
    """Whether cv2.filter2D takes its (single-threaded) DFT path: OpenCV's own threshold, 130
    taps for float32 with SSE3, 50 otherwise. Only speed depends on it."""
    fast = dtype == np.float32 and cv2.checkHardwareSupport(_CV_CPU_SSE3)
    return taps >= (130 if fast else 50)


def _striped(
    filt: _Filter,
    src: np.ndarray,
    dst: np.ndarray,
    anchor: tuple[int, int],
    border: int,
    kh: int,
    kw: int,
) -> None:
    """``filt`` cut into stripes, one per OpenCV thread, run at once.

    A stripe is filtered with the rows its outputs need (so only the image's own edges see
    the border), straight into ``dst``; the few rows on either side of each cut that two
    stripes both write (one of them wrongly) are then computed again on their own.
    """
    # cut across the axis along which the image is longest measured in kernel lengths
    axis = 0 if src.shape[0] * kw >= src.shape[1] * kh else 1
    length, size = src.shape[axis], (kh, kw)[axis]
    before = (anchor[1], anchor[0])[axis]  # taps before the output pixel along that axis
    after = size - 1 - before
    stripes = min(cv2.getNumThreads(), length // (4 * size))
    if stripes < 2 or src.size < _MIN_STRIPED_PIXELS:
        filt(src, dst, anchor, border)
        return

    def part(a: np.ndarray, lo: int, hi: int) -> np.ndarray:
        return a[lo:hi] if axis == 0 else a[:, lo:hi]

    def run(lo: int, hi: int) -> None:  # outputs [lo, hi), from the inputs they need
        lo, hi = max(0, lo - before), min(length, hi + after)
        filt(part(src, lo, hi), part(dst, lo, hi), anchor, border)

    cuts = [length * s // stripes for s in range(stripes + 1)]
    mine, *others = itertools.pairwise(cuts)
    with ThreadPoolExecutor(stripes - 1) as pool:
        jobs = [pool.submit(run, lo, hi) for lo, hi in others]
        run(*mine)  # this thread takes a stripe too
        for job in jobs:
            job.result()
    for cut in cuts[1:-1] if size > 1 else []:
        # outputs [cut - before, cut + after) were written by both neighbours
        lo, hi = max(0, cut - 2 * before), min(length, cut + 2 * after)
        seam = np.empty_like(part(src, lo, hi))
        filt(part(src, lo, hi), seam, anchor, border)
        start, stop = max(0, cut - before), min(length, cut + after)
        part(dst, start, stop)[...] = part(seam, start - lo, stop - lo)
