"""Volumes: 3-D arrays convolved with 3-D kernels, as ``scipy.ndimage.convolve``/``correlate``
and ``scipy.signal.convolve`` compute them in N dimensions.

A volume is (D, H, W): slices along z, each an image of H rows. Its result is defined as
every result of convcli is (see :mod:`convcli.compute.boundary`): extend each axis by the
boundary rule as far as the mode needs, then take the valid correlation with the kernel
flipped on every axis (convolution) or as given. 1-D and 2-D kernels on a volume are the 3-D
kernels with leading axes of one tap (a 2-D kernel filters each slice on its own).

Like the 2-D evaluator (:mod:`convcli.compute.evaluate`), the engine computes any slab of
output slices from just the input slices it needs (its halo along z), and the numbers do not
depend on the cut: each slice is computed from the same extended values by the same calls,
and the steps whose slices are not computed independently (an FFT's transform, torch's
algorithm choice) run in tiles of slices at fixed places. So a volume held in memory and one
streamed slab by slab give the same result, bit for bit.

Methods: ``separable`` kernels (rank 1 on every axis) run as one 1-D pass per axis of more
than one tap; ``direct`` correlates with every tap; ``fft`` transforms tiles of slices.
Backends: scipy (ndimage and scipy.signal), OpenCV (2-D passes over each slice and a 1-D pass
along z; its FFT is scipy's, OpenCV having no 3-D transform), torch (``conv3d``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np

from convcli.compute.boundary import Boundary, output_length, pad, pad_widths, source_index
from convcli.compute.evaluate import Window
from convcli.compute.pixels import Layout
from convcli.compute.plan import MethodChoice, Options, combine
from convcli.errors import InputError, UsageError
from convcli.kernels.model import AnyKernel, Kernel, KernelBank, KernelChain

Shape3 = tuple[int, int, int]

#: the backends that filter volumes (each in its own way, with the same numbers)
VOLUME_BACKENDS = ("scipy", "opencv", "torch")


def as_volume_kernel(kernel: Kernel) -> Kernel:
    """The kernel as 3-D: a 1-D or 2-D kernel gains leading axes of one tap (its origin
    with them), so that it filters along the last axes only."""
    if kernel.ndim == 3:
        return kernel
    lead = 3 - kernel.ndim
    matrix = kernel.matrix.reshape((1,) * lead + kernel.shape)
    origin = None if kernel.origin is None else (0,) * lead + tuple(kernel.origin)
    return replace(kernel, matrix=matrix, origin=origin)


def choose_volume_method(
    kernel_shape: Shape3, separable: bool, *, backend: str = "scipy", dtype: Any = np.float64
) -> MethodChoice:
    """The cheapest exact way to run a 3-D kernel on a volume (pure: shapes, separability,
    backend). Costs are rough nanoseconds per voxel, measured on a 256^3 float32 volume:
    ndimage and OpenCV pay per tap, a separable kernel per tap of each axis, and an FFT a
    fixed price (OpenCV's FFT is scipy's).

    >>> choose_volume_method((17, 17, 17), True).method
    'separable'
    >>> choose_volume_method((3, 3, 3), False).method
    'direct'
    >>> choose_volume_method((9, 9, 9), False).method
    'fft'
    """
    taps = math.prod(kernel_shape)
    axes = [n for n in kernel_shape if n > 1]
    per_tap = {"scipy": 1.2, "opencv": 0.35, "torch": 0.6}.get(backend, 1.2)
    costs = {
        "direct": per_tap * taps + 2.0,
        "separable": 1.5 * sum(axes) + 3.0 * len(axes),
        "fft": 120.0 if backend != "torch" else 160.0,
    }
    if not separable or len(axes) < 2:
        costs.pop("separable")
    if taps == 1:
        costs.pop("fft")
    method = min(costs, key=costs.__getitem__)
    size = "x".join(map(str, kernel_shape))
    if method == "direct":
        reason = f"{taps} taps: a direct pass is cheapest on {backend}"
    elif method == "separable":
        reason = f"a separable kernel: {len(axes)} passes of 1-D taps instead of {taps} per voxel"
    else:
        reason = f"{size}, not separable: FFT beats {taps} taps per voxel on {backend}"
    return MethodChoice(method, reason)


@dataclass(frozen=True, eq=False)
class VolumeStep:
    """One kernel of a volume request as it runs."""

    kernel: Kernel  # 3-D, normalised if asked
    weights: np.ndarray  # 3-D correlation weights (flipped for convolution)
    factors: tuple[np.ndarray, ...] | None  # correlation vectors per axis (separable)
    centre: Shape3  # the weight on the output voxel
    pads: tuple[tuple[int, int], ...]  # extension before/after along z, y, x
    method: str
    reason: str
    in_shape: Shape3
    out_shape: Shape3
    #: output slices per tile for steps whose slices are not computed independently
    tile: int | None = None
    member_of: str = ""
    offset: float = 0.0

    @property
    def shape(self) -> Shape3:
        return (int(self.weights.shape[0]), int(self.weights.shape[1]), int(self.weights.shape[2]))


#: the unfolded copy torch's conv3d may make of one tile (it holds every tap of every voxel)
TORCH_UNFOLD_BYTES = 256 * 1024 * 1024


def plan_volume_kernel(
    kernel: Kernel,
    options: Options,
    in_shape: Shape3,
    backend: str = "scipy",
    dtype: Any = np.float64,
    member_of: str = "",
) -> VolumeStep:
    """Orientation, alignment, extension and method of one kernel on a volume."""
    if options.keep_edges:
        raise UsageError("copying the edge pixels (--compat pillow) is for images, not volumes")
    if options.normalize:
        kernel = kernel.normalized()
    kernel = as_volume_kernel(kernel)
    m, shape = kernel.matrix, kernel.shape
    shape3 = (shape[0], shape[1], shape[2])
    default = tuple((n - 1) // 2 for n in shape)
    vectors = kernel.axis_factors
    if options.correlate:
        weights = m
        centre = kernel.origin if kernel.origin is not None else tuple(n // 2 for n in shape)
        factors = vectors
    else:
        weights = m[::-1, ::-1, ::-1]
        origin = kernel.origin if kernel.origin is not None else default
        centre = tuple(n - 1 - o for n, o in zip(shape, origin, strict=True))
        factors = None if vectors is None else tuple(v[::-1] for v in vectors)
    if options.mode.value == "valid" and any(k > n for k, n in zip(shape, in_shape, strict=True)):
        size, data = "x".join(map(str, shape)), "x".join(map(str, in_shape))
        msg = (
            f"the {size} kernel {kernel.name!r} is larger than the {data} volume; valid "
            "mode needs a kernel no larger than the input (try --mode same)"
        )
        raise InputError(msg)
    if options.method == "auto":
        choice = choose_volume_method(shape3, vectors is not None, backend=backend, dtype=dtype)
    elif options.method == "separable" and vectors is None:
        msg = (
            f"kernel {kernel.name!r} is not separable (rank {kernel.rank}): "
            "--method separable needs a kernel that is the product of 1-D kernels"
        )
        raise UsageError(msg)
    else:
        choice = MethodChoice(options.method, f"--method {options.method}")
    pads = tuple(pad_widths(options.mode, n, c) for n, c in zip(shape, centre, strict=True))
    out = tuple(output_length(options.mode, n, k) for n, k in zip(in_shape, shape, strict=True))
    tile = None
    if choice.method == "fft" or backend == "torch":
        tile = -(-max(32, 4 * shape[0]) // 8) * 8
        if backend == "torch" and choice.method == "direct":
            # torch's CPU conv3d unfolds every tap of every voxel: a tile of slices at most
            # TORCH_UNFOLD_BYTES of that
            per_slice = math.prod(shape) * (in_shape[1] + shape[1]) * (in_shape[2] + shape[2]) * 8
            tile = max(1, min(tile, TORCH_UNFOLD_BYTES // per_slice))
    return VolumeStep(
        kernel,
        np.ascontiguousarray(weights),
        factors,
        (int(centre[0]), int(centre[1]), int(centre[2])),
        pads,
        choice.method,
        choice.reason,
        in_shape,
        (out[0], out[1], out[2]),
        tile,
        member_of,
        kernel.offset,
    )


class VolumeEngine:
    """Evaluates one operation (kernel, chain or bank) on any slab of output slices of an
    (N, D, H, W) stack of volumes (N: the planes filtered alike, as the channels of 2-D)."""

    def __init__(
        self,
        operation: AnyKernel,
        options: Options,
        backend: Any,
        shape: Shape3,
        dtype: Any = np.float64,
    ) -> None:
        if backend.name not in VOLUME_BACKENDS:
            raise UsageError(f"the {backend.name} backend does not filter volumes")
        self.operation = operation
        self.options = options
        self.backend = backend
        self.shape = shape
        self.dtype = np.dtype(dtype)
        self.stacked: int | None = None
        self._steps: dict[int, VolumeStep] = {}
        self.order: list[VolumeStep] = []
        self.out_shape = self._prepare(operation, shape, "")
        self.halo = self._halo(operation)

    def _prepare(self, item: AnyKernel, shape: Shape3, bank: str) -> Shape3:
        if isinstance(item, KernelChain):
            for step in item.steps:
                shape = self._prepare(step, shape, bank)
            return shape
        if isinstance(item, KernelBank):
            shapes = {self._prepare(m, shape, item.name) for m in item.members}
            if len(shapes) > 1:
                raise UsageError(
                    f"kernel bank {item.name!r}: members of different sizes give results of "
                    f"different sizes in {self.options.mode.value} mode; use --mode same"
                )
            if item.combine == "stack":
                if self.stacked is not None:
                    raise UsageError(
                        f"kernel bank {item.name!r}: only one bank in a chain may use combine=stack"
                    )
                self.stacked = len(item.members)
            return shapes.pop()
        planned = plan_volume_kernel(
            item, self.options, shape, self.backend.name, self.dtype, member_of=bank
        )
        self._steps[id(item)] = planned
        self.order.append(planned)
        return planned.out_shape

    def _halo(self, item: AnyKernel) -> int:
        """Extra input slices a slab of outputs needs, at most (the chain's reach)."""
        if isinstance(item, KernelChain):
            return sum(self._halo(s) for s in item.steps)
        if isinstance(item, KernelBank):
            return max(self._halo(m) for m in item.members)
        done = self._steps[id(item)]
        return done.shape[0] - 1 + (2 * done.tile if done.tile else 0)

    # which input slices a set of output slices needs
    def needed(self, out_z: np.ndarray, item: AnyKernel | None = None) -> np.ndarray:
        item = self.operation if item is None else item
        if isinstance(item, KernelChain):
            for step in reversed(item.steps):
                out_z = self.needed(out_z, step)
            return out_z
        if isinstance(item, KernelBank):
            return np.unique(np.concatenate([self.needed(out_z, m) for m in item.members]))
        done = self._steps[id(item)]
        out_z = _whole_tiles(out_z, done)
        src = np.concatenate([self._block_sources(done, run) for run in _runs(out_z)])
        return np.unique(src[src >= 0])

    def _block_sources(self, step: VolumeStep, run: np.ndarray) -> np.ndarray:
        kz, top = step.shape[0], step.pads[0][0]
        ext = np.arange(int(run[0]) - top, int(run[-1]) - top + kz)
        return source_index(ext, step.in_shape[0], self.options.boundary)

    # the numbers
    def evaluate(
        self, window: Window, out_z: np.ndarray, item: AnyKernel | None = None
    ) -> np.ndarray:
        """The (N', len(out_z), H', W') outputs of ``item`` from a window of its input that
        holds at least :meth:`needed` slices."""
        item = self.operation if item is None else item
        if isinstance(item, KernelChain):
            wanted = [out_z]
            for step in reversed(item.steps[1:]):
                wanted.append(self.needed(wanted[-1], step))
            for step, zs in zip(item.steps, reversed(wanted), strict=True):
                window = Window(zs, self.evaluate(window, zs, step))
            return window.data
        if isinstance(item, KernelBank):
            return combine([self.evaluate(window, out_z, m) for m in item.members], item.combine)
        return self._kernel(window, out_z, self._steps[id(item)])

    def _kernel(self, window: Window, out_z: np.ndarray, step: VolumeStep) -> np.ndarray:
        parts = []
        for run in _runs(out_z):
            for piece, keep in _pieces(run, step):
                src = self._block_sources(step, piece)
                whole = (
                    step.tile is None
                    and len(piece) == step.out_shape[0]
                    and len(window.rows) == step.in_shape[0]
                    and int(window.rows[-1]) == step.in_shape[0] - 1
                )
                if whole and self._native(step):
                    # the whole volume at hand: ndimage extends z too, no gathered copy (the
                    # same arithmetic for every voxel as a gathered slab's)
                    out = _scipy_native(window.data, step, self.options, along_z=True)
                elif self._native(step):
                    block = window.get(src, self.options.fill_value)
                    out = _scipy_native(block, step, self.options)
                elif self._opencv_native(step):
                    block = window.get(src, self.options.fill_value)
                    out = _opencv(block, step, self.options.boundary)
                else:
                    block = window.get(src, self.options.fill_value)
                    ext = pad(
                        block,
                        (step.pads[1], step.pads[2]),
                        self.options.boundary,
                        self.options.fill_value,
                    )
                    out = valid_correlation(np.ascontiguousarray(ext), step, self.backend)
                if step.offset:
                    out = out + out.dtype.type(step.offset)
                parts.append(out if keep is None else out[:, keep])
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)

    def _native(self, step: VolumeStep) -> bool:
        """Whether ndimage extends the rows and columns itself (no padded copy): in same
        mode, except for a separable pass that cannot see the corners of a non-zero fill.
        Slices come extended along z already and are cropped to the valid ones, so every
        kept voxel is computed by the same arithmetic in any slab, bit for bit."""
        o = self.options
        return (
            self.backend.name == "scipy"
            and step.method in ("direct", "separable")
            and o.mode.value == "same"
            and not (step.method == "separable" and o.boundary is Boundary.FILL and o.fill_value)
        )

    def _opencv_native(self, step: VolumeStep) -> bool:
        """Whether OpenCV extends the rows and columns of each slice itself: same mode, a
        boundary it knows (not wrap, nor a fill other than 0)."""
        o = self.options
        return (
            self.backend.name == "opencv"
            and step.method in ("direct", "separable")
            and o.mode.value == "same"
            and o.boundary is not Boundary.WRAP
            and not (o.boundary is Boundary.FILL and o.fill_value)
        )


def _scipy_native(
    block: np.ndarray, step: VolumeStep, options: Options, along_z: bool = False
) -> np.ndarray:
    """ndimage on a block extended along z only: its own boundary rule extends the rows and
    columns (same mode), and the slices whose window reaches past the block are dropped.
    ``along_z``: the block is the whole volume, which ndimage extends along z as well."""
    from scipy import ndimage

    from convcli.compute.boundary import NDIMAGE

    mode, fill = NDIMAGE[options.boundary], options.fill_value
    origins = [c - n // 2 for c, n in zip(step.centre, step.shape, strict=True)]
    kz, cz = step.shape[0], step.centre[0]
    depth = block.shape[1] if along_z else block.shape[1] - kz + 1
    if step.method == "separable":
        assert step.factors is not None
        x = block
        if kz > 1 and along_z:
            x = ndimage.correlate1d(
                x, step.factors[0], axis=1, mode=mode, cval=fill, origin=origins[0]
            )
        elif kz > 1:
            x = _crop(ndimage.correlate1d(x, step.factors[0], axis=1, mode="constant"), kz, 1)
        for axis in (2, 3):
            vector = step.factors[axis - 1]
            if len(vector) > 1 or vector[0] != 1.0:
                x = ndimage.correlate1d(
                    x, vector, axis=axis, mode=mode, cval=fill, origin=origins[axis - 1]
                )
        return np.ascontiguousarray(x)
    out = np.empty((block.shape[0], depth, *block.shape[2:]), block.dtype)
    weights = step.weights.astype(block.dtype)
    for n in range(block.shape[0]):
        full = ndimage.correlate(block[n], weights, mode=mode, cval=fill, origin=origins)
        out[n] = full if along_z else full[cz : cz + depth]
    return out


def _runs(zs: np.ndarray) -> list[np.ndarray]:
    if len(zs) == 0:
        return []
    return np.split(zs, np.nonzero(np.diff(zs) != 1)[0] + 1)


def _whole_tiles(out_z: np.ndarray, step: VolumeStep) -> np.ndarray:
    if step.tile is None:
        return out_z
    starts = np.unique(out_z // step.tile) * step.tile
    return np.unique(np.minimum(starts[:, None] + np.arange(step.tile), step.out_shape[0] - 1))


def _pieces(run: np.ndarray, step: VolumeStep) -> list[tuple[np.ndarray, slice | None]]:
    """The run at once, or for a tiled step the whole tiles it touches, each with the slice
    of its slices that the run wants."""
    if step.tile is None:
        return [(run, None)]
    lo, hi, tile = int(run[0]), int(run[-1]) + 1, step.tile
    pieces = []
    for start in range(lo - lo % tile, hi, tile):
        stop = min(start + tile, step.out_shape[0])
        keep = slice(max(lo, start) - start, min(hi, stop) - start)
        whole = keep.start == 0 and keep.stop == stop - start
        pieces.append((np.arange(start, stop), None if whole else keep))
    return pieces


# -- the valid correlation of an extended block, per backend -----------------------------------
def _crop(x: np.ndarray, size: int, axis: int) -> np.ndarray:
    """ndimage (origin 0) puts the window starting at s on output s + size // 2."""
    n = x.shape[axis] - size + 1
    index = [slice(None)] * x.ndim
    index[axis] = slice(size // 2, size // 2 + n)
    return x[tuple(index)]


def valid_correlation(ext: np.ndarray, step: VolumeStep, backend: Any) -> np.ndarray:
    """(N, Z, H, W) extended planes -> their valid correlation with the step's weights."""
    if step.method == "fft":
        return _fft(ext, step)
    if backend.name == "opencv":
        return _opencv(ext, step)
    if backend.name == "torch":
        return _torch(ext, step, backend)
    return _scipy(ext, step)


def _scipy(ext: np.ndarray, step: VolumeStep) -> np.ndarray:
    from scipy import ndimage

    if step.method == "separable":
        assert step.factors is not None
        x = ext
        for axis, vector in enumerate(step.factors, start=1):
            if len(vector) == 1 and vector[0] == 1.0:
                continue  # a one-tap identity pass changes nothing
            x = ndimage.correlate1d(x, vector, axis=axis, mode="constant")
            x = _crop(x, len(vector), axis)
        return np.ascontiguousarray(x)
    out = np.empty((ext.shape[0], *_valid_shape(ext.shape[1:], step.shape)), ext.dtype)
    for n in range(ext.shape[0]):
        full = ndimage.correlate(ext[n], step.weights.astype(ext.dtype), mode="constant")
        for axis, size in enumerate(step.shape):
            full = _crop(full, size, axis)
        out[n] = full
    return out


def _valid_shape(shape: tuple[int, ...], kernel: Shape3) -> tuple[int, ...]:
    return tuple(n - k + 1 for n, k in zip(shape, kernel, strict=True))


def _fft(ext: np.ndarray, step: VolumeStep) -> np.ndarray:
    from scipy import signal

    # convolving with the weights flipped is correlating with them
    kernel = step.weights[::-1, ::-1, ::-1].astype(ext.dtype)[np.newaxis]
    out = signal.fftconvolve(ext, kernel, mode="valid", axes=(1, 2, 3))
    return out.astype(ext.dtype, copy=False)


def _opencv(ext: np.ndarray, step: VolumeStep, boundary: Boundary | None = None) -> np.ndarray:
    """2-D passes over each slice, then a 1-D pass along z (summed over the z taps in
    order). The slices come extended (``boundary`` None: OpenCV is anchored at the first
    weight so that it takes the valid correlation) or not (OpenCV extends them by
    ``boundary`` itself, anchored on the kernel's centre); the slices are always extended
    along z, whose valid part is kept."""
    import cv2

    from convcli.compute.boundary import OPENCV

    kz, kh, kw = step.shape
    n, z, h, w = ext.shape
    if boundary is None:
        zo, ho, wo = z - kz + 1, h - kh + 1, w - kw + 1
        border, anchor = cv2.BORDER_CONSTANT, (0, 0)
    else:
        zo, ho, wo = z - kz + 1, h, w
        border, anchor = int(getattr(cv2, OPENCV[boundary])), (step.centre[2], step.centre[1])
    out = np.empty((n, zo, ho, wo), ext.dtype)
    if step.method == "separable":
        assert step.factors is not None
        vz, vy, vx = (v.astype(ext.dtype) for v in step.factors)
        for p in range(n):
            flat = np.empty((z, ho * wo), ext.dtype)
            for i in range(z):
                sl = cv2.sepFilter2D(ext[p, i], -1, vx, vy, anchor=anchor, borderType=border)
                flat[i] = sl[:ho, :wo].reshape(-1)
            if kz == 1:
                out[p] = flat.reshape(zo, ho, wo)
                continue
            # (sepFilter2D never takes OpenCV's DFT, so each row is computed on its own)
            one = np.ones(1, ext.dtype)
            along = cv2.sepFilter2D(
                flat, -1, one, vz, anchor=(0, 0), borderType=cv2.BORDER_CONSTANT
            )
            out[p] = along[:zo].reshape(zo, ho, wo)
        return out
    weights = step.weights.astype(ext.dtype)
    # slice by slice (also where filter2D takes its DFT, each slice is a call of its own),
    # summed over the z taps in order
    for p in range(n):
        for i in range(zo):
            total = cv2.filter2D(ext[p, i], -1, weights[0], anchor=anchor, borderType=border)
            total = np.ascontiguousarray(total[:ho, :wo])
            for d in range(1, kz):
                sl = cv2.filter2D(ext[p, i + d], -1, weights[d], anchor=anchor, borderType=border)
                np.add(total, sl[:ho, :wo], out=total)
            out[p, i] = total
    return out


def _torch(ext: np.ndarray, step: VolumeStep, backend: Any) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    device = getattr(backend, "device", "cpu")
    dtype = torch.float64 if str(device) == "cpu" else torch.float32
    with torch.no_grad():
        x = torch.from_numpy(np.ascontiguousarray(ext)).to(device=device, dtype=dtype)[:, None]
        if step.method == "separable":
            assert step.factors is not None
            for axis, vector in enumerate(step.factors):
                if len(vector) == 1 and vector[0] == 1.0:
                    continue
                shape = [1, 1, 1]
                shape[axis] = len(vector)
                w = torch.from_numpy(np.array(vector).reshape(shape)).to(device, dtype)
                x = F.conv3d(x, w[None, None])
        else:
            w = torch.from_numpy(np.array(step.weights)).to(device=device, dtype=dtype)
            x = F.conv3d(x, w[None, None])
        return x[:, 0].cpu().numpy().astype(ext.dtype, copy=False)


# -- whole volumes -----------------------------------------------------------------------------
def evaluate_slab(engine: VolumeEngine, read: Any, z0: int, z1: int) -> np.ndarray:
    """Output slices z0:z1; ``read(zs)`` gives the (N, len(zs), H, W) input at sorted zs."""
    out_z = np.arange(z0, z1)
    needed = engine.needed(out_z)
    return engine.evaluate(Window(needed, read(needed)), out_z)


def slab_depth(engine: VolumeEngine, planes: int, budget: int) -> int:
    """Output slices per slab so that a slab's working set (its input with the halo, the
    extended blocks and the results of each step, counted generously) fits the budget."""
    _, h, w = engine.shape
    kh = max((s.shape[1] for s in engine.order), default=1)
    kw = max((s.shape[2] for s in engine.order), default=1)
    per_slice = (h + kh) * (w + kw) * engine.dtype.itemsize * planes * 6 * (engine.stacked or 1)
    depth = engine.out_shape[0]
    slab = budget // max(per_slice, 1) - engine.halo
    # a slab much thinner than the kernels' reach would recompute its halo over and over, and
    # a tiled step computes whole tiles: slabs of whole tiles
    reach = sum(s.shape[0] for s in engine.order)
    slab = max(slab, reach + 16)
    tiles = [s.tile for s in engine.order if s.tile]
    if tiles:
        slab = max(max(tiles), slab // max(tiles) * max(tiles))
    return int(max(1, min(slab, depth)))


def convolve_volume(
    volume: np.ndarray,
    operation: AnyKernel,
    options: Options,
    backend: Any,
    dtype: Any,
    slab: int | None = None,
) -> np.ndarray:
    """The (D', H', W') result (K first when a bank stacks) of a (D, H, W) volume, in slabs of
    ``slab`` output slices (default: at once); every cut gives the same numbers."""
    if volume.ndim != 3:
        raise InputError(f"a volume is a 3-D array, got {volume.ndim}-D")
    compute = np.dtype(dtype)
    planes = volume.astype(compute, copy=False)[np.newaxis]
    shape = (int(volume.shape[0]), int(volume.shape[1]), int(volume.shape[2]))
    engine = VolumeEngine(operation, options, backend, shape, compute)
    depth = engine.out_shape[0]
    step = slab or depth
    parts = [
        evaluate_slab(engine, lambda zs: planes[:, zs], z0, min(z0 + step, depth))
        for z0 in range(0, depth, step)
    ]
    out = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)
    return out if engine.stacked else out[0]


def check_volume_request(
    operation: AnyKernel, options: Options, *, backend: str = "auto", device: str = "auto"
) -> None:
    """The usage errors a volume request has before any input is read: an unknown or
    missing backend, a zero-sum kernel to normalize, a kernel that cannot run as asked."""
    from convcli.compute.backends import get_backend

    chosen = get_backend(backend, boundary=options.boundary, fill=options.fill_value, device=device)
    leaves = [operation] if isinstance(operation, Kernel) else operation.leaves()
    big = (1 << 20,) * 3
    for leaf in leaves:
        plan_volume_kernel(leaf, options, big, chosen.name)


# -- one input's plan --------------------------------------------------------------------------
@dataclass(frozen=True)
class VolumeStepFacts:
    """One kernel on a volume as it runs, in plain values (for --explain)."""

    kernel: str
    size: str
    sum: float
    rank: int
    method: str
    reason: str
    centre: Shape3
    pads: tuple[tuple[int, int], ...]
    in_shape: Shape3
    out_shape: Shape3
    tile: int | None
    member_of: str = ""


@dataclass(frozen=True)
class VolumePlan:
    """Everything decided about filtering one volume before anything is computed; made once
    by :func:`plan_volume`, printed by ``--explain`` and executed by the run."""

    backend: str
    work_dtype: str
    mode: str
    boundary: str
    fill_value: float
    correlate: bool
    steps: tuple[VolumeStepFacts, ...]
    in_shape: tuple[int, ...]
    in_dtype: str
    out_shape: tuple[int, ...]
    out_dtype: str
    mapping: str
    slab_depth: int  # output slices computed at a time
    kind: str = "volume"


class VolumeSource(Protocol):
    """Slices of a volume, read on demand."""

    @property
    def shape(self) -> tuple[int, ...]: ...

    @property
    def dtype(self) -> np.dtype: ...

    def read(self, zs: np.ndarray) -> np.ndarray: ...


@dataclass
class VolumeJob:
    """One volume's filtering, slab by slab: the engine, the sample mapping, the input."""

    engine: VolumeEngine
    layout: Layout
    reader: VolumeSource
    slab: int

    @property
    def stacked(self) -> int | None:
        return self.engine.stacked

    @property
    def out_shape(self) -> tuple[int, ...]:
        shape = tuple(self.engine.out_shape)
        return (self.stacked, *shape) if self.stacked else shape

    @property
    def plan(self) -> VolumePlan:
        e, o = self.engine, self.engine.options
        return VolumePlan(
            backend=e.backend.name,
            work_dtype=str(e.dtype),
            mode=o.mode.value,
            boundary=o.boundary.value,
            fill_value=o.fill_value,
            correlate=o.correlate,
            steps=tuple(_volume_facts(s) for s in e.order),
            in_shape=tuple(self.reader.shape),
            in_dtype=str(self.reader.dtype),
            out_shape=self.out_shape,
            out_dtype=str(self.layout.out_dtype),
            mapping=self.layout.mapping(),
            slab_depth=self.slab,
        )

    def _result(self, z0: int, z1: int) -> np.ndarray:
        compute = self.engine.dtype

        def read(zs: np.ndarray) -> np.ndarray:
            return self.reader.read(zs).astype(compute, copy=False)[np.newaxis]

        return evaluate_slab(self.engine, read, z0, z1)

    def _members(self, result: np.ndarray) -> np.ndarray:
        return result.reshape(self.stacked or 1, -1, *result.shape[1:])

    def _ranges(self, within: tuple[int, int] | None) -> list[tuple[int, int]]:
        depth = self.engine.out_shape[0]
        start, stop = within if within is not None else (0, depth)
        stop = min(stop, depth)
        return [(z0, min(z0 + self.slab, stop)) for z0 in range(start, stop, self.slab)]

    def slabs(
        self,
        stats: Any = None,
        span: tuple[float, float] | None = None,
        within: tuple[int, int] | None = None,
    ) -> Iterator[tuple[int, int, np.ndarray]]:
        """``(z0, z1, samples)`` for every slab of output slices in order (only those
        within ``within`` when given; the stack axis first when a bank stacked); ``--range
        rescale`` takes the whole result's span, measured in a first pass when not given."""
        if self.layout.options.range == "rescale" and span is None:
            span = self.span()
        for z0, z1 in self._ranges(within):
            members = []
            for member in self._members(self._result(z0, z1)):
                n, dz, h, w = member.shape
                flat = self.layout.samples(member.reshape(n, dz * h, w), None, stats, span)
                members.append(flat.reshape(dz, h, w))
            yield z0, z1, np.stack(members) if self.stacked else members[0]

    def span(self, within: tuple[int, int] | None = None) -> tuple[float, float]:
        """min and max of the mapped results (within ``within``): what rescale stretches."""
        low, high = math.inf, -math.inf
        for z0, z1 in self._ranges(within):
            for member in self._members(self._result(z0, z1)):
                n, dz, h, w = member.shape
                lo, hi = self.layout.span(member.reshape(n, dz * h, w))
                low, high = min(low, lo), max(high, hi)
        return low, high

    def collect(self, stats: Any = None) -> np.ndarray:
        out = np.empty(self.out_shape, dtype=self.layout.out_dtype)
        for z0, z1, samples in self.slabs(stats):
            if self.stacked:
                out[:, z0:z1] = samples
            else:
                out[z0:z1] = samples
        return out


def _volume_facts(step: VolumeStep) -> VolumeStepFacts:
    k = step.kernel
    return VolumeStepFacts(
        k.name,
        k.size_text,
        float(k.sum),
        k.rank,
        step.method,
        step.reason,
        step.centre,
        step.pads,
        step.in_shape,
        step.out_shape,
        step.tile,
        step.member_of,
    )


def plan_volume(
    reader: VolumeSource,
    operation: AnyKernel,
    layout: Layout,
    options: Options,
    backend: Any,
    budget: int | None = None,
) -> VolumeJob:
    """The plan of one volume: its engine, sample mapping and slabs of output slices, each
    within ``budget`` bytes of working memory (None: the whole volume at once)."""
    shape = (int(reader.shape[0]), int(reader.shape[1]), int(reader.shape[2]))
    engine = VolumeEngine(operation, options, backend, shape, layout.compute)
    slab = engine.out_shape[0] if budget is None else slab_depth(engine, 1, budget)
    return VolumeJob(engine, layout, reader, slab)


__all__ = [
    "VOLUME_BACKENDS",
    "Boundary",
    "VolumeEngine",
    "VolumeJob",
    "VolumePlan",
    "VolumeStep",
    "as_volume_kernel",
    "choose_volume_method",
    "convolve_volume",
    "evaluate_slab",
    "plan_volume",
    "plan_volume_kernel",
    "slab_depth",
]
