"""Parametric kernels: the matrices behind ``gaussian:sigma=2``, ``box:size=4``, ``log``, ...

Each generator is a plain function with keyword-only parameters; the registry reads their
names, types and defaults from the signature, so a parameter is declared once, here. Built-in
kernel files name a generator (``generator = "gaussian"``) and may override its defaults.

The Gaussian follows ``scipy.ndimage``: ``sigma`` alone gives a radius of ``int(4 * sigma +
0.5)`` taps, so ``gaussian:sigma=s`` with ``--boundary reflect`` reproduces
``ndimage.gaussian_filter(x, s)``; ``size`` alone gives OpenCV's ``getGaussianKernel`` sigma.
``log`` is ``ndimage.gaussian_laplace``'s kernel.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from convcli.errors import KernelError
from convcli.kernels.model import MAX_3D_TAPS, max_kernel_size

TRUNCATE = 4.0  # scipy.ndimage's default: the kernel reaches 4 standard deviations


#: below this a Gaussian is a single tap (and sigma squared underflows)
MIN_SIGMA = 1e-3


def _check_sigma(sigma: float) -> float:
    if not np.isfinite(sigma) or sigma <= 0:
        raise ValueError(f"sigma must be a positive number, got {sigma}")
    if sigma < MIN_SIGMA:
        raise ValueError(f"sigma must be at least {MIN_SIGMA}, got {sigma}")
    return float(sigma)


def _check_size(size: int) -> int:
    if size < 1:
        raise ValueError(f"size must be at least 1, got {size}")
    return _within_limit(int(size))


def _within_limit(taps: int) -> int:
    """Refuse a size over the kernel limit before any memory is spent on it."""
    limit = max_kernel_size()
    if taps > limit:
        raise ValueError(
            f"{taps} taps a side is larger than the limit of {limit} "
            "(set CONVCLI_MAX_KERNEL_SIZE to raise it)"
        )
    return taps


def _sigma_and_taps(sigma: float | None, size: int | None) -> tuple[float, int]:
    """Fill in whichever of sigma and size is missing (sigma 1 if both are)."""
    if size is not None:
        size = _check_size(size)
    if sigma is None:
        # OpenCV's getGaussianKernel rule, so `gaussian:size=n` matches cv2.GaussianBlur.
        # (always positive: 0.5 for size 1).
        sigma = 0.3 * ((size - 1) * 0.5 - 1) + 0.8 if size is not None else 1.0
    sigma = _check_sigma(sigma)
    if size is None:
        reach = TRUNCATE * sigma + 0.5
        size = _within_limit(2 * int(min(reach, 2.0**62)) + 1)
    return sigma, size


def gaussian_1d(sigma: float, taps: int, order: int = 0) -> np.ndarray:
    """scipy.ndimage's sampled Gaussian (or its ``order``-th derivative), normalised to sum 1.

    For odd ``taps`` this is bit-for-bit ``scipy.ndimage._filters._gaussian_kernel1d``.
    """
    x = np.arange(taps, dtype=np.float64) - (taps - 1) / 2
    p = np.polynomial.Polynomial([0, 0, -0.5 / (sigma * sigma)])
    phi = np.exp(p(x), dtype=np.double)
    phi /= phi.sum()
    if order > 0:
        q = np.polynomial.Polynomial([1])
        p_deriv = p.deriv()
        for _ in range(order):
            q = q.deriv() + q * p_deriv
        phi *= q(x)
    return phi


def _check_ndim(ndim: int | None) -> int:
    if ndim is None:
        return 2
    if ndim not in (1, 2, 3):
        raise ValueError(f"ndim must be 1, 2 or 3, got {ndim}")
    return int(ndim)


def _outer(vector: np.ndarray, ndim: int) -> np.ndarray:
    """The product of ``vector`` along each of ``ndim`` axes."""
    taps = len(vector) ** ndim
    if ndim == 3 and taps > MAX_3D_TAPS:
        n = len(vector)
        raise ValueError(
            f"{n}x{n}x{n} is {taps} taps, more than a 3-D kernel may hold ({MAX_3D_TAPS}, "
            "256 a side)"
        )
    out = vector
    for _ in range(ndim - 1):
        out = np.multiply.outer(out, vector)
    return out


def gaussian(
    *, sigma: float | None = None, size: int | None = None, ndim: int | None = None
) -> np.ndarray:
    """Gaussian blur, normalised to sum 1 (params: sigma, size, ndim: 1, 2 or 3)."""
    dims = _check_ndim(ndim)
    s, n = _sigma_and_taps(sigma, size)
    return _outer(gaussian_1d(s, n), dims)


def gaussian_1d_kernel(*, sigma: float | None = None, size: int | None = None) -> np.ndarray:
    """1-D Gaussian, normalised to sum 1 (params: sigma, size)."""
    s, n = _sigma_and_taps(sigma, size)
    return gaussian_1d(s, n)


def box(*, size: int = 3, ndim: int | None = None) -> np.ndarray:
    """Box (mean) filter of size taps along each axis, sum 1 (params: size, ndim: 1-3)."""
    dims = _check_ndim(ndim)
    n = _check_size(size)
    return _outer(np.full(n, 1.0 / n), dims)


def box_1d(*, size: int = 3) -> np.ndarray:
    """1-D running average of `size` taps (np.ones(size) / size)."""
    n = _check_size(size)
    return np.ones(n) / n


def log(*, sigma: float | None = None, size: int | None = None) -> np.ndarray:
    """Laplacian of Gaussian, as scipy.ndimage.gaussian_laplace (params: sigma, size)."""
    s, n = _sigma_and_taps(sigma, size)
    g = gaussian_1d(s, n)
    d2 = gaussian_1d(s, n, order=2)
    return np.outer(d2, g) + np.outer(g, d2)


def unsharp(*, sigma: float = 1.0, amount: float = 1.0, size: int | None = None) -> np.ndarray:
    """Unsharp mask: (1 + amount) * identity - amount * gaussian (sum 1)."""
    if not np.isfinite(amount):
        raise ValueError(f"amount must be a finite number, got {amount}")
    s, n = _sigma_and_taps(sigma, size)
    if n % 2 == 0:
        raise ValueError(f"size must be odd for an unsharp mask, got {n}")
    g = gaussian_1d(s, n)
    k = -amount * np.outer(g, g)
    k[n // 2, n // 2] += 1.0 + amount
    return k


@dataclass(frozen=True)
class Generator:
    """A parametric kernel function and the parameters its signature declares."""

    name: str
    func: Callable[..., np.ndarray]

    @property
    def params(self) -> dict[str, inspect.Parameter]:
        return dict(inspect.signature(self.func).parameters)

    def parse(self, key: str, text: str, kernel_name: str) -> Any:
        """Convert one ``key=value`` parameter from text, naming it on error."""
        params = self.params
        if key not in params:
            known = ", ".join(params) or "none"
            msg = f"kernel {kernel_name!r}: unknown parameter {key!r} (parameters: {known})"
            raise KernelError(msg)
        annotation = str(params[key].annotation)
        want_int = annotation.startswith("int")
        try:
            value = float(text)
        except ValueError:
            msg = f"kernel {kernel_name!r}: parameter {key}={text!r} is not a number"
            raise KernelError(msg) from None
        if want_int:
            if not value.is_integer():
                msg = f"kernel {kernel_name!r}: parameter {key}={text!r} must be a whole number"
                raise KernelError(msg)
            return int(value)
        return value

    def __call__(self, kernel_name: str, **kwargs: Any) -> np.ndarray:
        try:
            return self.func(**kwargs)
        except ValueError as exc:
            raise KernelError(f"kernel {kernel_name!r}: {exc}") from None


#: generators whose kernels can be made in any number of dimensions (their ``ndim``)
DIMENSIONAL = ("gaussian", "box")

GENERATORS: dict[str, Generator] = {
    g.name: g
    for g in (
        Generator("gaussian", gaussian),
        Generator("gaussian-1d", gaussian_1d_kernel),
        Generator("box", box),
        Generator("box-1d", box_1d),
        Generator("log", log),
        Generator("unsharp", unsharp),
    )
}
