"""One volume's work (``--volume``): read a 3-D ``.npy`` or a multi-page TIFF as a z-stack,
filter it with 3-D kernels slab by slab, write it as ``.npy`` or a multi-page TIFF.

A volume that fits the memory budget is computed at once; a larger one in slabs of z with
their halo, read slice by slice and written out before the next, with the same numbers bit
for bit (see :mod:`convcli.compute.volume`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np

from convcli.compute.backends import get_backend
from convcli.compute.pixels import Filtered, Layout
from convcli.compute.volume import VolumeJob, VolumePlan, plan_volume
from convcli.errors import ConvcliError, InputError, LimitError, UsageError
from convcli.io.volume import VolumeReader, write_volume
from convcli.memory import format_size
from convcli.run.naming import format_and_ext, guard_targets, output_targets
from convcli.run.process import (
    CLIP_WARNING_SHARE,
    Outcome,
    array_layout,
    make_dirs,
    memory_budget,
)
from convcli.run.request import Request
from convcli.run.sources import Source

#: the formats a volume's result is written as
VOLUME_FORMATS = ("NPY", "TIFF")


def needed_bytes(shape: tuple[int, ...], itemsize: int, members: int) -> int:
    """Memory to hold a volume, its result (up to float64) and its samples at once."""
    return int(np.prod(shape)) * (itemsize + 2 * 8 * members)


def fits(reader: VolumeReader, request: Request) -> bool:
    members = max(1, len(request.stack_labels))
    return needed_bytes(reader.shape, reader.dtype.itemsize, members) <= memory_budget(request)


@contextmanager
def open_volume(source: Source) -> Iterator[VolumeReader]:
    if source.path is None:
        raise InputError(
            "a volume is read from a file (a 3-D .npy or a multi-page TIFF)",
            subject=source.label,
        )
    reader = VolumeReader(source.path, source.label)
    try:
        yield reader
    finally:
        reader.close()


def prints(source: Source, request: Request) -> bool:
    """Whether the result is printed (an array volume given no -o/-d, or --print) rather
    than written (a TIFF z-stack is written beside its input, as images are)."""
    out = request.output
    writes = out.path is not None or out.out_dir is not None or out.in_place
    return not writes and (source.is_array or out.print_result)


def volume_job(reader: VolumeReader, request: Request, to_array: bool) -> VolumeJob:
    """The plan of one volume, made once: the run executes it and --explain prints it.

    A ``.npy`` volume holds numbers (written as an array: the float result; as a TIFF:
    samples of --depth); a TIFF z-stack holds image samples, whose depth it keeps unless
    written as an array (``--depth`` as for images)."""
    pixels = request.pixels
    if to_array and not request.depth_given:
        pixels = replace(pixels, depth="float")
    plane = reader.shape[1:]
    if reader.kind == "array":
        layout = array_layout(plane, reader.dtype, pixels, to_array)
    else:
        layout = Layout.of(reader.dtype, plane, pixels)
    opts = request.options
    backend = get_backend(
        request.backend, boundary=opts.boundary, fill=opts.fill_value, device=request.device
    )
    budget = None if fits(reader, request) else memory_budget(request) // 4
    return plan_volume(reader, request.operation, layout, opts, backend, budget)


def memory_route(reader: VolumeReader, request: Request, fmt: str, targets: int) -> str:
    """How the volume is held: "in memory", or streamed in slabs (with the reason), or the
    LimitError that it cannot be."""
    if fits(reader, request):
        return "in memory"
    budget = format_size(memory_budget(request))
    if fmt not in VOLUME_FORMATS or targets > 1:
        raise LimitError(
            f"the volume needs more memory than the budget of {budget}, and a streamed volume "
            "is written to one .npy or TIFF file; choose one, or raise --memory",
            subject=reader.label,
        )
    return f"streamed in slabs of z (over the memory budget of {budget})"


def volume_targets(
    source: Source, request: Request, reader: VolumeReader
) -> tuple[str, list[Path]]:
    """The output format and files of a volume, checked (one file, or one a stack member
    for a stack written as TIFF)."""
    fmt, ext = format_and_ext(source, request, "TIFF" if reader.kind == "image" else None)
    if fmt not in VOLUME_FORMATS:
        raise UsageError(f"a volume is written as .npy or a multi-page TIFF, not {fmt}")
    targets = output_targets(source, request, ext)
    guard_targets(source, request, targets)
    return fmt, targets


def too_big_volume(source: Source, request: Request) -> bool:
    """Would this volume be streamed (it is larger than the memory budget)? A volume that
    cannot be read is not: its processing names the problem."""
    try:
        with open_volume(source) as reader:
            return not fits(reader, request)
    except ConvcliError:
        return False


def slab_samples(
    source: Source,
    request: Request,
    to_array: bool,
    within: tuple[int, int],
    span: tuple[float, float] | None,
) -> tuple[int, int, np.ndarray, int, int]:
    """On a cluster worker: the output samples of slices ``z0:z1`` of a volume (reading
    their halo itself), and how many were clipped of how many."""
    with open_volume(source) as reader:
        job = volume_job(reader, request, to_array)
        stats = Filtered(np.empty(0), job.stacked)
        parts = [samples for _, _, samples in job.slabs(stats, span, within)]
        axis = 1 if job.stacked else 0
        samples = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=axis)
        return within[0], within[1], samples, stats.clipped, stats.total


def slab_span(
    source: Source, request: Request, to_array: bool, within: tuple[int, int]
) -> tuple[float, float]:
    """On a cluster worker: the min and max of the mapped results of slices ``z0:z1``."""
    with open_volume(source) as reader:
        return volume_job(reader, request, to_array).span(within)


def process_volume(source: Source, request: Request, outcome: Outcome) -> None:
    """Filter one volume and write (or return) its result."""
    out = request.output
    with open_volume(source) as reader:
        if prints(source, request):
            if not fits(reader, request):
                raise LimitError(
                    f"the volume needs more memory than the budget of "
                    f"{format_size(memory_budget(request))} to print; write it with -o or -d",
                    subject=source.label,
                )
            job = volume_job(reader, request, to_array=True)
            outcome.plan = job.plan
            outcome.array = job.collect()
            return
        fmt, targets = volume_targets(source, request, reader)
        if out.skip_existing and all(t.exists() for t in targets):
            outcome.skipped = True
            return
        memory_route(reader, request, fmt, len(targets))
        job = volume_job(reader, request, to_array=fmt == "NPY")
        outcome.plan = job.plan
        stats = Filtered(np.empty(0), job.stacked)
        if out.out_dir is not None:
            make_dirs(targets[0].parent)
        if len(targets) > 1:  # a stack as TIFF: one file a member, in memory
            result = job.collect(stats)
            for target, member in zip(targets, result, strict=True):
                slabs = iter([(0, len(member), member)])
                write_volume(target, fmt, member.shape, member.dtype, slabs, compress=out.compress)
                outcome.written.append(str(target))
        else:
            write_volume(
                targets[0],
                fmt,
                job.out_shape,
                job.layout.out_dtype,
                job.slabs(stats),
                stacked=bool(job.stacked),
                compress=out.compress,
            )
            outcome.written.append(str(targets[0]))
        if reader.kind == "image" and stats.clipped > CLIP_WARNING_SHARE * max(stats.total, 1):
            share = 100.0 * stats.clipped / stats.total
            outcome.warnings.append(
                f"{source.label}: {stats.clipped} of {stats.total} results ({share:.1f}%) "
                "were clipped to the output range; try --range abs, --offset 50% or "
                "--depth float"
            )


def explain_volume(
    source: Source, request: Request
) -> tuple[VolumePlan, tuple[int, ...], str, list[str]]:
    """What process_volume would do: (plan, input shape, memory route, destinations)."""
    with open_volume(source) as reader:
        if prints(source, request):
            job = volume_job(reader, request, to_array=True)
            memory = "in memory" if fits(reader, request) else "refused: too large to print"
            return job.plan, reader.shape, memory, ["printed on stdout"]
        fmt, ext = format_and_ext(source, request, "TIFF" if reader.kind == "image" else None)
        targets = output_targets(source, request, ext)
        try:
            memory = memory_route(reader, request, fmt, len(targets))
        except LimitError as exc:
            memory = f"refused: {exc.message}"
        job = volume_job(reader, request, to_array=fmt == "NPY")
        if memory.startswith("streamed"):
            memory = f"{memory[:-1]}; {job.slab} output slices a slab)"
        return job.plan, reader.shape, memory, [str(t) for t in targets]


__all__ = [
    "explain_volume",
    "process_volume",
    "slab_samples",
    "slab_span",
    "too_big_volume",
    "volume_targets",
]
