"""Terminal output with rich: kernel tables, matrices, arrays and progress.

The only module that imports rich. Data goes to stdout, everything else to a stderr console;
rich honours ``NO_COLOR`` and plain (non-terminal) streams by itself.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from convcli.kernels.model import AnyKernel, Kernel, KernelBank, KernelChain
from convcli.kernels.registry import KernelInfo

stdout = Console(soft_wrap=True)
stderr = Console(stderr=True, soft_wrap=True)


# -- kernels -----------------------------------------------------------------------------------
def kernel_list(infos: list[KernelInfo], as_json: bool) -> None:
    if as_json:
        rows = [
            {
                "name": i.name,
                "size": i.size,
                "kind": i.kind,
                "tags": list(i.tags),
                "description": i.description,
                "params": list(i.params),
                "where": i.where,
                **({"error": i.error} if i.error else {}),
            }
            for i in infos
        ]
        print(json.dumps(rows, indent=2))
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("name", "size", "tags", "description"):
        table.add_column(column, overflow="fold")
    for i in infos:
        size = i.size + (f" ({', '.join(i.params)})" if i.params else "")
        description = i.description if not i.error else f"[red]error: {i.error}[/red]"
        if i.where != "built-in":
            description += f" [dim]({i.where})[/dim]"
        table.add_row(i.name, size, ", ".join(i.tags), description)
    stdout.print(table)


def kernel_details(kernel: AnyKernel) -> dict[str, Any]:
    """A JSON-friendly description with the facts show-kernel prints."""
    if isinstance(kernel, Kernel):
        data = kernel.to_dict()
        data.update(
            shape=list(kernel.shape), sum=kernel.sum, separable=kernel.separable, rank=kernel.rank
        )
        return data
    if isinstance(kernel, KernelChain):
        return {"name": kernel.name, "chain": [kernel_details(s) for s in kernel.steps]}
    return {
        "name": kernel.name,
        "description": kernel.description,
        "tags": list(kernel.tags),
        "combine": kernel.combine,
        "kernels": [kernel_details(m) for m in kernel.members],
    }


def show_kernel(kernel: AnyKernel, as_json: bool, depth: int = 0) -> None:
    if as_json:
        print(json.dumps(kernel_details(kernel), indent=2))
        return
    if isinstance(kernel, KernelChain):
        stdout.print(
            f"[bold]{kernel.name}[/bold]: a chain of {len(kernel.steps)} kernels, applied in order"
        )
        for step in kernel.steps:
            show_kernel(step, False, depth + 1)
        return
    if isinstance(kernel, KernelBank):
        stdout.print(
            f"[bold]{kernel.name}[/bold]: a bank of {len(kernel.members)} kernels "
            f"combined by {kernel.combine}"
            + (f" — {kernel.description}" if kernel.description else "")
        )
        for member in kernel.members:
            show_kernel(member, False, depth + 1)
        return
    indent = "  " * depth
    head = Text(indent)
    head.append(kernel.name, style="bold")
    head.append(f"  {kernel.size_text}")
    if kernel.description:
        head.append(f" — {kernel.description}")
    stdout.print(head)
    stdout.print(
        _matrix_table(
            kernel.as_2d(), indent, origin=kernel.origin_2d if kernel.origin is not None else None
        )
    )
    rank = "separable (rank 1)" if kernel.separable else f"not separable (rank {kernel.rank})"
    facts = f"{indent}sum {_num(kernel.sum)}, {rank}"
    if kernel.offset:
        facts += f", offset {_num(kernel.offset)}"
    if kernel.source and kernel.source not in ("built-in", "inline"):
        facts += f", from {kernel.source}"
    stdout.print(facts, highlight=False)


def _matrix_table(m: np.ndarray, indent: str, origin: tuple[int, int] | None) -> Table:
    """Cells coloured by sign (blue negative, red positive) and brightness by magnitude."""
    table = Table(show_header=False, box=None, pad_edge=False, padding=(0, 1))
    if indent:
        table.add_column(width=len(indent) - 1)
    for _ in range(m.shape[1]):
        table.add_column(justify="right")
    peak = float(np.max(np.abs(m))) or 1.0
    for r, row in enumerate(m):
        cells: list[str | Text] = [] if not indent else [""]
        for c, value in enumerate(row):
            strength = abs(float(value)) / peak
            colour = "red" if value > 0 else "blue" if value < 0 else "grey50"
            style = colour if strength >= 0.5 else f"dim {colour}"
            if origin == (r, c):
                style += " underline"
            cells.append(Text(_num(value), style=style))
        table.add_row(*cells)
    return table


def _num(value: float) -> str:
    v = float(value)
    if v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    return f"{v:.6g}"


# -- arrays ------------------------------------------------------------------------------------
#: results of up to this many numbers are printed whole; larger ones as numpy summarises them
#: (the first and last three along each axis), since printing 10^7 numbers takes gigabytes
PRINT_WHOLE = 100_000
#: a --print table holds at most this many cells (and must fit the width of the terminal)
TABLE_CELLS = 10_000


def array(result: np.ndarray, *, table: bool, precision: int | None, title: str = "") -> str | None:
    """Print a result: numpy's own text by default (what ``print(array)`` shows), or a rich
    table with ``--print`` when it fits (else numpy's text, which holds the same numbers).
    Returns a note for stderr when the result was summarised (numbers left out), else None."""
    if table:
        grid = _table(result, precision, title)
        if grid is not None:
            for part in grid:
                stdout.print(part)
            return None
    digits = 8 if precision is None else precision  # numpy's default is 8
    whole = result.size <= PRINT_WHOLE
    threshold = sys.maxsize if whole else 1000
    with np.printoptions(threshold=threshold, edgeitems=3, linewidth=120, precision=digits):
        print(f"{title}\n{result}" if title else str(result))
    if whole:
        return None
    shape = "x".join(map(str, result.shape))
    what = f"the {shape} result ({result.size} numbers)" if result.ndim > 1 else "the result"
    return f"{what} is printed summarised; write it whole with -o or -d (.npy, .csv, .txt, .json)"


def _table(result: np.ndarray, precision: int | None, title: str) -> list[Table] | None:
    """Tables of the result (one per plane of a stack), or None when one would not fit the
    terminal's width or holds too many cells to read."""
    if result.size > TABLE_CELLS:
        return None
    if result.ndim >= 3 and not (result.ndim == 3 and result.shape[2] <= 4):
        tables = []
        for i, part in enumerate(result):
            sub = _table(part, precision, f"{title} [{i}]".strip())
            if sub is None:
                return None
            tables += sub
        return tables
    digits = 4 if precision is None else precision
    grid = result[np.newaxis] if result.ndim == 1 else result
    cells = [[_cell(v, digits) for v in row] for row in grid]
    widths = [max(len(row[c]) for row in cells) for c in range(grid.shape[1])]
    if sum(widths) + 2 * (len(widths) - 1) > stdout.width:
        return None
    out = Table(title=title or None, show_header=False, box=None, pad_edge=False)
    for _ in range(grid.shape[1]):
        out.add_column(justify="right")
    for row in cells:
        out.add_row(*row)
    return [out]


def _cell(value: Any, digits: int) -> str:
    if np.ndim(value):
        return "(" + ", ".join(_cell(v, digits) for v in value) + ")"
    v = float(value)
    return str(int(v)) if v.is_integer() and abs(v) < 1e15 else f"{v:.{digits}f}"


# -- explain ----------------------------------------------------------------------------------
def explanation(e: Any) -> None:
    """Print a :class:`convcli.run.explain.Explanation` as plain lines."""
    shape = "x".join(map(str, e.input_shape))
    plan = e.plan
    if e.kind == "volume":
        _volume_explanation(e, shape)
        return
    stdout.print(
        f"[bold]{e.source.label}[/bold]: {e.kind} {shape} {e.input_dtype}", highlight=False
    )
    fill = f" {_num(plan.fill_value)}" if plan.boundary == "fill" else ""
    edges = "; edge pixels the kernel does not fit over copied" if plan.keep_edges else ""
    stdout.print(
        f"  backend: {plan.backend}, computed in {plan.work_dtype}; "
        f"{'correlation' if plan.correlate else 'convolution'}, {plan.mode} mode, "
        f"boundary {plan.boundary}{fill}{edges}",
        highlight=False,
    )
    for step in plan.steps:
        member = f" (in bank {step.member_of})" if step.member_of else ""
        kh, kw = len(step.matrix), len(step.matrix[0])
        stdout.print(
            f"  kernel {step.kernel}{member}: {step.size}, sum {_num(step.sum)}, "
            f"rank {step.rank}; {step.in_shape[0]}x{step.in_shape[1]} -> "
            f"{step.out_shape[0]}x{step.out_shape[1]}",
            highlight=False,
        )
        for row in step.matrix if kh * kw <= 49 else []:
            stdout.print("    " + " ".join(f"{_num(v):>7}" for v in row), highlight=False)
        pads = step.pads
        stdout.print(
            f"    method {step.method}: {step.reason}; weights on the output pixel "
            f"at row {step.centre[0]}, column {step.centre[1]} of the {kh}x{kw} "
            f"correlation weights; extended by {pads[0][0]}/{pads[0][1]} rows and "
            f"{pads[1][0]}/{pads[1][1]} columns",
            highlight=False,
        )
    if plan.linear:
        stdout.print(f"  linear light: {plan.linear}", highlight=False)
    out = "x".join(map(str, e.output_shape))
    stdout.print(f"  output: {out} {plan.out_dtype}; {plan.mapping}", highlight=False)
    stdout.print(f"  memory: {e.memory}", highlight=False)
    if e.frames is not None:
        _frames(e.frames)
    for target in e.destination:
        stdout.print(f"  -> {target}", highlight=False)


def _frames(frames: Any) -> None:
    """A multi-frame input's frames: which, how each differs from the first, what is kept."""
    selected = frames.selected
    which = "all" if len(selected) == frames.count else ", ".join(map(str, selected))
    stdout.print(
        f"  frames: {len(selected)} of the {frames.count} of this {frames.name} ({which}), "
        "each filtered on its own as a viewer shows it",
        highlight=False,
    )
    first = frames.plans[0]
    for index, plan in zip(selected, frames.plans, strict=True):
        if (plan.in_shape, plan.in_dtype) != (first.in_shape, first.in_dtype):
            shape, out = "x".join(map(str, plan.in_shape)), "x".join(map(str, plan.out_shape))
            stdout.print(
                f"    frame {index}: {shape} {plan.in_dtype} -> {out} {plan.out_dtype}",
                highlight=False,
            )
    stdout.print(f"  written as {frames.kept}", highlight=False)


def _volume_explanation(e: Any, shape: str) -> None:
    """The N-D plan of a volume (see :class:`convcli.compute.volume.VolumePlan`)."""
    plan = e.plan
    stdout.print(
        f"[bold]{e.source.label}[/bold]: volume {shape} (depth x rows x columns) {e.input_dtype}",
        highlight=False,
    )
    fill = f" {_num(plan.fill_value)}" if plan.boundary == "fill" else ""
    stdout.print(
        f"  backend: {plan.backend}, computed in {plan.work_dtype}; 3-D "
        f"{'correlation' if plan.correlate else 'convolution'}, {plan.mode} mode on every "
        f"axis, boundary {plan.boundary}{fill} on every axis",
        highlight=False,
    )
    for step in plan.steps:
        member = f" (in bank {step.member_of})" if step.member_of else ""
        dims = lambda t: "x".join(map(str, t))  # noqa: E731
        stdout.print(
            f"  kernel {step.kernel}{member}: {step.size}, sum {_num(step.sum)}, "
            f"rank {step.rank}; {dims(step.in_shape)} -> {dims(step.out_shape)}",
            highlight=False,
        )
        tiles = f", in tiles of {step.tile} slices" if step.tile else ""
        pads = "; ".join(
            f"{a} {b}/{c}" for a, (b, c) in zip(("z", "y", "x"), step.pads, strict=True)
        )
        stdout.print(
            f"    method {step.method}: {step.reason}{tiles}; weight on the output voxel at "
            f"z {step.centre[0]}, row {step.centre[1]}, column {step.centre[2]} of the "
            f"correlation weights; extended by {pads}",
            highlight=False,
        )
    out = "x".join(map(str, e.output_shape))
    stdout.print(f"  output: {out} {plan.out_dtype}; {plan.mapping}", highlight=False)
    stdout.print(
        f"  memory: {e.memory}; {plan.slab_depth} output slices computed at a time",
        highlight=False,
    )
    for target in e.destination:
        stdout.print(f"  -> {target}", highlight=False)


# -- progress ----------------------------------------------------------------------------------
@contextmanager
def progress(total: int, enabled: bool) -> Iterator[Any]:
    """A progress bar on stderr (files done, rate, ETA); ``advance()`` after each file."""
    if not enabled:
        yield lambda: None
        return
    bar = Progress(
        TextColumn("[bold]convcli[/bold]"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        # asked for with --progress on a non-terminal: draw it anyway
        console=stderr if stderr.is_terminal else Console(stderr=True, force_terminal=True),
        transient=True,
    )
    with bar:
        task = bar.add_task("files", total=total, rate="")

        def advance() -> None:
            bar.advance(task)
            elapsed = bar.tasks[0].elapsed or 0.0
            done = bar.tasks[0].completed
            if elapsed > 0:
                bar.update(task, rate=f"{done / elapsed:.1f} files/s")

        yield advance
