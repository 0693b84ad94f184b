"""--explain: what ``apply`` would do with one input, from its header; nothing is computed.

The plan shown is made by the function the run uses (:func:`convcli.run.process.input_job`),
so it is the plan the run executes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from convcli.compute.engine import check_signal_kernels
from convcli.compute.image import ComputePlan
from convcli.compute.volume import VolumePlan
from convcli.errors import LimitError
from convcli.io.arrays import npy_header
from convcli.io.decode import probe_image
from convcli.io.formats import ARRAY_FORMATS
from convcli.io.rows import ArrayRows, HeaderRows, RowReader
from convcli.memory import format_size
from convcli.run.naming import format_and_ext, output_targets
from convcli.run.process import (
    check_signal_memory,
    input_job,
    linear_transfer,
    load,
    memory_budget,
    plan_stream,
    signal_rows,
    too_big,
    writes_stdout,
)
from convcli.run.request import Request
from convcli.run.sources import Source

if TYPE_CHECKING:
    from convcli.run.frames import FramesPlan


@dataclass
class Explanation:
    """What ``apply`` would do with one input (``--explain``); nothing is computed or written."""

    source: Source
    kind: str  # "image" or "array"
    input_shape: tuple[int, ...]
    input_dtype: str
    plan: ComputePlan | VolumePlan
    output_shape: tuple[int, ...]  # as written (a 1-D signal's result is 1-D)
    destination: list[str]
    memory: str = "in memory"  # or how it would be streamed, or why it cannot be
    frames: FramesPlan | None = None  # a multi-frame input: its frames and their plans


def explain(source: Source, request: Request) -> Explanation:
    """Describe the work for one input from its header (images, and arrays too large to
    hold) or contents (arrays); the plan is made once, by the run's own functions."""
    if request.volume:
        from convcli.run.volume import explain_volume

        volume_plan, shape, route, targets = explain_volume(source, request)
        return Explanation(
            source,
            "volume",
            tuple(shape),
            volume_plan.in_dtype,
            volume_plan,
            volume_plan.out_shape,
            targets,
            route,
        )
    from convcli.run.frames import plan_frames, probe_source

    animation = probe_source(source, request)
    if animation is not None:  # every frame, each on its own, in memory
        frames = plan_frames(source, request, animation)
        first = frames.plans[0]
        return Explanation(
            source,
            "image",
            first.in_shape,
            first.in_dtype,
            first,
            first.out_shape,
            list(frames.targets),
            "in memory, one frame at a time",
            frames,
        )
    fmt, ext = format_and_ext(source, request, None if source.stdin is None else "PNG")
    plan, memory = None, "in memory"
    try:
        check_signal_memory(source, request)
    except LimitError as exc:  # (a 1-D signal, planned from its header below)
        memory = f"refused: {exc.message}"
    if (
        memory == "in memory"
        and source.path is not None
        and not writes_stdout(request)
        and too_big(source, request)
    ):
        try:
            streamed = plan_stream(source, request)
            with streamed.job(request) as job:
                plan = job.plan
            memory = (
                f"streamed in bands of about {format_size(streamed.band_bytes)} (over the "
                f"memory budget of {format_size(memory_budget(request))})"
            )
        except LimitError as exc:
            memory = f"refused: {exc.message}"
    shape = plan.in_shape if plan is not None else ()
    if plan is None:  # held in memory (or refused: what it would have computed)
        reader, shape = _reader(source, request, header_only=memory != "in memory")
        to_array = fmt in ARRAY_FORMATS.values()
        plan = input_job(
            reader,
            request,
            is_array=source.is_array,
            to_array=to_array,
            signal=len(shape) == 1,
            transfer=linear_transfer(source, request),
        ).plan
    out_shape = plan.out_shape
    if len(shape) == 1:  # the signal's one row
        out_shape = (*out_shape[:-2], out_shape[-1])
    return Explanation(
        source,
        "array" if source.is_array else "image",
        tuple(shape),
        plan.in_dtype,
        plan,
        out_shape,
        _destination(source, request, fmt, ext),
        memory,
    )


def _reader(
    source: Source, request: Request, header_only: bool
) -> tuple[RowReader, tuple[int, ...]]:
    """What to plan from, and the input's shape: an array's contents, or only the header of
    an image (and of a .npy array too large to hold)."""
    if source.is_array and not header_only:
        data = load(source, request.memory).data
        return ArrayRows(signal_rows(data, request)), data.shape
    if source.is_array:
        assert source.path is not None
        shape, dtype = npy_header(source.path, source.label)
        if len(shape) == 1:  # a signal: one row
            check_signal_kernels(request.operation)
            return HeaderRows((1, shape[0]), dtype), tuple(shape)
    else:
        image = source.stdin if source.stdin is not None else source.path
        assert image is not None
        shape, sample_type = probe_image(image, source.label)
        dtype = np.dtype(sample_type)
    return HeaderRows(tuple(shape), dtype), tuple(shape)


def _destination(source: Source, request: Request, fmt: str, ext: str) -> list[str]:
    out = request.output
    writes = out.path is not None or out.out_dir is not None or out.in_place
    if not writes and (source.is_array or out.print_result):
        return ["printed on stdout"]
    if out.path == "-":
        return [f"stdout as {fmt}"]
    return [str(t) for t in output_targets(source, request, ext)]
