"""The output-size and boundary vocabulary, defined once and translated per library.

Modes (``full``, ``same``, ``valid``) are those of ``scipy.signal.convolve2d``. Boundaries:

========  ===============  =================  ==============  ==========  =====================
ours      picture          scipy.signal       scipy.ndimage   numpy.pad   OpenCV / torch F.pad
========  ===============  =================  ==============  ==========  =====================
fill      ``kkk|abcd|kkk``  ``fill``           ``constant``    constant    CONSTANT / constant
reflect   ``dcba|abcd|dcba`` ``symm``          ``reflect``     symmetric   REFLECT / (none)
mirror    ``dcb|abcd|cba``  (none)             ``mirror``      reflect     REFLECT_101 / reflect
nearest   ``aaa|abcd|ddd``  (none)             ``nearest``     edge        REPLICATE / replicate
wrap      ``bcd|abcd|abc``  ``wrap``           ``wrap``        wrap        WRAP / circular
========  ===============  =================  ==============  ==========  =====================

Every result is defined as: extend the input by the boundary rule, then take the ``valid``
correlation of the extension with the (flipped, for convolution) kernel. :func:`pad_widths` says
how far to extend for each mode; a backend either extends natively or calls :func:`pad`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from convcli.vocabulary import Boundary, Mode, parse

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "Boundary",
    "Mode",
    "as_boundary",
    "as_mode",
    "index_map",
    "pad",
    "pad_widths",
    "source_index",
]

NUMPY_PAD = {
    Boundary.FILL: "constant",
    Boundary.REFLECT: "symmetric",
    Boundary.MIRROR: "reflect",
    Boundary.NEAREST: "edge",
    Boundary.WRAP: "wrap",
}
NDIMAGE = {
    Boundary.FILL: "constant",
    Boundary.REFLECT: "reflect",
    Boundary.MIRROR: "mirror",
    Boundary.NEAREST: "nearest",
    Boundary.WRAP: "wrap",
}
SCIPY_SIGNAL = {Boundary.FILL: "fill", Boundary.REFLECT: "symm", Boundary.WRAP: "wrap"}
OPENCV = {  # cv2 attribute names; filter2D cannot wrap, so WRAP is only used to pad
    Boundary.FILL: "BORDER_CONSTANT",
    Boundary.REFLECT: "BORDER_REFLECT",
    Boundary.MIRROR: "BORDER_REFLECT_101",
    Boundary.NEAREST: "BORDER_REPLICATE",
    Boundary.WRAP: "BORDER_WRAP",
}
TORCH_PAD = {  # F.pad has no symmetric ("reflect" in our words) mode
    Boundary.FILL: "constant",
    Boundary.MIRROR: "reflect",
    Boundary.NEAREST: "replicate",
    Boundary.WRAP: "circular",
}


def as_mode(value: str | Mode) -> Mode:
    return parse(Mode, value, "mode")


def as_boundary(value: str | Boundary) -> Boundary:
    return parse(Boundary, value, "boundary")


def pad_widths(mode: Mode, size: int, centre: int) -> tuple[int, int]:
    """How far to extend one axis before and after, for correlation weights of ``size`` taps.

    ``centre`` is the index of the weight that lands on the output pixel in ``same`` mode. The
    valid correlation of the extension with the weights has the mode's length.
    """
    if mode is Mode.FULL:
        return size - 1, size - 1
    if mode is Mode.SAME:
        return centre, size - 1 - centre
    return 0, 0


def output_length(mode: Mode, n: int, size: int) -> int:
    if mode is Mode.FULL:
        return n + size - 1
    if mode is Mode.SAME:
        return n
    return n - size + 1


def source_index(positions: np.ndarray, n: int, boundary: Boundary) -> np.ndarray:
    """For positions along an axis of length ``n`` (any integers, inside or far outside), the
    index of the sample the boundary rule puts there; -1 where ``fill`` puts the fill value.

    The extension is periodic, so it holds however far it reaches (like numpy.pad):
    reflect has period 2n, mirror 2n - 2, wrap n.
    """
    import numpy as np

    e = np.asarray(positions, dtype=np.int64)
    if boundary is Boundary.FILL:
        return np.where((e >= 0) & (e < n), e, -1)
    if boundary is Boundary.NEAREST:
        return np.clip(e, 0, n - 1)
    if boundary is Boundary.WRAP:
        return np.mod(e, n)
    if boundary is Boundary.REFLECT:  # dcba|abcd|dcba
        m = np.mod(e, 2 * n)
        return np.where(m < n, m, 2 * n - 1 - m)
    if n == 1:  # mirror of a single sample: dcb|abcd|cba has nothing to mirror
        return np.zeros_like(e)
    m = np.mod(e, 2 * n - 2)
    return np.where(m < n, m, 2 * n - 2 - m)


def index_map(n: int, before: int, after: int, boundary: Boundary) -> np.ndarray:
    """Source index of every position of an axis of length ``n`` extended by ``before`` and
    ``after`` positions (not for ``fill``)."""
    import numpy as np

    return source_index(np.arange(-before, n + after), n, boundary)


def pad(
    x: np.ndarray,
    pads: tuple[tuple[int, int], tuple[int, int]],
    boundary: Boundary,
    fill: float = 0.0,
) -> np.ndarray:
    """Extend the last two axes of ``x`` by the boundary rule."""
    import numpy as np

    if not any(pads[0]) and not any(pads[1]):
        return x
    if boundary is Boundary.FILL:
        widths = [(0, 0)] * (x.ndim - 2) + [pads[0], pads[1]]
        return np.pad(x, widths, mode="constant", constant_values=fill)
    rows = index_map(x.shape[-2], *pads[0], boundary)
    cols = index_map(x.shape[-1], *pads[1], boundary)
    return x[..., rows[:, None], cols[None, :]]


def window_into(
    dst: np.ndarray,
    x: np.ndarray,
    rows: tuple[int, int],
    cols: tuple[int, int],
    boundary: Boundary,
    fill: float = 0.0,
) -> None:
    """Write rows ``rows[0]:rows[1]`` and columns ``cols[0]:cols[1]`` of the 2-D ``x``
    extended without end by the boundary rule (positions outside ``x`` allowed) into ``dst``
    (of that shape): what ``pad`` and a slice give, without extending all of ``x``. The part
    inside ``x`` is one sliced copy; only the frame around it is looked up."""
    import numpy as np

    (r0, r1), (c0, c1) = rows, cols
    h, w = x.shape
    # the window's positions inside x: one run along each axis
    a, b = min(max(-r0, 0), r1 - r0), max(min(h - r0, r1 - r0), 0)
    c, d = min(max(-c0, 0), c1 - c0), max(min(w - c0, c1 - c0), 0)
    b, d = max(a, b), max(c, d)
    if b > a and d > c:
        dst[a:b, c:d] = x[r0 + a : r0 + b, c0 + c : c0 + d]
    if a == 0 and b == r1 - r0 and c == 0 and d == c1 - c0:
        return  # the window lies inside x
    if boundary is Boundary.FILL:
        dst[:a] = fill
        dst[b:] = fill
        dst[a:b, :c] = fill
        dst[a:b, d:] = fill
        return
    ri = source_index(np.arange(r0, r1), h, boundary)
    ci = source_index(np.arange(c0, c1), w, boundary)
    if a:
        dst[:a] = x[np.ix_(ri[:a], ci)]
    if b < len(ri):
        dst[b:] = x[np.ix_(ri[b:], ci)]
    if b > a:
        middle = x[r0 + a : r0 + b]
        if c:
            dst[a:b, :c] = middle[:, ci[:c]]
        if d < len(ci):
            dst[a:b, d:] = middle[:, ci[d:]]
