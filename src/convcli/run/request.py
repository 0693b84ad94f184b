"""The request: everything needed to process any input, validated once.

:func:`build_request` takes what ``convcli apply`` takes (kernel specs, the convolution, pixel
and output options) and checks all of it before any input is read, raising the same errors;
the :class:`Request` it returns runs from Python as from the command line
(:func:`convcli.run.runner.execute`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from convcli.compute.compat import Preset, adapt, get_preset
from convcli.compute.engine import Options, as_operation, check_request
from convcli.compute.pixels import PixelOptions, parse_offset
from convcli.errors import UsageError
from convcli.io.allowed import allowed_formats
from convcli.io.formats import format_for
from convcli.io.limits import max_pixels
from convcli.kernels.model import AnyKernel, max_kernel_size, slug
from convcli.kernels.registry import for_ndim, max_kernels
from convcli.memory import default_budget, parse_size
from convcli.run.naming import DEFAULT_TEMPLATE, OutputSpec, check_named_formats, stack_labels
from convcli.run.selection import FrameSelection, parse_frames
from convcli.vocabulary import Alpha, Boundary, Combine, Compat, Depth, Method, Mode, Range


@dataclass(frozen=True)
class Request:
    """Everything needed to process any input; sent once to each worker."""

    operation: AnyKernel  # the kernels, chain or bank (adapted to a --compat preset)
    label: str  # the {kernel} of output names
    options: Options = field(default_factory=Options)  # how to convolve
    backend: str = "auto"  # a backend name or auto
    device: str = "auto"  # torch device or auto
    pixels: PixelOptions = field(default_factory=PixelOptions)
    output: OutputSpec = field(default_factory=OutputSpec)
    depth_given: bool = False  # --depth was given (else arrays written from images are float)
    stack_labels: tuple[str, ...] = ()  # member labels when the result is a stack
    memory: int = 0  # bytes an input may use in memory before it is streamed (0: default)
    frames: FrameSelection | None = None  # --frames: the frames of multi-frame inputs
    volume: bool = False  # inputs are volumes (3-D), filtered with 3-D kernels (--volume)
    linear: bool = False  # images are filtered in linear light (--linear)


def kernel_specs(kernels: Iterable[str]) -> list[str]:
    """The kernel specs, or the usage error that there are none."""
    specs = list(kernels)
    if not specs:
        raise UsageError(
            "give at least one kernel with -k/--kernel (convcli list-kernels shows them)"
        )
    return specs


def build_request(
    kernels: Sequence[str],
    *,
    combine: Combine | str | None = None,
    mode: Mode | str | None = None,
    boundary: Boundary | str | None = None,
    fill_value: float = 0.0,
    correlate: bool | None = None,
    normalize: bool = False,
    compat: Compat | str | None = None,
    method: Method | str = Method.AUTO,
    backend: str = "auto",
    device: str = "auto",
    memory: str | None = None,
    offset: str = "0",
    value_range: Range | str = Range.CLIP,
    gray: bool = False,
    alpha: Alpha | str = Alpha.KEEP,
    depth: Depth | str | None = None,
    output: str | None = None,
    out_dir: str | Path | None = None,
    name: str = DEFAULT_TEMPLATE,
    format: str | None = None,
    quality: int | None = None,
    compress: int | None = None,
    in_place: bool = False,
    skip_existing: bool = False,
    print_result: bool = False,
    frames: str | None = None,
    inputs: Sequence[str] = (),
    recursive: bool = False,
    stdout_is_terminal: bool = False,
    volume: bool = False,
    linear: bool = False,
) -> Request:
    """Check everything ``convcli apply`` checks and make the request, raising the same
    errors (UsageError, KernelError, BackendError). The keywords are apply's options
    (``value_range`` is --range, ``print_result`` --print, ``frames`` --frames); mode,
    boundary and correlate left unset come from the ``compat`` preset. ``inputs`` and
    ``recursive`` are checked against the output options only; ``stdout_is_terminal``
    refuses ``-o -`` onto a terminal. ``volume`` reads every input as a volume (3-D, see
    :mod:`convcli.run.volume`), ``linear`` filters images in linear light (see
    :mod:`convcli.compute.transfer`)."""
    specs = kernel_specs(kernels)
    check_outputs(
        inputs,
        output=output,
        out_dir=out_dir,
        in_place=in_place,
        print_result=print_result,
        recursive=recursive,
        format=format,
        stdout_is_terminal=stdout_is_terminal,
    )
    offset_value, offset_percent = parse_offset(offset)
    selection = parse_frames(frames) if frames is not None else None
    if format is not None:
        format_for(None, format)  # an unknown --format is one usage error, not one per input
    check_environment()  # likewise a malformed CONVCLI_MAX_PIXELS, _MEMORY, ...
    operation = as_operation(specs, combine)
    preset = get_preset(compat) if compat else None
    if volume:
        check_volume_options(preset, gray=gray, alpha=alpha, linear=linear, output=output)
        if selection is not None:
            raise UsageError("--frames selects frames of animations; a volume is filtered whole")
        operation = for_ndim(operation, 3)
    pixels = _pixels(preset, gray, alpha, depth, value_range, offset_value, offset_percent)
    if correlate is None:
        correlate = bool(preset and preset.correlate)
    if preset is not None:
        operation = adapt(operation, preset, correlate)
    options = _options(preset, mode, boundary, fill_value, correlate, normalize, method)
    if volume:
        from convcli.compute.volume import check_volume_request

        check_volume_request(operation, options, backend=backend, device=device)
    else:
        check_request(operation, options, backend=backend, device=device)
    out = OutputSpec(
        path=output,
        out_dir=None if out_dir is None else Path(out_dir),
        template=name,
        format=format,
        quality=quality,
        compress=compress,
        in_place=in_place,
        skip_existing=skip_existing,
        print_result=print_result,
    )
    check_named_formats(out)
    return Request(
        operation=operation,
        label=output_label(operation, specs),
        options=options,
        backend=backend,
        device=device,
        pixels=pixels,
        output=out,
        depth_given=depth is not None,
        stack_labels=stack_labels(operation),
        memory=parse_size(memory, "--memory") if memory else 0,
        frames=selection,
        volume=volume,
        linear=linear,
    )


def check_volume_options(
    preset: Preset | None, *, gray: bool, alpha: Alpha | str, linear: bool, output: str | None
) -> None:
    """Refuse what has no meaning for a volume (a stack of gray slices)."""
    if preset is not None and preset.keep_edges:
        raise UsageError(
            "--compat pillow is for images (it copies the edge pixels); a volume takes "
            "scipy, ndimage, opencv, imagemagick or torch"
        )
    if gray or str(alpha) != "keep":
        raise UsageError(
            "--gray and --alpha are for colour images; a volume has one sample a voxel"
        )
    if linear:
        raise UsageError("--linear is for images; a volume's values are filtered as they are")
    if output == "-":
        raise UsageError("a volume is written to a file (.npy or TIFF), not to stdout")


def check_environment() -> None:
    """The limits set in the environment, each checked once as a usage error (not once per
    input, and never silently the default)."""
    max_pixels()
    max_kernel_size()
    max_kernels()
    default_budget()
    allowed_formats()


def _pixels(
    preset: Preset | None,
    gray: bool,
    alpha: Alpha | str,
    depth: Depth | str | None,
    value_range: Range | str,
    offset: float,
    offset_percent: bool,
) -> PixelOptions:
    return PixelOptions(
        gray=gray,
        alpha=alpha,
        depth=depth or Depth.SAME,
        range=value_range,
        offset=offset,
        offset_percent=offset_percent,
        quantize=preset.quantize if preset else "nearest",
    )


def _options(
    preset: Preset | None,
    mode: Mode | str | None,
    boundary: Boundary | str | None,
    fill_value: float,
    correlate: bool,
    normalize: bool,
    method: Method | str,
) -> Options:
    """The convolution options: those given, else the preset's, else the defaults."""
    return Options.make(
        mode=mode or (preset.mode if preset else Mode.SAME),
        boundary=boundary or (preset.boundary if preset else Boundary.REFLECT),
        fill_value=fill_value,
        correlate=correlate,
        normalize=normalize,
        method=method,
        keep_edges=bool(preset and preset.keep_edges),
    )


def check_outputs(
    inputs: Sequence[str],
    *,
    output: str | None,
    out_dir: str | Path | None,
    in_place: bool,
    print_result: bool,
    recursive: bool,
    format: str | None,
    stdout_is_terminal: bool = False,
) -> None:
    """Refuse output options that conflict with each other or with the inputs."""
    if output is not None and out_dir is not None:
        raise UsageError("-o and -d conflict: -o names one output file, -d a directory")
    if in_place and (output is not None or out_dir is not None):
        raise UsageError("--in-place conflicts with -o and -d (it writes over each input)")
    if in_place and format is not None:
        raise UsageError("--in-place keeps each file's format; drop --format (or use -d)")
    if in_place and any(i == "-" or i.lstrip().startswith("[") for i in inputs):
        raise UsageError("--in-place needs input files (not stdin or an inline array)")
    if output == "-":
        if print_result:
            raise UsageError("--print and -o - both write to stdout; choose one")
        if stdout_is_terminal:
            raise UsageError(
                "-o - would write image bytes to the terminal; redirect stdout or pipe it"
            )
    if output is not None and output != "-" and recursive:
        raise UsageError("-o takes one input; use -d with -r")


def output_label(operation: AnyKernel, specs: Sequence[str]) -> str:
    """The {kernel} of output names: the kernel's name, or its file's stem."""
    if len(specs) == 1:
        spec = specs[0]
        path = Path(spec)
        if path.suffix.lower() in (".toml", ".json", ".mat") or "/" in spec:
            return slug(path.stem)
    return str(operation.label)
