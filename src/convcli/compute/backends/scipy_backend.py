"""The reference backend: scipy.ndimage for direct and separable passes, scipy.signal for FFT.

``same`` mode runs with ndimage's own boundary handling (no padded copy); ``full`` extends
the planes explicitly and ``valid`` needs no extension. Separable kernels run as 1-D passes
(one pair per rank), large ones through overlap-add FFT.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from scipy import ndimage, signal

from convcli.compute.backends.base import Backend, Plan
from convcli.compute.boundary import NDIMAGE, Boundary


def _crop_valid(same: np.ndarray, size: int, axis: int) -> np.ndarray:
    """ndimage (origin 0) puts the window starting at s on output s + size // 2."""
    n = same.shape[axis] - size + 1
    index = [slice(None)] * same.ndim
    index[axis] = slice(size // 2, size // 2 + n)
    return same[tuple(index)]


class ScipyBackend(Backend):
    name = "scipy"

    def correlate(
        self, planes: np.ndarray, plan: Plan, boundary: Boundary, fill: float
    ) -> np.ndarray:
        plan, divisor = _tiny_weights_scaled(plan)
        out = self._correlate(planes, plan, boundary, fill)
        return out if divisor == 1.0 else out / out.dtype.type(divisor)

    def _correlate(
        self, planes: np.ndarray, plan: Plan, boundary: Boundary, fill: float
    ) -> np.ndarray:
        if plan.method == "fft":
            return self._fft(planes, plan, boundary, fill)
        # ndimage extends natively for `same`, except that a separable pass cannot see the
        # corner values of a non-zero fill: that case is extended explicitly.
        # A band's rows come extended already: ndimage extends the columns natively and the
        # rows whose windows reach past the block are dropped; the arithmetic of every kept
        # pixel is that of the whole image, bit for bit.
        native = (plan.is_same or plan.rows_extended) and not (
            plan.method == "separable" and boundary is Boundary.FILL and fill != 0
        )
        if native:
            mode, origins = NDIMAGE[boundary], _origins(plan)
            x = planes
        else:
            mode, origins = "constant", (0, 0)
            x = self.extend(planes, plan, boundary, fill)
        if plan.method == "separable":
            out = self._separable(x, plan, mode, fill, origins, crop=not native)
        else:
            out = ndimage.correlate(
                x, plan.weights[np.newaxis], mode=mode, cval=fill, origin=(0, *origins)
            )
            if not native:
                out = _crop_valid(_crop_valid(out, plan.shape[0], 1), plan.shape[1], 2)
        if native and not plan.is_same:
            cy, kh = plan.centre[0], plan.shape[0]
            out = out[:, cy : cy + planes.shape[1] - kh + 1]
        return out

    @staticmethod
    def _separable(
        x: np.ndarray, plan: Plan, mode: str, fill: float, origins: tuple[int, int], crop: bool
    ) -> np.ndarray:
        total: np.ndarray | None = None
        kh, kw = plan.shape
        for col, row in plan.factors:
            y = ndimage.correlate1d(x, col, axis=1, mode=mode, cval=fill, origin=origins[0])
            if crop:
                y = _crop_valid(y, kh, 1)
            y = ndimage.correlate1d(y, row, axis=2, mode=mode, cval=fill, origin=origins[1])
            if crop:
                y = _crop_valid(y, kw, 2)
            total = y if total is None else total + y
        assert total is not None
        return total

    def _fft(self, planes: np.ndarray, plan: Plan, boundary: Boundary, fill: float) -> np.ndarray:
        x = self.extend(planes, plan, boundary, fill)
        kernel = plan.weights[::-1, ::-1].astype(x.dtype)[np.newaxis]
        # convolving with the flipped weights is correlating with them
        out = signal.oaconvolve(x, kernel, mode="valid", axes=(1, 2))
        return out.astype(planes.dtype, copy=False)


def _tiny_weights_scaled(plan: Plan) -> tuple[Plan, float]:
    """ndimage skips weights smaller than 2.2e-16 as if they were zero: scale tiny kernels
    (and each separable factor) by powers of two, which is exact, and divide after."""

    def factor(values: np.ndarray) -> float:
        peak = float(np.max(np.abs(values))) if values.size else 0.0
        return 2.0 ** -np.floor(np.log2(peak)) if 0 < peak < 2.0**-20 else 1.0

    weights = factor(plan.weights)
    factors = [(factor(c), factor(r)) for c, r in plan.factors]
    if weights == 1.0 and all(fc == fr == 1.0 for fc, fr in factors):
        return plan, 1.0
    if plan.method == "separable":
        # every pair must end up divided by the same number: scale them to a common one
        common = max(fc * fr for fc, fr in factors)
        scaled = tuple(
            (c * fc, r * (common / fc))
            for (c, r), (fc, _) in zip(plan.factors, factors, strict=True)
        )
        return replace(plan, factors=scaled), common
    return replace(plan, weights=plan.weights * weights), weights


def _origins(plan: Plan) -> tuple[int, int]:
    """ndimage's origin that puts weight ``centre`` on the output pixel."""
    kh, kw = plan.shape
    return plan.centre[0] - kh // 2, plan.centre[1] - kw // 2
