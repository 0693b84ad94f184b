"""convolve(): the numeric core. Kernels, chains and banks over 1-D signals, 2-D arrays and
multi-channel images, with the output size, alignment and boundaries of scipy.

Every result is defined one way (see :mod:`convcli.compute.boundary`): extend the input by the
boundary rule as far as the mode needs, then take the valid correlation with the kernel
flipped (convolution) or as given (``correlate=True``). Backends and methods differ only in how
they compute that, never in what.
"""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from convcli.compute.backends import get_backend
from convcli.compute.boundary import as_mode, output_length
from convcli.compute.evaluate import StepInfo, StripEngine, evaluate_band
from convcli.compute.plan import Options, choose_method, plan_kernel, work_dtype
from convcli.errors import InputError, UsageError
from convcli.kernels.model import AnyKernel, Kernel, KernelBank, KernelChain
from convcli.kernels.registry import for_ndim, get_kernel
from convcli.numeric import finite

__all__ = [
    "Options",
    "StepInfo",
    "as_operation",
    "check_finite_input",
    "check_request",
    "check_signal_kernels",
    "choose_method",
    "convolve",
    "output_shape",
    "work_dtype",
]


def as_operation(kernel: Any, combine: str | None = None) -> AnyKernel:
    """Turn what the caller gave (a spec, a kernel, an array, a list of them) into one
    kernel, chain or bank. A list is a chain, or a bank when ``combine`` is given."""
    if isinstance(kernel, str | Kernel | KernelBank | KernelChain):
        item = get_kernel(kernel)
        if combine is not None:
            if isinstance(item, KernelBank):
                return item.with_combine(combine)
            return KernelBank((item,), combine=combine, name=item.name)
        return item
    if isinstance(kernel, np.ndarray) and kernel.ndim in (1, 2, 3):  # (nested lists three
        return as_operation(_array_kernel(kernel), combine)  # deep are a chain)
    if _nesting(kernel) <= 2:  # numbers, or rows of numbers: one kernel
        return as_operation(Kernel(_plain_rows(kernel), name="array"), combine)
    if len(kernel) == 1:  # one bank with --combine: its own combine is overridden
        return as_operation(kernel[0], combine)
    items = [as_operation(k) for k in kernel]
    if not items:
        raise UsageError("no kernel given")
    if combine is not None:
        name = ",".join(i.name for i in items)
        return KernelBank(tuple(items), combine=combine, name=name)
    if len(items) == 1:
        return items[0]
    return KernelChain(tuple(items), name="+".join(i.name for i in items))


#: arrays kept by value: many small ones, and a few large ones (a 255x255 kernel's SVD takes
#: 11 ms, hashing its values 0.12 ms); larger arrays are checked and factored every call
_SMALL_KERNEL_VALUES = 4096
_LARGE_KERNEL_BYTES = 1 << 20


def _array_kernel(values: np.ndarray) -> Kernel:
    """The kernel of an array's values. Arrays of up to a megabyte are kept by value: a loop
    convolving with the same array checks it and finds its factors (an SVD) once, not in
    every call."""
    if values.dtype.kind not in "biuf" or values.nbytes > _LARGE_KERNEL_BYTES:
        return Kernel(values, name="array")
    kept = _kept_array_kernel if values.size <= _SMALL_KERNEL_VALUES else _kept_large_kernel
    return kept(values.dtype.str, values.shape, values.tobytes())


def _kernel_of(dtype: str, shape: tuple[int, ...], data: bytes) -> Kernel:
    return Kernel(np.frombuffer(data, dtype).reshape(shape), name="array")


_kept_array_kernel = functools.lru_cache(maxsize=64)(_kernel_of)
#: at most a few megabytes held: each entry is its values twice (key and kernel)
_kept_large_kernel = functools.lru_cache(maxsize=4)(_kernel_of)


def _plain_rows(value: Any) -> Any:
    """Rows given as 1-D arrays (``[np.array([1, 2]), np.array([3, 4])]``) as lists, which
    the kernel model checks like any rows of numbers."""
    if isinstance(value, list | tuple) and any(isinstance(v, np.ndarray) for v in value):
        return [v.tolist() if isinstance(v, np.ndarray) else v for v in value]
    return value


def _nesting(value: Any) -> int:
    """How deeply numbers are nested: 1 for [1, 2], 2 for [[1, 2]], 3 for a list of those."""
    if isinstance(value, np.ndarray):
        return value.ndim
    if isinstance(value, Sequence) and not isinstance(value, str):
        return 1 + (_nesting(value[0]) if len(value) else 0)
    return 0 if isinstance(value, int | float | np.number) else 99


def convolve(
    x: Any,
    kernel: Any,
    *,
    mode: str = "same",
    boundary: str = "reflect",
    fill_value: float = 0.0,
    correlate: bool = False,
    normalize: bool = False,
    combine: str | None = None,
    method: str = "auto",
    backend: str = "auto",
    device: str = "auto",
    channel_axis: int | None = -1,
    dtype: Any = None,
    keep_edges: bool = False,
) -> np.ndarray:
    """Convolve a 1-D signal, a 2-D array or a multi-channel image with a kernel.

    Parameters
    ----------
    x
        1-D signal, 2-D array, or 3-D array with channels on ``channel_axis`` (last by default,
        as Pillow and OpenCV give them); each channel is filtered on its own. With
        ``channel_axis=None`` a 3-D array is a volume, convolved in 3-D (as
        ``scipy.ndimage.convolve`` in N dimensions) with 3-D kernels, or 1-D and 2-D ones
        along its last axes; a 3-D array is a volume only when it is said so.
    kernel
        A spec (``"gaussian:sigma=2"``), a :class:`Kernel`/:class:`KernelBank`, a 1-D or 2-D
        array (for a volume also a 3-D numpy array), or a list of these applied one after
        another (a chain; a bank with ``combine``).
    mode
        ``full``, ``same`` or ``valid``: output size and alignment of
        ``scipy.signal.convolve2d``.
    boundary
        ``fill`` (with ``fill_value``), ``reflect``, ``mirror``, ``nearest`` or ``wrap``.
    correlate
        Do not flip the kernel (what ``torch.nn.Conv2d`` computes).
    normalize
        Divide each kernel by its sum.
    combine
        With a list of kernels: apply each to ``x`` and combine (``stack``, ``magnitude``,
        ``sum``, ``mean``, ``max``, ``min``); ``stack`` adds a new first axis.
    method
        ``auto``, ``direct``, ``separable`` or ``fft``; all give the same result within float
        tolerance.
    backend, device
        ``auto`` or a backend name; ``device`` is for torch.
    dtype
        Computation dtype; by default float32 for 8-bit and float32 input, float64 otherwise.
    keep_edges
        Copy the input where the kernel reaches past the image instead of filtering there
        (Pillow's ImageFilter.Kernel; ``same`` mode only).

    Returns
    -------
    numpy.ndarray
        Floating-point result.

    Examples
    --------
    >>> convolve([1, 2, 3, 4, 5, 4, 3, 2, 1], [0.25] * 4, mode="valid").tolist()
    [2.5, 3.5, 4.0, 4.0, 3.5, 2.5]
    >>> convolve([[1, 2, 3], [4, 5, 6], [7, 8, 9]], "sobel-x", boundary="fill").tolist()
    [[-9.0, -6.0, 9.0], [-20.0, -8.0, 20.0], [-21.0, -6.0, 21.0]]
    """
    options = Options.make(mode, boundary, fill_value, correlate, normalize, method, keep_edges)
    operation = as_operation(kernel, combine)
    arr = np.asarray(x)
    if arr.dtype.kind not in "biuf":
        raise InputError(f"expected a numeric array, got dtype {arr.dtype}")
    if arr.ndim not in (1, 2, 3):
        raise InputError(f"expected a 1-D signal, a 2-D array or an image, got {arr.ndim}-D")
    if arr.size == 0:
        raise InputError("the input array is empty")
    signal, volume = arr.ndim == 1, arr.ndim == 3 and channel_axis is None
    if signal or volume:
        check_finite_input(arr)  # a signal or a volume: checked first, as always
    if signal:
        operation = for_ndim(operation, 1)
        check_signal_kernels(operation)
    compute = np.dtype(dtype) if dtype is not None else work_dtype(arr.dtype)
    if volume:
        from convcli.compute.volume import convolve_volume

        chosen = get_backend(
            backend, boundary=options.boundary, fill=options.fill_value, device=device
        )
        return convolve_volume(arr, for_ndim(operation, 3), options, chosen, compute)
    planes, restore = _to_planes(arr, channel_axis, compute)
    chosen = get_backend(backend, boundary=options.boundary, fill=options.fill_value, device=device)
    # the banded evaluator with one band: every entry point computes the same numbers
    engine = StripEngine(operation, options, chosen, planes.shape[1:], dtype=compute)
    telling = None
    if not signal:  # (a signal was checked already)
        telling = _telling_rows(engine) if arr.dtype.kind == "f" else None
        if telling is None:
            check_finite_input(arr)
    out = evaluate_band(engine, lambda rows: _rows_of(planes, rows), 0, engine.out_shape[0])
    if telling is not None and not _rows_finite(out, telling):
        check_finite_input(arr)  # NaN or infinity came in, or finite sums overflowed
    return restore(out, engine.stacked)


def _telling_rows(engine: StripEngine) -> slice | None:
    """Output rows whose being finite shows the whole input finite, so that they are checked
    after the filter instead of every input sample before it (a full pass: a sixth of a
    3x3 filter's time): every ``kh``-th row from the first extended row on, and the last.

    For one kernel whose every tap is nonzero, each of those rows reads ``kh`` input rows
    (all of them, between the rows) across every column, each sample through a nonzero
    weight: a NaN or an infinity anywhere makes one of its sums NaN or infinite, by every
    method (the FFT spreads it further; sums never drop a nonzero term). None where that
    does not hold: a chain, a bank, kept edges, a kernel with a zero tap (a shift reads
    some samples into no output at all); and off the OpenCV backend: its sum of strided
    rows is what makes the check cheaper (numpy's takes longer than checking the input),
    and numpy's arithmetic would warn about NaN before the refusal."""
    if engine.backend.name != "opencv":
        return None
    steps = engine.steps()
    if len(steps) != 1 or steps[0].member_of or engine.options.keep_edges:
        return None
    plan = steps[0].plan
    if not np.all(plan.weights):
        return None
    return slice(plan.pads[0][0], None, plan.shape[0])


def _rows_finite(out: np.ndarray, rows: slice) -> bool:
    """Whether each plane's rows ``rows`` and its last row hold only finite values: their
    sum (OpenCV's, in float64) is finite exactly then, unless it overflows (a false alarm
    that the caller settles by checking the input)."""
    cv2 = sys.modules["cv2"]
    total = 0.0
    for plane in out:
        for part in (plane[rows], plane[-1:]):
            if part.size >= 2**31:  # more than OpenCV sums in one call
                total += 0.0 if finite(part) else math.inf
            else:
                total += cv2.sumElems(part)[0]
    return math.isfinite(total)


def _rows_of(planes: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The planes at sorted rows: the planes themselves (no copy) when all are wanted."""
    if len(rows) == planes.shape[1]:
        return planes
    return planes[:, rows]


#: why NaN and infinity are refused rather than convolved
NOT_FINITE = (
    "the input holds NaN or infinity, which each method would spread over a different "
    "part of the result (direct sums reach a kernel's width, FFTs the whole signal); "
    "replace them first (numpy.nan_to_num, or a mask)"
)


def check_finite_input(arr: np.ndarray) -> None:
    """Refuse floating-point input holding NaN or infinity, on every backend and method alike
    (as the command line refuses such files): the same input must never give results that
    depend on which algorithm ran."""
    if arr.dtype.kind == "f" and not finite(arr):
        raise InputError(NOT_FINITE)


def check_signal_kernels(operation: AnyKernel) -> None:
    """A 1-D signal takes only 1-D kernels (one row)."""
    kernels = [operation] if isinstance(operation, Kernel) else operation.leaves()
    for k in kernels:
        if k.ndim == 3 or (k.ndim == 2 and k.shape[0] != 1):
            msg = f"kernel {k.name!r} is {k.size_text}: a 1-D signal needs a 1-D kernel"
            raise InputError(msg)


def _to_planes(
    arr: np.ndarray, channel_axis: int | None, dtype: np.dtype
) -> tuple[np.ndarray, Any]:
    """(N, H, W) planes in the compute dtype, and the function that gives the result back its
    caller's layout (with a leading stack axis when a bank stacked)."""
    if arr.ndim == 1:
        planes = np.ascontiguousarray(arr, dtype=dtype)[np.newaxis, np.newaxis, :]

        def restore_1d(out: np.ndarray, stacked: int | None) -> np.ndarray:
            return out[:, 0, :] if stacked else out[0, 0, :]

        return planes, restore_1d
    if arr.ndim == 2:
        # C order (a copy only of a transposed, Fortran-ordered or broadcast view, which some
        # backends cannot take); backends never write into it
        planes = np.ascontiguousarray(arr, dtype=dtype)[np.newaxis]

        def restore_2d(out: np.ndarray, stacked: int | None) -> np.ndarray:
            return out if stacked else out[0]

        return planes, restore_2d
    axis = channel_axis % 3 if channel_axis is not None else 2
    moved = np.moveaxis(arr, axis, 0)
    channels = moved.shape[0]
    planes = np.ascontiguousarray(moved, dtype=dtype)

    def restore(out: np.ndarray, stacked: int | None) -> np.ndarray:
        if stacked:
            out = out.reshape(stacked, channels, *out.shape[1:])
            return np.moveaxis(out, 1, axis + 1)
        return np.moveaxis(out, 0, axis)

    return planes, restore


def output_shape(
    mode: str, image_shape: tuple[int, int], kernel_shape: tuple[int, int]
) -> tuple[int, int]:
    """The (H, W) a mode gives for an image and kernel shape."""
    m = as_mode(mode)
    return (
        output_length(m, image_shape[0], kernel_shape[0]),
        output_length(m, image_shape[1], kernel_shape[1]),
    )


def check_request(
    operation: AnyKernel, options: Options, *, backend: str = "auto", device: str = "auto"
) -> None:
    """Raise the usage errors a request has before any input is read: an unknown or missing
    backend, a zero-sum kernel to normalize."""
    get_backend(backend, boundary=options.boundary, fill=options.fill_value, device=device)
    leaves = [operation] if isinstance(operation, Kernel) else operation.leaves()
    for leaf in leaves:
        plan_kernel(leaf, options)
