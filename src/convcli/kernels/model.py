"""Kernel and KernelBank: validated, immutable kernel values (no I/O).

A :class:`Kernel` is a 1-D, 2-D or 3-D matrix of finite numbers with a name and a little metadata.
It validates itself when built, like Pillow's ``ImageFilter.Kernel``, so that everything
downstream may trust it. A :class:`KernelBank` is several kernels applied to the same input
and then combined (``stack``, ``magnitude``, ``sum``, ``mean``, ``max``, ``min``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

import numpy as np

from convcli.errors import KernelError
from convcli.numeric import nested_to_array
from convcli.vocabulary import COMBINES

#: Largest kernel side accepted, unless ``CONVCLI_MAX_KERNEL_SIZE`` says otherwise. A 1025-tap
#: kernel is a Gaussian of sigma 256: anything larger is almost certainly a mistake.
DEFAULT_MAX_KERNEL_SIZE = 1025
#: most taps a 3-D kernel may hold (256^3: 128 MiB of float64)
MAX_3D_TAPS = 1 << 24


def max_kernel_size() -> int:
    """The largest kernel side accepted (``CONVCLI_MAX_KERNEL_SIZE``, default 1025)."""
    raw = os.environ.get("CONVCLI_MAX_KERNEL_SIZE", "")
    if not raw.strip():
        return DEFAULT_MAX_KERNEL_SIZE
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        msg = f"CONVCLI_MAX_KERNEL_SIZE must be a whole number of taps, at least 1, got {raw!r}"
        raise KernelError(msg)
    return value


def as_matrix(values: Any, name: str) -> np.ndarray:
    """Turn nested sequences or an array into a validated, read-only float64 kernel matrix.

    Raises :class:`KernelError` naming the kernel and the problem: ragged rows, values that are
    not numbers, NaN or infinity, empty, more than three dimensions, or too large. (3-D
    kernels filter volumes: ``convcli apply --volume``.)
    """
    try:
        if isinstance(values, np.ndarray):
            if values.dtype.kind not in "biuf":
                raise ValueError(f"values must be real numbers, got {values.dtype}")
            if values.ndim == 0:
                raise ValueError("a single number, expected an array")
            if values.size == 0:
                raise ValueError("the array is empty")
            if values.ndim > 3:
                raise ValueError(f"{values.ndim} dimensions, a kernel is 1-D, 2-D or 3-D")
            matrix = np.array(values, dtype=np.float64)
            if not np.all(np.isfinite(matrix)):
                raise ValueError("the matrix holds NaN or infinity")
        else:
            _check_nested_size(values, name)
            matrix = nested_to_array(values, max_ndim=3)
    except ValueError as exc:
        raise KernelError(f"kernel {short(name)!r}: {exc}") from None
    _check_side(matrix.shape, name)
    matrix.setflags(write=False)
    return matrix


def short(text: str, limit: int = 60) -> str:
    """A name fit for a one-line message (an inline spec can be megabytes long)."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_side(shape: tuple[int, ...], name: str) -> None:
    if len(shape) == 3 and int(np.prod(shape)) > MAX_3D_TAPS:
        msg = (
            f"kernel {short(name)!r}: {'x'.join(map(str, shape))} is more taps than a 3-D "
            f"kernel may hold ({MAX_3D_TAPS}, 256 a side)"
        )
        raise KernelError(msg)
    limit = max_kernel_size()
    if shape and max(shape) > limit:
        msg = (
            f"kernel {short(name)!r}: {'x'.join(map(str, shape))} is larger than the limit "
            f"of {limit} taps a side (set CONVCLI_MAX_KERNEL_SIZE to raise it)"
        )
        raise KernelError(msg)


def _check_nested_size(values: Any, name: str) -> None:
    """The size limit, from the nesting alone, before every value is checked."""
    if isinstance(values, list | tuple) and values:
        first = values[0]
        cols = len(first) if isinstance(first, list | tuple) else None
        _check_side((len(values),) if cols is None else (len(values), cols), name)
        if cols and isinstance(first[0], list | tuple):
            _check_side((len(first[0]),), name)


def slug(text: str) -> str:
    """A file-name friendly form of a kernel name: ``gaussian:sigma=2`` -> ``gaussian-sigma2``."""
    text = text.replace(":", "-").replace(",", "-").replace("=", "")
    text = re.sub(r"[^A-Za-z0-9._+-]+", "-", text).strip("-.")
    return text or "kernel"


@dataclass(frozen=True, eq=False)
class Kernel:
    """A validated 1-D, 2-D or 3-D convolution kernel (3-D kernels filter volumes).

    Parameters
    ----------
    matrix
        Nested sequences or an array of finite numbers, 1-D, 2-D or 3-D.
    name
        How the kernel is called (``sobel-x``, ``gaussian:sigma=2``).
    scale
        The matrix is multiplied by this (kernel files may give integer matrices and a scale).
    origin
        Index (row, column) of the kernel element that lands on the output pixel in ``same``
        mode, for kernels that carry one (ImageMagick ``WxH+X+Y``); ``None`` for scipy's
        convention, ``(n - 1) // 2`` along each axis.
    offset
        Added to the result of this kernel (libvips matrix files carry one).

    Examples
    --------
    >>> k = Kernel([[1, 2, 1]], name="smooth", scale=0.25)
    >>> k.matrix.tolist(), k.shape, k.sum
    ([[0.25, 0.5, 0.25]], (1, 3), 1.0)
    """

    matrix: np.ndarray
    name: str = "kernel"
    description: str = ""
    tags: tuple[str, ...] = ()
    source: str = ""
    scale: float = 1.0
    origin: tuple[int, ...] | None = None
    offset: float = 0.0
    params: dict[str, Any] = field(default_factory=dict)
    #: the parametric generator that made it (``gaussian``, ``box``), which can make it again
    #: in another number of dimensions when ``ndim`` was not given (see ``for_ndim``)
    generator: str = ""

    def __post_init__(self) -> None:
        matrix = as_matrix(self.matrix, self.name)
        if not np.isfinite(self.scale):
            raise KernelError(f"kernel {self.name!r}: scale must be a finite number")
        if not np.isfinite(self.offset):
            raise KernelError(f"kernel {self.name!r}: offset must be a finite number")
        if self.scale != 1.0:
            with np.errstate(over="ignore"):
                matrix = matrix * float(self.scale)
            if not np.all(np.isfinite(matrix)):
                raise KernelError(
                    f"kernel {short(self.name)!r}: the scale makes values overflow to infinity"
                )
            matrix.setflags(write=False)
        with np.errstate(over="ignore"):
            magnitude = np.abs(matrix).sum()
        if not np.isfinite(magnitude):  # its sum, normalizing, any result: all infinite
            raise KernelError(
                f"kernel {short(self.name)!r}: its values are too large: their sum "
                "overflows the float range"
            )
        object.__setattr__(self, "matrix", matrix)
        object.__setattr__(self, "scale", 1.0)
        object.__setattr__(self, "tags", tuple(self.tags))
        if self.origin is not None:
            if not isinstance(self.origin, tuple | list) or not all(
                isinstance(o, int | np.integer) and not isinstance(o, bool) for o in self.origin
            ):
                msg = f"kernel {short(self.name)!r}: origin must be whole numbers"
                raise KernelError(msg)
            origin = tuple(int(o) for o in self.origin)
            if len(origin) != matrix.ndim or any(
                not 0 <= o < n for o, n in zip(origin, matrix.shape, strict=True)
            ):
                msg = (
                    f"kernel {self.name!r}: origin {origin} lies outside the {matrix.shape} matrix"
                )
                raise KernelError(msg)
            object.__setattr__(self, "origin", origin)

    # -- shape and summary ------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.matrix.shape)

    @property
    def ndim(self) -> int:
        return int(self.matrix.ndim)

    @property
    def sum(self) -> float:
        return float(self.matrix.sum())

    @property
    def label(self) -> str:
        """The name as used in output file names."""
        return slug(self.name)

    @property
    def size_text(self) -> str:
        """``3x3`` for 2-D kernels, ``5`` for 1-D ones."""
        return "x".join(str(n) for n in self.shape)

    # -- separability -------------------------------------------------------------------------
    @cached_property
    def factors(self) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
        """Pairs ``(column, row)`` of 1-D vectors whose outer products sum to the matrix.

        A rank-1 (separable) kernel has one pair, taken from the matrix itself (a row and a
        scaled column) so that integer kernels such as Sobel keep exact, short binary
        fractions. Higher ranks come from the SVD. A 1-D kernel is the single pair
        ``([1], row)``.
        """
        m = self.as_2d()
        if not np.any(m):
            return ((np.zeros(m.shape[0]), np.zeros(m.shape[1])),)
        if min(m.shape) == 1:
            if m.shape[0] == 1:
                return ((np.ones(1), m[0].copy()),)
            return ((m[:, 0].copy(), np.ones(1)),)
        tol = _rank_tolerance(m)
        i, j = np.unravel_index(np.argmax(np.abs(m)), m.shape)
        row = m[i, :].copy()
        col = m[:, j] / m[i, j]
        if np.max(np.abs(np.outer(col, row) - m)) <= tol:
            return ((col, row),)
        u, s, vt = np.linalg.svd(m)
        rank = int(np.sum(s > tol))
        return tuple((u[:, r] * s[r], vt[r, :].copy()) for r in range(rank))

    @cached_property
    def axis_factors(self) -> tuple[np.ndarray, ...] | None:
        """For a separable kernel of any dimension, one 1-D vector per axis whose outer
        product is the matrix (as :attr:`factors`, taken from the matrix itself so that
        integer kernels stay exact); None when it is not separable."""
        if self.ndim < 3:
            pair = self.factors
            if len(pair) != 1:
                return None
            return pair[0][1:] if self.ndim == 1 else pair[0]
        m = self.matrix
        if not np.any(m):
            return tuple(np.zeros(n) for n in m.shape)
        peak = np.unravel_index(np.argmax(np.abs(m)), m.shape)
        top = float(m[peak])
        vectors = []
        for axis in range(m.ndim):
            index: list[Any] = list(peak)
            index[axis] = slice(None)
            line = m[tuple(index)].copy()
            vectors.append(line if axis == m.ndim - 1 else line / top)
        product = vectors[0]
        for v in vectors[1:]:
            product = np.multiply.outer(product, v)
        tol = 1e-12 * float(np.max(np.abs(m))) * max(m.shape)
        return tuple(vectors) if np.max(np.abs(product - m)) <= tol else None

    @property
    def rank(self) -> int:
        """Number of separable passes the kernel needs (1 = separable). For a 3-D kernel,
        the largest rank of its three unfoldings into matrices: 1 exactly when it is
        separable (three 1-D passes), and a lower bound of the passes it would need."""
        if self.ndim == 3:
            if self.axis_factors is not None:
                return 1
            m = self.matrix
            tol = _rank_tolerance(m.reshape(m.shape[0], -1))
            return max(
                int(
                    np.sum(
                        np.linalg.svd(np.moveaxis(m, a, 0).reshape(n, -1), compute_uv=False) > tol
                    )
                )
                for a, n in enumerate(m.shape)
            )
        return len(self.factors)

    @property
    def separable(self) -> bool:
        return self.rank == 1

    # -- derived kernels ----------------------------------------------------------------------
    def normalized(self) -> Kernel:
        """The kernel divided by its sum (error if the sum is zero)."""
        total = self.sum
        if abs(total) <= 1e-12 * float(np.abs(self.matrix).sum()):
            msg = f"kernel {self.name!r}: cannot normalize, its sum is 0"
            raise KernelError(msg)
        return replace(self, matrix=self.matrix / total)

    def as_2d(self) -> np.ndarray:
        """The matrix as 2-D (a 1-D kernel becomes one row); a 3-D kernel has no 2-D form
        and is refused, naming the switch that takes it (``--volume``)."""
        if self.ndim == 3:
            msg = (
                f"kernel {short(self.name)!r} is {self.size_text}, a 3-D kernel: it filters "
                "volumes (give --volume, or convolve(..., channel_axis=None) on a 3-D array)"
            )
            raise KernelError(msg)
        return self.matrix if self.ndim == 2 else self.matrix[np.newaxis, :]

    @property
    def origin_2d(self) -> tuple[int, int]:
        """The origin of :meth:`as_2d`, the default centre where none is set."""
        h, w = self.as_2d().shape
        if self.origin is None:
            return ((h - 1) // 2, (w - 1) // 2)
        if self.ndim == 1:
            return (0, self.origin[0])
        return (self.origin[0], self.origin[1])

    def centred(self) -> np.ndarray:
        """The 2-D matrix zero-padded so that the default alignment puts the origin where it
        was: the same convolution for a tool (or backend) that knows no origin."""
        m = self.as_2d()
        pads = []
        for o, n in zip(self.origin_2d, m.shape, strict=True):
            centre = (n - 1) // 2
            if o > centre:
                pads.append((0, 2 * o + 1 - n))
            elif o < centre:
                pads.append((n - 2 - 2 * o, 0))
            else:
                pads.append((0, 0))
        return np.pad(m, pads)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly description (the same keys as a kernel file)."""
        data: dict[str, Any] = {"name": self.name}
        if self.description:
            data["description"] = self.description
        if self.tags:
            data["tags"] = list(self.tags)
        data["matrix"] = self.matrix.tolist()
        if self.origin is not None:
            data["origin"] = list(self.origin)
        if self.offset:
            data["offset"] = self.offset
        return data


def _rank_tolerance(m: np.ndarray) -> float:
    """Largest deviation still counted as exact: rounding of float64 products (about 1e-16
    of the kernel's magnitude) with room to spare, yet far below any component a user could
    mean; a dropped component changes results by at most this much."""
    return 1e-12 * float(np.max(np.abs(m))) * max(m.shape)


@dataclass(frozen=True, eq=False)
class KernelBank:
    """Several kernels applied to the same input and combined.

    ``combine`` is one of ``stack`` (a new first axis, one entry per member), ``magnitude``
    (square root of the sum of squares), ``sum``, ``mean``, ``max`` or ``min``.

    Examples
    --------
    >>> bank = KernelBank([Kernel([[1, -1]], name="dx"), Kernel([[1], [-1]], name="dy")],
    ...                   combine="magnitude", name="grad")
    >>> [m.name for m in bank.members], bank.combine
    (['dx', 'dy'], 'magnitude')
    """

    members: tuple[AnyKernel, ...]
    combine: str = "stack"
    name: str = "bank"
    description: str = ""
    tags: tuple[str, ...] = ()
    source: str = ""

    def __post_init__(self) -> None:
        members = tuple(self.members)
        object.__setattr__(self, "members", members)
        object.__setattr__(self, "tags", tuple(self.tags))
        if not members:
            raise KernelError(f"kernel bank {self.name!r}: it has no member kernels")
        if self.combine not in COMBINES:
            choices = ", ".join(COMBINES)
            msg = f"kernel bank {self.name!r}: combine {self.combine!r} is not one of {choices}"
            raise KernelError(msg)
        for member in members:
            if isinstance(member, KernelBank) and member.combine == "stack":
                msg = (
                    f"kernel bank {self.name!r}: member {member.name!r} is itself a stacked "
                    "bank; only the outermost bank may stack"
                )
                raise KernelError(msg)
            if not isinstance(member, Kernel | KernelBank | KernelChain):
                raise KernelError(f"kernel bank {self.name!r}: {member!r} is not a kernel")

    @property
    def label(self) -> str:
        return slug(self.name)

    @property
    def size_text(self) -> str:
        sizes = dict.fromkeys(m.size_text for m in self.members)
        return ",".join(sizes)

    def with_combine(self, combine: str) -> KernelBank:
        return replace(self, combine=combine)

    def leaves(self) -> list[Kernel]:
        """Every plain kernel in the bank, depth first."""
        return _leaves(self.members)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name}
        if self.description:
            data["description"] = self.description
        if self.tags:
            data["tags"] = list(self.tags)
        data["combine"] = self.combine
        data["kernels"] = [m.to_dict() for m in self.members]
        return data


@dataclass(frozen=True, eq=False)
class KernelChain:
    """Kernels applied one after another, each to the result of the one before.

    Repeating ``-k`` on the command line builds one; so does an ImageMagick ``;``-list.
    """

    steps: tuple[AnyKernel, ...]
    name: str = "chain"
    description: str = ""
    tags: tuple[str, ...] = ()
    source: str = ""

    def __post_init__(self) -> None:
        steps = tuple(self.steps)
        object.__setattr__(self, "steps", steps)
        if not steps:
            raise KernelError(f"kernel chain {self.name!r}: it has no kernels")

    @property
    def label(self) -> str:
        return "+".join(s.label for s in self.steps)

    @property
    def size_text(self) -> str:
        return "+".join(s.size_text for s in self.steps)

    def leaves(self) -> list[Kernel]:
        return _leaves(self.steps)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "chain": [s.to_dict() for s in self.steps]}


AnyKernel = Kernel | KernelBank | KernelChain


def _leaves(items: Sequence[AnyKernel]) -> list[Kernel]:
    out: list[Kernel] = []
    for item in items:
        out.extend([item] if isinstance(item, Kernel) else item.leaves())
    return out
