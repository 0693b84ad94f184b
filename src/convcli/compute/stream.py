"""Row strips: ``convolve`` evaluated a band of output rows at a time, in bounded memory.

An image larger than the memory budget is never held whole: each band of output rows is
computed from just the input rows it depends on (its halo), read incrementally from the file
(TIFF strips or tiles through tifffile, ``.npy`` through a memory map) and written out before
the next band. The numbers are the in-memory numbers, bit for bit, for the direct and separable
methods: every output row is computed from exactly the same extended values, by the same
plan, method and backend as :func:`convcli.compute.engine.convolve` would use on the whole image.
(FFT results depend on the transform size and agree to float rounding only.)

Rows are the only axis split; every band spans the full width, so columns are extended as in
memory. Where a boundary reaches past the image edge, the rows it needs are found with
:func:`convcli.compute.boundary.source_index`, which also covers ``wrap`` (whose top rows come from
the bottom of the image) and chains, where each step extends its own input.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from convcli.compute.backends import Backend, Plan, get_backend, mark_computed
from convcli.compute.boundary import Boundary, output_length, pad, source_index
from convcli.compute.engine import Options, combine, plan_kernel
from convcli.errors import InputError, UsageError
from convcli.kernels.model import AnyKernel, Kernel, KernelBank, KernelChain
from convcli.machine import threads_per_worker

# -- memory budget ---------------------------------------------------------------------------
UNITS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kb": 1000,
    "kib": 1024,
    "m": 1024**2,
    "mb": 1000**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gb": 1000**3,
    "gib": 1024**3,
    "t": 1024**4,
    "tb": 1000**4,
    "tib": 1024**4,
}


def parse_size(text: str) -> int:
    """``"256MiB"`` -> 268435456; plain numbers are bytes."""
    raw = text.strip().lower().replace(" ", "")
    number = raw.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = raw[len(number) :]
    try:
        value = float(number)
    except ValueError:
        value = -1.0
    if unit not in UNITS or value <= 0:
        raise UsageError(f"memory size {text!r} is not like 512MiB, 2GiB or 4GB")
    return int(value * UNITS[unit])


def default_budget() -> int:
    """A quarter of the machine's memory (``CONVCLI_MEMORY`` overrides)."""
    env = os.environ.get("CONVCLI_MEMORY", "").strip()
    if env:
        return parse_size(env)
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        total = 8 * 1024**3
    return max(256 * 1024**2, total // 4)


def format_size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


# -- row readers -----------------------------------------------------------------------------
class RowReader(Protocol):
    """Rows of an image or array, read on demand."""

    @property
    def shape(self) -> tuple[int, ...]: ...  # (H, W) or (H, W, C)

    @property
    def dtype(self) -> np.dtype: ...

    def read(self, r0: int, r1: int) -> np.ndarray: ...


@dataclass
class ArrayRows:
    """Rows of an array already in memory."""

    array: np.ndarray

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.array.shape)

    @property
    def dtype(self) -> np.dtype:
        return self.array.dtype

    def read(self, r0: int, r1: int) -> np.ndarray:
        return self.array[r0:r1]


class NpyRows(ArrayRows):
    """Rows of a ``.npy`` file through a read-only memory map."""

    def __init__(self, path: Path) -> None:
        from convcli.io.image_io import check_array, npy_header

        npy_header(path, str(path))
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except Exception as exc:
            raise InputError(f"cannot map the .npy file ({exc})", subject=str(path)) from None
        if array.ndim not in (2, 3):
            check_array(array, str(path))
            raise InputError(
                f"is {array.ndim}-D; only 2-D and 3-D arrays are streamed", subject=str(path)
            )
        super().__init__(array)


class TiffRows:
    """Rows of a (striped or tiled) TIFF, decoding only the segments a band touches."""

    def __init__(self, path: Path) -> None:
        from convcli.io.image_io import import_tifffile, tiff_header

        self.path = path
        try:
            self._tif = import_tifffile().TiffFile(path)
        except Exception as exc:
            raise InputError(
                f"not a TIFF that can be streamed ({exc})", subject=str(path)
            ) from None
        try:
            shape, dtype = tiff_header(self._tif, str(path))  # also the pixel limit
            page = self._tif.pages.first
            if page.planarconfig == 2 and page.samplesperpixel > 1:
                raise InputError(
                    "planar (separate-plane) TIFFs cannot be streamed; save it "
                    "with interleaved samples",
                    subject=str(path),
                )
            if np.dtype(page.dtype) != dtype or tuple(page.shape) != shape:
                raise InputError(
                    f"TIFF samples of type {page.dtype} cannot be streamed "
                    "(8/16-bit, 32-bit integer and float32 can)",
                    subject=str(path),
                )
        except Exception:
            self._tif.close()
            raise
        self._page = page
        self.shape = shape
        self.dtype = dtype
        self._rows_per_segment = page.tilelength if page.is_tiled else page.rowsperstrip
        across = -(-page.imagewidth // page.tilewidth) if page.is_tiled else 1
        self._segments_per_band = across
        self._cache: dict[int, np.ndarray] = {}
        self._lock = threading.Lock()  # bands are read from several threads

    def read(self, r0: int, r1: int) -> np.ndarray:
        rps = self._rows_per_segment
        out = np.empty((r1 - r0, *self.shape[1:]), dtype=self.dtype)
        for band in range(r0 // rps, (r1 - 1) // rps + 1):
            rows = self._segment_rows(band)
            top, bottom = max(band * rps, r0), min((band + 1) * rps, r1)
            out[top - r0 : bottom - r0] = rows[top - band * rps : bottom - band * rps]
        return out

    def _segment_rows(self, band: int) -> np.ndarray:
        """The decoded rows of one strip (or one row of tiles), kept for the next bands,
        which read most of them again as their halo."""
        with self._lock:
            return self._decode_rows(band)

    def _decode_rows(self, band: int) -> np.ndarray:
        cached = self._cache.get(band)
        if cached is not None:
            return cached
        page, fh = self._page, self._tif.filehandle
        rps = self._rows_per_segment
        height = min(rps, self.shape[0] - band * rps)
        rows = np.empty((height, *self.shape[1:]), dtype=self.dtype)
        first = band * self._segments_per_band
        indices = list(range(first, first + self._segments_per_band))
        offsets = [page.dataoffsets[i] for i in indices]
        counts = [page.databytecounts[i] for i in indices]
        for data, index in fh.read_segments(offsets, counts, indices=indices):
            decoded, (_, _, _, x, _), _ = page.decode(data, index)
            if decoded is None:
                raise InputError(f"TIFF segment {index} is empty", subject=str(self.path))
            segment = decoded[0]  # drop the depth axis
            if len(self.shape) == 2:
                segment = segment[..., 0]
            width = min(segment.shape[1], self.shape[1] - x)
            rows[:, x : x + width] = segment[:height, :width]
        if len(self._cache) >= 4:
            self._cache.pop(next(iter(self._cache)))
        self._cache[band] = rows
        return rows

    def close(self) -> None:
        self._tif.close()


def open_rows(path: Path) -> RowReader:
    """A row reader for a file that can be streamed (TIFF, .npy), else an error."""
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return NpyRows(path)
    if suffix in (".tif", ".tiff"):
        return TiffRows(path)
    raise InputError("only TIFF and .npy inputs can be streamed", subject=str(path))


# -- the evaluation ----------------------------------------------------------------------------
@dataclass
class Window:
    """Some rows (global row numbers, sorted) of an (N, H, W) stack of planes."""

    rows: np.ndarray
    data: np.ndarray

    def get(self, wanted: np.ndarray, fill: float) -> np.ndarray:
        """The planes at ``wanted`` rows; -1 stands for a row of the fill value. Consecutive
        rows (every band away from the image's edges) come back as a view, not a copy."""
        where = np.searchsorted(self.rows, wanted)
        inside = wanted >= 0
        if (
            len(wanted)
            and inside.all()
            and np.all(np.diff(wanted) == 1)
            and where[-1] - where[0] == len(wanted) - 1
        ):
            return self.data[:, where[0] : where[-1] + 1, :]
        taken = self.data[:, np.where(inside, where, 0), :]
        if not inside.all():
            taken[:, ~inside, :] = fill
        return taken


@dataclass(frozen=True)
class _Step:
    plan: Plan
    h_in: int
    h_out: int


class StripEngine:
    """Evaluates one operation on any band of output rows of an (N, H, W) input."""

    def __init__(
        self,
        operation: AnyKernel,
        options: Options,
        backend: Backend,
        shape: tuple[int, int],
        align: bool = False,
        dtype: Any = np.float64,
    ) -> None:
        self.operation = operation
        self.options = options
        self.backend = backend
        self.shape = shape
        #: move the planes onto the output grid without filtering them (what a delta at each
        #: kernel's origin would give, exactly): how alpha is carried through a filter
        self.align = align
        self.dtype = np.dtype(dtype)  # the planes' dtype: it takes part in the method choice
        self._steps: dict[int, _Step] = {}
        self.stacked: int | None = None
        self.out_shape = self._prepare(operation, shape)
        self.halo = self._halo(operation)

    # shapes and plans, once
    def _prepare(self, item: AnyKernel, shape: tuple[int, int]) -> tuple[int, int]:
        if isinstance(item, KernelChain):
            for step in item.steps:
                shape = self._prepare(step, shape)
            return shape
        if isinstance(item, KernelBank):
            shapes = {self._prepare(m, shape) for m in item.members}
            if len(shapes) > 1:
                sizes = ", ".join(m.size_text for m in item.members)
                raise UsageError(
                    f"kernel bank {item.name!r}: members of different sizes "
                    f"({sizes}) give results of different sizes in "
                    f"{self.options.mode.value} mode; use --mode same"
                )
            if item.combine == "stack":
                if self.stacked is not None:
                    raise UsageError(
                        f"kernel bank {item.name!r}: only one bank in a chain may use combine=stack"
                    )
                self.stacked = len(item.members)
            return shapes.pop()
        plan = plan_kernel(item, self.options, shape, self.backend.name, self.dtype)
        out = (
            output_length(self.options.mode, shape[0], plan.shape[0]),
            output_length(self.options.mode, shape[1], plan.shape[1]),
        )
        self._steps[id(item)] = _Step(plan, shape[0], out[0])
        return out

    def _halo(self, item: AnyKernel) -> int:
        """Extra input rows an output band needs, at most (the reach of the whole chain)."""
        if isinstance(item, KernelChain):
            return sum(self._halo(s) for s in item.steps)
        if isinstance(item, KernelBank):
            return max(self._halo(m) for m in item.members)
        return self._steps[id(item)].plan.shape[0] - 1

    # which input rows a set of output rows needs
    def needed(self, out_rows: np.ndarray, item: AnyKernel | None = None) -> np.ndarray:
        item = self.operation if item is None else item
        if isinstance(item, KernelChain):
            for step in reversed(item.steps):
                out_rows = self.needed(out_rows, step)
            return out_rows
        if isinstance(item, KernelBank):
            return np.unique(np.concatenate([self.needed(out_rows, m) for m in item.members]))
        src = self._sources(self._steps[id(item)], out_rows)
        return np.unique(src[src >= 0])

    def _block_sources(self, step: _Step, run: np.ndarray) -> np.ndarray:
        """Source rows of the extended block a run of consecutive outputs reads."""
        kh, top = step.plan.shape[0], step.plan.pads[0][0]
        ext = np.arange(int(run[0]) - top, int(run[-1]) - top + kh)
        return source_index(ext, step.h_in, self.options.boundary)

    def _sources(self, step: _Step, out_rows: np.ndarray) -> np.ndarray:
        """Source row of every extended row the outputs read, -1 for fill rows."""
        kh = step.plan.shape[0]
        top = step.plan.pads[0][0]
        ext = (out_rows[:, np.newaxis] - top + np.arange(kh)).ravel()
        return source_index(ext, step.h_in, self.options.boundary)

    # the numbers
    def evaluate(
        self, window: Window, out_rows: np.ndarray, item: AnyKernel | None = None
    ) -> np.ndarray:
        """The (N', len(out_rows), W') outputs of ``item`` from a window of its input that
        holds at least :meth:`needed` rows."""
        item = self.operation if item is None else item
        if isinstance(item, KernelChain):
            wanted = [out_rows]
            for step in reversed(item.steps[1:]):
                wanted.append(self.needed(wanted[-1], step))
            for step, rows in zip(item.steps, reversed(wanted), strict=True):
                window = Window(rows, self.evaluate(window, rows, step))
            return window.data
        if isinstance(item, KernelBank):
            kernels = [m for m in item.members if isinstance(m, Kernel)]
            if len(kernels) == len(item.members):
                results = self._kernels(window, out_rows, kernels)
            else:
                results = [self.evaluate(window, out_rows, m) for m in item.members]
            return combine(results, item.combine)
        return self._kernels(window, out_rows, [item])[0]

    def _kernels(
        self, window: Window, out_rows: np.ndarray, kernels: list[Kernel]
    ) -> list[np.ndarray]:
        """Kernels on the same input, one contiguous run of output rows at a time; kernels
        of one shape share each gathered block (a torch bank stays one call)."""
        steps = [self._steps[id(k)] for k in kernels]
        opts = self.options
        results: list[list[np.ndarray]] = [[] for _ in kernels]
        for run in _runs(out_rows):
            shared: dict[tuple[int, int], np.ndarray] = {}
            by_block: dict[tuple[int, int], list[int]] = {}
            for i, step in enumerate(steps):
                key = (step.plan.shape[0], step.plan.pads[0][0])
                if key not in shared:
                    shared[key] = window.get(self._block_sources(step, run), opts.fill_value)
                by_block.setdefault(key, []).append(i)
            for key, members in by_block.items():
                plans = [_rows_done(steps[i].plan) for i in members]
                if self.align:
                    outs = [_shift(shared[key], plan, opts) for plan in plans]
                else:
                    outs = self.backend.correlate_many(
                        shared[key], plans, opts.boundary, opts.fill_value
                    )
                for i, out in zip(members, outs, strict=True):
                    plan = steps[i].plan
                    if plan.offset and not self.align:
                        out = out + plan.offset
                    if opts.keep_edges:
                        out = self._keep_edges(window, run, steps[i], out)
                    results[i].append(out)
        return [np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0] for parts in results]

    def _keep_edges(
        self, window: Window, run: np.ndarray, step: _Step, out: np.ndarray
    ) -> np.ndarray:
        """Pillow's edges: the input where the kernel does not fit (same mode only)."""
        (top, bottom), (left, right) = step.plan.pads
        source = window.get(run, 0.0)
        edge_row = (run < top) | (run >= step.h_in - bottom)
        out = out.copy()
        out[:, edge_row, :] = source[:, edge_row, :]
        width = out.shape[2]
        out[:, :, :left] = source[:, :, :left]
        out[:, :, width - right :] = source[:, :, width - right :]
        return out


def _runs(rows: np.ndarray) -> list[np.ndarray]:
    """Split sorted row numbers into runs of consecutive ones."""
    if len(rows) == 0:
        return []
    breaks = np.nonzero(np.diff(rows) != 1)[0] + 1
    return np.split(rows, breaks)


def _shift(block: np.ndarray, plan: Plan, options: Options) -> np.ndarray:
    """The block's samples under each output pixel's centre weight: no arithmetic at all."""
    ext = pad(block, plan.pads, options.boundary, options.fill_value)
    (cy, cx), (kh, kw) = plan.centre, plan.shape
    return ext[:, cy : cy + ext.shape[1] - kh + 1, cx : cx + ext.shape[2] - kw + 1]


def _rows_done(plan: Plan) -> Plan:
    """The plan for a block whose rows are already extended: only columns are left."""
    return replace(plan, pads=((0, 0), plan.pads[1]))


# -- driving a whole image ---------------------------------------------------------------------
def strip_height(
    width: int, planes: int, itemsize: int, halo: int, budget: int, out_planes: int | None = None
) -> int:
    """Output rows per band so that a band's working set fits the budget.

    A band holds its input window (band + halo rows), the gathered blocks and the results of
    each step: about six row-sized arrays per plane, counted generously.
    """
    out_planes = out_planes or planes
    per_row = width * itemsize * (4 * planes + 2 * out_planes)
    rows = budget // max(per_row, 1) - halo
    return int(max(1, min(rows, 1 << 20)))


def bands(
    height: int, rows: int, within: tuple[int, int] | None = None
) -> Iterator[tuple[int, int]]:
    """Bands of ``rows`` rows covering ``within`` (default: all ``height`` rows)."""
    start, stop = within if within is not None else (0, height)
    for r0 in range(start, min(stop, height), rows):
        yield r0, min(r0 + rows, stop, height)


def evaluate_band(engine: StripEngine, read_planes: Any, r0: int, r1: int) -> np.ndarray:
    """Output rows r0:r1 of ``engine``; ``read_planes(rows)`` gives the (N, len(rows), W)
    input planes at sorted global rows."""
    mark_computed()
    out_rows = np.arange(r0, r1)
    needed = engine.needed(out_rows)
    return engine.evaluate(Window(needed, read_planes(needed)), out_rows)


def evaluate_bands(
    engine: StripEngine, read_planes: Any, rows_per_band: int, within: tuple[int, int] | None = None
) -> Iterator[tuple[int, int, np.ndarray]]:
    """Every band of output rows in order: ``(r0, r1, planes)``, only those in ``within``
    when given."""
    for r0, r1 in bands(engine.out_shape[0], rows_per_band, within):
        yield r0, r1, evaluate_band(engine, read_planes, r0, r1)


def ordered_map(work: Any, ranges: list[tuple[int, int]]) -> Iterator[Any]:
    """``work(r0, r1)`` for every band, on up to :func:`thread_count` threads, in order;
    at most one band more than there are threads is held at a time."""
    threads = min(thread_count(), len(ranges))
    if threads <= 1:
        for r0, r1 in ranges:
            yield work(r0, r1)
        return
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(threads, thread_name_prefix="convcli-band") as pool:
        pending: deque[Any] = deque()
        queue = iter(ranges)
        try:
            for r0, r1 in queue:
                pending.append(pool.submit(work, r0, r1))
                if len(pending) > threads:
                    break
            while pending:
                yield pending.popleft().result()
                for r0, r1 in queue:
                    pending.append(pool.submit(work, r0, r1))
                    break
        finally:
            for future in pending:
                future.cancel()


def thread_count() -> int:
    """Threads for one image's bands: the cores, or fewer when batch workers share them."""
    return threads_per_worker()


def read_rows(reader: RowReader, rows: np.ndarray) -> np.ndarray:
    """The input rows at sorted global row numbers, reading each run of them once."""
    parts = [reader.read(int(run[0]), int(run[-1]) + 1) for run in _runs(rows)]
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)


def convolve_strips(
    x: np.ndarray,
    kernel: Any,
    *,
    rows: int,
    combine_: str | None = None,
    backend: str = "auto",
    device: str = "auto",
    dtype: Any = None,
    **options: Any,
) -> np.ndarray:
    """:func:`convcli.convolve` of a 2-D array computed ``rows`` output rows at a time; the
    result is the same (bit for bit for the direct and separable methods). For tests and
    for arrays too large to convolve at once."""
    from convcli.compute.engine import as_operation, work_dtype

    arr = np.asarray(x)
    if arr.ndim != 2:
        raise InputError("convolve_strips takes a 2-D array")
    opts = Options.make(**options)
    operation = as_operation(kernel, combine_)
    chosen = get_backend(backend, boundary=opts.boundary, fill=opts.fill_value, device=device)
    compute = np.dtype(dtype) if dtype is not None else work_dtype(arr.dtype)
    engine = StripEngine(operation, opts, chosen, (arr.shape[0], arr.shape[1]), dtype=compute)
    planes = ArrayRows(arr)

    def read_planes(wanted: np.ndarray) -> np.ndarray:
        return read_rows(planes, wanted).astype(compute)[np.newaxis]

    parts = [data for _, _, data in evaluate_bands(engine, read_planes, rows)]
    out = np.concatenate(parts, axis=1)
    return out if engine.stacked else out[0]


__all__ = [
    "ArrayRows",
    "Boundary",
    "NpyRows",
    "RowReader",
    "StripEngine",
    "TiffRows",
    "Window",
    "convolve_strips",
    "default_budget",
    "evaluate_bands",
    "open_rows",
    "parse_size",
    "read_rows",
    "strip_height",
]
