"""The work for one input: load, filter, write (streaming inputs over the memory budget band
by band), and say what happened in an :class:`Outcome`; nothing raises for an input's sake."""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from convcli.compute.engine import check_signal_kernels, work_dtype
from convcli.compute.image import BAND_BYTES, BandJob, ComputePlan, plan_image
from convcli.compute.pixels import Filtered, Layout, PixelOptions, output_dtype
from convcli.errors import ConvcliError, InputError, LimitError, OutputError, UsageError
from convcli.io.arrays import npy_header, parse_array, read_array
from convcli.io.atomic import is_stream, sweep_stale_parts, write_bands
from convcli.io.colour import probe_colour
from convcli.io.decode import TooLarge, open_image, probe_image
from convcli.io.encode import encode, write_image
from convcli.io.formats import ARRAY_FORMATS
from convcli.io.frames import probe as probe_frames
from convcli.io.inputs import reason
from convcli.io.limits import max_pixels
from convcli.io.rows import ArrayRows, RowReader, open_rows
from convcli.kernels.registry import for_ndim
from convcli.memory import default_budget, format_size
from convcli.run.naming import format_and_ext, guard_targets, output_targets
from convcli.run.request import Request
from convcli.run.sources import Source

if TYPE_CHECKING:
    from convcli.compute.transfer import Transfer
    from convcli.compute.volume import VolumePlan
    from convcli.run.frames import FramesPlan


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
    plan: ComputePlan | VolumePlan | None = None  # what was computed (what --explain shows)
    frames: FramesPlan | None = None  # a multi-frame input's frames and their plans


@dataclass
class Loaded:
    data: np.ndarray
    format: str | None = None  # detected image format
    icc_profile: bytes | None = None
    is_array: bool = False
    bgr: bool = False  # colour in OpenCV's order, blue first (see :func:`load`)


def process(source: Source, request: Request) -> Outcome:
    """Filter one input and write (or return) its result; never raises for the input's sake."""
    return guarded(source, request, _process)


def guarded(
    source: Source, request: Request, work: Callable[[Source, Request, Outcome], None]
) -> Outcome:
    """Run ``work`` on one input and say what happened: whatever goes wrong becomes the
    outcome's one error line (naming the input) and exit code, never an exception."""
    started = time.perf_counter()
    outcome = Outcome(source)
    try:
        work(source, request, outcome)
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
    if request.volume:
        from convcli.run.volume import process_volume

        process_volume(source, request, outcome)
        return
    from convcli.run.frames import probe_source, process_frames

    animation = probe_source(source, request)
    if animation is not None:  # every frame, each on its own
        _warn_clipping(outcome, source, process_frames(source, request, animation, outcome))
        return
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
        if _all_exist(output_targets(source, request, ext)):
            outcome.skipped = True
            return
    streams = source.path is not None and not writes_stdout(request)
    if streams and source.is_array and too_big(source, request):
        _stream(source, request, outcome)
        return
    try:  # an image's header decides, read once for that and the decoding
        fits = _fits_in_memory(source, request) if streams and not source.is_array else None
        loaded = load(source, request.memory, bgr=channel_blind(request), fits=fits)
    except TooLarge:
        _stream(source, request, outcome)
        return
    fmt, ext = format_and_ext(source, request, loaded.format)
    result = _compute(loaded, source, request, outcome, to_array=fmt in ARRAY_FORMATS.values())
    if out.print_result:
        outcome.array = result
    stacked = bool(request.stack_labels)
    if out.path == "-":
        if stacked and fmt not in ("NPY", "JSON"):
            raise UsageError("a stacked result written to stdout needs --format npy or json")
        outcome.data = encode(
            result, fmt, quality=out.quality, compress=out.compress, bgr=loaded.bgr
        )
        return
    targets = output_targets(source, request, ext)
    guard_targets(source, request, targets)
    if out.skip_existing and _all_exist(targets):
        outcome.skipped = True
        return
    parts = list(result) if len(targets) > 1 else [result]
    write_results(targets, parts, fmt, loaded.icc_profile, request, outcome, loaded.bgr)


def write_results(
    targets: list[Path],
    parts: list[np.ndarray],
    fmt: str,
    icc_profile: bytes | None,
    request: Request,
    outcome: Outcome,
    bgr: bool = False,
) -> None:
    """Write each part of an input's result to its target (checked by ``guard_targets``)
    and list the files written; a device or FIFO written to is no file to list. ``bgr``:
    the colour is in OpenCV's order (see :func:`convcli.io.encode.encode_into`)."""
    out = request.output
    for target, part in zip(targets, parts, strict=True):
        if out.out_dir is not None:
            make_dirs(target.parent)
        write_image(
            part,
            target,
            format=fmt,
            quality=out.quality,
            compress=out.compress,
            icc_profile=icc_profile,
            bgr=bgr,
        )
        if not is_stream(target):
            outcome.written.append(str(target))


def _all_exist(targets: list[Path]) -> bool:
    """Do all outputs exist (a resumed batch skips the input)? The directories of skipped
    outputs are swept of the part files killed writers left there, as written ones are."""
    if not all(t.exists() for t in targets):
        return False
    for target in targets:
        sweep_stale_parts(target.parent)
    return True


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
        if len(shape) < 2:
            return False
        return _over_budget(shape, array_dtype.itemsize, request)
    try:
        shape, sample_type = probe_image(source.path, source.label)
    except ConvcliError:
        return False  # the full read names the problem
    return not _fits_in_memory(source, request)(shape, sample_type)


def _fits_in_memory(source: Source, request: Request) -> Callable[[tuple[int, ...], str], bool]:
    """Whether an image of this shape and sample type is filtered in memory (else it is
    streamed band by band): within the budget, or holding more than one frame (the frames
    of a multi-page TIFF are filtered one at a time, and a bad one is named by that route)."""
    assert source.path is not None
    path = source.path

    def fits(shape: tuple[int, ...], sample_type: str) -> bool:
        over = _over_budget(shape, np.dtype(sample_type).itemsize, request)
        return not over or not _one_frame(path, source.label)

    return fits


def _over_budget(shape: tuple[int, ...], itemsize: int, request: Request) -> bool:
    pixels = int(np.prod(shape))
    members = max(1, len(request.stack_labels))
    # the decoded input, the result's samples (up to float64), its encoded copy, one band
    needed = pixels * (itemsize + 2 * 8 * members) + BAND_BYTES
    return needed > memory_budget(request)


def _one_frame(path: Path, label: str) -> bool:
    """Whether an image holds a single frame: only those are streamed (the frames of a
    multi-page TIFF are filtered one at a time, and a bad one is named by that route)."""
    try:
        return probe_frames(path, label) is None
    except ConvcliError:
        return False


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
                transfer=linear_transfer(self.source, request),
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
    if not is_stream(plan.target):
        outcome.written.append(str(plan.target))
    _warn_clipping(outcome, plan.source, stats)


def _stream(source: Source, request: Request, outcome: Outcome) -> None:
    """Filter an input too large for the memory budget band by band, from file to file."""
    plan = plan_stream(source, request)
    with plan.job(request) as job:
        outcome.plan = job.plan
        stats = Filtered(np.empty(0), job.stacked)
        write_streamed(plan, job, request, outcome, job.bands(stats), stats)


def load(
    source: Source,
    memory: int = 0,
    bgr: bool = False,
    fits: Callable[[tuple[int, ...], str], bool] | None = None,
) -> Loaded:
    """An input's contents; a text array within ``memory`` bytes (0: the default budget).
    With ``bgr``, an image's colour may come in OpenCV's order (``Loaded.bgr`` says whether
    it did): for work that treats every colour channel alike (:func:`channel_blind`). An
    image file that ``fits`` refuses from its header raises :class:`TooLarge`."""
    if source.inline is not None:
        return Loaded(parse_array(source.inline, source.label, memory or None), is_array=True)
    if source.stdin is not None:
        if not source.stdin:
            raise InputError("stdin is empty (no image bytes)", subject=source.label)
        picture = open_image(source.stdin, source.label, bgr=bgr)
        return Loaded(picture.pixels, picture.format, picture.icc_profile, bgr=picture.bgr)
    assert source.path is not None
    if source.is_array:
        return Loaded(read_array(source.path, memory or None), is_array=True)
    picture = open_image(source.path, source.label, bgr=bgr, fits=fits)
    return Loaded(picture.pixels, picture.format, picture.icc_profile, bgr=picture.bgr)


def channel_blind(request: Request) -> bool:
    """Whether a written result's colour channels are each computed alike, none depending on
    which colour it is, so that the image may be filtered in OpenCV's channel order (blue
    first) and handed to its JPEG encoder so, without swapping the order at either end: not
    for gray (luminance weighs the colours), linear light (a profile's curve per colour) or a
    printed result (shown in RGB)."""
    return not (request.pixels.gray or request.linear or request.output.print_result)


def load_one_image(source: Source, command: str) -> Loaded:
    """:func:`load` for a command that takes one image an input (fit, deconvolve): an image
    of several frames is refused, never read as its first frame."""
    image = source.stdin if source.stdin is not None else source.path
    if image is not None and not source.is_array:
        animation = probe_frames(image, source.label)
        if animation is not None:
            raise InputError(
                f"is an {animation.name} of {animation.count} frames, and {command} takes one "
                "image (apply filters every frame)",
                subject=source.label,
            )
    return load(source)


#: clipping warns when it cuts off more than this share of the results ...
CLIP_WARNING_SHARE = 0.01
#: ... and more than this share of their magnitude (sum of |result|, over the planes that
#: clip): the negative half of an edge filter, not the overshoot of ordinary sharpening
CLIP_WARNING_LOSS = 0.05


def input_job(
    reader: RowReader,
    request: Request,
    *,
    is_array: bool,
    to_array: bool,
    band_bytes: int = 0,
    signal: bool = False,
    transfer: Transfer | None = None,
) -> BandJob:
    """The plan of one input, made once: the run executes it and ``--explain`` prints it.

    Images keep their depth (``--depth``) unless written as an array, which holds the float
    result in the input's units. Arrays are numbers: offset, abs and rescale apply and nothing
    is clipped, unless they are written as an image, where they are sample values of the
    output depth (8-bit by default). A 1-D signal is one row (``signal``), filtered by the 1-D
    form of its parametric kernels (``box:size=4`` is the 1-D box). ``transfer``
    (:func:`linear_transfer`) filters an image in linear light.
    """
    if signal:
        request = replace(request, operation=for_ndim(request.operation, 1))
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
        transfer=transfer,
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


def linear_transfer(source: Source, request: Request) -> Transfer | None:
    """With --linear, the transfer curve an image's colours are filtered through: its ICC
    profile's, its PNG gAMA's, or sRGB's (from the header, so that --explain and the run
    decide alike); None without --linear. Arrays have none: their values are numbers."""
    if not request.linear:
        return None
    if source.is_array or source.inline is not None:
        raise InputError(
            "--linear is for images; an array's values are filtered as they are",
            subject=source.label,
        )
    image = source.stdin if source.stdin is not None else source.path
    assert image is not None
    from convcli.compute.transfer import transfer_for

    icc, gamma, srgb = probe_colour(image)
    return transfer_for(icc, gamma, srgb, source.label)


def signal_rows(data: np.ndarray, request: Request) -> np.ndarray:
    """A 1-D signal as an array of one row (its kernels must be 1-D), others as they are."""
    if data.ndim != 1:
        return data
    check_signal_kernels(for_ndim(request.operation, 1))
    return data[np.newaxis]


def _compute(
    loaded: Loaded, source: Source, request: Request, outcome: Outcome, to_array: bool
) -> np.ndarray:
    """The result as output samples (see :func:`input_job`)."""
    try:
        data = signal_rows(loaded.data, request)
        job = input_job(
            ArrayRows(data),
            request,
            is_array=loaded.is_array,
            to_array=to_array,
            signal=loaded.data.ndim == 1,
            transfer=linear_transfer(source, request),
        )
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
    message = clipping_warning(filtered, source.label)
    if message:
        outcome.warnings.append(message)


def clipping_warning(filtered: Filtered, label: str) -> str | None:
    """The warning for results that clipping cut badly, suggesting only the options that
    would clip fewer of these very results (at most half as many), or None."""
    total, clipped = filtered.total, filtered.clipped
    if not total or clipped <= CLIP_WARNING_SHARE * total:
        return None
    if filtered.lost <= CLIP_WARNING_LOSS * filtered.magnitude:  # (False for inf <= inf)
        return None

    def share(count: int) -> str:
        return f"{100.0 * count / total:.1f}%"

    better = []
    if filtered.abs_clipped * 2 <= clipped and filtered.abs_clipped != clipped:
        better.append(f"--range abs would clip {share(filtered.abs_clipped)}")
    if not filtered.offset_unknown and filtered.offset_clipped * 2 <= clipped:
        better.append(f"--offset 50% would clip {share(filtered.offset_clipped)}")
    better.append("--range rescale (min..max to the full range) or --depth float clip none")
    ratio = filtered.lost / filtered.magnitude if filtered.magnitude else 1.0
    lost = 100.0 * (min(ratio, 1.0) if np.isfinite(ratio) else 1.0)  # sums of huge values
    return (
        f"{label}: {clipped} of {total} results ({share(clipped)}) were clipped to the "
        f"output range, cutting off {lost:.0f}% of their magnitude; " + "; ".join(better)
    )
