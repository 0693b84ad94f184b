"""--explain: what ``apply`` would do with one input, from its header; nothing is computed."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from convcli.compute.engine import StepInfo, describe, work_dtype
from convcli.compute.pixels import PixelOptions, output_dtype, sample_max
from convcli.errors import LimitError
from convcli.io.decode import probe_image
from convcli.io.formats import ARRAY_FORMATS
from convcli.memory import format_size
from convcli.run.naming import format_and_ext as _format_and_ext
from convcli.run.naming import output_targets
from convcli.run.process import load as _load
from convcli.run.process import memory_budget as _budget
from convcli.run.process import plan_stream, writes_stdout
from convcli.run.process import too_big as _too_big
from convcli.run.request import Request
from convcli.run.sources import Source


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
        shape, dtype = probe_image(image, source.label)
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
    to_array = fmt in ARRAY_FORMATS.values()
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
