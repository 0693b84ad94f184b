"""convolve(): output size, alignment, boundaries, methods, chains, banks and channels, checked
against numpy, scipy.signal and scipy.ndimage computed in the test."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import ndimage, signal

import convcli
from conftest import BOUNDARIES, MODES, reference
from convcli.compute.engine import choose_method, work_dtype
from convcli.errors import InputError, KernelError, UsageError
from convcli.kernels.model import Kernel

KERNEL_SHAPES = [(1, 1), (3, 3), (5, 3), (4, 4), (2, 5), (1, 4), (6, 1), (7, 7)]
SCIPY_SIGNAL = {"fill": "fill", "reflect": "symm", "wrap": "wrap"}
NDIMAGE = {
    "fill": "constant",
    "reflect": "reflect",
    "mirror": "mirror",
    "nearest": "nearest",
    "wrap": "wrap",
}


@pytest.mark.parametrize("shape", KERNEL_SHAPES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("boundary", ["fill", "reflect", "wrap"])
def test_matches_scipy_signal_convolve2d(rng, shape, mode, boundary):
    """Every mode x the boundaries scipy.signal knows, odd and even kernels, any fill value."""
    x = rng.normal(size=(11, 13))
    k = rng.normal(size=shape)
    want = signal.convolve2d(x, k, mode=mode, boundary=SCIPY_SIGNAL[boundary], fillvalue=1.5)
    got = convcli.convolve(x, k, mode=mode, boundary=boundary, fill_value=1.5)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("shape", KERNEL_SHAPES)
@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_same_mode_matches_ndimage(rng, shape, boundary):
    """ndimage.convolve centres even kernels differently (k//2 on the unflipped kernel); its
    correlate with the flipped kernel is scipy.signal's alignment, for every boundary."""
    x = rng.normal(size=(9, 12))
    k = rng.normal(size=shape)
    want = ndimage.correlate(x, k[::-1, ::-1], mode=NDIMAGE[boundary], cval=-2.0)
    got = convcli.convolve(x, k, boundary=boundary, fill_value=-2.0)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
    if shape[0] % 2 and shape[1] % 2:  # odd kernels: ndimage.convolve agrees exactly too
        want = ndimage.convolve(x, k, mode=NDIMAGE[boundary], cval=-2.0)
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("shape", KERNEL_SHAPES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("method", ["direct", "separable", "fft"])
def test_every_method_matches_the_reference(rng, shape, mode, boundary, method):
    x = rng.normal(size=(10, 9))
    k = rng.normal(size=shape)
    want = reference(x, k, mode, boundary, fill=0.75)
    got = convcli.convolve(x, k, mode=mode, boundary=boundary, fill_value=0.75, method=method)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("mode", MODES)
def test_kernels_larger_than_the_image_extend_repeatedly(rng, boundary, mode):
    """Boundaries reaching farther than the image reflect/wrap again, as numpy.pad does."""
    x = rng.normal(size=(3, 4))
    k = rng.normal(size=(7, 9))
    if mode == "valid":
        with pytest.raises(InputError, match="larger than the 3x4 input"):
            convcli.convolve(x, k, mode=mode, boundary=boundary)
        return
    got = convcli.convolve(x, k, mode=mode, boundary=boundary)
    np.testing.assert_allclose(got, reference(x, k, mode, boundary), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("taps", [1, 2, 3, 4, 5, 8])
def test_1d_signals_match_numpy_convolve(rng, mode, taps):
    a = rng.normal(size=17)
    v = rng.normal(size=taps)
    got = convcli.convolve(a, v, mode=mode, boundary="fill")
    np.testing.assert_allclose(got, np.convolve(a, v, mode=mode), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("taps", [2, 3, 4, 5])
def test_correlate_matches_numpy_and_scipy(rng, mode, taps):
    """--correlate is numpy.correlate / scipy.signal.correlate, even kernels included."""
    a = rng.normal(size=15)
    v = rng.normal(size=taps)
    got = convcli.convolve(a, v, mode=mode, boundary="fill", correlate=True)
    np.testing.assert_allclose(got, np.correlate(a, v, mode=mode), atol=1e-12)
    x = rng.normal(size=(8, 9))
    k = rng.normal(size=(taps, taps + 1))
    got2 = convcli.convolve(x, k, mode=mode, boundary="fill", correlate=True)
    np.testing.assert_allclose(got2, signal.correlate(x, k, mode=mode), atol=1e-12)


def test_correlate_is_convolution_with_the_flipped_kernel(rng):
    x = rng.normal(size=(12, 10))
    k = rng.normal(size=(3, 5))
    for mode, boundary in itertools.product(MODES, BOUNDARIES):
        a = convcli.convolve(x, k, mode=mode, boundary=boundary, correlate=True)
        b = convcli.convolve(x, k[::-1, ::-1], mode=mode, boundary=boundary)
        np.testing.assert_allclose(a, b, atol=1e-12)


def test_documented_small_case_by_hand():
    """sobel-x on [[1,2,3],[4,5,6],[7,8,9]] with zero fill, worked by hand. Convolution flips
    sobel-x to [[1,0,-1],[2,0,-2],[1,0,-1]]: left column minus right column, weights 1 2 1."""
    x = np.arange(1, 10).reshape(3, 3)
    got = convcli.convolve(x, "sobel-x", boundary="fill")
    assert got[1, 1] == (1 * 1 + 2 * 4 + 1 * 7) - (1 * 3 + 2 * 6 + 1 * 9) == -8
    assert got[0, 0] == (2 * 0 + 1 * 0) - (2 * 2 + 1 * 5) == -9  # zeros left of the image
    assert got.tolist() == [[-9.0, -6.0, 9.0], [-20.0, -8.0, 20.0], [-21.0, -6.0, 21.0]]
    np.testing.assert_array_equal(
        got, signal.convolve2d(x, [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], mode="same")
    )


def test_identity_kernel_returns_the_input(rng):
    x = rng.normal(size=(6, 7))
    for boundary in BOUNDARIES:
        np.testing.assert_array_equal(convcli.convolve(x, "identity", boundary=boundary), x)


def test_chain_applies_kernels_in_order(rng):
    x = rng.normal(size=(16, 16))
    a, b = rng.normal(size=(3, 3)), rng.normal(size=(2, 4))
    want = signal.convolve2d(signal.convolve2d(x, a, "full"), b, "full")
    got = convcli.convolve(x, [a.tolist(), b.tolist()], mode="full", boundary="fill")
    # a list of two 2-D lists is read as a chain of two kernels
    np.testing.assert_allclose(got, want, atol=1e-10)
    got2 = convcli.convolve(x, [Kernel(a), Kernel(b)], mode="full", boundary="fill")
    np.testing.assert_allclose(got2, want, atol=1e-10)


@pytest.mark.parametrize("combine", ["stack", "magnitude", "sum", "mean", "max", "min"])
def test_bank_combines(rng, combine):
    x = rng.normal(size=(12, 14))
    ks = [rng.normal(size=(3, 3)) for _ in range(3)]
    results = np.stack([signal.convolve2d(x, k, "same", boundary="symm") for k in ks])
    want = {
        "stack": results,
        "magnitude": np.sqrt((results**2).sum(0)),
        "sum": results.sum(0),
        "mean": results.mean(0),
        "max": results.max(0),
        "min": results.min(0),
    }[combine]
    got = convcli.convolve(x, [Kernel(k) for k in ks], combine=combine)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-10)


def test_sobel_bank_is_the_gradient_magnitude(photos):
    x = photos["camera"].astype(np.float64)
    gx = ndimage.correlate(x, np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]])[::-1, ::-1])
    gy = ndimage.correlate(x, np.array([[-1, -2, -1], [0, 0, 0], [1, 2, 1]])[::-1, ::-1])
    got = convcli.convolve(x, "sobel")
    np.testing.assert_allclose(got, np.hypot(gx, gy), rtol=1e-9, atol=1e-6)


def test_stacked_bank_on_colour_keeps_channels_last(rng):
    x = rng.normal(size=(8, 9, 3))
    got = convcli.convolve(x, ["sobel-x", "sobel-y"], combine="stack")
    assert got.shape == (2, 8, 9, 3)
    for c in range(3):
        np.testing.assert_allclose(
            got[1, :, :, c], convcli.convolve(x[:, :, c], "sobel-y"), atol=1e-12
        )


def test_chain_after_a_stack_filters_every_member(rng):
    x = rng.normal(size=(10, 10))
    got = convcli.convolve(x, [convcli.get_kernel("sobel").with_combine("stack"), "box"])
    assert got.shape == (2, 10, 10)
    np.testing.assert_allclose(
        got[0], convcli.convolve(convcli.convolve(x, "sobel-x"), "box"), atol=1e-12
    )


def test_two_stacks_in_a_chain_are_refused(rng):
    stack = convcli.get_kernel("sobel").with_combine("stack")
    with pytest.raises(UsageError, match="only one bank"):
        convcli.convolve(rng.normal(size=(5, 5)), [stack, stack])


def test_bank_members_of_different_sizes_need_same_mode(rng):
    x = rng.normal(size=(10, 10))
    ok = convcli.convolve(x, ["box:size=3", "box:size=5"], combine="sum")
    assert ok.shape == (10, 10)
    with pytest.raises(UsageError, match="different sizes"):
        convcli.convolve(x, ["box:size=3", "box:size=5"], combine="sum", mode="full")


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_each_channel_is_filtered_on_its_own(rng, channels):
    x = rng.normal(size=(9, 8, channels))
    got = convcli.convolve(x, "gaussian:sigma=1", boundary="nearest")
    for c in range(channels):
        want = ndimage.gaussian_filter(x[:, :, c], 1.0, mode="nearest")
        np.testing.assert_allclose(got[:, :, c], want, atol=1e-12)


def test_channel_axis_first(rng):
    x = rng.normal(size=(3, 9, 8))
    got = convcli.convolve(x, "box", channel_axis=0)
    assert got.shape == x.shape
    np.testing.assert_allclose(got[1], convcli.convolve(x[1], "box"), atol=1e-12)


def test_normalize_divides_by_the_sum(rng):
    x = rng.normal(size=(7, 7))
    got = convcli.convolve(x, [[1, 2, 1]], normalize=True)
    np.testing.assert_allclose(got, convcli.convolve(x, [[0.25, 0.5, 0.25]]), atol=1e-12)
    with pytest.raises(KernelError, match="cannot normalize, its sum is 0"):
        convcli.convolve(x, "sobel-x", normalize=True)


def test_kernel_offset_and_origin(rng):
    x = rng.normal(size=(6, 6))
    k = Kernel([[1, 2, 3]], offset=10.0)
    np.testing.assert_allclose(convcli.convolve(x, k), convcli.convolve(x, [[1, 2, 3]]) + 10)
    # origin (0, 0): the first element lands on the output pixel -> a shift by one column
    shifted = Kernel([[0, 1, 0]], origin=(0, 0))
    got = convcli.convolve(x, shifted, boundary="fill")
    np.testing.assert_allclose(got[:, 1:], x[:, :-1])


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.float64, np.int32])
def test_dtype_policy(rng, dtype):
    x = (rng.random((20, 20)) * 200).astype(dtype)
    got = convcli.convolve(x, "gaussian:sigma=1.5")
    assert got.dtype == work_dtype(np.dtype(dtype))
    want = ndimage.gaussian_filter(x.astype(np.float64), 1.5)
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=2e-4)


def test_float32_on_8bit_is_exact_after_rounding(photos):
    """Working in float32 on 8-bit photos gives the same 8-bit pixels as float64."""
    x = photos["astronaut"]
    for spec in ("gaussian:sigma=2", "sobel-x", "sharpen", "log:sigma=1.4"):
        f32 = convcli.convolve(x, spec)
        f64 = convcli.convolve(x, spec, dtype=np.float64)
        assert f32.dtype == np.float32
        assert np.max(np.abs(f32 - f64)) < 1e-3
        mismatched = np.mean(np.rint(np.clip(f32, 0, 255)) != np.rint(np.clip(f64, 0, 255)))
        assert mismatched < 1e-5  # only exact .5 ties could differ


def test_input_errors():
    # NaN is refused, as the file readers refuse it (tests/test_library_edges.py: every
    # backend and method alike)
    with pytest.raises(InputError, match="NaN or infinity"):
        convcli.convolve([[1.0, np.nan]], "box", boundary="fill")
    with pytest.raises(InputError, match="4-D"):
        convcli.convolve(np.zeros((2, 2, 2, 2)), "box")
    with pytest.raises(InputError, match="empty"):
        convcli.convolve(np.zeros((0, 3)), "box")
    with pytest.raises(InputError, match="needs a 1-D kernel"):
        convcli.convolve([1, 2, 3, 4], "sobel-x")
    with pytest.raises(InputError, match="needs a 1-D kernel"):
        convcli.convolve([1, 2, 3, 4], "box:size=3,ndim=2")


def test_a_parametric_kernel_on_a_signal_is_its_1d_form():
    """``box:size=4`` (and a Gaussian) on a 1-D signal is the 1-D kernel, as numpy.convolve
    takes it; an explicit ``ndim`` is kept."""
    x = np.array([1.0, 2, 3, 4, 5, 4, 3, 2, 1])
    got = convcli.convolve(x, "box:size=4", mode="valid")
    np.testing.assert_allclose(got, np.convolve(x, np.ones(4) / 4, mode="valid"))
    from scipy import ndimage

    got = convcli.convolve(x, "gaussian:sigma=1")
    np.testing.assert_allclose(got, ndimage.gaussian_filter1d(x, 1.0), rtol=1e-12, atol=1e-15)
    got = convcli.convolve(x, "box:size=3,ndim=1", mode="valid")
    np.testing.assert_allclose(got, np.convolve(x, np.ones(3) / 3, mode="valid"))


def test_options_are_validated():
    with pytest.raises(UsageError, match="mode 'middle'"):
        convcli.convolve([[1]], "identity", mode="middle")
    with pytest.raises(UsageError, match="boundary 'zero'"):
        convcli.convolve([[1]], "identity", boundary="zero")
    with pytest.raises(UsageError, match="method 'magic'"):
        convcli.convolve([[1]], "identity", method="magic")
    with pytest.raises(UsageError, match="backend"):
        convcli.convolve([[1]], "identity", backend="nonesuch")


class TestChooseMethod:
    def test_small_kernels_run_direct(self):
        assert choose_method((3, 3), 1).method == "direct"
        assert choose_method((5, 5), 5).method == "direct"

    def test_separable_kernels_run_as_passes(self):
        choice = choose_method((15, 15), 1)
        assert choice.method == "separable"
        assert "separable" in choice.reason

    def test_low_rank_kernels_run_as_passes(self):
        assert choose_method((9, 9), 2).method == "separable"

    def test_large_full_rank_kernels_use_fft(self):
        assert choose_method((31, 31), 31).method == "fft"

    def test_a_gaussian_given_as_a_plain_matrix_is_detected_separable(self):
        g = convcli.get_kernel("gaussian:sigma=3")
        plain = Kernel(np.array(g.matrix).tolist(), name="plain")
        assert plain.separable
        assert choose_method(plain.shape, plain.rank).method == "separable"
