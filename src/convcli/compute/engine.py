"""convolve(): the numeric core. Kernels, chains and banks over 1-D signals, 2-D arrays and
multi-channel images, with the output size, alignment and boundaries of scipy.

Every result is defined one way (see :mod:`convcli.compute.boundary`): extend the input by the
boundary rule as far as the mode needs, then take the valid correlation with the kernel
flipped (convolution) or as given (``correlate=True``). Backends and methods differ only in how
they compute that, never in what.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from convcli.compute.backends import Backend, Plan, get_backend, mark_computed
from convcli.compute.boundary import Boundary, Mode, as_boundary, as_mode, output_length, pad_widths
from convcli.errors import InputError, UsageError
from convcli.kernels.model import AnyKernel, Kernel, KernelBank, KernelChain
from convcli.kernels.registry import get_kernel
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
    taps = kh * kw
    dft = taps >= (130 if dtype == np.float32 else 50)
    spatial = 6 + 0.3 * taps * (1 if dtype == np.float32 else 2)
    # above the threshold filter2D is OpenCV's DFT whichever method is asked: call it fft
    return {
        "direct": spatial if not dft else float("inf"),
        "separable": rank * (8 + 0.25 * (kh + kw)) + 4 * (rank - 1),
        "fft": 55.0 if dft else float("inf"),
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
    method = options.method
    if method == "auto":
        method = choose_method(
            (kh, kw), kernel.rank, image_shape, backend=backend, dtype=dtype
        ).method
    return Plan(
        weights=np.ascontiguousarray(weights),
        factors=factors,
        centre=centre,
        pads=pads,
        method=method,
        offset=kernel.offset,
    )


# -- running -----------------------------------------------------------------------------------
@dataclass
class _Run:
    backend: Backend
    options: Options
    stacked: int | None = None  # number of bank members stacked on the first axis


def _apply(run: _Run, planes: np.ndarray, item: AnyKernel) -> np.ndarray:
    if isinstance(item, Kernel):
        return _apply_kernels(run, planes, [item])[0]
    if isinstance(item, KernelChain):
        for step in item.steps:
            planes = _apply(run, planes, step)
        return planes
    return _apply_bank(run, planes, item)


def _apply_kernels(run: _Run, planes: np.ndarray, kernels: list[Kernel]) -> list[np.ndarray]:
    shape = (planes.shape[1], planes.shape[2])
    plans = [plan_kernel(k, run.options, shape, run.backend.name, planes.dtype) for k in kernels]
    outs = run.backend.correlate_many(planes, plans, run.options.boundary, run.options.fill_value)
    outs = [o + p.offset if p.offset else o for o, p in zip(outs, plans, strict=True)]
    if run.options.keep_edges:
        for out, plan in zip(outs, plans, strict=True):
            _copy_edges(planes, out, plan)
    return outs


def _copy_edges(planes: np.ndarray, out: np.ndarray, plan: Plan) -> None:
    """Put back the input where the kernel reaches past the image (``same`` mode only)."""
    (top, bottom), (left, right) = plan.pads
    h, w = out.shape[1:]
    for rows, cols in (
        (slice(0, top), slice(None)),
        (slice(h - bottom, h), slice(None)),
        (slice(None), slice(0, left)),
        (slice(None), slice(w - right, w)),
    ):
        out[:, rows, cols] = planes[:, rows, cols]


def _apply_bank(run: _Run, planes: np.ndarray, bank: KernelBank) -> np.ndarray:
    if all(isinstance(m, Kernel) for m in bank.members):
        results = _apply_kernels(run, planes, [m for m in bank.members if isinstance(m, Kernel)])
    else:
        results = [_apply(run, planes, m) for m in bank.members]
    shapes = {r.shape for r in results}
    if len(shapes) > 1:
        sizes = ", ".join(m.size_text for m in bank.members)
        msg = (
            f"kernel bank {bank.name!r}: members of different sizes ({sizes}) give results "
            f"of different sizes in {run.options.mode.value} mode; use --mode same"
        )
        raise UsageError(msg)
    return combine(results, bank.combine, run, bank.name)


def combine(
    results: list[np.ndarray], how: str, run: _Run | None = None, name: str = "bank"
) -> np.ndarray:
    """Combine the results of a bank's members (all the same shape)."""
    if how == "stack":
        if run is not None:
            if run.stacked is not None:
                msg = f"kernel bank {name!r}: only one bank in a chain may use combine=stack"
                raise UsageError(msg)
            run.stacked = len(results)
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
    if _nesting(kernel) <= 2:  # numbers, or rows of numbers: one kernel
        return as_operation(Kernel(kernel, name="array"), combine)
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


def _nesting(value: Any) -> int:
    """How deeply numbers are nested: 1 for [1, 2], 2 for [[1, 2]], 3 for a list of those."""
    if isinstance(value, np.ndarray):
        return value.ndim
    if isinstance(value, Sequence) and not isinstance(value, str):
        return 1 + (_nesting(value[0]) if len(value) else 0)
    return 0 if isinstance(value, int | float | np.number) else 99


def work_dtype(dtype: np.dtype) -> np.dtype:
    """float32 where it is exact enough for the input, float64 otherwise.

    8-bit images and float32 data keep float32 (the error stays far below half a level of an
    8-bit result); 16-bit and wider integers and float64 data are computed in float64.
    """
    if dtype in (np.uint8, np.int8, np.bool_, np.float16, np.float32):
        return np.dtype(np.float32)
    return np.dtype(np.float64)


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
        as Pillow and OpenCV give them); each channel is filtered on its own.
    kernel
        A spec (``"gaussian:sigma=2"``), a :class:`Kernel`/:class:`KernelBank`, a 1-D or 2-D
        array, or a list of these applied one after another (a chain; a bank with
        ``combine``).
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
    if arr.ndim not in (1, 2, 3) or (arr.ndim == 3 and channel_axis is None):
        raise InputError(f"expected a 1-D signal, a 2-D array or an image, got {arr.ndim}-D")
    if arr.size == 0:
        raise InputError("the input array is empty")
    if arr.ndim == 1:
        _check_1d(operation)
    compute = np.dtype(dtype) if dtype is not None else work_dtype(arr.dtype)
    planes, restore = _to_planes(arr, channel_axis, compute)
    run = _Run(
        get_backend(backend, boundary=options.boundary, fill=options.fill_value, device=device),
        options,
    )
    mark_computed()
    out = _apply(run, planes, operation)
    return restore(out, run.stacked)


def _check_1d(operation: AnyKernel) -> None:
    kernels = [operation] if isinstance(operation, Kernel) else operation.leaves()
    for k in kernels:
        if k.ndim == 2 and k.shape[0] != 1:
            msg = f"kernel {k.name!r} is {k.size_text}: a 1-D signal needs a 1-D kernel"
            raise InputError(msg)


def _to_planes(
    arr: np.ndarray, channel_axis: int | None, dtype: np.dtype
) -> tuple[np.ndarray, Any]:
    """(N, H, W) planes in the compute dtype, and the function that gives the result back its
    caller's layout (with a leading stack axis when a bank stacked)."""
    if arr.ndim == 1:
        planes = arr.astype(dtype, copy=False)[np.newaxis, np.newaxis, :]

        def restore_1d(out: np.ndarray, stacked: int | None) -> np.ndarray:
            return out[:, 0, :] if stacked else out[0, 0, :]

        return planes, restore_1d
    if arr.ndim == 2:
        planes = arr.astype(dtype, copy=False)[np.newaxis]  # backends never write into it

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
    operation: AnyKernel, *, backend: str = "auto", device: str = "auto", **options: Any
) -> None:
    """Raise the usage errors a request has before any input is read: an unknown or missing
    backend, a zero-sum kernel to normalize, a bad option value."""
    opts = Options.make(**options)
    get_backend(backend, boundary=opts.boundary, fill=opts.fill_value, device=device)
    leaves = [operation] if isinstance(operation, Kernel) else operation.leaves()
    for leaf in leaves:
        plan_kernel(leaf, opts)


@dataclass(frozen=True)
class StepInfo:
    """One kernel of a request as it would run (for --explain)."""

    kernel: Kernel  # after normalisation
    plan: Plan
    reason: str
    in_shape: tuple[int, int]
    out_shape: tuple[int, int]
    member_of: str = ""  # the bank it belongs to, if any


def describe(
    operation: AnyKernel,
    image_shape: tuple[int, int],
    *,
    backend: str = "auto",
    device: str = "auto",
    dtype: Any = np.float64,
    **options: Any,
) -> tuple[str, list[StepInfo], tuple[int, int]]:
    """What ``convolve`` would do on an image of ``image_shape`` computed in ``dtype``: the
    backend, every kernel's plan (method and why) and the output shape. Nothing is
    computed."""
    opts = Options.make(**options)
    chosen = get_backend(backend, boundary=opts.boundary, fill=opts.fill_value, device=device)
    steps: list[StepInfo] = []

    def walk(item: AnyKernel, shape: tuple[int, int], bank: str = "") -> tuple[int, int]:
        if isinstance(item, KernelChain):
            for step in item.steps:
                shape = walk(step, shape, bank)
            return shape
        if isinstance(item, KernelBank):
            shapes = {walk(m, shape, item.name) for m in item.members}
            return shapes.pop() if len(shapes) == 1 else shape
        kernel = item.normalized() if opts.normalize else item
        plan = plan_kernel(item, opts, shape, chosen.name, dtype)
        out = output_shape(opts.mode.value, shape, plan.shape)
        if opts.method == "auto":
            reason = choose_method(
                plan.shape, kernel.rank, shape, backend=chosen.name, dtype=dtype
            ).reason
        else:
            reason = f"--method {opts.method}"
        steps.append(StepInfo(kernel, plan, reason, shape, out, bank))
        return out

    final = walk(operation, image_shape)
    return chosen.name, steps, final
