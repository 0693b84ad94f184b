"""Large kernels by FFT in fixed blocks (overlap-save), with the kernel's spectrum computed
once per call.

A block of ``D`` x ``D`` extended input holds ``D - k + 1`` outputs a side whose windows lie
within it; its DFT times the kernel's (conjugated: correlation) gives them without wrap-around.
The blocks sit at fixed places (multiples of the block's outputs, from the first row and
column of the call), and the evaluator calls this on tiles of rows that are a whole number of
blocks (:func:`block_outputs`), so an output's numbers never depend on how an image is cut
into bands. OpenCV's own ``filter2D`` DFT sizes its blocks per call and transforms the
kernel again in every call, which is why convcli does not use it for large kernels.
"""

from __future__ import annotations

import functools

import numpy as np

from convcli.compute.boundary import Boundary, window_into

#: transform sizes: about 8 kernels, within these bounds (measured with OpenCV's DFT on one
#: core, per output of a 16 MP plane: below 384 the per-block costs dominate, above 1280 a
#: block's spectra no longer stay in the caches; 8 k is within 10% of the best size for
#: 11 to 255 taps)
_BLOCK_KERNELS = 8
_MIN_TRANSFORM = 384
_MAX_TRANSFORM = 1280
#: kernel spectra a correlator keeps, each for one transform size
_SPECTRA_KEPT = 16


def smooth_length(n: int, odd_primes: tuple[int, ...]) -> int:
    """The least length at or above n whose only prime factors are 2 and ``odd_primes``
    (the transform lengths an FFT library computes fastest)."""
    best = 1 << max(n - 1, 0).bit_length()

    def walk(product: int, primes: tuple[int, ...]) -> None:
        nonlocal best
        if not primes:
            while product < n:
                product *= 2
            best = min(best, product)
            return
        while product < best:
            walk(product, primes[1:])
            product *= primes[0]

    walk(1, odd_primes)
    return best


@functools.lru_cache(maxsize=1024)
def fast_size(n: int) -> int:
    """The least 2^a 3^b 5^c at or above n (sizes OpenCV's DFT computes fastest); kept, as
    every block of every call asks (the search took a 1 MP plane's call 0.2 ms)."""
    return smooth_length(n, (3, 5))


def transform_size(k: int) -> int:
    """The transform length along an axis for a kernel of k taps (at least 2 k)."""
    want = min(max(_BLOCK_KERNELS * k, _MIN_TRANSFORM), _MAX_TRANSFORM)
    return fast_size(max(want, 2 * k))


def block_outputs(k: int) -> int:
    """Outputs a block holds along an axis for a kernel of k taps."""
    return transform_size(k) - k + 1


class BlockCorrelator:
    """The valid correlation of extended planes with one kernel, block by block."""

    def __init__(self, weights: np.ndarray) -> None:
        self.weights = np.ascontiguousarray(weights)
        self.kh, self.kw = self.weights.shape
        # an image needs four transform sizes at most (whole blocks, the last column, row
        # and corner); a batch of images of many sizes must not keep a spectrum for each
        self._spectrum = functools.lru_cache(maxsize=_SPECTRA_KEPT)(self._make_spectrum)

    @functools.cached_property
    def sizes(self) -> tuple[int, int]:
        return transform_size(self.kh), transform_size(self.kw)

    def _make_spectrum(self, dh: int, dw: int) -> np.ndarray:
        import cv2

        padded = np.zeros((dh, dw), self.weights.dtype)
        padded[: self.kh, : self.kw] = self.weights
        return cv2.dft(padded)

    def valid(
        self,
        plane: np.ndarray,
        out: np.ndarray,
        pads: tuple[tuple[int, int], tuple[int, int]] = ((0, 0), (0, 0)),
        boundary: Boundary = Boundary.FILL,
        fill: float = 0.0,
    ) -> None:
        """Write the valid correlation of ``plane`` extended by ``pads`` (rows before and
        after, columns before and after) by the boundary rule into ``out`` (of the extended
        shape minus the kernel's plus one). Each block is copied straight from the plane,
        its frame looked up by the rule: the plane itself is never extended (at 1 MP, the
        extended copy had taken as long as a tile's transforms)."""
        import cv2

        kh, kw = self.kh, self.kw
        h, w = out.shape
        (top, _), (left, _) = pads
        dh, dw = self.sizes
        bh, bw = dh - kh + 1, dw - kw + 1
        flags = cv2.DFT_SCALE | cv2.DFT_REAL_OUTPUT
        # each size's two buffers, reused by its blocks: the block (then its correlation)
        # and its spectrum, multiplied in place
        buffers: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        for i in range(0, h, bh):
            rows = min(bh, h - i)
            for j in range(0, w, bw):
                cols = min(bw, w - j)
                # the last block on an axis (and a call smaller than one block) transforms
                # only as much as it holds: the same for every call of that size, as the
                # evaluator's tiles are (at 1 MP, a quarter of the transforms were padding)
                ph, pw = rows + kh - 1, cols + kw - 1
                size = (min(dh, fast_size(ph)), min(dw, fast_size(pw)))
                if size not in buffers:
                    buffers[size] = (np.empty(size, plane.dtype), np.empty(size, plane.dtype))
                src, spectra = buffers[size]
                window = (i - top, i - top + ph), (j - left, j - left + pw)
                window_into(src[:ph, :pw], plane, *window, boundary, fill)
                src[ph:] = 0
                src[:ph, pw:] = 0
                cv2.dft(src, dst=spectra)  # (its nonzeroRows hints measured slower)
                cv2.mulSpectrums(spectra, self._spectrum(*size), 0, spectra, conjB=True)
                cv2.idft(spectra, dst=src, flags=flags)  # the block is no longer needed
                out[i : i + rows, j : j + cols] = src[:rows, :cols]


def correlator(weights: np.ndarray) -> BlockCorrelator:
    """The correlator of ``weights``, kept for the calls that follow (the tiles of one image
    and the images of a batch share the kernel's spectra)."""
    return _kept_correlator(weights.dtype.str, weights.shape, weights.tobytes())


@functools.lru_cache(maxsize=8)
def _kept_correlator(dtype: str, shape: tuple[int, ...], data: bytes) -> BlockCorrelator:
    return BlockCorrelator(np.frombuffer(data, dtype).reshape(shape))
