"""``deconvolve`` as a batch: the request (apply's, with the PSF as its kernel and the
restoration's parameters), checked once, and the work for one input, run by the same pool
as apply's (:func:`convcli.run.pool.run` with ``work=deconvolve_source``)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from convcli.compute.deconvolve import DeconvolveOptions, deconvolve_image, validate_psf
from convcli.compute.pixels import PixelOptions
from convcli.errors import InputError, UsageError
from convcli.io.encode import encode
from convcli.io.formats import ARRAY_FORMATS, format_for
from convcli.kernels.model import Kernel
from convcli.kernels.registry import get_kernel
from convcli.run.naming import (
    DEFAULT_TEMPLATE,
    OutputSpec,
    check_named_formats,
    format_and_ext,
    guard_targets,
    output_targets,
)
from convcli.run.process import Outcome, array_layout, guarded, load_one_image, write_results
from convcli.run.request import Request, check_environment, check_outputs, output_label
from convcli.run.sources import Source
from convcli.vocabulary import Boundary, Depth

#: the {kernel} of output names starts with the method's short name
SHORT_NAMES = {"richardson-lucy": "rl", "wiener": "wiener"}


@dataclass(frozen=True)
class DeconvolveRequest(Request):
    """apply's request with the PSF as the operation, and how to undo it."""

    restore: DeconvolveOptions = field(default_factory=DeconvolveOptions)

    @property
    def psf(self) -> Kernel:
        assert isinstance(self.operation, Kernel)
        return self.operation


def build_deconvolve_request(
    psf: str,
    *,
    method: str = "richardson-lucy",
    iterations: int = 30,
    tv: float = 0.0,
    balance: float | None = None,
    noise: float | None = None,
    boundary: Boundary | str = Boundary.REFLECT,
    fill_value: float = 0.0,
    depth: Depth | str | None = None,
    output: str | None = None,
    out_dir: str | Path | None = None,
    name: str = DEFAULT_TEMPLATE,
    format: str | None = None,
    quality: int | None = None,
    compress: int | None = None,
    skip_existing: bool = False,
    print_result: bool = False,
    inputs: tuple[str, ...] | list[str] = (),
    recursive: bool = False,
    stdout_is_terminal: bool = False,
) -> DeconvolveRequest:
    """Check everything ``convcli deconvolve`` checks and make its request (usage errors
    before any input is read, as :func:`convcli.run.request.build_request`)."""
    check_outputs(
        inputs,
        output=output,
        out_dir=out_dir,
        in_place=False,
        print_result=print_result,
        recursive=recursive,
        format=format,
        stdout_is_terminal=stdout_is_terminal,
    )
    if format is not None:
        format_for(None, format)  # an unknown --format is one usage error, not one per input
    check_environment()  # likewise malformed limits in the environment, as apply checks them
    kernel = get_kernel(psf)
    if not isinstance(kernel, Kernel):
        raise UsageError(f"-k {psf}: the PSF must be one kernel, not a bank or a chain")
    restore = DeconvolveOptions(
        method=method,
        iterations=iterations,
        tv=tv,
        balance=balance,
        noise=noise,
        boundary=Boundary(boundary),
        fill_value=fill_value,
    )
    validate_psf(kernel, restore)
    out = OutputSpec(
        path=output,
        out_dir=None if out_dir is None else Path(out_dir),
        template=name,
        format=format,
        quality=quality,
        compress=compress,
        skip_existing=skip_existing,
        print_result=print_result,
    )
    check_named_formats(out)  # an -o or --name extension contradicting --format, once
    return DeconvolveRequest(
        operation=kernel,
        label=f"{SHORT_NAMES[restore.method]}-{output_label(kernel, [psf])}",
        pixels=PixelOptions(depth=depth or Depth.SAME),
        output=out,
        depth_given=depth is not None,
        restore=restore,
    )


def deconvolve_source(source: Source, request: Request) -> Outcome:
    """Deconvolve one input and write (or return) the result; never raises for its sake."""
    return guarded(source, request, _deconvolve)


def _deconvolve(source: Source, request: Request, outcome: Outcome) -> None:
    assert isinstance(request, DeconvolveRequest)
    out = request.output
    writes = out.path is not None or out.out_dir is not None
    if out.skip_existing and source.path is not None and source.path.suffix and writes:
        _, ext = format_and_ext(source, request, None)
        if all(t.exists() for t in output_targets(source, request, ext)):
            outcome.skipped = True
            return
    loaded = load_one_image(source, "deconvolve")
    if loaded.data.ndim == 1:
        raise InputError("a 1-D signal: deconvolve takes images and 2-D arrays")
    if not writes and (loaded.is_array or out.print_result):
        outcome.array = _restored(loaded.data, loaded.is_array, request, to_array=True)
        return
    fmt, ext = format_and_ext(source, request, loaded.format)
    result = _restored(loaded.data, loaded.is_array, request, fmt in ARRAY_FORMATS.values())
    if out.print_result:
        outcome.array = result
    if out.path == "-":
        outcome.data = encode(result, fmt, quality=out.quality, compress=out.compress)
        return
    targets = output_targets(source, request, ext)
    guard_targets(source, request, targets)
    write_results(targets, [result], fmt, loaded.icc_profile, request, outcome)


def _restored(
    data: np.ndarray, is_array: bool, request: DeconvolveRequest, to_array: bool
) -> np.ndarray:
    pixels = request.pixels
    if to_array and not request.depth_given:
        pixels = replace(pixels, depth="float")
    layout = array_layout(data.shape, data.dtype, pixels, to_array) if is_array else None
    return deconvolve_image(data, request.psf, request.restore, pixels, layout=layout).pixels
