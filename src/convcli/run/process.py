"""The work for one input: load, filter, write (streaming inputs over the memory budget band
by band), and say what happened in an :class:`Outcome`; nothing raises for an input's sake."""

from __future__ import annotations

import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from convcli.compute.engine import check_signal_kernels, work_dtype
from convcli.compute.image import BAND_BYTES, BandJob, ComputePlan, plan_image
from convcli.compute.pixels import Filtered, Layout, PixelOptions, output_dtype
from convcli.errors import ConvcliError, InputError, LimitError, OutputError, UsageError
from convcli.io.arrays import npy_header, parse_array, read_array
from convcli.io.atomic import write_bands
from convcli.io.decode import open_image, probe_image
from convcli.io.encode import encode, write_image
from convcli.io.formats import ARRAY_FORMATS
from convcli.io.inputs import reason
from convcli.io.limits import max_pixels
from convcli.io.rows import ArrayRows, RowReader, open_rows
from convcli.memory import default_budget, format_size
from convcli.run.naming import format_and_ext, guard_targets, output_targets
from convcli.run.request import Request
from convcli.run.sources import Source


@dataclass
class Outcome:
    """What happened to one input."""

    source: Source
    written: list[str] = field(default_factory=list)
    array: np.ndarray | None = None  # to print
    data: bytes | None = None  # to write to stdout (-o -)
    skipped: bool = False
    error: str | None = None
    exit_code: int = 0
    detail: str | None = None  # traceback, shown with --debug
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    plan: ComputePlan | None = None  # what was computed (what --explain shows)


@dataclass
class Loaded:
    data: np.ndarray
    format: str | None = None  # detected image format
    icc_profile: bytes | None = None
    is_array: bool = False


def process(source: Source, request: Request) -> Outcome:
    """Filter one input and write (or return) its result; never raises for the input's sake."""
    started = time.perf_counter()
    outcome = Outcome(source)
    try:
        _process(source, request, outcome)
    except OutputError as exc:
        where = exc.subject if exc.subject and exc.subject != source.label else None
        outcome.error = (
            f"{source.label}: cannot write {where}: {exc.message}"
            if where
            else f"{source.label}: {exc.message}"
        )
        outcome.exit_code = exc.exit_code
    except ConvcliError as exc:
        outcome.error = str(exc) if exc.subject else f"{source.label}: {exc.message}"
        outcome.exit_code = exc.exit_code
    except MemoryError as exc:  # numpy's says how much it could not allocate
        outcome.error = (
            f"{source.label}: out of memory ({reason(exc)}); a smaller --memory streams "
            "TIFF and .npy inputs"
        )
        outcome.exit_code = 1
    except Exception as exc:  # an input must never take the batch down
        outcome.error = f"{source.label}: internal error: {type(exc).__name__}: {exc}"
        outcome.exit_code = 1
        outcome.detail = traceback.format_exc()
    outcome.seconds = time.perf_counter() - started
    return outcome


def _process(source: Source, request: Request, outcome: Outcome) -> None:
    out = request.output
    check_signal_memory(source, request)
    writes = out.path is not None or out.out_dir is not None or out.in_place
    if not writes and (source.is_array or out.print_result):
        outcome.array = _compute(
            load(source, request.memory), source, request, outcome, to_array=True
        )
        return
    if out.skip_existing and source.path is not None and source.path.suffix:
        # decide before decoding, so that resuming a batch costs nothing for finished files
        _, ext = format_and_ext(source, request, None)
        if all(t.exists() for t in output_targets(source, request, ext)):
            outcome.skipped = True
            return
    if source.path is not None and not writes_stdout(request) and too_big(source, request):
        _stream(source, request, outcome)
        return
    loaded = load(source, request.memory)
    fmt, ext = format_and_ext(source, request, loaded.format)
    result = _compute(loaded, source, request, outcome, to_array=fmt in ARRAY_FORMATS.values())
    if out.print_result:
        outcome.array = result
    stacked = bool(request.stack_labels)
    if out.path == "-":
        if stacked and fmt not in ("NPY", "JSON"):
            raise UsageError("a stacked result written to stdout needs --format npy or json")
        outcome.data = encode(result, fmt, quality=out.quality, compress=out.compress)
        return
    targets = output_targets(source, request, ext)
    guard_targets(source, request, targets)
    if out.skip_existing and all(t.exists() for t in targets):
        outcome.skipped = True
        return
    parts = list(result) if len(targets) > 1 else [result]
    for target, part in zip(targets, parts, strict=True):
        if out.out_dir is not None:
            make_dirs(target.parent)
        write_image(
            part,
            target,
            format=fmt,
            quality=out.quality,
            compress=out.compress,
            icc_profile=loaded.icc_profile,
        )
        outcome.written.append(str(target))


def make_dirs(directory: Path) -> None:
    """Create an output directory (and its parents), as an OutputError if it cannot be."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputError("exists and is not a directory", subject=str(directory)) from None
    except NotADirectoryError:
        raise OutputError(
            "a part of the path is a file, not a directory", subject=str(directory)
        ) from None
    except OSError as exc:
        raise OutputError(exc.strerror or str(exc), subject=str(directory)) from None


def writes_stdout(request: Request) -> bool:
    return request.output.path == "-"


def memory_budget(request: Request) -> int:
    return request.memory or default_budget()


def check_signal_memory(source: Source, request: Request) -> None:
    """Refuse a 1-D ``.npy`` signal whose samples and result would not fit in the memory
    budget: signals are filtered in memory, never streamed."""
    if source.path is None or source.path.suffix.lower() != ".npy":
        return
    try:
        shape, array_dtype = npy_header(source.path, source.label)
    except ConvcliError:
        return  # read_array names the problem
    if len(shape) != 1:
        return
    members = max(1, len(request.stack_labels))
    needed = shape[0] * (array_dtype.itemsize + 2 * 8 * members)
    budget = memory_budget(request)
    if needed > budget:
        raise LimitError(
            f"a 1-D signal of {shape[0]} samples needs about {format_size(needed)} of memory, "
            f"over the budget of {format_size(budget)}; signals are not streamed (raise "
            "--memory or CONVCLI_MEMORY)",
            subject=source.label,
        )


def too_big(source: Source, request: Request) -> bool:
    """Would holding this input and its result in memory exceed the budget?"""
    assert source.path is not None
    if source.is_array:
        if source.path.suffix.lower() != ".npy":
            return False
        try:
            shape, array_dtype = npy_header(source.path, source.label)
        except ConvcliError:
            return False  # read_array names the problem
        itemsize = array_dtype.itemsize
        if len(shape) < 2:
            return False
    else:
        try:
            shape, sample_type = probe_image(source.path, source.label)
        except ConvcliError:
            return False  # the full read names the problem
        itemsize = np.dtype(sample_type).itemsize
    pixels = int(np.prod(shape))
    members = max(1, len(request.stack_labels))
    # the decoded input, the result's samples (up to float64), its encoded copy, one band
    needed = pixels * (itemsize + 2 * 8 * members) + BAND_BYTES
    return needed > memory_budget(request)


@dataclass
class StreamPlan:
    """A streamed input: where its result goes and how it is computed band by band."""

    source: Source
    format: str
    target: Path
    pixels: PixelOptions  # as the output format wants them
    band_bytes: int

    @contextmanager
    def job(self, request: Request) -> Iterator[BandJob]:
        """The band job, with the input open (close it after)."""
        assert self.source.path is not None
        reader = open_rows(self.source.path)
        try:
            yield input_job(
                reader,
                replace(request, pixels=self.pixels),
                is_array=self.source.is_array,
                to_array=self.format in ARRAY_FORMATS.values(),
                band_bytes=self.band_bytes,
            )
        finally:
            close = getattr(reader, "close", None)
            if close is not None:
                close()


def plan_stream(source: Source, request: Request) -> StreamPlan:
    """Check that an input over the memory budget can be streamed, and say how."""
    assert source.path is not None
    budget = memory_budget(request)
    fmt, ext = format_and_ext(source, request, None)
    if source.path.suffix.lower() not in (".tif", ".tiff", ".npy"):
        raise LimitError(
            f"it needs more memory than the budget of {format_size(budget)}; only TIFF and "
            ".npy inputs can be streamed: convert it to a (tiled) TIFF, or raise --memory",
            subject=source.label,
        )
    if fmt not in ("TIFF", "NPY") or (request.stack_labels and fmt != "NPY"):
        raise LimitError(
            f"it needs more memory than the budget of {format_size(budget)}, and a streamed "
            "result is written as TIFF or .npy (a stack as .npy); choose one, or raise "
            "--memory",
            subject=source.label,
        )
    pixels = request.pixels
    if fmt == "NPY" and not request.depth_given:
        pixels = replace(pixels, depth="float")
    target = output_targets(source, request, ext)[0]
    guard_targets(source, request, [target])
    return StreamPlan(source, fmt, target, pixels, max(1 << 20, min(BAND_BYTES, budget // 4)))


def write_streamed(
    plan: StreamPlan,
    job: BandJob,
    request: Request,
    outcome: Outcome,
    bands: Iterator[tuple[int, int, np.ndarray]],
    stats: Filtered,
) -> None:
    """Write the bands of a streamed result to its target, atomically."""
    if request.output.out_dir is not None:
        make_dirs(plan.target.parent)
    write_bands(
        plan.target,
        plan.format,
        job.out_shape,
        job.layout.out_dtype,
        bands,
        rows_per_band=job.band_rows,
        stacked=bool(job.stacked),
        compress=request.output.compress,
    )
    outcome.written.append(str(plan.target))
    _warn_clipping(outcome, plan.source, stats)


def _stream(source: Source, request: Request, outcome: Outcome) -> None:
    """Filter an input too large for the memory budget band by band, from file to file."""
    plan = plan_stream(source, request)
    with plan.job(request) as job:
        outcome.plan = job.plan
        stats = Filtered(np.empty(0), job.stacked)
        write_streamed(plan, job, request, outcome, job.bands(stats), stats)


def load(source: Source, memory: int = 0) -> Loaded:
    """An input's contents; a text array within ``memory`` bytes (0: the default budget)."""
    if source.inline is not None:
        return Loaded(parse_array(source.inline, source.label, memory or None), is_array=True)
    if source.stdin is not None:
        if not source.stdin:
            raise InputError("stdin is empty (no image bytes)", subject=source.label)
        picture = open_image(source.stdin, source.label)
        return Loaded(picture.pixels, picture.format, picture.icc_profile)
    assert source.path is not None
    if source.is_array:
        return Loaded(read_array(source.path, memory or None), is_array=True)
    picture = open_image(source.path, source.label)
    return Loaded(picture.pixels, picture.format, picture.icc_profile)


#: share of clipped results above which a warning suggests another --range
CLIP_WARNING_SHARE = 0.01


def input_job(
    reader: RowReader, request: Request, *, is_array: bool, to_array: bool, band_bytes: int = 0
) -> BandJob:
    """The plan of one input, made once: the run executes it and ``--explain`` prints it.

    Images keep their depth (``--depth``) unless written as an array, which holds the float
    result in the input's units. Arrays are numbers: offset, abs and rescale apply and nothing
    is clipped, unless they are written as an image, where they are sample values of the
    output depth (8-bit by default). A 1-D signal is one row.
    """
    pixels = request.pixels
    if to_array and not request.depth_given:
        pixels = replace(pixels, depth="float")
    layout = array_layout(reader.shape, reader.dtype, pixels, to_array) if is_array else None
    job = plan_image(
        reader,
        request.operation,
        pixels,
        options=request.options,
        backend=request.backend,
        device=request.device,
        layout=layout,
        band_bytes=band_bytes or BAND_BYTES,
    )
    check_result_size(job)
    return job


def check_result_size(job: BandJob) -> None:
    """Refuse before computing a result (or a chain's intermediate) over the pixel limit:
    ``--mode full`` grows an image by each kernel of a chain, and a stacked bank holds one
    image per member (20 x box:size=1025 make 8x8 pixels 20488x20488)."""
    limit = max_pixels()
    for step in job.colour.steps():
        h, w = step.out_shape
        if h * w > limit:
            raise LimitError(
                f"kernel {step.kernel.name!r} makes a {h}x{w} = {h * w} pixel result "
                f"(--mode {job.colour.options.mode.value}), over the limit of {limit} pixels "
                "(set CONVCLI_MAX_PIXELS to raise it)"
            )
    members = job.stacked or 1
    h, w = job.colour.out_shape
    if members * h * w > limit:
        raise LimitError(
            f"the result is {members} images of {h}x{w} pixels = {members * h * w}, over the "
            f"limit of {limit} pixels (set CONVCLI_MAX_PIXELS to raise it)"
        )


def signal_rows(data: np.ndarray, request: Request) -> np.ndarray:
    """A 1-D signal as an array of one row (its kernels must be 1-D), others as they are."""
    if data.ndim != 1:
        return data
    check_signal_kernels(request.operation)
    return data[np.newaxis]


def _compute(
    loaded: Loaded, source: Source, request: Request, outcome: Outcome, to_array: bool
) -> np.ndarray:
    """The result as output samples (see :func:`input_job`)."""
    try:
        data = signal_rows(loaded.data, request)
        job = input_job(ArrayRows(data), request, is_array=loaded.is_array, to_array=to_array)
        outcome.plan = job.plan
        stats = Filtered(np.empty(0), job.stacked)
        result = job.collect(stats)
        if not loaded.is_array:
            _warn_clipping(outcome, source, stats)
        return result[..., 0, :] if loaded.data.ndim == 1 else result
    except InputError as exc:
        if exc.subject is None:
            exc.subject = source.label
        raise


def array_layout(
    shape: tuple[int, ...], dtype: np.dtype, pixels: PixelOptions, to_array: bool
) -> Layout:
    """How an array's numbers are filtered and written: as numbers in the precision they are
    computed in when written as an array, as samples of --depth (8-bit by default) when
    written as an image."""
    compute = work_dtype(np.dtype(dtype))
    if to_array and pixels.depth in ("same", "float"):
        out = compute
    else:
        out = output_dtype(compute, "8" if pixels.depth == "same" else pixels.depth)
    return Layout.of_numbers(dtype, shape, pixels, out, compute)


def _warn_clipping(outcome: Outcome, source: Source, filtered: Filtered) -> None:
    if filtered.total and filtered.clipped > CLIP_WARNING_SHARE * filtered.total:
        share = 100.0 * filtered.clipped / filtered.total
        outcome.warnings.append(
            f"{source.label}: {filtered.clipped} of {filtered.total} results "
            f"({share:.1f}%) were clipped to the output range; try --range abs, "
            "--offset 50% or --depth float"
        )
