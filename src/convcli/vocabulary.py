"""The words users choose from, written once (no heavy imports: the CLI's --help reads them).

Each is a ``str`` Enum, so a value compares equal to its text (``Mode.SAME == "same"``).
"""

from __future__ import annotations

from enum import Enum, StrEnum
from typing import TypeVar

from convcli.errors import UsageError


class Mode(StrEnum):
    """Output size, as scipy.signal.convolve2d."""

    FULL = "full"
    SAME = "same"
    VALID = "valid"


class Boundary(StrEnum):
    """How the input is extended beyond its edges (see convcli.compute.boundary)."""

    FILL = "fill"
    REFLECT = "reflect"
    MIRROR = "mirror"
    NEAREST = "nearest"
    WRAP = "wrap"


class Combine(StrEnum):
    """How a bank's results are combined."""

    STACK = "stack"
    MAGNITUDE = "magnitude"
    SUM = "sum"
    MEAN = "mean"
    MAX = "max"
    MIN = "min"


class Method(StrEnum):
    AUTO = "auto"
    DIRECT = "direct"
    SEPARABLE = "separable"
    FFT = "fft"


class Alpha(StrEnum):
    KEEP = "keep"
    FILTER = "filter"
    PREMULTIPLIED = "premultiplied"


class Depth(StrEnum):
    SAME = "same"
    D8 = "8"
    D16 = "16"
    FLOAT = "float"


class Range(StrEnum):
    CLIP = "clip"
    ABS = "abs"
    RESCALE = "rescale"


class BackendName(StrEnum):
    """Computing libraries (see convcli.compute.backends)."""

    AUTO = "auto"
    SCIPY = "scipy"
    OPENCV = "opencv"
    TORCH = "torch"


class Device(StrEnum):
    """Where torch computes."""

    AUTO = "auto"
    CPU = "cpu"
    CUDA = "cuda"
    MPS = "mps"


class Compat(StrEnum):
    """Libraries whose conventions --compat adopts (see convcli.compute.compat)."""

    SCIPY = "scipy"
    NDIMAGE = "ndimage"
    OPENCV = "opencv"
    IMAGEMAGICK = "imagemagick"
    PILLOW = "pillow"
    TORCH = "torch"


E = TypeVar("E", bound=StrEnum)


def parse(enum: type[E], value: str | E, what: str) -> E:
    """``value`` as a member of ``enum``, or a UsageError naming the choices."""
    try:
        return enum(value)
    except ValueError:
        choices = ", ".join(m.value for m in enum)
        raise UsageError(f"{what} {value!r} is not one of {choices}") from None


def values(enum: type[Enum]) -> tuple[str, ...]:
    return tuple(str(m.value) for m in enum)


COMBINES = values(Combine)
METHODS = values(Method)
ALPHA_MODES = values(Alpha)
DEPTHS = values(Depth)
RANGES = values(Range)
