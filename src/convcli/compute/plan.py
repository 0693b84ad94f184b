"""Plans: how each kernel of a request runs (orientation, alignment, extension, method and
why), chosen once, before anything is computed.

Every result is defined one way (see :mod:`convcli.compute.boundary`): extend the input by the
boundary rule as far as the mode needs, then take the valid correlation with the kernel
flipped (convolution) or as given (``correlate=True``). Backends and methods differ only in how
they compute that, never in what.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np

from convcli.compute.backends.base import Plan
from convcli.compute.boundary import Boundary, Mode, as_boundary, as_mode, pad_widths
from convcli.errors import InputError, UsageError
from convcli.kernels.model import Kernel
from convcli.vocabulary import COMBINES, METHODS


# -- method choice -----------------------------------------------------------------------------
@dataclass(frozen=True)
class MethodChoice:
    method: str
    reason: str


def choose_method(
    kernel_shape: tuple[int, int],
    rank: int,
    image_shape: tuple[int, int] | None = None,
    *,
    backend: str = "scipy",
    dtype: Any = np.float64,
) -> MethodChoice:
    """Pick the cheapest exact way to run a kernel, like scipy's ``choose_conv_method``.

    Pure: it looks only at the shapes, the kernel's separable rank, the backend and the
    dtype. Costs are rough milliseconds for a 12-megapixel plane, measured on each backend:
    scipy.ndimage pays per tap; OpenCV's filter2D is cheap per tap until it switches to its
    own DFT (130 taps in float32, 50 in float64); torch on the CPU has a large fixed cost.

    >>> choose_method((3, 3), 1).method
    'direct'
    >>> choose_method((15, 15), 1).method
    'separable'
    >>> choose_method((51, 51), 51).method
    'fft'
    >>> choose_method((7, 7), 2, backend="opencv", dtype="float32").method
    'direct'
    """
    kh, kw = kernel_shape
    taps = kh * kw
    small_image = image_shape is not None and min(image_shape) < 2 * max(kh, kw)
    costs = _COSTS.get(backend, _scipy_costs)(kh, kw, rank, small_image, np.dtype(dtype))
    if not (kh > 1 and kw > 1 and rank * (kh + kw) < taps):
        costs.pop("separable", None)
    if taps == 1:
        costs.pop("fft", None)
    method = min(costs, key=costs.__getitem__)
    if method == "direct":
        reason = f"{taps} taps: a direct pass is cheapest on {backend}"
    elif method == "separable":
        passes = "a separable kernel" if rank == 1 else f"rank {rank}"
        reason = f"{passes}: {2 * rank} passes of 1-D taps instead of {taps} per pixel"
    else:
        reason = f"{kh}x{kw} of rank {rank}: FFT beats {taps} taps per pixel on {backend}"
    return MethodChoice(method, reason)


def _scipy_costs(kh: int, kw: int, rank: int, small: bool, dtype: np.dtype) -> dict:
    taps = kh * kw
    return {
        "direct": 5.0 * taps + 5,
        "separable": rank * (3.5 * (kh + kw) + 45),
        "fft": 230.0 + (150 if small else 0),
    }


def _opencv_costs(kh: int, kw: int, rank: int, small: bool, dtype: np.dtype) -> dict:
    # fitted to benchmarks/scaling.py --methods (float32, 1-16 MP, 2026-12-03), scaled to
    # 12 MP: any pass costs at least a pass over memory (about 18 ms); filter2D then 0.6 ms
    # a tap (3x3 18 ms, 5x5 21, 7x7 40, 9x9 52), 1-D passes 0.85 ms a tap (5x5 19 ms, 9x9
    # 21); convcli's block FFT about 70 ms plus 0.4 ms per tap of the kernel's side (63x63
    # Gaussian at 16 MP: two passes 145-161 ms, the FFT 127 ms; 15x15: 37 and 107)
    taps = kh * kw
    dft = taps >= (130 if dtype == np.float32 else 50)
    spatial = max(18.0, 6 + 0.6 * taps * (1 if dtype == np.float32 else 2))
    # above the threshold filter2D is OpenCV's DFT whichever method is asked: call it fft
    return {
        "direct": spatial if not dft else float("inf"),
        "separable": rank * max(18.0, 0.85 * (kh + kw)) + 4 * (rank - 1),
        "fft": 70.0 + 0.4 * max(kh, kw) if dft else float("inf"),
    }


def _torch_costs(kh: int, kw: int, rank: int, small: bool, dtype: np.dtype) -> dict:
    taps = kh * kw
    return {
        "direct": 280 + 0.75 * taps,
        "separable": rank * 560.0,
        "fft": 600 + 10 * math.log2(taps),
    }


_COSTS = {"scipy": _scipy_costs, "opencv": _opencv_costs, "torch": _torch_costs}


# -- planning ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Options:
    """How to convolve: the same vocabulary as ``convcli apply``."""

    mode: Mode = Mode.SAME
    boundary: Boundary = Boundary.REFLECT
    fill_value: float = 0.0
    correlate: bool = False
    normalize: bool = False
    method: str = "auto"
    keep_edges: bool = False  # copy the pixels a kernel does not fit over (Pillow's way)

    @classmethod
    def make(
        cls,
        mode: str | Mode = "same",
        boundary: str | Boundary = "reflect",
        fill_value: float = 0.0,
        correlate: bool = False,
        normalize: bool = False,
        method: str = "auto",
        keep_edges: bool = False,
    ) -> Options:
        if method not in METHODS:
            raise UsageError(f"method {method!r} is not one of {', '.join(METHODS)}")
        if not isinstance(fill_value, numbers.Real):  # complex, strings, None
            raise UsageError(f"fill value must be a real number, got {fill_value!r}")
        if not math.isfinite(fill_value):
            raise UsageError(f"fill value must be a finite number, got {fill_value}")
        if keep_edges and as_mode(mode) is not Mode.SAME:
            raise UsageError("copying the edge pixels (--compat pillow) needs --mode same")
        return cls(
            as_mode(mode),
            as_boundary(boundary),
            float(fill_value),
            correlate,
            normalize,
            method,
            keep_edges,
        )


def plan_kernel(
    kernel: Kernel,
    options: Options,
    image_shape: tuple[int, int] | None = None,
    backend: str = "scipy",
    dtype: Any = np.float64,
) -> Plan:
    """Prepare one kernel: orientation, alignment, extension and method."""
    if options.normalize:
        kernel = kernel.normalized()
    k = kernel.as_2d()
    kh, kw = k.shape
    if options.correlate:
        weights = k
        factors = kernel.factors
        # Unflipped, the default element on the output pixel is k // 2, as in np.correlate,
        # scipy.ndimage and OpenCV (scipy.signal.correlate2d and torch differ for even sizes).
        centre = kernel.origin_2d if kernel.origin is not None else (kh // 2, kw // 2)
    else:
        weights = k[::-1, ::-1]
        factors = tuple((c[::-1], r[::-1]) for c, r in kernel.factors)
        oy, ox = kernel.origin_2d
        centre = (kh - 1 - oy, kw - 1 - ox)
    pads = (
        pad_widths(options.mode, kh, centre[0]),
        pad_widths(options.mode, kw, centre[1]),
    )
    if image_shape is not None and options.mode is Mode.VALID:
        h, w = image_shape
        if kh > h or kw > w:
            msg = (
                f"the {kh}x{kw} kernel {kernel.name!r} is larger than the {h}x{w} input; "
                "valid mode needs a kernel no larger than the input (try --mode same)"
            )
            raise InputError(msg)
    if options.method == "auto":
        choice = choose_method((kh, kw), kernel.rank, image_shape, backend=backend, dtype=dtype)
    else:
        choice = MethodChoice(options.method, f"--method {options.method}")
    return Plan(
        weights=np.ascontiguousarray(weights),
        factors=factors,
        centre=centre,
        pads=pads,
        method=choice.method,
        offset=kernel.offset,
        reason=choice.reason,
    )


def combine(results: list[np.ndarray], how: str) -> np.ndarray:
    """Combine the results of a bank's members (all the same shape); ``stack`` puts them one
    after another on the first (plane) axis."""
    if how == "stack":
        return np.concatenate(results, axis=0)
    if how == "magnitude":
        total = results[0] * results[0]
        for r in results[1:]:
            total += r * r
        return np.sqrt(total, out=total)
    if how == "sum":
        return np.sum(results, axis=0, dtype=results[0].dtype)
    if how == "mean":
        return np.mean(results, axis=0, dtype=results[0].dtype)
    if how == "max":
        return np.max(results, axis=0)
    if how == "min":
        return np.min(results, axis=0)
    raise UsageError(f"combine {how!r} is not one of {', '.join(COMBINES)}")


def work_dtype(dtype: np.dtype) -> np.dtype:
    """float32 where it is exact enough for the input, float64 otherwise.

    8-bit images and float32 data keep float32 (the error stays far below half a level of an
    8-bit result); 16-bit and wider integers and float64 data are computed in float64.
    """
    if dtype in (np.uint8, np.int8, np.bool_, np.float16, np.float32):
        return np.dtype(np.float32)
    return np.dtype(np.float64)
