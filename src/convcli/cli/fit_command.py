"""``convcli fit``: learn the kernel that maps inputs to targets, and write it as a kernel
file ``apply -k`` reads (the work is :mod:`convcli.run.fit`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from convcli.cli.program import ConvcliCommand, app
from convcli.errors import UsageError
from convcli.vocabulary import Boundary, Mode

if TYPE_CHECKING:
    from convcli.compute.fit import FitResult

_FIT = "Fit"
_OUT = "Output"


class FitCommand(ConvcliCommand):
    """``--pair IN OUT`` takes two values: spelt out as two ``--pair`` options for the parser
    (which gives each option one value), then taken two by two."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        spelt: list[str] = []
        i = 0
        while i < len(args):
            token = args[i]
            if token == "--":
                spelt += args[i:]
                break
            if token == "--pair" and i + 2 < len(args):
                spelt += ["--pair", args[i + 1], "--pair", args[i + 2]]
                i += 3
                continue
            spelt.append(token)
            i += 1
        return super().parse_args(ctx, spelt)


@app.command(cls=FitCommand)
def fit(
    items: Annotated[
        list[str] | None,
        typer.Argument(
            help="INPUT TARGET: an image (or array) and what a kernel made of it; more pairs "
            "may follow.",
            metavar="INPUT TARGET...",
            show_default=False,
        ),
    ] = None,
    pair: Annotated[
        list[str],
        typer.Option(
            "--pair", help="Another example: --pair INPUT TARGET (repeat).", rich_help_panel=_FIT
        ),
    ] = [],  # noqa: B006
    size: Annotated[
        str, typer.Option(help="Kernel size: N or ROWSxCOLS (7, 5x9).", rich_help_panel=_FIT)
    ] = "3",
    bank: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="The target holds N results of the input (a stack, or N channels of a gray "
            "input's target): fit a bank of N kernels.",
            rich_help_panel=_FIT,
        ),
    ] = None,
    mode: Annotated[Mode, typer.Option(help="As apply's --mode.", rich_help_panel=_FIT)] = (
        Mode.SAME
    ),
    boundary: Annotated[
        Boundary, typer.Option(help="As apply's --boundary.", rich_help_panel=_FIT)
    ] = Boundary.REFLECT,
    fill_value: Annotated[
        float, typer.Option(help="Value outside the input with --boundary fill.")
    ] = 0.0,
    correlate: Annotated[
        bool,
        typer.Option(
            "--correlate/--convolve",
            help="The kernel is applied without flipping (apply --correlate).",
            rich_help_panel=_FIT,
        ),
    ] = False,
    offset: Annotated[
        bool,
        typer.Option(
            "--offset",
            help="Also fit a constant added to the result (the kernel file's offset), as for "
            "targets made with apply --offset.",
            rich_help_panel=_FIT,
        ),
    ] = False,
    ridge: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="Ridge regularisation, relative to the input's energy per tap.",
            rich_help_panel=_FIT,
        ),
    ] = 0.0,
    total: Annotated[
        float | None,
        typer.Option("--sum", help="Constrain the kernel's sum (1: a blur).", rich_help_panel=_FIT),
    ] = None,
    symmetric: Annotated[
        bool,
        typer.Option(
            "--symmetric", help="Kernels even about both axes only.", rich_help_panel=_FIT
        ),
    ] = False,
    separable: Annotated[
        bool,
        typer.Option("--separable", help="A rank-1 kernel (column x row).", rich_help_panel=_FIT),
    ] = False,
    channels: Annotated[
        str,
        typer.Option(
            help="shared: one kernel for every colour channel; each: one per channel (a bank).",
            rich_help_panel=_FIT,
        ),
    ] = "shared",
    gray: Annotated[
        bool, typer.Option("--gray", help="Fit luminance to luminance.", rich_help_panel=_FIT)
    ] = False,
    backend: Annotated[
        str,
        typer.Option(
            help="scipy: exact least squares; torch: train an nn.Conv2d by gradient descent.",
            rich_help_panel=_FIT,
        ),
    ] = "scipy",
    optimizer: Annotated[
        str, typer.Option(help="torch: lbfgs or adam.", rich_help_panel=_FIT)
    ] = "lbfgs",
    steps: Annotated[
        int | None,
        typer.Option(min=1, help="torch: optimiser steps [default: lbfgs 100, adam 3000]."),
    ] = None,
    learning_rate: Annotated[
        float | None, typer.Option(min=0.0, help="torch: step size [default: lbfgs 1, adam 0.01].")
    ] = None,
    seed: Annotated[int, typer.Option(help="torch: seed of the initial weights.")] = 0,
    device: Annotated[str, typer.Option(help="torch: cpu, cuda or mps.")] = "cpu",
    kernel_name: Annotated[
        str, typer.Option("--kernel-name", help="The kernel's name in the file.")
    ] = "fit",
    output: Annotated[
        str | None,
        typer.Option(
            "--output",
            "-o",
            help="Kernel file (.toml, .json); '-' for stdout.",
            rich_help_panel=_OUT,
        ),
    ] = None,
    out_dir: Annotated[
        str | None, typer.Option("--out-dir", "-d", help="Directory of the kernel file.")
    ] = None,
    name: Annotated[
        str, typer.Option(help="File name; fields {stem} {ext} {kernel}.", rich_help_panel=_OUT)
    ] = "{stem}.{kernel}{ext}",
    fmt: Annotated[str | None, typer.Option("--format", help="toml or json.")] = None,
    files_from: Annotated[
        str | None,
        typer.Option(
            help="Read pairs from FILE ('-' = stdin): INPUT<tab>TARGET per line.", metavar="FILE"
        ),
    ] = None,
    null: Annotated[
        bool, typer.Option("-0", "--null", help="--files-from is NUL-separated, two by two.")
    ] = False,
    jobs: Annotated[
        int | None,
        typer.Option(
            "--jobs",
            "-j",
            min=1,
            help="Planes accumulated at once, on threads [default: 1: BLAS already uses every "
            "core].",
        ),
    ] = None,
    explain: Annotated[
        bool,
        typer.Option("--explain", help="Print the system and its conditioning; write nothing."),
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No residual report.")] = False,
    progress: Annotated[
        bool | None,
        typer.Option(
            "--progress/--no-progress",
            help="torch: progress bar [default: on when stderr is a terminal].",
            show_default=False,
        ),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
) -> int:
    """Learn the kernel that maps INPUT to TARGET, and write it as a kernel file.

    The kernel is the exact least-squares solution under apply's semantics (mode, boundary,
    flip), so `convcli apply -k KERNEL.toml INPUT` reproduces TARGET as closely as any
    kernel of that size can. RMS and largest residual go to stderr, the file's path to
    stdout.

    \b
    Examples:
      convcli fit photo.png blurred.png --size 7 -o blur.toml
      convcli fit photo.png edges.tif --size 3 --correlate --mode valid
      convcli fit a.png a-out.png --pair b.png b-out.png --size 5 --sum 1 --symmetric
    """
    import os

    from convcli.cli.apply_command import read_listing
    from convcli.compute.fit import FitOptions, parse_size
    from convcli.memory import default_budget
    from convcli.run.fit import FitOutput, load_pair, pair_sources, run_fit, write_kernel

    given = list(items or [])
    if len(given) % 2:
        raise UsageError(f"{given[-1]}: inputs come in pairs, INPUT TARGET (its target is missing)")
    if len(pair) % 2:
        raise UsageError("--pair takes two values: INPUT TARGET")
    pairs = list(zip(given[0::2], given[1::2], strict=True))
    pairs += list(zip(pair[0::2], pair[1::2], strict=True))
    if null and files_from is None:
        raise UsageError("-0/--null goes with --files-from")
    listing = None
    if files_from is not None:
        listing = read_listing(files_from, default_budget() // 4)
    options = FitOptions(
        size=parse_size(size),
        mode=mode,
        boundary=boundary.value,
        fill_value=fill_value,
        correlate=correlate,
        offset=offset,
        ridge=ridge,
        total=total,
        symmetric=symmetric,
        separable=separable,
        channels=channels,
        gray=gray,
        bank=bank,
        name=kernel_name,
    )
    out = FitOutput(
        path=output,
        out_dir=None if out_dir is None else Path(out_dir),
        template=name,
        format=fmt,
    )
    if backend not in ("scipy", "torch"):
        raise UsageError(f"--backend {backend!r} is not one of scipy, torch")
    sources = pair_sources(pairs, listing, null)
    examples = [load_pair(s, options) for s in sources]
    show = progress if progress is not None else sys.stderr.isatty() and not quiet
    with _progress(show and backend == "torch") as advance:
        result = run_fit(
            examples,
            options,
            backend="scipy" if explain else backend,  # the conditioning is the system's
            optimizer=optimizer,
            steps=steps,
            learning_rate=learning_rate,
            seed=seed,
            device=device,
            jobs=jobs or 1,
            progress=advance,
        )
    if explain:
        _report(result, len(examples), conditioning=True)
        return 0
    path, text = write_kernel(result.kernel, out, sources)
    if path is None:
        sys.stdout.write(text)
    else:
        sys.stdout.buffer.write(os.fsencode(str(path)) + b"\n")
    sys.stdout.flush()
    if not quiet:
        _report(result, len(examples), conditioning=False)
    return 0


def _report(result: FitResult, pairs: int, conditioning: bool) -> None:
    """The residuals (and the conditioning) on stderr."""
    members = result.members
    for member in members:
        which = f" {member.kernel.name}" if len(members) > 1 else ""
        sys.stderr.write(
            f"convcli: fit{which}: {member.kernel.size_text} kernel, residual RMS "
            f"{member.rms:.6g}, max {member.max_error:.6g} ({result.units}); {pairs} pair(s), "
            f"{result.samples} samples, {result.unknowns} unknowns, {result.seconds:.2f} s\n"
        )
        if conditioning:
            low, high = member.eigenvalues
            sys.stderr.write(
                f"convcli: fit{which}: normal equations' condition number {member.condition:.3g} "
                f"(eigenvalues {low:.3g} .. {high:.3g}); above 1e+12 the kernel is not "
                "determined\n"
            )


def _progress(enabled: bool) -> Any:
    """A progress bar of training steps (rich: only when it is drawn)."""
    import contextlib

    if not enabled:
        return contextlib.nullcontext(None)
    return _bar()


def _bar() -> Any:
    import contextlib

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    @contextlib.contextmanager
    def bar() -> Any:
        with Progress(
            TextColumn("[bold]convcli fit[/bold]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"),
            console=Console(stderr=True, force_terminal=True),
            transient=True,
        ) as progress:
            task = progress.add_task("steps", total=None, loss="")

            def advance(step: int, steps: int, loss: float) -> None:
                progress.update(task, completed=step, total=steps, loss=f"{loss:.4g}")

            yield advance

    return bar()
