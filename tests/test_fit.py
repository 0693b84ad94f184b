"""convcli.compute.fit: the least-squares kernel recovers kernels applied by convcli, scipy and
OpenCV from real photographs, honours its constraints and refuses ill-posed requests; the
torch trainer reaches the same kernel."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal

import convcli
from convcli.compute.fit import FitOptions, fit_kernel, parse_size, symmetric_basis
from convcli.errors import InputError, UsageError

RANDOM7 = np.random.default_rng(7).normal(size=(7, 7))
KERNELS = {
    "sobel-x": convcli.get_kernel("sobel-x").matrix,
    "gaussian-5x5": convcli.get_kernel("gaussian:size=5,sigma=1.1").matrix,
    "random-7x7": RANDOM7,
}


@pytest.fixture(scope="module")
def gray(photos):
    return photos["camera"][150:260, 180:320]


@pytest.fixture(scope="module")
def colour(photos):
    return photos["astronaut"][60:150, 150:270]


def _error(fit, k):
    return float(np.max(np.abs(fit.kernel.matrix - k)) / np.max(np.abs(k)))


@pytest.mark.parametrize("name", KERNELS)
def test_recovers_kernels_applied_by_convcli(gray, name):
    k = KERNELS[name]
    y = convcli.convolve(gray, k, dtype=np.float64)
    fit = fit_kernel([(gray, y)], FitOptions(size=k.shape))
    assert _error(fit, k) < 1e-6
    assert fit.max_error < 1e-6 * np.max(np.abs(y))


@pytest.mark.parametrize("name", KERNELS)
@pytest.mark.parametrize("boundary", ["fill", "symm", "wrap"])
def test_recovers_kernels_applied_by_scipy_signal(gray, name, boundary):
    k = KERNELS[name]
    x = gray.astype(np.float64)
    y = scipy.signal.convolve2d(x, k, mode="same", boundary=boundary)
    ours = {"fill": "fill", "symm": "reflect", "wrap": "wrap"}[boundary]
    fit = fit_kernel([(x, y)], FitOptions(size=k.shape, boundary=ours), images=False)
    assert _error(fit, k) < 1e-6


@pytest.mark.parametrize("name", KERNELS)
def test_recovers_kernels_applied_by_scipy_signal_valid_mode(gray, name):
    k = KERNELS[name]
    x = gray.astype(np.float64)
    y = scipy.signal.convolve2d(x, k, mode="valid")
    fit = fit_kernel([(x, y)], FitOptions(size=k.shape, mode="valid"), images=False)
    assert _error(fit, k) < 1e-6


@pytest.mark.parametrize("name", KERNELS)
def test_recovers_kernels_applied_by_opencv(gray, name):
    cv2 = pytest.importorskip("cv2")
    k = KERNELS[name]
    x = gray.astype(np.float64)
    y = cv2.filter2D(x, cv2.CV_64F, k, borderType=cv2.BORDER_REFLECT_101)  # correlates
    fit = fit_kernel(
        [(x, y)], FitOptions(size=k.shape, boundary="mirror", correlate=True), images=False
    )
    assert _error(fit, k) < 1e-6


@pytest.mark.parametrize("name", ["gaussian-5x5", "random-7x7"])
def test_eight_bit_targets_are_recovered_within_rounding(gray, name):
    k = KERNELS[name]
    if name == "random-7x7":  # a blur-like random kernel keeps 8-bit results in range
        k = np.abs(k) / np.abs(k).sum()
    y = np.clip(np.round(convcli.convolve(gray, k, dtype=np.float64)), 0, 255).astype(np.uint8)
    fit = fit_kernel([(gray, y)], FitOptions(size=k.shape))
    # the residual is the rounding (about 1/sqrt(12) of a level on average), and no kernel
    # does better than the least-squares one, the true kernel included
    true_rms = float(np.sqrt(np.mean((convcli.convolve(gray, k, dtype=np.float64) - y) ** 2)))
    assert fit.rms <= true_rms + 1e-9
    assert 0.2 < fit.rms < 0.35
    assert fit.max_error < 1.0
    assert np.max(np.abs(fit.kernel.matrix - k)) < 5e-3
    again = np.clip(np.round(convcli.convolve(gray, fit.kernel, dtype=np.float64)), 0, 255)
    assert np.max(np.abs(again - y)) <= 1


def test_colour_sixteen_bit_and_float_targets_are_brought_to_the_input_units(colour):
    k = KERNELS["gaussian-5x5"]
    exact = convcli.convolve(colour, k, dtype=np.float64)
    y16 = np.round(exact * 257).astype(np.uint16)  # apply --depth 16 of an 8-bit input
    fit = fit_kernel([(colour, y16)], FitOptions(size=(5, 5)))
    assert np.max(np.abs(fit.kernel.matrix - k)) < 1e-4
    assert fit.max_error < 1.0  # in levels of the 16-bit target: its rounding
    fit = fit_kernel([(colour, exact.astype(np.float32))], FitOptions(size=(5, 5)))
    assert np.max(np.abs(fit.kernel.matrix - k)) < 1e-5  # float: the input's units (0..255)


def test_alpha_is_not_part_of_the_fit(colour):
    k = KERNELS["sobel-x"]
    rgba = np.dstack([colour, np.full(colour.shape[:2], 7, np.uint8)])
    y = convcli.convolve(colour, k, dtype=np.float64)
    target = np.dstack([y, np.full(colour.shape[:2], 7.0)]).astype(np.float32)
    fit = fit_kernel([(rgba, target)], FitOptions(size=(3, 3)))
    assert _error(fit, k) < 1e-6


def test_per_channel_kernels(colour):
    ks = [KERNELS["sobel-x"], KERNELS["sobel-x"].T, np.eye(3) / 3]
    y = np.dstack([convcli.convolve(colour[..., c], ks[c], dtype=np.float64) for c in range(3)])
    fit = fit_kernel([(colour, y)], FitOptions(size=(3, 3), channels="each"))
    assert isinstance(fit.kernel, convcli.KernelBank)
    for member, k in zip(fit.kernel.members, ks, strict=True):
        np.testing.assert_allclose(member.matrix, k, atol=1e-8)


def test_bank_from_a_stacked_target_and_from_channels(gray):
    bank = convcli.get_kernel("sobel").with_combine("stack")
    stack = convcli.convolve(gray, bank, dtype=np.float64)  # (2, H, W)
    fit = fit_kernel([(gray, stack)], FitOptions(size=(3, 3), bank=2))
    for member, want in zip(fit.kernel.members, bank.members, strict=True):
        np.testing.assert_allclose(member.matrix, want.matrix, atol=1e-8)
    fit = fit_kernel([(gray, np.moveaxis(stack, 0, -1))], FitOptions(size=(3, 3), bank=2))
    for member, want in zip(fit.kernel.members, bank.members, strict=True):
        np.testing.assert_allclose(member.matrix, want.matrix, atol=1e-8)
    with pytest.raises(InputError, match="--bank 2"):
        fit_kernel([(gray, stack)], FitOptions(size=(3, 3)))


def test_several_pairs_make_one_system(photos):
    k = KERNELS["random-7x7"]
    a, b = photos["camera"][:60, :80], photos["coffee"][100:150, 100:170, 1]
    pairs = [(x, convcli.convolve(x, k, dtype=np.float64)) for x in (a, b)]
    fit = fit_kernel(pairs, FitOptions(size=(7, 7)))
    assert _error(fit, k) < 1e-6
    assert fit.samples == a.size + b.size


def test_sum_symmetric_and_separable_constraints(gray):
    k = convcli.get_kernel("gaussian:size=7,sigma=1.5").matrix
    y = np.round(convcli.convolve(gray, k, dtype=np.float64))  # noisy: rounding
    for options in (
        FitOptions(size=(7, 7), total=1.0),
        FitOptions(size=(7, 7), total=1.0, symmetric=True),
        FitOptions(size=(7, 7), total=1.0, separable=True),
        FitOptions(size=(7, 7), total=1.0, separable=True, symmetric=True),
    ):
        m = fit_kernel([(gray, y)], options).kernel.matrix
        assert abs(m.sum() - 1.0) < 1e-9
        if options.symmetric:
            np.testing.assert_allclose(m, m[::-1], atol=1e-12)
            np.testing.assert_allclose(m, m[:, ::-1], atol=1e-12)
        if options.separable:
            s = np.linalg.svd(m, compute_uv=False)
            assert s[1] < 1e-12 * s[0]
        assert np.max(np.abs(m - k)) < 2e-3
    exact = convcli.convolve(gray, k, dtype=np.float64)
    fit = fit_kernel([(gray, exact)], FitOptions(size=(7, 7), separable=True))
    assert _error(fit, k) < 1e-6


def test_constrained_fit_is_the_constrained_least_squares_solution(gray, rng):
    """The symmetric, summing fit equals a direct lstsq over the symmetric parameters with
    the constraint eliminated."""
    x = gray[:40, :50].astype(np.float64)
    y = rng.normal(size=x.shape)
    fit = fit_kernel([(x, y)], FitOptions(size=(3, 3), symmetric=True, total=2.0), images=False)
    basis = symmetric_basis((3, 3))
    columns = [
        convcli.convolve(x, (basis[:, j]).reshape(3, 3), dtype=np.float64).ravel()
        for j in range(basis.shape[1])
    ]
    a = np.stack(columns, axis=1)
    counts = basis.sum(axis=0)
    # z = z0 + N t with counts . z = 2
    z0 = counts * 2.0 / counts.dot(counts)
    null = np.linalg.svd(counts[np.newaxis])[2][1:].T
    t = np.linalg.lstsq(a @ null, y.ravel() - a @ z0, rcond=None)[0]
    want = (basis @ (z0 + null @ t)).reshape(3, 3)
    np.testing.assert_allclose(fit.kernel.matrix, want, atol=1e-9)


def test_ridge_shrinks_and_makes_a_flat_input_solvable():
    flat = np.full((30, 30), 5.0)
    with pytest.raises(InputError, match="does not determine"):
        fit_kernel([(flat, flat)], FitOptions(size=(3, 3)), images=False)
    fit = fit_kernel([(flat, flat)], FitOptions(size=(3, 3), ridge=1e-3), images=False)
    assert abs(fit.kernel.matrix.sum() - 1.0) < 1e-2  # any kernel of sum 1 maps 5 to 5
    np.testing.assert_allclose(fit.kernel.matrix, np.full((3, 3), fit.kernel.matrix.mean()))


def test_refuses_ill_posed_requests(gray):
    with pytest.raises(InputError, match="larger than the"):
        fit_kernel([(gray[:5, :5], gray[:5, :5])], FitOptions(size=(7, 7)))
    with pytest.raises(InputError, match="target is"):
        fit_kernel([(gray, gray[:-1])], FitOptions(size=(3, 3)))
    with pytest.raises(InputError, match="channel"):
        fit_kernel([(gray, np.dstack([gray] * 3))], FitOptions(size=(3, 3)))
    stripes = np.tile(np.arange(20.0) % 2, (20, 1))
    with pytest.raises(InputError, match="flat or too regular"):
        fit_kernel([(stripes, stripes)], FitOptions(size=(3, 3)), images=False)
    for bad in ("0", "3x", "axb", "1x2x3"):
        with pytest.raises(UsageError):
            parse_size(bad)
    assert parse_size("5x9") == (5, 9) and parse_size("7") == (7, 7)
    with pytest.raises(UsageError):
        FitOptions(size=(3, 3), ridge=-1)
    with pytest.raises(UsageError):
        FitOptions(size=(3, 3), channels="some")


def test_even_sizes_and_correlation_keep_apply_alignment(gray):
    k = np.random.default_rng(2).normal(size=(4, 6))
    for correlate in (False, True):
        for mode in ("same", "full", "valid"):
            y = convcli.convolve(gray, k, mode=mode, correlate=correlate, dtype=np.float64)
            options = FitOptions(size=(4, 6), mode=mode, correlate=correlate)
            assert _error(fit_kernel([(gray, y)], options), k) < 1e-6


def test_threads_give_the_same_fit(colour):
    y = convcli.convolve(colour, RANDOM7, dtype=np.float64)
    one = fit_kernel([(colour, y)], FitOptions(size=(7, 7)), jobs=1)
    two = fit_kernel([(colour, y)], FitOptions(size=(7, 7)), jobs=2)
    np.testing.assert_allclose(one.kernel.matrix, two.kernel.matrix, rtol=1e-12, atol=1e-12)


def test_torch_training_reaches_the_least_squares_kernel(photos):
    pytest.importorskip("torch")
    from convcli.compute.train import train_kernel

    x = photos["camera"][200:248, 200:256]
    k = np.random.default_rng(5).normal(size=(3, 3))
    y = np.round(convcli.convolve(x, k, dtype=np.float64))
    exact = fit_kernel([(x, y)], FitOptions(size=(3, 3))).kernel.matrix
    trained = train_kernel([(x, y)], FitOptions(size=(3, 3)), seed=1)
    assert np.max(np.abs(trained.kernel.matrix - exact)) < 1e-5 * np.max(np.abs(exact))
    # Adam, the usual optimiser of networks, heads the same way (slowly: the taps of a
    # photograph are strongly correlated, which L-BFGS handles and Adam does not)
    adam = train_kernel(
        [(x[:32, :40], y[:32, :40])],
        FitOptions(size=(3, 3)),
        optimizer="adam",
        steps=200,
        learning_rate=0.2,
        seed=1,
    )
    assert np.max(np.abs(adam.kernel.matrix - exact)) < 0.75 * np.max(np.abs(exact))
    with pytest.raises(UsageError, match="least-squares"):
        train_kernel([(x, y)], FitOptions(size=(3, 3), total=1.0))


def test_eight_bit_edge_targets_with_an_offset(gray):
    """An edge filter's 8-bit result keeps its negative half only with an offset (apply
    --offset 50%): fitting the offset too recovers sobel-x within the rounding."""
    k = KERNELS["sobel-x"] / 8  # keeps the results within 0..255 around 127.5
    exact = convcli.convolve(gray, k, dtype=np.float64) + 127.5
    y = np.clip(np.round(exact), 0, 255).astype(np.uint8)
    assert np.array_equal(y, np.round(exact))  # nothing clipped
    fit = fit_kernel([(gray, y)], FitOptions(size=(3, 3), offset=True))
    assert np.max(np.abs(fit.kernel.matrix - k)) < 2e-3
    assert abs(fit.kernel.offset - 127.5) < 0.2
    assert fit.rms < 0.35 and fit.max_error < 1.0
    exact_fit = fit_kernel([(gray, exact)], FitOptions(size=(3, 3), offset=True))
    assert _error(exact_fit, k) < 1e-6 and abs(exact_fit.kernel.offset - 127.5) < 1e-6
    with pytest.raises(UsageError):
        FitOptions(size=(3, 3), offset=True, separable=True)
