"""``convcli list-kernels`` and ``convcli show-kernel``."""

from __future__ import annotations

import sys
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    pass

from convcli.cli import streams
from convcli.cli.program import ConvcliCommand, app, complete_kernel


# -- list-kernels / show-kernel ------------------------------------------------------------------
@app.command("list-kernels", cls=ConvcliCommand)
def list_kernels_cmd(
    tag: Annotated[
        str | None,
        typer.Option(
            "--tag", "-t", help="Only kernels with this tag (edge, blur, sharpen, seed, 1d, ...)."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> int:
    """List the named kernels: built-ins and your own (CONVCLI_KERNEL_PATH,
    ~/.config/convcli/kernels). A broken kernel file is named on stderr (exit 1) and the
    others are listed.

    \b
    Example:
      convcli list-kernels --tag edge
    """
    from convcli.cli import render
    from convcli.cli.program import error
    from convcli.kernels.registry import list_kernels

    infos = list_kernels(tag)
    with streams.stdout_errors():
        render.kernel_list([i for i in infos if not i.error], as_json)
        sys.stdout.flush()
    broken = [i for i in infos if i.error]
    for info in broken:
        named = f"kernel file {info.where!r}: "
        error(named + info.error.removeprefix(named))
    return 1 if broken else 0


class KernelFormat(StrEnum):
    TOML = "toml"
    JSON = "json"
    IMAGEMAGICK = "imagemagick"
    VIPS = "vips"


@app.command("show-kernel", cls=ConvcliCommand)
def show_kernel_cmd(
    spec: Annotated[
        str,
        typer.Argument(
            help="Kernel spec: a name, name:params, a file or a JSON array.",
            autocompletion=complete_kernel,
        ),
    ],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the matrix, sum and rank as JSON.")
    ] = False,
    fmt: Annotated[
        KernelFormat | None,
        typer.Option(
            "--format",
            help="Write the kernel as a convcli TOML/JSON kernel file, an ImageMagick kernel "
            "string or a libvips .mat file (each gives the same pixels).",
        ),
    ] = None,
) -> None:
    """Print a kernel's matrix (each member of a bank), its sum and whether it is separable.

    \b
    Examples:
      convcli show-kernel sobel
      convcli show-kernel gaussian:sigma=1.5 --json
      convcli show-kernel sobel-x --format vips > sobel-x.mat
    """
    from convcli.kernels.registry import get_kernel

    kernel = get_kernel(spec)
    if fmt is not None:
        from convcli.kernels.formats import export

        with streams.stdout_errors():
            sys.stdout.write(export(kernel, fmt.value))
            sys.stdout.flush()
        return
    from convcli.cli import render

    with streams.stdout_errors():
        render.show_kernel(kernel, as_json)
        sys.stdout.flush()
