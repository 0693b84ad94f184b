"""Many inputs: discovery, output naming, the work for one input, and parallel workers.

The command line builds one :class:`Request` (kernels resolved once, options validated) and
hands it, with the inputs, to :func:`run`. Each input becomes an :class:`Outcome` (paths
written, an array to print, or an error), reported through a callback as soon as it is done.
Workers are separate processes that receive the request once, when they start.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import string
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from convcli.compute.engine import StepInfo, convolve, describe, work_dtype
from convcli.compute.image import BAND_BYTES, BandJob, filter_image, plan_image
from convcli.compute.pixels import (
    Filtered,
    Layout,
    PixelOptions,
    output_dtype,
    sample_max,
    to_samples,
)
from convcli.errors import ConvcliError, InputError, LimitError, OutputError, Stopped, UsageError
from convcli.io import arrays, atomic, decode, encode, formats
from convcli.io.rows import ArrayRows, open_rows
from convcli.kernels.model import AnyKernel, KernelBank, KernelChain
from convcli.memory import default_budget, format_size

DEFAULT_TEMPLATE = "{stem}.{kernel}{ext}"
TEMPLATE_FIELDS = {"stem", "ext", "kernel"}


# -- inputs ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Source:
    """One input: a file, image bytes on stdin, or an inline JSON array."""

    label: str  # how messages name it
    path: Path | None = None
    inline: str | None = None
    stdin: bytes | None = None
    rel: Path | None = None  # path below the directory it was found in (kept by -d)

    @property
    def is_array(self) -> bool:
        return self.inline is not None or (
            self.path is not None and formats.is_array_path(self.path)
        )

    @property
    def stem(self) -> str:
        if self.path is not None:
            return self.path.stem
        return "stdin" if self.stdin is not None else "array"


def image_suffixes() -> set[str]:
    """Every extension Pillow opens (its plugins are loaded: only for directory walks)."""
    from PIL import Image

    return {ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN}


def discover(
    inputs: Iterable[str],
    *,
    recursive: bool = False,
    stdin: Callable[[], bytes] | None = None,
) -> Iterator[Source]:
    """Expand the command line's inputs: files, ``-``, inline arrays and directories.

    A directory needs ``recursive``; its images and .npy arrays are taken in sorted order,
    each remembering its path below the directory so that ``-d`` can keep the layout.
    """
    suffixes: set[str] | None = None
    for item in inputs:
        if item == "-":
            if stdin is None:
                raise UsageError("'-' (stdin) can only be given once")
            data = stdin()
            stdin = None
            yield Source("<stdin>", stdin=data)
            continue
        path = Path(item)
        if item.lstrip().startswith("[") and not os.path.exists(path):
            yield Source(_short(item), inline=item)
            continue
        if os.path.isdir(path):
            if not recursive:
                yield Source(item, path=path)  # reported as "is a directory (give -r ...)"
                continue
            # images and .npy arrays; text arrays (.csv .txt .json) only when named, since
            # photo folders are full of notes
            suffixes = suffixes or image_suffixes() | {".npy"}
            for found in _walk(path, suffixes):
                yield Source(str(found), path=found, rel=found.relative_to(path))
            continue
        yield Source(item, path=path)


def _walk(root: Path, suffixes: set[str]) -> Iterator[Path]:
    """Files below ``root`` with a known suffix, hidden ones skipped, in path order."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        found += [
            Path(dirpath) / name
            for name in filenames
            if not name.startswith(".") and Path(name).suffix.lower() in suffixes
        ]
    return iter(sorted(found))


def read_list(data: bytes, null: bool) -> list[str]:
    """Paths from ``--files-from``: one per line, or NUL-separated with ``-0``."""
    sep = b"\0" if null else b"\n"
    items = []
    for raw in data.split(sep):
        if not null:
            raw = raw.rstrip(b"\r")
        if raw.strip():
            items.append(os.fsdecode(raw))
    return items


def _short(text: str) -> str:
    return text if len(text) <= 40 else text[:37] + "..."


# -- the request ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class OutputSpec:
    """Where results go."""

    path: str | None = None  # -o (one input); "-" = stdout
    out_dir: Path | None = None  # -d
    template: str = DEFAULT_TEMPLATE
    format: str | None = None
    quality: int | None = None
    compress: int | None = None
    in_place: bool = False
    skip_existing: bool = False
    print_result: bool = False  # --print

    def __post_init__(self) -> None:
        check_template(self.template)


@dataclass(frozen=True)
class Request:
    """Everything needed to process any input; sent once to each worker."""

    operation: AnyKernel
    label: str  # the {kernel} of output names
    conv: dict[str, Any]  # convolve() keyword arguments
    pixels: PixelOptions = field(default_factory=PixelOptions)
    output: OutputSpec = field(default_factory=OutputSpec)
    depth_given: bool = False  # --depth was given (else arrays written from images are float)
    stack_labels: tuple[str, ...] = ()  # member labels when the result is a stack
    memory: int = 0  # bytes an input may use in memory before it is streamed (0: default)


def stack_labels(operation: AnyKernel) -> tuple[str, ...]:
    """Labels of the members of the stacking bank in ``operation``, if there is one."""
    if isinstance(operation, KernelBank):
        if operation.combine == "stack":
            return _unique(tuple(m.label for m in operation.members))
        return ()
    if isinstance(operation, KernelChain):
        for step in operation.steps:
            labels = stack_labels(step)
            if labels:
                return labels
    return ()


def _unique(labels: tuple[str, ...]) -> tuple[str, ...]:
    """Member labels made distinct (``a``, ``a`` -> ``a``, ``a-2``) so files do not collide."""
    seen: dict[str, int] = {}
    out = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        out.append(label if seen[label] == 1 else f"{label}-{seen[label]}")
    return tuple(out)


def check_template(template: str) -> None:
    """Refuse templates with unknown fields or that name a directory."""
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError as exc:
        raise UsageError(f"--name {template!r}: {exc}") from None
    unknown = fields - TEMPLATE_FIELDS
    if unknown:
        msg = (
            f"--name {template!r}: unknown field {{{sorted(unknown)[0]}}} "
            "(fields: {stem}, {ext}, {kernel})"
        )
        raise UsageError(msg)
    if "/" in template or "\\" in template or template in (".", ".."):
        raise UsageError(
            f"--name {template!r}: a name may not contain a directory; "
            "use -d to choose the directory"
        )


# -- outputs -----------------------------------------------------------------------------------
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


def output_targets(source: Source, request: Request, fmt_ext: str) -> list[Path]:
    """The files a source's result goes to (several for a stack written as images)."""
    out = request.output
    if out.in_place:
        assert source.path is not None
        return [source.path]
    if out.path is not None:
        return [Path(out.path)]
    labels = [request.label]
    if request.stack_labels and fmt_ext.lower() not in (".npy", ".json"):
        labels = list(request.stack_labels)
    if out.out_dir is not None:
        directory = out.out_dir / (source.rel.parent if source.rel is not None else Path())
    elif source.path is not None:
        directory = source.path.parent
    else:
        raise UsageError(f"{source.label}: give -o or -d to say where its result goes")
    targets = []
    for label in labels:
        name = out.template.format(stem=source.stem, ext=fmt_ext, kernel=label)
        if not name or name in (".", ".."):
            raise UsageError(f"--name {out.template!r} gives an empty file name")
        targets.append(directory / name)
    return targets


def _format_and_ext(source: Source, request: Request, detected: str | None) -> tuple[str, str]:
    """Output format name and the {ext} of output names."""
    out = request.output
    if out.path not in (None, "-"):
        fmt = formats.format_for(out.path, out.format)
        return fmt, Path(str(out.path)).suffix
    if out.format:
        fmt = formats.format_for(None, out.format)
        return fmt, formats.extension_for(fmt)
    if out.path == "-":
        raise UsageError("-o - writes to stdout and needs --format")
    if source.path is not None and (source.is_array or not out.in_place):
        suffix = source.path.suffix
        if source.is_array:
            return formats.ARRAY_FORMATS[suffix.lower()], suffix
        if detected:
            return formats.format_for(
                source.path if suffix else None, detected
            ), suffix or formats.extension_for(detected)
        return formats.format_for(source.path), suffix
    if source.path is not None:
        return formats.format_for(source.path, detected), source.path.suffix
    if source.inline is not None:
        return "NPY", ".npy"
    fmt = detected or "PNG"
    return fmt, formats.extension_for(fmt)


# -- processing one input ------------------------------------------------------------------------
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
    except MemoryError:
        outcome.error = f"{source.label}: out of memory (try a smaller image or --memory)"
        outcome.exit_code = 1
    except Exception as exc:  # an input must never take the batch down
        outcome.error = f"{source.label}: internal error: {type(exc).__name__}: {exc}"
        outcome.exit_code = 1
        outcome.detail = traceback.format_exc()
    outcome.seconds = time.perf_counter() - started
    return outcome


def _process(source: Source, request: Request, outcome: Outcome) -> None:
    out = request.output
    writes = out.path is not None or out.out_dir is not None or out.in_place
    if not writes and (source.is_array or out.print_result):
        outcome.array = _compute(_load(source), source, request, outcome, to_array=True)
        return
    if out.skip_existing and source.path is not None and source.path.suffix:
        # decide before decoding, so that resuming a batch costs nothing for finished files
        _, ext = _format_and_ext(source, request, None)
        if all(t.exists() for t in output_targets(source, request, ext)):
            outcome.skipped = True
            return
    if source.path is not None and not writes_stdout(request) and _too_big(source, request):
        _stream(source, request, outcome)
        return
    loaded = _load(source)
    fmt, ext = _format_and_ext(source, request, loaded.format)
    result = _compute(
        loaded, source, request, outcome, to_array=fmt in formats.ARRAY_FORMATS.values()
    )
    if out.print_result:
        outcome.array = result
    stacked = bool(request.stack_labels)
    if out.path == "-":
        if stacked and fmt not in ("NPY", "JSON"):
            raise UsageError("a stacked result written to stdout needs --format npy or json")
        outcome.data = encode.encode(result, fmt, quality=out.quality, compress=out.compress)
        return
    targets = output_targets(source, request, ext)
    _guard_targets(source, request, targets)
    if out.skip_existing and all(t.exists() for t in targets):
        outcome.skipped = True
        return
    parts = list(result) if len(targets) > 1 else [result]
    for target, part in zip(targets, parts, strict=True):
        if out.out_dir is not None:
            make_dirs(target.parent)
        encode.write_image(
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


def _budget(request: Request) -> int:
    return request.memory or default_budget()


def _too_big(source: Source, request: Request) -> bool:
    """Would holding this input and its result in memory exceed the budget?"""
    assert source.path is not None
    if source.is_array:
        if source.path.suffix.lower() != ".npy":
            return False
        try:
            shape, array_dtype = arrays.npy_header(source.path, source.label)
        except ConvcliError:
            return False  # read_array names the problem
        itemsize = array_dtype.itemsize
        if len(shape) < 2:
            return False
    else:
        try:
            shape, sample_type = decode.probe_image(source.path, source.label)
        except ConvcliError:
            return False  # the full read names the problem
        itemsize = np.dtype(sample_type).itemsize
    pixels = int(np.prod(shape))
    members = max(1, len(request.stack_labels))
    # the decoded input, the result's samples (up to float64), its encoded copy, one band
    needed = pixels * (itemsize + 2 * 8 * members) + BAND_BYTES
    return needed > _budget(request)


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
            layout = None
            if self.source.is_array:
                layout = array_layout(
                    reader.shape,
                    reader.dtype,
                    self.pixels,
                    request,
                    self.format in formats.ARRAY_FORMATS.values(),
                )
            yield plan_image(
                reader,
                request.operation,
                self.pixels,
                band_bytes=self.band_bytes,
                layout=layout,
                **request.conv,
            )
        finally:
            close = getattr(reader, "close", None)
            if close is not None:
                close()


def plan_stream(source: Source, request: Request) -> StreamPlan:
    """Check that an input over the memory budget can be streamed, and say how."""
    assert source.path is not None
    budget = _budget(request)
    fmt, ext = _format_and_ext(source, request, None)
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
    _guard_targets(source, request, [target])
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
    atomic.write_bands(
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
        stats = Filtered(np.empty(0), job.stacked)
        write_streamed(plan, job, request, outcome, job.bands(stats), stats)


def _guard_targets(source: Source, request: Request, targets: list[Path]) -> None:
    """Never write over an input (unless --in-place), nor outside the output directory."""
    out = request.output
    if out.in_place:
        return
    for target in targets:
        if source.path is not None and _same_file(target, source.path):
            raise OutputError(
                f"the output {str(target)!r} would overwrite the input; choose "
                "another --name or -o, or give --in-place",
                subject=source.label,
            )
        if out.out_dir is not None:
            root = os.path.realpath(out.out_dir)
            where = os.path.realpath(target)
            if os.path.commonpath([root, where]) != root:
                raise OutputError(
                    f"the output {str(target)!r} would leave the output "
                    f"directory {str(out.out_dir)!r}",
                    subject=source.label,
                )


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def _load(source: Source) -> Loaded:
    if source.inline is not None:
        return Loaded(arrays.parse_array(source.inline, source.label), is_array=True)
    if source.stdin is not None:
        if not source.stdin:
            raise InputError("stdin is empty (no image bytes)", subject=source.label)
        picture = decode.open_image(source.stdin, source.label)
        return Loaded(picture.pixels, picture.format, picture.icc_profile)
    assert source.path is not None
    if source.is_array:
        return Loaded(arrays.read_array(source.path), is_array=True)
    picture = decode.open_image(source.path, source.label)
    return Loaded(picture.pixels, picture.format, picture.icc_profile)


#: share of clipped results above which a warning suggests another --range
CLIP_WARNING_SHARE = 0.01


def _compute(
    loaded: Loaded, source: Source, request: Request, outcome: Outcome, to_array: bool
) -> np.ndarray:
    """The result as output samples.

    Images keep their depth (``--depth``) unless written as an array, which holds the float
    result in the input's units. Arrays are numbers: offset, abs and rescale apply and nothing
    is clipped, unless they are written as an image, where they are sample values of the
    output depth (8-bit by default).
    """
    pixels = request.pixels
    if to_array and not request.depth_given:
        pixels = replace(pixels, depth="float")
    try:
        if not loaded.is_array:
            filtered = filter_image(loaded.data, request.operation, pixels, **request.conv)
            _warn_clipping(outcome, source, filtered)
            return filtered.pixels
        data = loaded.data
        layout = array_layout(data.shape, data.dtype, pixels, request, to_array)
        if data.ndim == 1:  # a signal: one row, nothing to cut into bands
            result = convolve(data, request.operation, **request.conv)
            return to_samples(result, layout.in_max, layout.out_dtype, pixels)[0]
        job = plan_image(ArrayRows(data), request.operation, pixels, layout=layout, **request.conv)
        return job.collect()
    except InputError as exc:
        if exc.subject is None:
            exc.subject = source.label
        raise


def array_layout(
    shape: tuple[int, ...], dtype: np.dtype, pixels: PixelOptions, request: Request, to_array: bool
) -> Layout:
    """How an array's numbers are filtered and written: as numbers in the precision they are
    computed in when written as an array, as samples of --depth (8-bit by default) when
    written as an image."""
    compute = np.dtype(request.conv.get("dtype") or work_dtype(np.dtype(dtype)))
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


# -- running many --------------------------------------------------------------------------------
@dataclass
class Summary:
    done: int = 0
    skipped: int = 0
    failed: int = 0
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    def recorder(
        self, on_outcome: Callable[[Outcome], None], fail_fast: bool
    ) -> Callable[[Outcome], bool]:
        """What takes each outcome: counts it, passes it on, and says whether to stop."""

        def record(outcome: Outcome) -> bool:
            if outcome.error:
                self.failed += 1
            elif outcome.skipped:
                self.skipped += 1
            else:
                self.done += 1
            on_outcome(outcome)
            return bool(outcome.error) and fail_fast

        return record


_worker_request: Request | None = None
_worker_busy = False
_worker_stopping = False
_worker_parent = 0


def _orphaned() -> bool:
    return os.getppid() != _worker_parent


def _init_worker(request: Request, threads: int) -> None:
    """Runs once in each worker: keep the request, share the cores, and leave when orphaned."""
    global _worker_request
    _worker_request = request
    from convcli.cli.allocator import keep_freed_memory
    from convcli.compute.backends import limit_threads

    limit_threads(threads)
    keep_freed_memory()  # inherited when forked; a spawned worker sets its own
    global _worker_parent
    _worker_parent = parent = os.getppid()

    def watchdog() -> None:
        # A worker whose parent was killed (kill -9) would otherwise wait for work forever.
        # It leaves between inputs, so every file it started is finished (renamed) first.
        while True:
            time.sleep(0.5)
            if os.getppid() != parent and not _worker_busy:
                os._exit(0)

    threading.Thread(target=watchdog, daemon=True).start()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _on_stop_signal)


def _on_stop_signal(signum: int, frame: Any) -> None:
    # Ctrl-C reaches every worker; when one exits, the pool terminates the others (SIGTERM).
    # An idle worker just leaves; a busy one unwinds first, so that the output it was
    # writing is removed, then leaves. Either way, quietly: the parent reports the stop.
    global _worker_stopping
    if not _worker_busy:
        os._exit(128 + signum)
    if not _worker_stopping:  # a second signal must not cut the clean-up short
        _worker_stopping = True
        raise Stopped(signum)


def _work(source: Source) -> Outcome:
    global _worker_busy
    assert _worker_request is not None
    if _orphaned():
        os._exit(0)  # the parent is gone: do not start inputs queued for it
    _worker_busy = True
    try:
        return process(source, _worker_request)
    except Stopped as stop:
        os._exit(128 + stop.signum)
    finally:
        _worker_busy = False


def run(
    sources: Iterable[Source],
    request: Request,
    *,
    jobs: int = 1,
    fail_fast: bool = False,
    on_outcome: Callable[[Outcome], None] = lambda o: None,
) -> Summary:
    """Process every source, ``jobs`` at a time, reporting each outcome as it completes."""
    started = time.perf_counter()
    summary = Summary()
    items = list(sources)
    clashes = _clashing_outputs(items, request)
    record = summary.recorder(on_outcome, fail_fast)

    for index, message in clashes.items():
        if record(Outcome(items[index], error=message, exit_code=1)):
            return summary
    items = [source for i, source in enumerate(items) if i not in clashes]
    if jobs <= 1 or len(items) <= 1:
        for source in items:
            if record(process(source, request)):
                break
    else:
        _run_pool(items, request, jobs, record)
    summary.seconds = time.perf_counter() - started
    return summary


def _clashing_outputs(items: list[Source], request: Request) -> dict[int, str]:
    """Inputs whose output another input of the batch would write too (same file name from
    two directories, say): they fail rather than silently overwrite each other's results."""
    out = request.output
    if out.in_place or out.path is not None or (out.out_dir is None and out.print_result):
        return {}
    owner: dict[str, Source] = {}
    clashes: dict[int, str] = {}
    for index, source in enumerate(items):
        if source.path is None or not source.path.suffix:
            continue
        try:
            _, ext = _format_and_ext(source, request, None)
            targets = output_targets(source, request, ext)
        except ConvcliError:
            continue  # reported when the input itself is processed
        for target in targets:
            key = os.path.realpath(target)
            first = owner.setdefault(key, source)
            if first is not source:
                clashes[index] = (
                    f"{source.label}: its output {str(target)!r} is also the "
                    f"output of {first.label}; use -r on a directory to keep "
                    "the layout, or --name"
                )
    return clashes


def _run_pool(
    items: list[Source], request: Request, jobs: int, record: Callable[[Outcome], bool]
) -> None:
    """Feed the workers a short queue (so --fail-fast stops soon) and record as they finish.

    A worker that dies (killed, out of memory) takes the pool down with it, and which of the
    inputs in flight it held is unknown. Each of them is tried again alone in a fresh worker
    (with the memory of the machine to itself): one whose worker dies again is reported
    failed. Then the rest of the batch goes on.
    """
    queue = iter(items)
    while True:
        stopped, lost = _pool_round(queue, request, jobs, record)
        if stopped or not lost:
            return
        for source in lost:
            stopped, died = _pool_round(iter([source]), request, 1, record)
            if stopped:
                return
            if died:
                failed = Outcome(
                    source,
                    error=f"{source.label}: the worker processing it died (killed, or out "
                    "of memory)",
                    exit_code=1,
                )
                if record(failed):
                    return


def _worker_context() -> Any:
    """How workers start. Forking is fast (the workers inherit the imported modules and the
    resolved kernels) and safe as long as this process has not filtered anything itself,
    which the command line never has: once a library's native thread pool (OpenCV's) has
    run, a forked child can inherit it mid-use and hang, so such a process spawns fresh
    interpreters instead. (A fork server is no way out: killed with kill -9, its parent
    would leave it and its workers running.)"""
    from convcli.compute.backends import has_computed

    if sys.platform.startswith("linux") and not has_computed():
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def _pool_round(
    queue: Iterator[Source], request: Request, jobs: int, record: Callable[[Outcome], bool]
) -> tuple[bool, list[Source]]:
    """One pool's run over the queue: whether --fail-fast stopped it, and the inputs in
    flight when a worker died (the pool is then gone)."""
    threads = max(1, (os.cpu_count() or 1) // jobs)
    pending: dict[Future[Outcome], Source] = {}
    with ProcessPoolExecutor(
        max_workers=jobs,
        mp_context=_worker_context(),
        initializer=_init_worker,
        initargs=(request, threads),
    ) as pool:

        def top_up() -> None:
            for source in queue:
                pending[pool.submit(_work, source)] = source
                if len(pending) >= 2 * jobs:
                    break

        try:
            top_up()
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                stop = False
                for future in done:
                    source = pending.pop(future)
                    try:
                        outcome = future.result()
                    except BrokenProcessPool:
                        lost, stop = [source], False
                        for other, other_source in pending.items():
                            if other.done() and other.exception() is None:
                                # finished before the death
                                stop = record(other.result()) or stop
                            else:
                                lost.append(other_source)
                        pending.clear()
                        return (True, []) if stop else (False, lost)
                    stop = record(outcome) or stop
                if stop:
                    for future in pending:
                        future.cancel()
                    for future in wait([f for f in pending if not f.cancelled()]).done:
                        record(future.result())
                    return True, []
                top_up()
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return False, []


# -- explaining --------------------------------------------------------------------------------
@dataclass
class Explanation:
    """What ``apply`` would do with one input (``--explain``); nothing is computed or written."""

    source: Source
    kind: str  # "image" or "array"
    input_shape: tuple[int, ...]
    input_dtype: str
    backend: str
    steps: list[StepInfo]
    output_shape: tuple[int, ...]
    output_dtype: str
    mapping: str
    destination: list[str]
    memory: str = "in memory"  # or how it would be streamed, or why it cannot be


def explain(source: Source, request: Request) -> Explanation:
    """Describe the work for one input from its header (images) or contents (arrays)."""
    if source.is_array:
        data = _load(source).data
        shape, dtype, kind = data.shape, str(data.dtype), "array"
    else:
        image = source.stdin if source.stdin is not None else source.path
        assert image is not None
        shape, dtype = decode.probe_image(image, source.label)
        kind = "image"
    spatial = (1, shape[0]) if len(shape) == 1 else (shape[0], shape[1])
    conv = {k: v for k, v in request.conv.items() if k != "dtype"}
    compute = work_dtype(np.dtype(dtype)) if kind == "image" else np.dtype(np.float64)
    backend, steps, out = describe(
        request.operation, spatial, dtype=conv.pop("dtype", compute), **conv
    )
    channels = shape[2:]
    if kind == "image" and request.pixels.gray:
        channels = (2,) if shape[2:] in ((2,), (4,)) else ()
    out_shape: tuple[int, ...] = (out[1],) if len(shape) == 1 else (*out, *channels)
    if request.stack_labels:
        out_shape = (len(request.stack_labels), *out_shape)
    fmt, ext = _format_and_ext(source, request, None if source.stdin is None else "PNG")
    to_array = fmt in formats.ARRAY_FORMATS.values()
    out_dtype, mapping = _mapping(kind, dtype, request, to_array)
    writes = (
        request.output.path is not None
        or request.output.out_dir is not None
        or request.output.in_place
    )
    if not writes and (kind == "array" or request.output.print_result):
        destination = ["printed on stdout"]
    elif request.output.path == "-":
        destination = [f"stdout as {fmt}"]
    else:
        destination = [str(t) for t in output_targets(source, request, ext)]
    memory = "in memory"
    if source.path is not None and not writes_stdout(request) and _too_big(source, request):
        try:
            plan = plan_stream(source, request)
            memory = (
                f"streamed in bands of about {format_size(plan.band_bytes)} (over the "
                f"memory budget of {format_size(_budget(request))})"
            )
        except LimitError as exc:
            memory = f"refused: {exc.message}"
    return Explanation(
        source,
        kind,
        tuple(shape),
        dtype,
        backend,
        steps,
        out_shape,
        out_dtype,
        mapping,
        destination,
        memory,
    )


def _mapping(kind: str, dtype: str, request: Request, to_array: bool) -> tuple[str, str]:
    """The output sample type and how float results become it."""
    pixels = request.pixels
    if kind == "array" or (to_array and not request.depth_given):
        extra = _offset_text(pixels, 1.0)
        if pixels.range == "abs":
            extra = "absolute value" + (", " + extra if extra else "")
        elif pixels.range == "rescale":
            extra = "min..max stretched to 0..1"
        return "float64" if kind == "array" else "float32", extra or "raw float results"
    out = output_dtype(np.dtype(dtype), pixels.depth)
    if out.kind == "f":
        return str(out), "raw float results in the input's units" + (
            ", " + _offset_text(pixels, sample_max(np.dtype(dtype))) if pixels.offset else ""
        )
    top = int(sample_max(out))
    scale = sample_max(out) / sample_max(np.dtype(dtype))
    parts = [f"scaled x{scale:g}"] if scale != 1 else []
    if pixels.range == "rescale":
        parts.append(f"min..max stretched to 0..{top}")
    else:
        if pixels.range == "abs":
            parts.append("absolute value")
        if pixels.offset:
            parts.append(_offset_text(pixels, top))
        parts.append(f"rounded to nearest, clipped to 0..{top}")
    return str(out), ", ".join(parts)


def _offset_text(pixels: PixelOptions, full_scale: float) -> str:
    if not pixels.offset:
        return ""
    if pixels.offset_percent:
        return f"plus {pixels.offset:g}% of {full_scale:g}"
    return f"plus {pixels.offset:g}"
