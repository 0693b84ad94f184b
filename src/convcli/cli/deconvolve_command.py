"""``convcli deconvolve``: undo a known blur on images or arrays, with apply's outputs,
naming, batches and exit codes (the work is :mod:`convcli.run.deconvolve`, run by apply's
pool)."""

from __future__ import annotations

from typing import Annotated

import typer

from convcli.cli.apply_command import discover_inputs, input_items, run_batch, stdout_is_terminal
from convcli.cli.program import ConvcliCommand, app, complete_kernel
from convcli.errors import UsageError
from convcli.vocabulary import Boundary, Depth

_RESTORE = "Restoration"
_OUT = "Output"
_BATCH = "Batch"


@app.command(cls=ConvcliCommand)
def deconvolve(
    inputs: Annotated[
        list[str] | None,
        typer.Argument(
            help="Images, array files (.npy .csv .txt .json), directories (with -r), '-' for "
            "image bytes on stdin, or an inline JSON array.",
            show_default=False,
        ),
    ] = None,
    kernel: Annotated[
        str | None,
        typer.Option(
            "--kernel",
            "-k",
            autocompletion=complete_kernel,
            help="The blur's PSF: any kernel spec apply takes (gaussian:sigma=2, a file).",
            show_default=False,
            rich_help_panel=_RESTORE,
        ),
    ] = None,
    method: Annotated[
        str,
        typer.Option(help="richardson-lucy or wiener.", rich_help_panel=_RESTORE),
    ] = "richardson-lucy",
    iterations: Annotated[
        int, typer.Option(min=1, help="Richardson-Lucy iterations.", rich_help_panel=_RESTORE)
    ] = 30,
    tv: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="Richardson-Lucy: total-variation regularisation weight (0.002: mild).",
            rich_help_panel=_RESTORE,
        ),
    ] = 0.0,
    balance: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            help="Wiener: regularisation weight [default: from the noise level].",
            rich_help_panel=_RESTORE,
        ),
    ] = None,
    noise: Annotated[
        str,
        typer.Option(
            help="Wiener: noise deviation (full intensity 1), or auto to estimate it.",
            rich_help_panel=_RESTORE,
        ),
    ] = "auto",
    boundary: Annotated[
        Boundary,
        typer.Option(
            help="How the blur extended the image (as apply's --boundary).",
            rich_help_panel=_RESTORE,
        ),
    ] = Boundary.REFLECT,
    fill_value: Annotated[
        float, typer.Option(help="Value outside the image with --boundary fill.")
    ] = 0.0,
    depth: Annotated[
        Depth | None,
        typer.Option(
            help="Output samples: same, 8, 16, float.  [default: same]",
            show_default=False,
            rich_help_panel=_OUT,
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
        typer.Option("--out-dir", "-d", help="Output directory.", rich_help_panel=_OUT),
    ] = None,
    name: Annotated[
        str,
        typer.Option(help="Output file name; fields {stem} {ext} {kernel}.", rich_help_panel=_OUT),
    ] = "{stem}.{kernel}{ext}",
    fmt: Annotated[
        str | None, typer.Option("--format", help="Output format.", rich_help_panel=_OUT)
    ] = None,
    print_: Annotated[
        bool, typer.Option("--print", help="Print the result as a table.", rich_help_panel=_OUT)
    ] = False,
    precision: Annotated[int | None, typer.Option(min=0, max=17, help="Digits when printing.")] = (
        None
    ),
    quality: Annotated[int | None, typer.Option(min=1, max=100, help="JPEG/WebP quality.")] = None,
    compress: Annotated[int | None, typer.Option(min=0, max=9, help="PNG/TIFF level.")] = None,
    recursive: Annotated[
        bool, typer.Option("--recursive", "-r", help="Descend into directory inputs.")
    ] = False,
    files_from: Annotated[
        str | None,
        typer.Option(help="Read input paths from FILE ('-' = stdin).", metavar="FILE"),
    ] = None,
    null: Annotated[bool, typer.Option("-0", "--null", help="--files-from is NUL-separated.")] = (
        False
    ),
    jobs: Annotated[
        int | None,
        typer.Option("--jobs", "-j", min=1, help="Parallel workers [default: CPU count]."),
    ] = None,
    skip_existing: Annotated[
        bool, typer.Option("--skip-existing", help="Leave outputs that already exist.")
    ] = False,
    fail_fast: Annotated[bool, typer.Option("--fail-fast", help="Stop at the first failure.")] = (
        False
    ),
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress or summary.")] = False,
    progress: Annotated[
        bool | None,
        typer.Option("--progress/--no-progress", help="Progress bar.", show_default=False),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
) -> int:
    """Undo a known blur: Richardson-Lucy (default) or Wiener deconvolution by FFT.

    The PSF is the kernel that blurred the image, as `convcli apply -k PSF` blurs (same
    boundary); each colour channel is restored on its own and alpha is kept. Results are
    written as {stem}.{kernel}{ext} ({kernel} is rl-PSF or wiener-PSF), or to -o / -d.

    \b
    Examples:
      convcli deconvolve -k gaussian:sigma=2 blurred.png -o restored.png
      convcli deconvolve -k psf.toml --method wiener --noise 0.01 -d restored/ *.jpg
    """
    from convcli.memory import default_budget
    from convcli.run.deconvolve import build_deconvolve_request, deconvolve_source

    if kernel is None:
        raise UsageError("give the blur's PSF with -k/--kernel (gaussian:sigma=2, a file)")
    items = input_items(inputs, files_from, null)
    request = build_deconvolve_request(
        kernel,
        method=method,
        iterations=iterations,
        tv=tv,
        balance=balance,
        noise=_noise(noise, balance, method),
        boundary=boundary,
        fill_value=fill_value,
        depth=depth,
        output=output,
        out_dir=out_dir,
        name=name,
        format=fmt,
        quality=quality,
        compress=compress,
        skip_existing=skip_existing,
        print_result=print_,
        inputs=items,
        recursive=recursive,
        stdout_is_terminal=stdout_is_terminal(output),
    )
    sources = discover_inputs(items, recursive=recursive, budget=default_budget())
    return run_batch(
        sources,
        request,
        jobs=jobs,
        fail_fast=fail_fast,
        progress=progress,
        quiet=quiet,
        debug=debug,
        precision=precision,
        work=deconvolve_source,
    )


def _noise(text: str, balance: float | None, method: str) -> float | None:
    """--noise: a deviation, or auto (None: estimated, unless --balance is given)."""
    if text.strip().lower() == "auto":
        return None
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"--noise {text!r}: a number (0.01) or auto") from None
    if balance is not None:
        raise UsageError("--balance and --noise conflict: give one")
    if method != "wiener":
        raise UsageError("--noise is Wiener's (--method wiener)")
    return value
