"""The OpenCV backend: every mode, boundary and method against the slow reference and the scipy
backend, in float32 and float64, image layouts, photographs, and the threaded DFT stripes."""

from __future__ import annotations

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

import convcli  # noqa: E402
from conftest import BOUNDARIES, METHODS, MODES, PARITY_KERNELS, close32, reference  # noqa: E402
from convcli.compute.backends import get_backend  # noqa: E402
from convcli.compute.backends.opencv_backend import ROW_TAIL, OpenCVBackend  # noqa: E402
from convcli.compute.boundary import Boundary, pad  # noqa: E402
from convcli.compute.engine import Options, plan_kernel  # noqa: E402
from convcli.kernels.model import Kernel  # noqa: E402
from convcli.kernels.registry import get_kernel  # noqa: E402

KERNEL_SHAPES = [(1, 1), (3, 3), (5, 3), (4, 4), (2, 5), (1, 4), (6, 1), (7, 7)]
FILL = 0.75


def close64(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)


# -- parity with the reference --------------------------------------------------------------------
@pytest.mark.parametrize("shape", KERNEL_SHAPES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("method", METHODS)
def test_every_method_matches_the_reference(rng, shape, mode, boundary, method):
    """float64 stays float64 (to 1e-9), float32 stays float32; convolution and correlation,
    odd and even kernels, a non-zero fill."""
    x = rng.normal(size=(10, 9))
    k = rng.normal(size=shape)
    for correlate in (False, True):
        want = reference(x, k, mode, boundary, fill=FILL, correlate=correlate)
        for dtype, close in ((np.float64, close64), (np.float32, close32)):
            got = convcli.convolve(
                x.astype(dtype), k, mode=mode, boundary=boundary, fill_value=FILL,
                correlate=correlate, method=method, backend="opencv",
            )  # fmt: skip
            assert got.dtype == dtype
            close(got, want)


@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("mode", ["full", "same"])
@pytest.mark.parametrize("method", METHODS)
def test_extensions_longer_than_the_image(rng, boundary, mode, method):
    """A 7x9 kernel on a 3x4 image reflects and wraps again, as numpy.pad does, both through
    OpenCV's own borders (same) and copyMakeBorder (full, wrap, fill)."""
    x = rng.normal(size=(3, 4))
    k = rng.normal(size=(7, 9))
    for correlate in (False, True):
        want = reference(x, k, mode, boundary, fill=-1.5, correlate=correlate)
        got = convcli.convolve(
            x, k, mode=mode, boundary=boundary, fill_value=-1.5, correlate=correlate,
            method=method, backend="opencv",
        )  # fmt: skip
        close64(got, want)


@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("rows, cols", [(1, 5), (5, 1), (1, 1), (2, 2)])
def test_tiny_images(rng, boundary, rows, cols):
    x = rng.normal(size=(rows, cols))
    k = rng.normal(size=(3, 3))
    for mode in ("full", "same"):
        for method in METHODS:
            want = reference(x, k, mode, boundary, fill=2.0)
            got = convcli.convolve(
                x, k, mode=mode, boundary=boundary, fill_value=2.0, method=method,
                backend="opencv",
            )  # fmt: skip
            close64(got, want)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_1d_signals(mode, boundary):
    x = np.array([1, 2, 3, 4, 5, 4, 3, 2, 1], dtype=float)
    k = [0.25, 0.5, 0.75, 0.5]
    for correlate in (False, True):
        want = reference(x[np.newaxis], np.asarray(k), mode, boundary, FILL, correlate)[0]
        for method in METHODS:
            got = convcli.convolve(
                x, k, mode=mode, boundary=boundary, fill_value=FILL, correlate=correlate,
                method=method, backend="opencv",
            )  # fmt: skip
            assert got.ndim == 1
            close64(got, want)


# -- large kernels: OpenCV's DFT path -------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_large_non_separable_kernels(rng, dtype, mode, boundary):
    """21x21 random weights (filter2D's DFT path in both dtypes; auto picks fft) and an even
    14x16 kernel."""
    x = rng.random(size=(40, 37)).astype(dtype)
    close = close32 if dtype == np.float32 else close64
    for shape in [(21, 21), (14, 16)]:
        k = rng.normal(size=shape)
        want = reference(x, k, mode, boundary, fill=FILL)
        for method in METHODS:
            got = convcli.convolve(
                x, k, mode=mode, boundary=boundary, fill_value=FILL, method=method,
                backend="opencv",
            )  # fmt: skip
            assert got.dtype == dtype
            close(got, want)


def test_auto_picks_fft_for_the_large_kernel(rng):
    plan = plan_kernel(Kernel(rng.normal(size=(21, 21))), Options(), (40, 37))
    assert plan.method == "fft"


class Filter2DSpy:
    """Records the source shape of every cv2.filter2D call."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.shapes: list[tuple[int, ...]] = []
        real = cv2.filter2D

        def filter2D(src, *args, **kwargs):
            self.shapes.append(src.shape)
            return real(src, *args, **kwargs)

        monkeypatch.setattr(cv2, "filter2D", filter2D)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("boundary", ["reflect", "mirror", "nearest", "fill", "wrap"])
def test_fft_runs_in_tiles_of_whole_blocks(rng, monkeypatch, mode, boundary):
    """The FFT method is computed in tiles of rows at fixed places (no call sees the whole
    image), each a whole number of convcli's own DFT blocks, side by side, and matches
    scipy. Even kernels and an origin put the anchor off centre."""
    from convcli.compute import blocks

    x = rng.random(size=(1200, 480)).astype(np.float32)
    shapes: list[tuple[int, int]] = []
    valid = blocks.BlockCorrelator.valid

    def spy(self, plane, out, *extension):  # type: ignore[no-untyped-def]
        shapes.append(out.shape)
        valid(self, plane, out, *extension)

    monkeypatch.setattr(blocks.BlockCorrelator, "valid", spy)
    for k in [Kernel(rng.normal(size=(15, 15))), Kernel(rng.normal(size=(12, 14)), origin=(1, 11))]:
        kwargs = {"mode": mode, "boundary": boundary, "fill_value": FILL, "method": "fft"}
        want = convcli.convolve(x, k, backend="scipy", **kwargs)
        shapes.clear()
        got = convcli.convolve(x, k, backend="opencv", **kwargs)
        assert len(shapes) > 1
        heights = sorted(s[0] for s in shapes)  # (tiles finish in any order)
        tile = heights[-1]
        assert tile % blocks.block_outputs(k.shape[0]) == 0
        assert all(h == tile for h in heights[1:]) and tile < x.shape[0]
        close32(got, want)


@pytest.mark.parametrize("ks", [(3, 3), (15, 15), (31, 9), (64, 64), (255, 255)])
def test_blocks_give_the_valid_correlation(rng, ks):
    """convcli's block FFT against a direct valid correlation, for sizes below, at and
    across a block, and a call narrower and shorter than one block."""
    from scipy.signal import correlate

    from convcli.compute.blocks import BlockCorrelator, block_outputs

    k = rng.normal(size=ks)
    for h, w in [(ks[0] + 1, ks[1] + 2), (block_outputs(ks[0]) + ks[0] + 5, 700)]:
        ext = rng.normal(size=(h, w))
        out = np.empty((h - ks[0] + 1, w - ks[1] + 1))
        BlockCorrelator(k).valid(ext, out)
        want = correlate(ext, k, mode="valid", method="fft")  # float64: 1e-12 near exact
        np.testing.assert_allclose(out, want, rtol=1e-9, atol=1e-9 * np.abs(want).max())


def test_a_correlator_keeps_a_bounded_number_of_spectra(rng):
    """Each call size has its own last blocks, so a batch of many image sizes would make
    a spectrum for each: only the newest few are kept, and every call stays right."""
    from scipy.signal import correlate

    from convcli.compute.blocks import _SPECTRA_KEPT, BlockCorrelator

    k = rng.normal(size=(9, 9))
    correlator = BlockCorrelator(k)
    for width in range(20, 900, 29):
        ext = rng.normal(size=(50, width))
        out = np.empty((42, width - 8))
        correlator.valid(ext, out)
        np.testing.assert_allclose(out, correlate(ext, k, mode="valid"), atol=1e-9)
    assert correlator._spectrum.cache_info().currsize == _SPECTRA_KEPT


@pytest.mark.parametrize("correlate", [False, True])
def test_a_long_signal_with_a_long_kernel(rng, correlate):
    x = rng.normal(size=300_000)
    k = rng.normal(size=200)
    got = convcli.convolve(x, k, boundary="mirror", correlate=correlate, backend="opencv")
    want = convcli.convolve(x, k, boundary="mirror", correlate=correlate, backend="scipy")
    close64(got, want)


def test_small_kernels_are_one_call(rng, monkeypatch):
    """Below the DFT size filter2D threads itself: one call for the whole image, and one for
    a strip of whole vectors at the rows' end when their length is not a multiple of them."""
    x = rng.random(size=(560, 480)).astype(np.float32)
    spy = Filter2DSpy(monkeypatch)
    convcli.convolve(x, rng.normal(size=(5, 5)), backend="opencv")
    assert spy.shapes == [x.shape, (560, 128)]
    spy.shapes.clear()
    convcli.convolve(x[:, : 7 * ROW_TAIL], rng.normal(size=(5, 5)), backend="opencv")
    assert spy.shapes == [(560, 7 * ROW_TAIL)]


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("kernel", ["gaussian:sigma=2", "gaussian:size=5", "box", "unsharp"])
def test_every_sample_has_the_same_arithmetic_at_any_width(rng, kernel, channels):
    """Each sample is computed as it is in a row of whole vectors: at every width, an image
    gives the numbers of the same image with columns of its border appended (the interleaved
    route's bit-identity with planes rests on this: tests/test_exact.py)."""
    import cv2

    k = convcli.get_kernel(kernel)
    # one width of each remainder, and narrow ones whose strip of whole vectors is wider
    # than the image (a copy, not a view of its last columns)
    for width in [*range(100, 100 + ROW_TAIL), *range(9, 64, 6)]:
        x = rng.integers(0, 256, size=(12, width, channels)).astype(np.float32).squeeze()
        got = convcli.convolve(x, k, backend="opencv", boundary="reflect")
        extra = 2 * ROW_TAIL - width % ROW_TAIL  # whole vectors, past the kernel's reach
        wide = cv2.copyMakeBorder(x, 0, 0, 0, extra, cv2.BORDER_REFLECT)
        want = convcli.convolve(wide, k, backend="opencv", boundary="reflect")[:, :width]
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("taps", [3, 5])
@pytest.mark.parametrize("sign", [1, -1])
def test_short_symmetric_rows_are_summed_as_8_bit_rows_are(rng, taps, sign):
    """OpenCV sums float32 rows of 3 or 5 (anti)symmetric taps in pairs but 8-bit rows tap by
    tap; the backend's float32 pass sums them tap by tap too, so a plane converted from 8-bit
    samples gets the numbers of the samples themselves (what lets the 8-bit route skip the
    conversion: tests/test_exact.py), and still the reference's to float32 tolerance."""
    from convcli.compute.backends.opencv_backend import filter_for

    half = rng.uniform(0.1, 1.0, taps // 2)
    middle = [rng.uniform(0.5, 1.0)] if sign == 1 else [0.0]
    row = np.concatenate([half, middle, sign * half[::-1]])
    kernel = np.outer([0.25, 0.5, 0.25], row)
    plan = plan_kernel(Kernel(kernel), Options(method="separable"), backend="opencv")
    samples = rng.integers(0, 256, size=(40, 300)).astype(np.uint8)
    filt = filter_for(plan, np.dtype(np.float32))
    anchor = (plan.centre[1], plan.centre[0])
    from_samples = np.empty(samples.shape, np.float32)
    from_floats = np.empty(samples.shape, np.float32)
    filt(samples, from_samples, anchor, cv2.BORDER_REFLECT)
    filt(samples.astype(np.float32), from_floats, anchor, cv2.BORDER_REFLECT)
    np.testing.assert_array_equal(from_floats, from_samples)
    got = convcli.convolve(samples.astype(np.float32), kernel, backend="opencv", method="separable")
    close32(got, reference(samples, kernel, "same", "reflect"))


def test_8_bit_samples_get_the_row_without_the_zero_tap(rng, monkeypatch):
    """The zero tap is for float32 samples only: 8-bit rows are summed tap by tap already,
    and the extra tap would cost their pass about 9%. Either way the numbers are the same."""
    from convcli.compute.backends import opencv_backend
    from convcli.compute.backends.opencv_backend import filter_for

    plan = plan_kernel(
        Kernel(np.outer([1, 4, 6, 4, 1], [1, 4, 6, 4, 1]) / 256.0),
        Options(method="separable"),
        backend="opencv",
    )
    filt = filter_for(plan, np.dtype(np.float32))
    anchor = (plan.centre[1], plan.centre[0])
    rows: dict[str, int] = {}
    real = opencv_backend.cv2.sepFilter2D

    def recording(src, depth, row, col, **kw):  # type: ignore[no-untyped-def]
        rows.setdefault(src.dtype.name, len(row))
        return real(src, depth, row, col, **kw)

    monkeypatch.setattr(opencv_backend.cv2, "sepFilter2D", recording)
    samples = rng.integers(0, 256, size=(30, 200, 3)).astype(np.uint8)
    from_samples = np.empty(samples.shape, np.float32)
    from_floats = np.empty(samples.shape, np.float32)
    filt(samples, from_samples, anchor, cv2.BORDER_REFLECT)
    filt(samples.astype(np.float32), from_floats, anchor, cv2.BORDER_REFLECT)
    assert rows == {"uint8": 5, "float32": 6}
    np.testing.assert_array_equal(from_floats, from_samples)


# -- parity with the scipy backend ----------------------------------------------------------------
@pytest.mark.parametrize("kernel", PARITY_KERNELS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_float32_colour_matches_the_scipy_backend(rng, kernel, mode, boundary):
    """Colour float32 images, the method auto picks."""
    x = (rng.random(size=(23, 26, 3)) * 255).astype(np.float32)
    kwargs = {"mode": mode, "boundary": boundary, "fill_value": 17.0}
    want = convcli.convolve(x, kernel, backend="scipy", **kwargs)
    got = convcli.convolve(x, kernel, backend="opencv", **kwargs)
    assert got.dtype == np.float32
    close32(got, want)


@pytest.mark.parametrize("shape", [(12, 15), (12, 15, 3), (12, 15, 4)], ids=["gray", "rgb", "rgba"])
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("mode", MODES)
def test_image_layouts(rng, shape, method, mode):
    """Each channel is a plane of its own; a rank-2 kernel sums two separable passes per
    plane."""
    x = rng.normal(size=shape)
    rank2 = Kernel(rng.normal(size=(4, 2)) @ rng.normal(size=(2, 5)))
    for k in ["gaussian:sigma=1", rank2]:
        got = convcli.convolve(x, k, mode=mode, boundary="wrap", method=method, backend="opencv")
        want = convcli.convolve(x, k, mode=mode, boundary="wrap", method=method, backend="scipy")
        assert got.shape == want.shape
        close64(got, want)


def test_channel_axis_first(rng):
    x = rng.normal(size=(3, 12, 15))
    got = convcli.convolve(x, "sobel-y", channel_axis=0, backend="opencv")
    want = convcli.convolve(x, "sobel-y", channel_axis=0, backend="scipy")
    close64(got, want)


def test_integer_input_computes_in_the_work_dtype(rng):
    x = rng.integers(0, 256, size=(9, 11)).astype(np.uint8)
    got = convcli.convolve(x, "box", backend="opencv")
    assert got.dtype == np.float32
    close32(got, convcli.convolve(x, "box", backend="scipy"))
    assert convcli.convolve(x.astype(np.uint16), "box", backend="opencv").dtype == np.float64


@pytest.mark.parametrize("combine", ["stack", "magnitude", "sum", "max"])
def test_banks_and_chains(rng, combine):
    """A chain feeds the valid part of one result (a view) to the next kernel."""
    x = rng.random(size=(20, 24, 3)).astype(np.float32)
    bank = ["sobel-x", "sobel-y", "box"]
    close32(
        convcli.convolve(x, bank, combine=combine, backend="opencv"),
        convcli.convolve(x, bank, combine=combine, backend="scipy"),
    )
    chain = ["box:size=4", "gaussian:sigma=1.5", "sobel-x"]
    for mode in MODES:
        close32(
            convcli.convolve(x, chain, mode=mode, boundary="wrap", backend="opencv"),
            convcli.convolve(x, chain, mode=mode, boundary="wrap", backend="scipy"),
        )


@pytest.mark.parametrize("method", METHODS)
def test_strided_read_only_and_reversed_planes(rng, method):
    """Planes as the engine never makes them: cut out of a larger array, read-only, or with
    negative strides."""
    base = rng.normal(size=(2, 19, 23))
    planes = np.ascontiguousarray(base[:, 3:16, 4:18])
    plan = plan_kernel(Kernel(rng.normal(size=(3, 4))), Options(method=method))
    backend = OpenCVBackend()
    for boundary in (Boundary.REFLECT, Boundary.WRAP):
        want = backend.correlate(planes, plan, boundary, 0.0)
        ext = pad(planes, plan.pads, boundary)
        refs = [reference(e, plan.weights, "valid", "fill", correlate=True) for e in ext]
        close64(want, np.stack(refs))
        frozen = planes.copy()
        frozen.setflags(write=False)
        for variant in (base[:, 3:16, 4:18], frozen, planes[:, ::-1].copy()[:, ::-1],
                        planes[:, :, ::-1].copy()[:, :, ::-1]):  # fmt: skip
            np.testing.assert_array_equal(backend.correlate(variant, plan, boundary, 0.0), want)


# -- real photographs -----------------------------------------------------------------------------
@pytest.mark.parametrize("kernel", ["gaussian:sigma=2", "sobel-x"])
@pytest.mark.parametrize("boundary", ["reflect", "wrap"])
def test_photographs(photos, kernel, boundary):
    """The camera man (gray) and the astronaut (colour), 8-bit, computed in float32."""
    camera, astronaut = photos["camera"], photos["astronaut"]
    got = convcli.convolve(camera, kernel, boundary=boundary, backend="opencv")
    assert got.dtype == np.float32
    k = get_kernel(kernel).matrix
    close32(got, reference(camera, k, "same", boundary))
    for mode in MODES:
        close32(
            convcli.convolve(astronaut, kernel, mode=mode, boundary=boundary, backend="opencv"),
            convcli.convolve(astronaut, kernel, mode=mode, boundary=boundary, backend="scipy"),
        )


# -- the backend itself ---------------------------------------------------------------------------
def test_serves_every_boundary_and_fill():
    for boundary in Boundary:
        for fill in (0.0, -3.5):
            backend = get_backend("opencv", boundary=boundary, fill=fill)
            assert isinstance(backend, OpenCVBackend)
            assert backend.unsupported(boundary, fill) is None
            assert backend.on_device("cpu") is backend
