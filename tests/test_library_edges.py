"""The library's edge cases: array layouts, NaN and infinity, odd argument types.

Every backend and method must give the same answer for the same call: the result of
scipy.signal.convolve2d for any memory layout of the input, and one refusal (an InputError,
also a ValueError) for input holding NaN or infinity, which the methods would otherwise
spread over different parts of the result.
"""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest
import scipy.signal

import convcli
from convcli.errors import InputError, UsageError

BACKENDS = [
    pytest.param(
        name,
        marks=pytest.mark.skipif(
            module is not None and importlib.util.find_spec(module) is None,
            reason=f"{module} is not installed",
        ),
    )
    for name, module in (("scipy", None), ("opencv", "cv2"), ("torch", "torch"))
]
METHODS = ["direct", "separable", "fft"]
RANK_ONE = np.outer([1.0, 2.0, 1.0], [1.0, 0.0, -1.0])  # separable, so every method applies


def layouts(x: np.ndarray) -> dict[str, np.ndarray]:
    """The same numbers in the memory layouts numpy hands out."""
    return {
        "fortran": np.asfortranarray(x),
        "transposed": np.ascontiguousarray(x.T).T,
        "strided": np.repeat(np.repeat(x, 2, 0), 2, 1)[::2, ::2],
        "broadcast": np.broadcast_to(x[0], x.shape),
        "negative-strides": x[::-1, ::-1].copy()[::-1, ::-1],
    }


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(
    "layout", ["fortran", "transposed", "strided", "broadcast", "negative-strides"]
)
def test_any_memory_layout_gives_scipys_numbers(backend, method, layout):
    x = np.random.default_rng(3).random((9, 7)).astype(np.float32)
    view = layouts(x)[layout]
    for kernel in (RANK_ONE, [[1.0, 2.0], [3.0, 4.0]]):
        if method == "separable" and np.linalg.matrix_rank(np.asarray(kernel)) > 1:
            continue
        want = scipy.signal.convolve2d(np.asarray(view, np.float64), kernel, mode="same")
        got = convcli.convolve(view, kernel, boundary="fill", backend=backend, method=method)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_fortran_ordered_channels_and_signals(backend):
    rng = np.random.default_rng(4)
    image = np.asfortranarray(rng.random((8, 6, 3)))
    got = convcli.convolve(image, RANK_ONE, boundary="fill", backend=backend)
    for c in range(3):
        want = scipy.signal.convolve2d(image[:, :, c], RANK_ONE, mode="same")
        np.testing.assert_allclose(got[:, :, c], want, rtol=1e-9, atol=1e-9)
    signal = rng.random(40)[::2]  # a strided 1-D view
    got = convcli.convolve(signal, [1.0, 2.0, 3.0], mode="full", boundary="fill", backend=backend)
    np.testing.assert_allclose(got, np.convolve(signal, [1.0, 2.0, 3.0]), rtol=1e-9)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_and_infinity_are_refused_by_every_backend_and_method(backend, method, bad):
    """The issue's case: one NaN in a 1000-sample signal and a 200-tap kernel reached 200
    results on scipy-direct, 926 on OpenCV and all 1000 on the FFT: now one refusal."""
    signal = np.ones(1000)
    signal[500] = bad
    with pytest.raises(InputError, match="NaN or infinity") as raised:
        convcli.convolve(signal, np.ones(200), backend=backend, method=method)
    assert isinstance(raised.value, ValueError)
    image = np.ones((20, 20), np.float32)
    image[3, 4] = bad
    with pytest.raises(InputError, match="NaN or infinity"):
        convcli.convolve(image, RANK_ONE, backend=backend, method=method)


#: kernels of nonzero taps only (their results' rows show whether the input was finite) and
#: kernels with zero taps (the input is checked before): a shift is the extreme case
EVERY_TAP = [np.full((3, 3), 0.5), np.outer([1.0, 2.0, 1.0], [1.0, 3.0, 1.0]), "gaussian:size=5"]
SOME_ZERO = [RANK_ONE, np.array([[0.0, 0.0], [0.0, 1.0]]), np.array([[0.0, 0.0, 1.0]])]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("mode", ["same", "full", "valid"])
@pytest.mark.parametrize("boundary", ["fill", "reflect", "wrap"])
@pytest.mark.filterwarnings("error")  # refused without a warning first
def test_one_bad_sample_anywhere_is_refused(backend, method, mode, boundary):
    """A NaN or an infinity at any place of a plane (corners, edges, every row between the
    rows whose sums are checked) is refused, for kernels with and without zero taps, with
    no warning from the arithmetic first."""
    rng = np.random.default_rng(3)
    h, w = 11, 9
    kernels = EVERY_TAP + SOME_ZERO + [rng.random((4, 6)) + 0.5]
    for k in kernels:
        for row in range(h):
            for col in (0, 4, w - 1):
                image = rng.random((h, w))
                image[row, col] = (np.nan, np.inf, -np.inf)[(row + col) % 3]
                with pytest.raises(InputError, match="NaN or infinity"):
                    convcli.convolve(
                        image, k, mode=mode, boundary=boundary, backend=backend, method=method
                    )


def test_the_input_is_checked_before_only_where_the_results_cannot_tell(monkeypatch):
    """A kernel of nonzero taps only leaves the check to its results on OpenCV (no pass
    over the input first); a kernel with a zero tap, a chain, a bank and another backend
    have the input checked."""
    from convcli.compute import engine

    checked = []
    real = engine.check_finite_input
    monkeypatch.setattr(engine, "check_finite_input", lambda a: (checked.append(a), real(a)))
    image = np.random.default_rng(4).random((40, 30))
    for k in EVERY_TAP:
        convcli.convolve(image, k)
    assert checked == []
    for k in [*SOME_ZERO, ["box", "gaussian:size=5"]]:
        convcli.convolve(image, k)
    convcli.convolve(image, ["box", "gaussian:size=5"], combine="sum")
    convcli.convolve(image, EVERY_TAP[0], backend="scipy")
    assert len(checked) == len(SOME_ZERO) + 3
    checked.clear()
    for k in ([1.0, 0.0, -1.0], [1.0, 2.0, 1.0]):  # a signal: checked first, and once
        convcli.convolve(image[0], k)
    assert len(checked) == 2


def test_finite_input_whose_sums_overflow_keeps_its_infinite_results():
    """Finite samples whose sums pass the largest float32: the results hold infinity, as
    the arithmetic gives, and nothing is refused (the input is checked and found finite)."""
    image = np.full((12, 10), np.finfo(np.float32).max / 2, np.float32)
    got = convcli.convolve(image, np.ones((3, 3)), boundary="nearest")
    assert np.isinf(got).all()


def test_nan_is_refused_by_filter_image_too():
    image = np.ones((12, 12, 3), np.float32)
    image[5, 5, 1] = np.nan
    with pytest.raises(InputError, match="NaN or infinity"):
        convcli.filter_image(image, "box")


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("layout", ["contiguous", "strided"])
@pytest.mark.parametrize("summed_by", ["opencv", "blas"])
def test_finiteness_is_exact_even_where_the_sums_overflow(dtype, layout, summed_by, monkeypatch):
    from convcli.numeric import finite

    if summed_by == "opencv":
        pytest.importorskip("cv2")
    else:
        monkeypatch.setitem(sys.modules, "cv2", None)  # as if OpenCV were not loaded

    big = float(np.finfo(dtype).max) / 2  # finite; its square, and twice it, are not
    for values, expected in [
        ([1.0, -2.0, 3.5], True),
        ([big, -big, 1.0], True),
        ([big, big, big], True),
        ([1.0, np.nan, 2.0], False),
        ([1.0, np.inf, 2.0], False),
        ([big, -np.inf, 2.0], False),
        ([np.nan, big, np.inf], False),
    ]:
        x = np.tile(np.asarray(values, dtype), (7, 5))
        if layout == "strided":
            x = x[:, ::2]
        assert finite(x) is expected, (values, layout)


def test_an_array_kernel_changed_in_place_is_used_as_it_is_now():
    from convcli.compute.engine import as_operation

    # kernels made from small arrays are kept by value: a changed array is a new kernel
    x = np.random.default_rng(5).random((9, 11))
    k = np.array([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])
    for _ in range(2):
        got = convcli.convolve(x, k, boundary="fill")
        np.testing.assert_allclose(got, scipy.signal.convolve2d(x, k, mode="same"), atol=1e-12)
        k[0, 0] += 2.5
    assert as_operation(k) is as_operation(k.copy())  # the same values: one kernel


def test_large_array_kernels_are_kept_by_value_up_to_a_megabyte():
    """A 255x255 kernel's factors (an SVD, 11 ms) are found once for a loop over images;
    a changed array is a new kernel; arrays over a megabyte are not kept."""
    from convcli.compute.engine import as_operation

    rng = np.random.default_rng(6)
    k = rng.standard_normal((255, 255))
    assert as_operation(k) is as_operation(k.copy())
    x = rng.random((40, 30))
    k71 = k[:71, :71].copy()  # more values than the small kernels kept
    before = convcli.convolve(x, k71, boundary="fill")
    k71[35, 35] += 1.0  # changed in place: the centre tap
    after = convcli.convolve(x, k71, boundary="fill")
    np.testing.assert_allclose(after - before, x, atol=1e-9)
    huge = rng.standard_normal((400, 400))  # 1.28 MB
    assert as_operation(huge) is not as_operation(huge.copy())


def test_integer_input_needs_no_finiteness_check():
    x = np.arange(30, dtype=np.int64).reshape(5, 6)
    got = convcli.convolve(x, RANK_ONE, boundary="fill")
    np.testing.assert_allclose(got, scipy.signal.convolve2d(x, RANK_ONE, mode="same"))


@pytest.mark.parametrize("value", [1j, np.complex128(2 + 0j), "0", None, [0.0]])
def test_a_fill_value_that_is_not_a_real_number_is_a_usage_error(value):
    with pytest.raises(UsageError, match="fill value must be a real number") as raised:
        convcli.convolve(np.ones((4, 4)), "box", boundary="fill", fill_value=value)
    assert isinstance(raised.value, ValueError)


def test_real_fill_values_of_any_numeric_type_are_taken():
    from fractions import Fraction

    x = np.ones((4, 4))
    want = convcli.convolve(x, "box", boundary="fill", fill_value=0.5)
    for value in (Fraction(1, 2), np.float32(0.5), np.float64(0.5)):
        got = convcli.convolve(x, "box", boundary="fill", fill_value=value)
        np.testing.assert_array_equal(got, want)


def test_a_kernel_given_as_a_list_of_1d_arrays_is_its_rows():
    x = np.random.default_rng(5).random((7, 9))
    rows = [np.array([1.0, 2.0]), np.array([3.0, 4.0])]
    got = convcli.convolve(x, rows, boundary="fill", mode="full")
    np.testing.assert_allclose(got, scipy.signal.convolve2d(x, [[1, 2], [3, 4]]), rtol=1e-12)
    mixed = [np.array([1.0, 2.0]), [3.0, 4.0]]
    np.testing.assert_array_equal(convcli.convolve(x, mixed, boundary="fill", mode="full"), got)
    with pytest.raises(UsageError):  # ragged rows stay an error naming the problem
        convcli.convolve(x, [np.array([1.0, 2.0]), np.array([3.0])])
