"""Multi-frame inputs (animated GIF, APNG, animated WebP, multi-page TIFF): every frame is
filtered on its own, one at a time, and the results are written back as the same kind of
file, or as one file per frame to a format that holds one frame.

The plan of each frame is made by the run's own :func:`convcli.run.process.input_job`, so
``--explain`` (from the file's structure) shows what the run executes (from the pixels).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from convcli.compute.image import BAND_BYTES, BandJob, ComputePlan
from convcli.compute.pixels import Filtered
from convcli.errors import InputError, LimitError, UsageError
from convcli.io import frames
from convcli.io.atomic import atomic_file
from convcli.io.encode import write_image
from convcli.io.formats import ARRAY_FORMATS
from convcli.io.frames import Animation
from convcli.io.rows import ArrayRows, HeaderRows
from convcli.memory import format_size
from convcli.run.naming import format_and_ext, frame_target, guard_targets, output_targets
from convcli.run.process import Outcome, input_job, linear_transfer, make_dirs, memory_budget

if TYPE_CHECKING:
    from convcli.run.request import Request
    from convcli.run.sources import Source


@dataclass(frozen=True)
class FramesPlan:
    """What is done with a multi-frame input: which frames, each one's plan, what the output
    keeps and where it goes."""

    name: str  # "animated GIF", "multi-page TIFF", ...
    count: int
    selected: tuple[int, ...]
    plans: tuple[ComputePlan, ...]  # one per selected frame
    kept: str  # what the output keeps, in words
    targets: tuple[str, ...]


def probe_source(source: Source, request: Request) -> Animation | None:
    """The frames of a multi-frame image input, or None (one frame, or an array); a
    ``--frames`` selection is checked against the input's frame count either way."""
    selection = request.frames
    if source.is_array:
        if selection is not None:
            raise InputError("is an array; --frames selects frames of images", subject=source.label)
        return None
    image = source.stdin if source.stdin is not None else source.path
    if image is None or (source.stdin is not None and not source.stdin):
        return None
    animation = frames.probe(image, source.label)
    if animation is None and selection is not None:
        selection.indices(1, source.label)
    return animation


def _selected(source: Source, request: Request, animation: Animation) -> list[int]:
    if request.frames is None:
        return list(range(animation.count))
    return request.frames.indices(animation.count, source.label)


@dataclass(frozen=True)
class _Route:
    format: str
    whole: bool  # one file holds every frame (else one file per frame)
    targets: list[Path]  # empty when written to stdout


def _route(source: Source, request: Request, animation: Animation, selected: list[int]) -> _Route:
    if request.stack_labels:
        raise InputError(
            f"stacking a bank's members over the {animation.count} frames of an "
            f"{animation.name} is not supported; combine the bank (--combine magnitude, sum, "
            "...) or filter a frame at a time",
            subject=source.label,
        )
    out = request.output
    if out.print_result:
        raise InputError(
            f"--print shows one array, and this {animation.name} has {animation.count} "
            "frames; write them with -o or -d",
            subject=source.label,
        )
    fmt, ext = format_and_ext(source, request, animation.format)
    whole = fmt == animation.format
    if out.path == "-":
        if not whole:
            raise UsageError(
                f"{source.label}: an {animation.name} is written whole only as "
                f"{animation.format}, and {fmt} would take one file per frame "
                f"({len(selected)}); write them with -o or -d, or give --format "
                f"{animation.format.lower()}"
            )
        return _Route(fmt, True, [])
    (target,) = output_targets(source, request, ext)
    if whole:
        targets = [target]
    else:
        width = len(str(animation.count - 1))
        targets = [frame_target(target, index, width) for index in selected]
    guard_targets(source, request, targets)
    return _Route(fmt, whole, targets)


def _kept(animation: Animation, route: _Route, request: Request, selected: list[int]) -> str:
    """What the output keeps of the input, in words (for --explain)."""
    count = len(selected)
    if not route.whole:
        timing = "; their timing is not kept" if animation.kind != "TIFF" else ""
        return (
            f"{count} {route.format} files, one per frame, named with the frame number (an "
            f"{animation.name} is kept whole only as {animation.format}){timing}"
        )
    if animation.kind == "TIFF":
        if count == 1:
            return "one TIFF of 1 page, at its own sample type"
        return f"one multi-page TIFF of {count} pages, in order, each at its own sample type"
    delays = sorted({round(animation.duration_ms(i)) for i in selected})
    shown = ", ".join(f"{d} ms" for d in delays[:4]) + (", ..." if len(delays) > 4 else "")
    loop = (
        "loops forever"
        if animation.loop == 0
        else ("plays once" if animation.loop is None else f"loop count {animation.loop}")
    )
    frames = "1 frame: its delay" if count == 1 else f"{count} frames: their delays"
    text = f"one {animation.name} of {frames} ({shown}), {loop}, "
    if animation.kind == "GIF":
        return text + (
            "each frame's disposal (disposed to the background where the next frame has "
            "transparent pixels); every frame whole, its colours reduced to 256 where it has "
            "more, alpha on or off"
        )
    if animation.kind == "APNG":
        return text + "each frame's disposal; every frame whole, replacing the canvas"
    quality = request.output.quality or 90
    coding = "lossless" if animation.lossless else f"lossy, quality {quality}"
    return text + f"each frame's disposal; every frame whole, not blended; {coding}"


def plan_frames(source: Source, request: Request, animation: Animation) -> FramesPlan:
    """The plan of a multi-frame input from its structure (``--explain``)."""
    selected = _selected(source, request, animation)
    route = _route(source, request, animation, selected)
    to_array = route.format in ARRAY_FORMATS.values()
    transfer = linear_transfer(source, request)
    known: dict[tuple[tuple[int, ...], str], ComputePlan] = {}
    for i in selected:  # frames of one layout have one plan
        key = (animation.shapes[i], animation.dtypes[i])
        if key not in known:
            header = HeaderRows(key[0], np.dtype(key[1]))
            known[key] = input_job(
                header, request, is_array=False, to_array=to_array, transfer=transfer
            ).plan
    plans = tuple(known[animation.shapes[i], animation.dtypes[i]] for i in selected)
    _check_memory(source, request, animation, selected)
    return FramesPlan(
        animation.name,
        animation.count,
        tuple(selected),
        plans,
        _kept(animation, route, request, selected),
        tuple(str(t) for t in route.targets) or (f"stdout as {route.format}",),
    )


def _check_memory(
    source: Source, request: Request, animation: Animation, selected: list[int]
) -> None:
    """Frames are filtered one at a time in memory; one that would not fit is refused."""
    budget = memory_budget(request)
    for index in selected:
        shape = animation.shapes[index]
        needed = int(np.prod(shape)) * (np.dtype(animation.dtypes[index]).itemsize + 16)
        if needed + BAND_BYTES > budget:
            raise LimitError(
                f"frame {index} needs more memory than the budget of {format_size(budget)}, "
                "and the frames of a multi-frame image are not streamed; raise --memory",
                subject=source.label,
            )


def process_frames(
    source: Source, request: Request, animation: Animation, outcome: Outcome
) -> Filtered:
    """Filter every selected frame on its own and write the results; returns the counts of
    clipped results over all frames."""
    selected = _selected(source, request, animation)
    route = _route(source, request, animation, selected)
    _check_memory(source, request, animation, selected)
    out = request.output
    if out.skip_existing and route.targets and all(t.exists() for t in route.targets):
        outcome.skipped = True
        return Filtered(np.empty(0), None)
    image = source.stdin if source.stdin is not None else source.path
    assert image is not None
    to_array = route.format in ARRAY_FORMATS.values()
    stats = Filtered(np.empty(0), None)
    plans: list[ComputePlan] = []

    jobs: dict[tuple[tuple[int, ...], str], tuple[BandJob, ComputePlan]] = {}
    transfer = linear_transfer(source, request)  # one curve for the file (its header's)

    def filtered() -> Iterator[np.ndarray]:
        for pixels in frames.read(image, source.label, animation, selected):
            key = (pixels.shape, str(pixels.dtype))
            if key not in jobs:  # frames of one layout run one plan (made once)
                job = input_job(
                    ArrayRows(pixels),
                    request,
                    is_array=False,
                    to_array=to_array,
                    transfer=transfer,
                )
                jobs[key] = job, job.plan
            job, plan = jobs[key]
            plans.append(plan)
            yield replace(job, reader=ArrayRows(pixels)).collect(stats)

    icc = _icc_profile(image) if animation.kind != "GIF" else None  # GIF has none
    options: dict[str, Any] = {
        "quality": out.quality,
        "compress": out.compress,
        "icc_profile": icc,
    }
    if not route.targets:  # stdout
        buffer = io.BytesIO()
        frames.write(buffer, animation, selected, filtered(), **options)
        outcome.data = buffer.getvalue()
    elif route.whole:
        (target,) = route.targets
        if out.out_dir is not None:
            make_dirs(target.parent)
        with atomic_file(target) as fh:
            frames.write(fh, animation, selected, filtered(), **options)
        outcome.written.append(str(target))
    else:
        for target, result in zip(route.targets, filtered(), strict=True):
            if out.out_dir is not None:
                make_dirs(target.parent)
            write_image(result, target, format=route.format, **options)
            outcome.written.append(str(target))
    outcome.plan = plans[0]
    outcome.frames = FramesPlan(
        animation.name,
        animation.count,
        tuple(selected),
        tuple(plans),
        _kept(animation, route, request, selected),
        tuple(str(t) for t in route.targets) or (f"stdout as {route.format}",),
    )
    return stats


def _icc_profile(image: Path | bytes) -> bytes | None:
    """The input's ICC profile, carried to the output as for one-frame images."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(image) if isinstance(image, bytes) else image) as im:
            profile = im.info.get("icc_profile")
    except Exception:  # reading the frames says what is wrong with the file
        return None
    return profile if isinstance(profile, bytes) and profile else None
