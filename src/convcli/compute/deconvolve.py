"""Undoing a known blur: Richardson-Lucy and Wiener deconvolution, FFT-based, under convcli's
semantics for the blur (the PSF is a convolution kernel applied in ``same`` mode with a
boundary rule, as ``apply -k PSF`` blurs).

* Richardson-Lucy iterates ``u <- u * H^T(y / H u)`` from a flat start, where ``H`` is the
  blur and ``H^T`` its exact adjoint (the full correlation with the PSF, folded back onto the
  image by the boundary rule); with ``tv`` the update is divided by ``1 - tv * div(grad u /
  |grad u|)`` (Dey et al., 2006), which damps the noise the iterations amplify. With
  ``boundary="fill"`` this is scikit-image's ``restoration.richardson_lucy``.
* Wiener filters in the Fourier domain, ``conj(H) / (|H|^2 + balance |L|^2)`` with the
  Laplacian ``L`` as regulariser (scikit-image's ``restoration.wiener``, which is periodic: our
  ``boundary="wrap"``; other boundaries extend the image by the rule before filtering and crop
  after). ``balance`` may instead be chosen from the noise level (given, or estimated from the
  image): the noise's power over the signal's, for a signal spectrum of the regulariser's
  form fitted to the image (:func:`noise_balance`).

The functions take one plane (2-D float array); :func:`deconvolve_image` runs them on every
colour channel of an image, keeping alpha, in units where full intensity is 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from convcli.compute.boundary import Boundary, as_boundary, index_map, pad, pad_widths
from convcli.compute.boundary import Mode as _Mode
from convcli.compute.pixels import Filtered, Layout, PixelOptions
from convcli.errors import InputError, UsageError
from convcli.kernels.model import Kernel

METHODS = ("richardson-lucy", "wiener")
#: added to the blurred estimate before dividing by it (as scikit-image does)
EPSILON = 1e-12


@dataclass(frozen=True)
class DeconvolveOptions:
    """How to deconvolve: the method and its parameters, and the blur's boundary rule."""

    method: str = "richardson-lucy"
    iterations: int = 30
    tv: float = 0.0  # total-variation weight of Richardson-Lucy (0: plain)
    balance: float | None = None  # Wiener's regularisation weight
    noise: float | None = None  # Wiener: noise level (sigma, full intensity 1); None: estimated
    boundary: Boundary = Boundary.REFLECT
    fill_value: float = 0.0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise UsageError(f"--method {self.method!r} is not one of {', '.join(METHODS)}")
        if self.iterations < 1:
            raise UsageError(f"--iterations must be at least 1, got {self.iterations}")
        if not np.isfinite(self.tv) or self.tv < 0:
            raise UsageError(f"--tv must be a number >= 0, got {self.tv}")
        if self.balance is not None and (not np.isfinite(self.balance) or self.balance < 0):
            raise UsageError(f"--balance must be a number >= 0, got {self.balance}")
        if self.noise is not None and (not np.isfinite(self.noise) or self.noise <= 0):
            raise UsageError(f"--noise must be a number > 0, got {self.noise}")
        given = self.balance is not None or self.noise is not None
        if self.balance is not None and self.noise is not None:
            raise UsageError("--balance and --noise conflict: give one (or neither)")
        if self.method == "richardson-lucy" and given:
            raise UsageError(
                "--balance and --noise are Wiener's; Richardson-Lucy takes --iterations"
            )
        if self.method == "wiener" and self.tv:
            raise UsageError("--tv is Richardson-Lucy's; Wiener takes --balance or --noise")
        object.__setattr__(self, "boundary", as_boundary(self.boundary))


def psf_matrix(psf: Kernel) -> tuple[np.ndarray, tuple[int, int]]:
    """The PSF's 2-D matrix and the index of the element on the output pixel."""
    return np.asarray(psf.as_2d(), dtype=np.float64), psf.origin_2d


def _fft_shape(shape: tuple[int, int]) -> tuple[int, int]:
    import scipy.fft

    return (scipy.fft.next_fast_len(shape[0], True), scipy.fft.next_fast_len(shape[1], True))


class Blur:
    """The blur ``H`` of one plane shape (``apply -k PSF --mode same``) and its adjoint, by
    FFT, with the PSF's transform computed once."""

    def __init__(self, psf: Kernel, shape: tuple[int, int], boundary: Boundary, fill: float):
        import scipy.fft

        self.matrix, origin = psf_matrix(psf)
        kh, kw = self.matrix.shape
        # convolution: the element at the origin lands on the output pixel, so the
        # extension before is the origin's distance from the far end of the flipped kernel
        centre = (kh - 1 - origin[0], kw - 1 - origin[1])
        self.pads = (pad_widths(_Mode.SAME, kh, centre[0]), pad_widths(_Mode.SAME, kw, centre[1]))
        self.shape = shape
        self.boundary = boundary
        self.fill = fill
        self.ext_shape = (shape[0] + kh - 1, shape[1] + kw - 1)
        self.fft_shape = _fft_shape(self.ext_shape)
        self.spectrum = scipy.fft.rfft2(self.matrix, self.fft_shape)
        h, w = shape
        self.rows = index_map(h, *self.pads[0], boundary) if boundary is not Boundary.FILL else None
        self.cols = index_map(w, *self.pads[1], boundary) if boundary is not Boundary.FILL else None

    def forward(self, x: np.ndarray) -> np.ndarray:
        """``H x``: the valid convolution of the extended plane with the PSF."""
        import scipy.fft

        ext = pad(x, self.pads, self.boundary, self.fill)
        spectrum = scipy.fft.rfft2(ext, self.fft_shape) * self.spectrum
        full = scipy.fft.irfft2(spectrum, self.fft_shape)
        kh, kw = self.matrix.shape
        return full[kh - 1 : kh - 1 + self.shape[0], kw - 1 : kw - 1 + self.shape[1]]

    def adjoint(self, r: np.ndarray) -> np.ndarray:
        """``H^T r``: the full correlation of ``r`` with the PSF (a plane of the extension's
        size), folded back onto the samples each extended position came from."""
        import scipy.fft

        kh, kw = self.matrix.shape
        spectrum = scipy.fft.rfft2(r, self.fft_shape) * np.conj(self.spectrum)
        corr = scipy.fft.irfft2(spectrum, self.fft_shape)
        # correlation lag m sits at index m (negative lags wrap to the end)
        eh, ew = self.ext_shape
        rows = np.arange(-(kh - 1), eh - (kh - 1)) % self.fft_shape[0]
        cols = np.arange(-(kw - 1), ew - (kw - 1)) % self.fft_shape[1]
        ext = corr[rows[:, None], cols[None, :]]
        (top, _), (left, _) = self.pads
        h, w = self.shape
        if self.rows is None or self.cols is None:  # fill: the extension is constant
            return ext[top : top + h, left : left + w]
        # the inside maps onto itself; only the few extended rows and columns fold back
        rows = ext[top : top + h].copy()
        for i in (*range(top), *range(top + h, ext.shape[0])):
            rows[self.rows[i]] += ext[i]
        out = rows[:, left : left + w].copy()
        for j in (*range(left), *range(left + w, ext.shape[1])):
            out[:, self.cols[j]] += rows[:, j]
        return out


def richardson_lucy(
    plane: np.ndarray,
    psf: Kernel,
    iterations: int = 30,
    *,
    boundary: str | Boundary = "reflect",
    fill_value: float = 0.0,
    tv: float = 0.0,
    start: float = 0.5,
) -> np.ndarray:
    """Richardson-Lucy deconvolution of one plane (see the module's docstring).

    >>> import numpy as np, convcli
    >>> x = np.zeros((32, 32)); x[8:24, 8:24] = 1.0; x[12:16, 20:28] = 0.5
    >>> psf = convcli.get_kernel("gaussian:sigma=1")
    >>> y = convcli.convolve(x, psf, boundary="fill", dtype=np.float64)
    >>> err = lambda u: float(np.abs(u - x).mean())
    >>> err(richardson_lucy(y, psf, 50, boundary="fill")) < err(y)
    True
    """
    y = np.asarray(plane, dtype=np.float64)
    if np.any(y < 0):
        raise InputError(
            "Richardson-Lucy needs non-negative data (intensities); try --method wiener"
        )
    blur = Blur(psf, y.shape, as_boundary(boundary), fill_value)
    u = np.full(y.shape, float(start))
    for _ in range(iterations):
        ratio = y / (blur.forward(u) + EPSILON)
        update = blur.adjoint(ratio)
        if tv:
            update = update / (1.0 - tv * _tv_divergence(u))
        u = u * update
    return u


def _tv_divergence(u: np.ndarray) -> np.ndarray:
    """``div(grad u / |grad u|)`` with forward differences and backward divergence."""
    gy = np.diff(u, axis=0, append=u[-1:])
    gx = np.diff(u, axis=1, append=u[:, -1:])
    norm = np.sqrt(gx * gx + gy * gy) + 1e-8
    ny, nx = gy / norm, gx / norm
    div = np.diff(ny, axis=0, prepend=np.zeros((1, u.shape[1])))
    div += np.diff(nx, axis=1, prepend=np.zeros((u.shape[0], 1)))
    return div


def laplacian_spectrum(shape: tuple[int, int]) -> np.ndarray:
    """The transform of the 4-neighbour Laplacian centred at the origin, on ``shape``."""
    import scipy.fft

    lap = np.zeros(shape)
    lap[0, 0] = 4.0
    lap[1 % shape[0], 0] -= 1.0
    lap[-1, 0] -= 1.0
    lap[0, 1 % shape[1]] -= 1.0
    lap[0, -1] -= 1.0
    return scipy.fft.rfft2(lap)


def psf_spectrum(psf: Kernel, shape: tuple[int, int]) -> np.ndarray:
    """The PSF's transform on ``shape``, its origin moved to index (0, 0) (a periodic blur)."""
    import scipy.fft

    matrix, origin = psf_matrix(psf)
    kh, kw = matrix.shape
    if kh > shape[0] or kw > shape[1]:
        raise InputError(
            f"the {kh}x{kw} PSF is larger than the {shape[0]}x{shape[1]} image", subject=None
        )
    padded = np.zeros(shape)
    padded[:kh, :kw] = matrix
    padded = np.roll(padded, (-origin[0], -origin[1]), axis=(0, 1))
    return scipy.fft.rfft2(padded)


def estimate_noise(plane: np.ndarray) -> float:
    """The standard deviation of white noise in a plane, from the median absolute value of
    its finest diagonal Haar wavelet coefficients (Donoho's estimator: edges are few there,
    noise is everywhere)."""
    x = np.asarray(plane, dtype=np.float64)
    h, w = (x.shape[0] // 2) * 2, (x.shape[1] // 2) * 2
    if h == 0 or w == 0:
        return 0.0
    x = x[:h, :w]
    detail = (x[0::2, 0::2] - x[0::2, 1::2] - x[1::2, 0::2] + x[1::2, 1::2]) / 2.0
    return float(np.median(np.abs(detail)) / 0.6744897501960817)


def wiener(
    plane: np.ndarray,
    psf: Kernel,
    balance: float | None = None,
    *,
    noise: float | None = None,
    boundary: str | Boundary = "reflect",
    fill_value: float = 0.0,
) -> np.ndarray:
    """Wiener deconvolution of one plane with the Laplacian regulariser (see the module's
    docstring). Give ``balance``, or ``noise`` (the noise's standard deviation) to choose it
    (:func:`noise_balance`); neither: the noise is estimated from the plane."""
    import scipy.fft

    y = np.asarray(plane, dtype=np.float64)
    bound = as_boundary(boundary)
    kh, kw = psf.as_2d().shape
    pads = ((0, 0), (0, 0)) if bound is Boundary.WRAP else ((kh, kh), (kw, kw))
    ext = pad(y, pads, bound, fill_value)
    h_spec = psf_spectrum(psf, ext.shape)
    l_power = np.abs(laplacian_spectrum(ext.shape)) ** 2
    h_power = np.abs(h_spec) ** 2
    y_spec = scipy.fft.rfft2(ext)
    if balance is None:
        sigma = estimate_noise(y) if noise is None else noise
        balance = noise_balance(y_spec, h_power, l_power, sigma, ext.size)
    restored = scipy.fft.irfft2(np.conj(h_spec) / (h_power + balance * l_power) * y_spec, ext.shape)
    (top, _), (left, _) = pads
    return restored[top : top + y.shape[0], left : left + y.shape[1]]


def noise_balance(
    y_spec: np.ndarray, h_power: np.ndarray, l_power: np.ndarray, sigma: float, pixels: int
) -> float:
    """The balance of a Wiener filter for white noise of deviation ``sigma`` and a signal
    whose power spectrum is ``c / |L|^2`` (the regulariser's prior): ``sigma^2 / c``, with
    ``c`` fitted to the image where the blur passes most of the signal (``|H|^2 > 1/2``): the
    median of ``(|Y|^2 / N - sigma^2) |L|^2 / |H|^2`` there."""
    observed = np.abs(y_spec) ** 2 / pixels
    passed = (h_power > 0.5) & (l_power > 0)
    if sigma <= 0 or not np.any(passed):
        return 0.0
    excess = np.maximum(observed[passed] - sigma**2, 0.0)
    scale = float(np.median(excess * l_power[passed] / h_power[passed]))
    if scale <= 0:
        raise InputError("the image is all noise at that noise level; give --balance")
    return sigma**2 / scale


def deconvolve_plane(plane: np.ndarray, psf: Kernel, options: DeconvolveOptions) -> np.ndarray:
    """One plane (full intensity 1) by the chosen method."""
    if options.method == "richardson-lucy":
        return richardson_lucy(
            plane,
            psf,
            options.iterations,
            boundary=options.boundary,
            fill_value=options.fill_value,
            tv=options.tv,
        )
    return wiener(
        plane,
        psf,
        options.balance,
        noise=options.noise,
        boundary=options.boundary,
        fill_value=options.fill_value,
    )


def check_psf(psf: Kernel, shape: tuple[int, ...], label: str | None = None) -> None:
    """Refuse a PSF larger than the image, or one whose sum is not positive (it would not be
    a blur: Richardson-Lucy needs a non-negative one)."""
    kh, kw = psf.as_2d().shape
    if kh > shape[0] or kw > shape[1]:
        raise InputError(
            f"the {kh}x{kw} PSF {psf.name!r} is larger than the {shape[0]}x{shape[1]} image",
            subject=label,
        )


def validate_psf(psf: Kernel, options: DeconvolveOptions) -> None:
    """The PSF must be a blur: positive sum, and non-negative for Richardson-Lucy."""
    if psf.sum <= 0:
        raise UsageError(f"the PSF {psf.name!r} sums to {psf.sum:g}; a blur's PSF sums to 1")
    if options.method == "richardson-lucy" and np.any(psf.matrix < 0):
        raise UsageError(
            f"the PSF {psf.name!r} has negative values; Richardson-Lucy needs a non-negative "
            "PSF (try --method wiener)"
        )


def deconvolve_image(
    samples: np.ndarray,
    psf: Kernel,
    options: DeconvolveOptions,
    pixels: PixelOptions | None = None,
    *,
    layout: Layout | None = None,
) -> Filtered:
    """Deconvolve an image's colour channels (alpha is kept as it is) and map the result to
    output samples as ``apply`` does (``pixels``: depth, range). Images are taken in units
    where full intensity is 1; an array is given with its ``layout`` (numbers, taken as
    they are)."""
    arr = np.asarray(samples)
    if arr.ndim not in (2, 3):
        raise InputError(f"{arr.ndim}-D: expected an image or a 2-D array")
    check_psf(psf, arr.shape)
    if layout is None:
        layout = Layout.of(arr.dtype, arr.shape, pixels or PixelOptions(), np.float64)
    planes = layout.planes(arr)
    scale = layout.in_max if layout.image else 1.0
    restored = np.stack([deconvolve_plane(p / scale, psf, options) * scale for p in planes])
    kept = layout.alpha_plane(arr) if layout.has_alpha and not layout.alpha_filtered else None
    stats = Filtered(np.empty(0), None)
    stats.pixels = layout.samples(restored, kept, stats)
    return stats


def psnr(reference: Any, estimate: Any, peak: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB of ``estimate`` against ``reference``."""
    a = np.asarray(reference, dtype=np.float64)
    b = np.asarray(estimate, dtype=np.float64)
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(peak * peak / mse)
