"""The evaluator: an operation (kernel, chain or bank) computed for any band of output rows.

Every entry point runs it: :func:`convcli.convolve` with one band covering the whole input,
images in bands of rows side by side, inputs over the memory budget in bands read from their
files, Dask in chunks of rows. Each band of output rows is computed from just the input rows
it depends on (its halo). The numbers do not depend on the cut, bit for bit, on every backend
and method: a row is computed from exactly the same extended values by the same plan and
call form, and the steps whose rows are not computed independently (an FFT's transform size,
OpenCV's own DFT, torch's algorithm choice) run in tiles of rows at fixed places.

Rows are the only axis split; every band spans the full width, so columns are extended as in
memory. Where a boundary reaches past the image edge, the rows it needs are found with
:func:`convcli.compute.boundary.source_index`, which also covers ``wrap`` (whose top rows come
from the bottom of the image) and chains, where each step extends its own input.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from convcli.compute.backends import Backend, Plan, get_backend, mark_computed
from convcli.compute.blocks import block_outputs
from convcli.compute.boundary import Boundary, output_length, pad, source_index
from convcli.compute.plan import Options, combine, plan_kernel
from convcli.errors import InputError, UsageError
from convcli.io.rows import ArrayRows, RowReader
from convcli.kernels.model import AnyKernel, Kernel, KernelBank, KernelChain
from convcli.machine import threads_per_worker


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
    #: rows per tile when the computation of a row depends on its neighbourhood in the call
    #: (an FFT's transform size, OpenCV's own DFT): such a step is computed in tiles of this
    #: many output rows at fixed places (multiples of it), the same in every band, so that
    #: any cut into bands gives the same numbers. None: every row is computed on its own.
    tile: int | None = None


#: kernels from this many taps up may run through OpenCV's DFT whichever method is asked
#: (its documentation: "sufficiently large kernels (~11 x 11 or larger)"; 7x7 leaves a margin)
OPENCV_DFT_TAPS = 49


def tile_rows(plan: Plan, backend: str) -> int | None:
    """Output rows per tile of a step whose rows are not computed independently, else None:
    a few kernel heights, so that the halo each tile reads stays a small share."""
    kh, kw = plan.shape
    # OpenCV's separable passes (sepFilter2D) never take its DFT; its filter2D may. torch
    # picks its convolution algorithm by the shape of the call.
    filter2d = backend == "opencv" and not (plan.method == "separable" and kh > 1 and kw > 1)
    dft = plan.method == "fft" or (filter2d and kh * kw >= OPENCV_DFT_TAPS)
    if not dft and backend != "torch":
        return None
    rows = max(128, 4 * kh)
    if backend == "opencv" and plan.method == "fft":
        block = block_outputs(kh)  # whole blocks of convcli's own (compute/blocks.py)
        return -(-rows // block) * block
    return -(-rows // 32) * 32


@dataclass(frozen=True)
class StepInfo:
    """One kernel of a request as it runs (for --explain)."""

    kernel: Kernel  # after normalisation
    plan: Plan
    reason: str
    in_shape: tuple[int, int]
    out_shape: tuple[int, int]
    member_of: str = ""  # the bank it belongs to, if any


def check_range(kernel: Kernel, weights: np.ndarray, options: Options, dtype: np.dtype) -> None:
    """Refuse a kernel or fill value beyond the range of the dtype the input is filtered in
    (8-bit and float32 inputs: float32, up to 3.4e38), which would turn into infinity there
    and give a result of clipped infinities, with a message naming it."""
    if dtype.kind != "f":
        return
    top = float(np.finfo(dtype).max)
    if float(np.max(np.abs(weights))) > top:
        raise UsageError(
            f"kernel {kernel.name!r}: its values exceed the {dtype} range ({top:.3g}) in which "
            "this input is filtered; scale the kernel down"
        )
    if options.boundary is Boundary.FILL and abs(options.fill_value) > top:
        raise UsageError(
            f"--fill-value {options.fill_value:g} exceeds the {dtype} range ({top:.3g}) in "
            "which this input is filtered"
        )


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
        check_range(item, plan.weights, self.options, self.dtype)
        out = (
            output_length(self.options.mode, shape[0], plan.shape[0]),
            output_length(self.options.mode, shape[1], plan.shape[1]),
        )
        tile = tile_rows(plan, self.backend.name)
        self._steps[id(item)] = _Step(plan, shape[0], out[0], tile)
        return out

    def steps(self) -> list[StepInfo]:
        """Every kernel's plan in the order the operation names them."""
        found: list[StepInfo] = []

        def walk(item: AnyKernel, shape: tuple[int, int], bank: str) -> tuple[int, int]:
            if isinstance(item, KernelChain):
                for step in item.steps:
                    shape = walk(step, shape, bank)
                return shape
            if isinstance(item, KernelBank):
                shapes = [walk(m, shape, item.name) for m in item.members]
                return shapes[0]
            done = self._steps[id(item)]
            kernel = item.normalized() if self.options.normalize else item
            out = (done.h_out, output_length(self.options.mode, shape[1], done.plan.shape[1]))
            found.append(StepInfo(kernel, done.plan, done.plan.reason, shape, out, bank))
            return out

        walk(self.operation, self.shape, "")
        return found

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
        done = self._steps[id(item)]
        if done.tile is not None:  # the whole tiles the rows fall in
            starts = np.unique(out_rows // done.tile) * done.tile
            out_rows = np.unique(
                np.minimum(starts[:, np.newaxis] + np.arange(done.tile), done.h_out - 1)
            )
        kh, top = done.plan.shape[0], done.plan.pads[0][0]
        one_run = len(out_rows) and len(out_rows) == out_rows[-1] - out_rows[0] + 1
        if one_run and out_rows[0] - top <= 0 and out_rows[-1] - top + kh >= done.h_in:
            return np.arange(done.h_in)  # one run that reads every row (the whole input)
        src = self._sources(done, out_rows)
        return np.unique(src[src >= 0])

    def _block_sources(self, step: _Step, run: np.ndarray) -> np.ndarray:
        """Source rows of the extended block a run of consecutive outputs reads."""
        kh, top = step.plan.shape[0], step.plan.pads[0][0]
        ext = np.arange(int(run[0]) - top, int(run[-1]) - top + kh)
        return source_index(ext, step.h_in, self.options.boundary)

    def _sources(self, step: _Step, out_rows: np.ndarray) -> np.ndarray:
        """Source row of every extended row the outputs read, -1 for fill rows (a run of
        consecutive outputs reads one range of extended rows: no row counted kh times)."""
        kh = step.plan.shape[0]
        top = step.plan.pads[0][0]
        ext = [np.arange(int(r[0]) - top, int(r[-1]) - top + kh) for r in _runs(out_rows)]
        return source_index(np.concatenate(ext), step.h_in, self.options.boundary)

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
        groups: dict[tuple[int, int, int | None], list[int]] = {}
        for i, step in enumerate(steps):
            groups.setdefault((step.plan.shape[0], step.plan.pads[0][0], step.tile), []).append(i)
        results: list[list[np.ndarray]] = [[] for _ in kernels]
        for run in _runs(out_rows):
            for members in groups.values():
                group = [steps[i] for i in members]
                outs = self._run_of(window, run, group)
                for i, out in zip(members, outs, strict=True):
                    results[i].append(out)
        return [np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0] for parts in results]

    def _run_of(self, window: Window, run: np.ndarray, group: list[_Step]) -> list[np.ndarray]:
        """A run of consecutive output rows of steps that read the same input rows. A tiled
        step's tiles (side by side on the cores) are each copied into the run's result by
        the thread that computed it: no concatenation after them, which took a 16 MP plane's
        FFT a third of its time, on one thread."""
        pieces = _pieces(run, group[0])
        if len(pieces) == 1:
            ((rows, keep),) = pieces
            outs = self._group(window, rows, group)
            return outs if keep is None else [out[:, keep] for out in outs]
        starts = np.cumsum(
            [0] + [len(rows) if keep is None else keep.stop - keep.start for rows, keep in pieces]
        )
        results: list[np.ndarray | None] = [None] * len(group)  # each step's, made once
        made = threading.Lock()

        def work(job: tuple[int, tuple[np.ndarray, slice | None]]) -> None:
            at, (rows, keep) = int(starts[job[0]]), job[1]
            for m, out in enumerate(self._group(window, rows, group)):
                part = out if keep is None else out[:, keep]
                with made:
                    if results[m] is None:
                        results[m] = np.empty(
                            (part.shape[0], int(starts[-1]), *part.shape[2:]), part.dtype
                        )
                target = results[m]
                assert target is not None
                target[:, at : at + part.shape[1]] = part

        # side by side on the cores (the libraries release the GIL); in this thread within a
        # band that already runs beside others
        for _ in ordered_map(work, list(enumerate(pieces))):
            pass
        done = [r for r in results if r is not None]
        assert len(done) == len(group)  # every tile gives every step's rows
        return done

    def _group(self, window: Window, rows: np.ndarray, steps: list[_Step]) -> list[np.ndarray]:
        """Output ``rows`` (consecutive) of steps that read the same block of input rows."""
        opts, first = self.options, steps[0]
        whole = (
            len(rows) == first.h_out
            and len(window.rows) == first.h_in
            and int(window.rows[-1]) == first.h_in - 1
        )
        if whole:
            # the whole input at hand: the backend extends the rows itself, no copy (the
            # same numbers as a gathered block, which every backend computes alike)
            block, plans = window.data, [s.plan for s in steps]
        else:
            block = window.get(self._block_sources(first, rows), opts.fill_value)
            plans = [_rows_done(s.plan) for s in steps]
        if self.align:
            outs = [_shift(block, plan, opts) for plan in plans]
        else:
            outs = self.backend.correlate_many(block, plans, opts.boundary, opts.fill_value)
        for k, step in enumerate(steps):
            if step.plan.offset and not self.align:
                outs[k] = outs[k] + step.plan.offset
            if opts.keep_edges:
                outs[k] = self._keep_edges(window, rows, step, outs[k])
        return outs

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


def _pieces(run: np.ndarray, step: _Step) -> list[tuple[np.ndarray, slice | None]]:
    """How a run of consecutive output rows is computed: at once, or for a tiled step the
    whole tiles it touches, each with the slice of its rows that the run wants."""
    if step.tile is None:
        return [(run, None)]
    lo, hi, tile = int(run[0]), int(run[-1]) + 1, step.tile
    pieces = []
    for start in range(lo - lo % tile, hi, tile):
        stop = min(start + tile, step.h_out)
        keep = slice(max(lo, start) - start, min(hi, stop) - start)
        whole_tile = keep.start == 0 and keep.stop == stop - start
        pieces.append((np.arange(start, stop), None if whole_tile else keep))
    return pieces


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


#: the name of the threads that compute bands side by side
BAND_THREAD = "convcli-band"


def ordered_map(work: Any, items: list[Any]) -> Iterator[Any]:
    """``work(item)`` for every item (a band, a tile), in order, on up to
    :func:`thread_count` threads: this one and compute threads, each taking the next item
    as it is free (:class:`_Shared`). At most one more than there are threads is held at a
    time. On a compute thread already (work that maps again), all in this thread."""
    count = thread_count()
    threads = min(count, len(items))
    if threads <= 1 or threading.current_thread().name.startswith(BAND_THREAD):
        yield from map(work, items)
        return
    shared = _Shared(work, items, ahead=threads + 1)
    pool = _shared_pool(count)
    for _ in range(threads - 1):
        pool.submit(shared.help)
    try:
        for i in range(len(items)):
            yield shared.result(i)
    finally:
        shared.stop()


class _Shared:
    """Items shared out between the thread that wants their results, in order, and compute
    threads that help: each takes the next item not yet taken. The wanting thread works
    too, on the next free item whenever the one it waits for is not done: its core is
    used, a helper slow to start (an idle virtual CPU wakes in milliseconds) delays
    nothing, and a helper that never starts (the pool busy with other calls) leaves all
    the work here rather than waited for. At most ``ahead`` items past the one wanted are
    taken, which bounds the results held."""

    def __init__(self, work: Any, items: list[Any], ahead: int) -> None:
        self._work = work
        self._items = items
        self._ahead = ahead
        self._changed = threading.Condition()
        self._taken = 0  # items 0 .. _taken - 1 are taken
        self._wanted = 0  # the item whose result is wanted next
        self._done: dict[int, tuple[bool, Any]] = {}  # finished: (raised?, value)
        self._stopped = False

    def _take(self) -> int | None:
        """The next item free to take, marked taken; None if there is none now."""
        i = self._taken
        if self._stopped or i >= len(self._items) or i >= self._wanted + self._ahead:
            return None
        self._taken += 1
        return i

    def _run(self, i: int, catch: type[BaseException]) -> None:
        """Do item ``i``; what it raises of ``catch`` is its outcome, raised in order by the
        wanting thread."""
        try:
            outcome = (False, self._work(self._items[i]))
        except catch as exc:
            outcome = (True, exc)
        with self._changed:
            self._done[i] = outcome
            self._changed.notify_all()

    def help(self) -> None:
        """On a compute thread: take and do items until every one is taken."""
        while True:
            with self._changed:
                i = self._take()
                while i is None:
                    if self._stopped or self._taken >= len(self._items):
                        return
                    self._changed.wait()  # for the wanted item to move on
                    i = self._take()
            self._run(i, BaseException)  # whatever it raises: the item must be done

    def result(self, i: int) -> Any:
        """Item ``i``'s result, doing free items while it is not done."""
        while True:
            with self._changed:
                self._wanted = i
                self._changed.notify_all()  # helpers may take further items now
                if i in self._done:
                    raised, value = self._done.pop(i)
                    break
                mine = self._take()
                if mine is None:
                    self._changed.wait()  # a helper is doing item i
                    continue
            # Ctrl-C and a stop signal arrive in this thread: they stop it now, not at
            # their item's turn
            self._run(mine, Exception)
        if raised:
            raise value
        return value

    def stop(self) -> None:
        """Take no more items (those being done still finish)."""
        with self._changed:
            self._stopped = True
            self._changed.notify_all()


#: the process's compute threads, kept between calls: starting a pool's threads for each
#: call cost a 1 MP plane's FFT (two tiles, 5 ms) a quarter of its time, the second tile
#: often starting only once the first was done
_pool: tuple[int, ThreadPoolExecutor] | None = None  # (threads, pool)
_pool_lock = threading.Lock()


def _shared_pool(threads: int) -> ThreadPoolExecutor:
    """The pool of ``threads`` compute threads, made on first use and again for another
    number of threads."""
    global _pool
    with _pool_lock:
        if _pool is None or _pool[0] != threads:
            if _pool is not None:
                _pool[1].shutdown(wait=False)  # its work in flight still finishes
            _pool = (threads, ThreadPoolExecutor(threads, thread_name_prefix=BAND_THREAD))
        return _pool[1]


def close_threads() -> None:
    """End the compute threads (idle between calls), as a program about to end without the
    interpreter's own shutdown does; a later call starts them again."""
    global _pool
    with _pool_lock:
        if _pool is not None:
            _pool[1].shutdown(wait=True)
        _pool = None


def _forget_threads() -> None:
    """In a forked child: the parent's pool has no threads here, and its lock may have been
    held by one of them."""
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_threads)


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
    "Boundary",
    "StripEngine",
    "Window",
    "convolve_strips",
    "evaluate_bands",
    "read_rows",
    "strip_height",
]
