"""The request: everything needed to process any input, validated once."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from convcli.compute.imaging import PixelOptions
from convcli.kernels.model import AnyKernel
from convcli.run.naming import OutputSpec


@dataclass(frozen=True)
class Request:
    """Everything needed to process any input; sent once to each worker."""

    operation: AnyKernel
    label: str  # the {kernel} of output names
    conv: dict[str, Any]  # convolve() keyword arguments
    pixels: PixelOptions = field(default_factory=PixelOptions)
    output: OutputSpec = field(default_factory=OutputSpec)
    depth_given: bool = False  # --depth was given (else arrays written from images are float)
    stack_labels: tuple[str, ...] = ()  # member labels when the result is a stack
    memory: int = 0  # bytes an input may use in memory before it is streamed (0: default)
