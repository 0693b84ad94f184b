"""``convcli apply``: declare the options, build the request through the library
(:func:`convcli.run.request.build_request`), run it and render what happened."""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import typer

from convcli.errors import ConvcliError, LimitError, UsageError
from convcli.vocabulary import (
    Alpha,
    BackendName,
    Boundary,
    Combine,
    Compat,
    Depth,
    Device,
    Method,
    Mode,
    Range,
)

if TYPE_CHECKING:
    from convcli.run.pool import Work
    from convcli.run.process import Outcome
    from convcli.run.request import Request
    from convcli.run.runner import Settings
    from convcli.run.sources import Source

from convcli.cli import streams
from convcli.cli.program import BrokenPipe, ConvcliCommand, app, complete_kernel, error

#: the panels of apply --help
_OUT = "Output"
_CONV = "Convolution"
_PIX = "Pixels"
_BATCH = "Batch"


@app.command(cls=ConvcliCommand)
def apply(
    inputs: Annotated[
        list[str] | None,
        typer.Argument(
            help="Images, array files (.npy .csv .txt .json), directories (with -r), '-' for image "
            "bytes on stdin, or an inline JSON array.",
            show_default=False,
        ),
    ] = None,
    kernel: Annotated[
        list[str],
        typer.Option(
            "--kernel",
            "-k",
            autocompletion=complete_kernel,
            help="Kernel spec; repeat to chain (or to build a bank with --combine).",
            show_default=False,
            rich_help_panel=_CONV,
        ),
    ] = [],  # noqa: B006
    combine: Annotated[
        Combine | None,
        typer.Option(
            help="Apply every -k to the input and combine the results (a bank).",
            rich_help_panel=_CONV,
        ),
    ] = None,
    mode: Annotated[
        Mode | None,
        typer.Option(
            help="Output size, as scipy.signal.convolve2d.  [default: same]",
            show_default=False,
            rich_help_panel=_CONV,
        ),
    ] = None,
    boundary: Annotated[
        Boundary | None,
        typer.Option(
            help="Padding: fill (--fill-value), reflect dcba|abcd, mirror dcb|abcd, nearest, "
            "wrap.  [default: reflect]",
            show_default=False,
            rich_help_panel=_CONV,
        ),
    ] = None,
    fill_value: Annotated[
        float,
        typer.Option(help="Value outside the input with --boundary fill.", rich_help_panel=_CONV),
    ] = 0.0,
    correlate: Annotated[
        bool | None,
        typer.Option(
            "--correlate/--convolve",
            help="--correlate does not flip the kernel (what torch.nn.Conv2d computes).  "
            "[default: convolve]",
            show_default=False,
            rich_help_panel=_CONV,
        ),
    ] = None,
    normalize: Annotated[
        bool,
        typer.Option("--normalize", help="Divide each kernel by its sum.", rich_help_panel=_CONV),
    ] = False,
    compat: Annotated[
        Compat | None,
        typer.Option(
            help="Adopt that library's flip, boundary, output size and alignment (options "
            "given explicitly win).",
            rich_help_panel=_CONV,
        ),
    ] = None,
    method: Annotated[
        Method,
        typer.Option(
            help="Algorithm; all give the same result within float tolerance.",
            rich_help_panel=_CONV,
        ),
    ] = Method.AUTO,
    backend: Annotated[
        BackendName,
        typer.Option(
            help="Computing library: auto picks the fastest installed one that can do the request.",
            rich_help_panel=_CONV,
        ),
    ] = BackendName.AUTO,
    device: Annotated[
        Device,
        typer.Option(
            help="torch device: auto picks cuda or mps when present; cuda/mps imply --backend "
            "torch.",
            rich_help_panel=_CONV,
        ),
    ] = Device.AUTO,
    memory: Annotated[
        str | None,
        typer.Option(
            help="Memory budget, e.g. 512MiB or 2GiB; larger TIFF and .npy inputs are streamed "
            "in bands with identical results [default: a quarter of RAM, or CONVCLI_MEMORY].",
            metavar="LIMIT",
            rich_help_panel=_BATCH,
        ),
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option(
            help="Run on a Dask distributed cluster (the 'dask' extra), e.g. tcp://host:8786; "
            "inputs and outputs must be on a filesystem the workers share "
            "[env: CONVCLI_SCHEDULER].",
            metavar="ADDRESS",
            rich_help_panel=_BATCH,
        ),
    ] = None,
    formats: Annotated[
        str | None,
        typer.Option(
            help="Image formats decoded, comma-separated Pillow names; 'default' is PNG, JPEG, "
            "TIFF, WebP, BMP and GIF, 'all' every format Pillow opens (e.g. default,ico) "
            "[env: CONVCLI_FORMATS].",
            metavar="LIST",
            rich_help_panel=_BATCH,
        ),
    ] = None,
    explain: Annotated[
        bool,
        typer.Option(
            "--explain",
            help="Print what would be done (kernels, method, backend, output) and write nothing.",
            rich_help_panel=_OUT,
        ),
    ] = False,
    volume: Annotated[
        bool,
        typer.Option(
            "--volume",
            help="Inputs are volumes (a 3-D .npy, a multi-page TIFF as a z-stack), filtered "
            "with 3-D kernels (gaussian:sigma=2,ndim=3); gaussian and box without ndim are 3-D.",
            rich_help_panel=_CONV,
        ),
    ] = False,
    linear: Annotated[
        bool,
        typer.Option(
            "--linear",
            help="Filter images in linear light: decode sRGB (or the file's ICC profile or "
            "PNG gamma), filter, re-encode.",
            rich_help_panel=_PIX,
        ),
    ] = False,
    offset: Annotated[
        str,
        typer.Option(
            help="Added to the result, in output units, or a percentage of the output range (50%).",
            rich_help_panel=_PIX,
        ),
    ] = "0",
    range_: Annotated[
        Range,
        typer.Option(
            "--range",
            help="Map results to integer pixels: clip, abs then clip, or rescale "
            "min..max to the full range.",
            rich_help_panel=_PIX,
        ),
    ] = Range.CLIP,
    gray: Annotated[
        bool, typer.Option("--gray", help="Convert to luminance first.", rich_help_panel=_PIX)
    ] = False,
    alpha: Annotated[
        Alpha,
        typer.Option(
            help="keep: copy alpha through; filter: filter it too; premultiplied: no fringes.",
            rich_help_panel=_PIX,
        ),
    ] = Alpha.KEEP,
    depth: Annotated[
        Depth | None,
        typer.Option(
            help="Output samples: same, 8, 16, float (TIFF float32 or .npy).  [default: same]",
            show_default=False,
            rich_help_panel=_PIX,
        ),
    ] = None,
    output: Annotated[
        str | None,
        typer.Option(
            "--output",
            "-o",
            help="Output file (one input); '-' for stdout (needs --format).",
            rich_help_panel=_OUT,
        ),
    ] = None,
    out_dir: Annotated[
        str | None,
        typer.Option(
            "--out-dir",
            "-d",
            help="Output directory; the layout below directory inputs is kept.",
            rich_help_panel=_OUT,
        ),
    ] = None,
    name: Annotated[
        str,
        typer.Option(help="Output file name; fields {stem} {ext} {kernel}.", rich_help_panel=_OUT),
    ] = "{stem}.{kernel}{ext}",
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            help="png, jpeg, tiff, webp, bmp, npy, csv, json, txt (default: from the extension).",
            rich_help_panel=_OUT,
        ),
    ] = None,
    frames: Annotated[
        str | None,
        typer.Option(
            help="Frames of animated GIF/APNG/WebP and multi-page TIFF inputs to filter, from "
            "0, e.g. 0,2-5 [default: all].",
            metavar="LIST",
            rich_help_panel=_OUT,
        ),
    ] = None,
    print_: Annotated[
        bool,
        typer.Option("--print", help="Print the result as a numeric table.", rich_help_panel=_OUT),
    ] = False,
    precision: Annotated[
        int | None, typer.Option(min=0, max=17, help="Digits when printing.", rich_help_panel=_OUT)
    ] = None,
    quality: Annotated[
        int | None,
        typer.Option(min=1, max=100, help="JPEG/WebP quality [default: 90].", rich_help_panel=_OUT),
    ] = None,
    compress: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=9,
            help="PNG/TIFF compression level [default: PNG 1, TIFF none].",
            rich_help_panel=_OUT,
        ),
    ] = None,
    in_place: Annotated[
        bool,
        typer.Option(
            "--in-place",
            help="Replace each input with its result (atomically).",
            rich_help_panel=_OUT,
        ),
    ] = False,
    recursive: Annotated[
        bool,
        typer.Option(
            "--recursive", "-r", help="Descend into directory inputs.", rich_help_panel=_BATCH
        ),
    ] = False,
    files_from: Annotated[
        str | None,
        typer.Option(
            help="Read input paths from FILE ('-' = stdin), one per line.",
            metavar="FILE",
            rich_help_panel=_BATCH,
        ),
    ] = None,
    null: Annotated[
        bool,
        typer.Option(
            "-0",
            "--null",
            help="--files-from is NUL-separated (find -print0).",
            rich_help_panel=_BATCH,
        ),
    ] = False,
    jobs: Annotated[
        int | None,
        typer.Option(
            "--jobs",
            "-j",
            min=1,
            help="Parallel workers [default: CPU count].",
            rich_help_panel=_BATCH,
        ),
    ] = None,
    skip_existing: Annotated[
        bool,
        typer.Option(
            "--skip-existing",
            help="Leave outputs that already exist (resume a batch).",
            rich_help_panel=_BATCH,
        ),
    ] = False,
    fail_fast: Annotated[
        bool,
        typer.Option("--fail-fast", help="Stop at the first failed input.", rich_help_panel=_BATCH),
    ] = False,
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet", "-q", help="No progress, warnings or summary.", rich_help_panel=_BATCH
        ),
    ] = False,
    progress: Annotated[
        bool | None,
        typer.Option(
            "--progress/--no-progress",
            help="Progress bar [default: on when stderr is a terminal].",
            show_default=False,
            rich_help_panel=_BATCH,
        ),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
) -> int:
    """Filter images or arrays with one or more kernels.

    Results are written beside each image as {stem}.{kernel}{ext} (or to -o / -d), and every
    file written is printed on stdout; array results are printed.

    \b
    Examples:
      convcli apply -k sobel photo.png
      convcli apply -k gaussian:sigma=2 -k sharpen photo.jpg -o out.jpg
      convcli apply -k sobel-x -k sobel-y --combine magnitude --depth 16 scan.tif
      find photos -name '*.jpg' | convcli apply -k gaussian:sigma=2 --files-from - -d out/
      convcli apply -k box-1d:size=4 --mode valid '[1,2,3,4,5,4,3,2,1]'
    """
    from convcli.cli.allocator import keep_freed_memory
    from convcli.memory import default_budget, parse_size
    from convcli.run.cluster import scheduler_address
    from convcli.run.request import build_request, kernel_specs
    from convcli.run.runner import Settings, check_sources

    if formats is not None:
        _allow_formats(formats)
    specs = kernel_specs(kernel)
    budget = parse_size(memory, "--memory") if memory else default_budget()
    items = _inputs(inputs, files_from, null, budget // 4)
    request = build_request(
        specs,
        combine=combine,
        mode=mode,
        boundary=boundary,
        fill_value=fill_value,
        correlate=correlate,
        normalize=normalize,
        compat=compat,
        method=method,
        backend=backend.value,
        device=device.value,
        memory=memory,
        offset=offset,
        value_range=range_,
        gray=gray,
        alpha=alpha,
        depth=depth,
        output=output,
        out_dir=out_dir,
        name=name,
        format=fmt,
        quality=quality,
        compress=compress,
        in_place=in_place,
        skip_existing=skip_existing,
        print_result=print_,
        frames=frames,
        inputs=items,
        recursive=recursive,
        stdout_is_terminal=stdout_is_terminal(output),
        volume=volume,
        linear=linear,
    )
    sources = discover_inputs(items, recursive=recursive, budget=budget)
    if explain:
        return _explain(sources, request)
    check_sources(sources, request)
    show_progress = (
        progress if progress is not None else sys.stderr.isatty() and not quiet and len(sources) > 1
    )
    settings = Settings(
        jobs=jobs,
        fail_fast=fail_fast,
        scheduler=scheduler_address(scheduler),
        worker_setup=keep_freed_memory,  # the command line's workers tune the allocator too
    )
    view = _View(progress=show_progress, quiet=quiet, debug=debug, precision=precision)
    return _run_batch(sources, request, settings, view)


def run_batch(
    sources: list[Source],
    request: Request,
    *,
    jobs: int | None,
    fail_fast: bool,
    progress: bool | None,
    quiet: bool,
    debug: bool,
    precision: int | None,
    work: Work | None = None,
) -> int:
    """Run a batch as apply does (workers, progress, one line per failure, the summary),
    doing ``work`` to each input: apply's filtering by default, another command's work
    (deconvolve's) when given."""
    from convcli.cli.allocator import keep_freed_memory
    from convcli.run.runner import Settings, check_sources

    check_sources(sources, request)
    show_progress = (
        progress if progress is not None else sys.stderr.isatty() and not quiet and len(sources) > 1
    )
    settings = Settings(jobs=jobs, fail_fast=fail_fast, worker_setup=keep_freed_memory)
    view = _View(progress=show_progress, quiet=quiet, debug=debug, precision=precision)
    return _run_batch(sources, request, settings, view, work)


def discover_inputs(items: list[str], *, recursive: bool, budget: int) -> list[Source]:
    """The sources the inputs name; image bytes on stdin are read boundedly (at most
    ``budget``, and no further than bytes that begin no allowed image)."""
    from convcli.io.inputs import read_image_stream
    from convcli.run.sources import discover

    def stdin() -> bytes:
        return read_image_stream(streams.stdin_stream(), budget, "<stdin>")

    return list(discover(items, recursive=recursive, stdin=stdin))


def stdout_is_terminal(output: str | None) -> bool:
    """Whether ``-o -`` would write binary data onto a terminal (a closed stdout is none)."""
    return output == "-" and sys.stdout is not None and sys.stdout.isatty()


def read_listing(name: str, limit: int) -> bytes:
    """The bytes of a --files-from listing (a file, a FIFO or '-'), at most ``limit``; a
    FIFO without a writer reads as empty rather than waiting."""
    from convcli import bounded
    from convcli.memory import format_size

    def too_much() -> str:
        return f"--files-from {name}: more than {format_size(limit)} (a quarter of the budget)"

    try:
        if name == "-":
            return bounded.read_stream(streams.stdin_stream(), limit, too_much)
        return bounded.read_path(name, limit, too_much)
    except LimitError as exc:  # a list too long is a bad option value, as apply's lists are
        raise UsageError(exc.message) from None
    except ConvcliError:
        raise
    except OSError as exc:
        raise UsageError(f"--files-from {name}: {exc.strerror or exc}") from None
    except ValueError:  # (open's, for a name holding a NUL byte)
        raise UsageError(f"--files-from {name}: the name holds a NUL byte") from None


def input_items(inputs: list[str] | None, files_from: str | None, null: bool) -> list[str]:
    """The inputs named on the command line and in --files-from (apply's rules)."""
    from convcli.memory import default_budget

    return _inputs(inputs, files_from, null, default_budget() // 4)


def _allow_formats(formats: str) -> None:
    """--formats: the image formats decoded while the command runs (as CONVCLI_FORMATS,
    which the workers inherit)."""
    from convcli.io.allowed import ENV, parse_formats

    parse_formats(formats, "--formats")
    os.environ[ENV] = formats  # (put back when the command ends: cli.process)


def _inputs(inputs: list[str] | None, files_from: str | None, null: bool, limit: int) -> list[str]:
    """The inputs named on the command line and in --files-from (at most ``limit`` bytes)."""

    items = list(inputs or [])
    stdin_used = items.count("-") + (files_from == "-")
    if stdin_used > 1:
        raise UsageError("stdin can be read only once: '-' as an input and --files-from - conflict")
    if files_from is not None:
        items += _read_list(files_from, null, limit)
    elif null:
        raise UsageError("-0/--null goes with --files-from")
    if not items:
        raise UsageError("no input given (files, directories with -r, '-', or --files-from)")
    return items


def _explain(sources: list[Source], request: Request) -> int:
    """--explain: describe every input, write nothing."""
    from convcli.cli import render
    from convcli.run.explain import explain

    worst = 0
    for source in sources:
        try:
            render.explanation(explain(source, request))
        except ConvcliError as exc:
            error(str(exc) if exc.subject else f"{source.label}: {exc.message}")
            worst = max(worst, exc.exit_code)
    return worst


def _read_list(name: str, null: bool, limit: int) -> list[str]:
    """The names of --files-from (a file, a pipe, or stdin), read boundedly; a FIFO with no
    writer reads as empty rather than waiting for one."""
    from convcli import bounded
    from convcli.run.sources import read_list_stream

    label = f"--files-from {name}"
    if name == "-":
        return read_list_stream(streams.stdin_stream(), null, limit, label)
    try:
        with bounded.open_without_waiting(name) as stream:
            return read_list_stream(stream, null, limit, label)
    except ConvcliError:
        raise
    except OSError as exc:
        raise UsageError(f"{label}: {exc.strerror or exc}") from None
    except ValueError:  # (open's, for a name holding a NUL byte)
        raise UsageError(f"{label}: the name holds a NUL byte") from None


@dataclass(frozen=True)
class _View:
    """How a batch's outcomes are shown."""

    progress: bool  # draw a progress bar
    quiet: bool  # no warnings or summary
    debug: bool  # tracebacks of internal errors
    precision: int | None  # digits of printed arrays


def _run_batch(
    sources: list[Source],
    request: Request,
    settings: Settings,
    view: _View,
    work: Work | None = None,
) -> int:
    from convcli.cli.allocator import keep_freed_memory
    from convcli.run.runner import execute

    keep_freed_memory()
    worst = 0
    many = len(sources) > 1
    progress: Any = contextlib.nullcontext(lambda: None)
    if view.progress or request.output.print_result or any(s.is_array for s in sources):
        from convcli.cli import render  # rich: only when there is something to draw

        progress = render.progress(len(sources), view.progress)

    with progress as advance:

        def report(outcome: Outcome) -> None:
            nonlocal worst
            advance()
            if outcome.error:
                worst = max(worst, outcome.exit_code)
                error(outcome.error)
                if view.debug and outcome.detail:
                    sys.stderr.write(outcome.detail)
                return
            if not view.quiet:
                for warning in outcome.warnings:
                    sys.stderr.write(f"convcli: warning: {warning}\n")
            try:
                with streams.stdout_errors():
                    _show(outcome, request, view, title=outcome.source.label if many else "")
            except BrokenPipeError:
                raise BrokenPipe() from None

        summary = execute(sources, request, settings, on_outcome=report, work=work)
    if not view.quiet and (many or view.progress):
        sys.stderr.write(
            f"convcli: {summary.done} done, {summary.skipped} skipped, {summary.failed} failed "
            f"in {summary.seconds:.1f} s\n"
        )
    return worst


def _show(outcome: Outcome, request: Request, view: _View, title: str) -> None:
    """An outcome's data on stdout: the files written, a printed array, or encoded bytes."""
    if outcome.written:  # as bytes: file names need not be UTF-8
        sys.stdout.flush()
        sys.stdout.buffer.write(b"".join(os.fsencode(p) + b"\n" for p in outcome.written))
    if outcome.array is not None:
        from convcli.cli import render

        note = render.array(
            outcome.array,
            table=request.output.print_result,
            precision=view.precision,
            title=title,
        )
        if note and not view.quiet:
            sys.stdout.flush()
            sys.stderr.write(f"convcli: note: {outcome.source.label}: {note}\n")
    if outcome.data is not None:
        sys.stdout.flush()
        sys.stdout.buffer.write(outcome.data)
    sys.stdout.flush()
