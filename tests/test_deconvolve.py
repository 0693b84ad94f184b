"""convcli.compute.deconvolve: the blur and its adjoint are exact for every boundary,
Richardson-Lucy and Wiener match scikit-image on the same inputs and parameters, and both
restore a photograph blurred by a known Gaussian plus noise."""

from __future__ import annotations

import numpy as np
import pytest

import convcli
from convcli.compute.deconvolve import (
    Blur,
    DeconvolveOptions,
    deconvolve_image,
    estimate_noise,
    psnr,
    richardson_lucy,
    validate_psf,
    wiener,
)
from convcli.compute.pixels import PixelOptions
from convcli.errors import InputError, UsageError
from convcli.kernels.model import Kernel
from convcli.vocabulary import Boundary

restoration = pytest.importorskip("skimage.restoration")

PSFS = ["gaussian:sigma=1.5", "box:size=5", "gaussian:size=7,sigma=2"]


@pytest.fixture(scope="module")
def photo(photos):
    return photos["camera"][120:248, 160:320].astype(np.float64) / 255.0


def _close(got, want, rtol=1e-5):
    assert got.shape == want.shape
    assert np.max(np.abs(got - want)) <= rtol * np.max(np.abs(want))


@pytest.mark.parametrize("spec", [*PSFS, "box:size=4", "[[0.1, 0.5], [0.3, 0.1]]"])
@pytest.mark.parametrize("boundary", [b.value for b in Boundary])
def test_blur_is_apply_and_its_adjoint_is_exact(photo, rng, spec, boundary):
    psf = convcli.get_kernel(spec)
    blur = Blur(psf, photo.shape, Boundary(boundary), 0.0)
    want = convcli.convolve(photo, psf, boundary=boundary, dtype=np.float64)
    np.testing.assert_allclose(blur.forward(photo), want, atol=1e-12)
    r = rng.normal(size=photo.shape)
    x = rng.normal(size=photo.shape)
    lhs, rhs = np.vdot(blur.forward(x), r), np.vdot(x, blur.adjoint(r))
    assert abs(lhs - rhs) <= 1e-10 * abs(lhs)


@pytest.fixture(scope="module")
def blurred(photo):
    rng = np.random.default_rng(3)
    psf = convcli.get_kernel("gaussian:sigma=1.5")
    y = convcli.convolve(photo, psf, boundary="fill", dtype=np.float64)
    return np.clip(y + 0.01 * rng.normal(size=y.shape), 0, 1)


@pytest.mark.parametrize("spec", PSFS)
@pytest.mark.parametrize("iterations", [1, 10, 30])
def test_richardson_lucy_is_scikit_images(blurred, spec, iterations):
    psf = convcli.get_kernel(spec)
    want = restoration.richardson_lucy(blurred, np.array(psf.matrix), iterations, clip=False)
    got = richardson_lucy(blurred, psf, iterations, boundary="fill")
    _close(got, want)


@pytest.mark.parametrize("spec", PSFS)
@pytest.mark.parametrize("balance", [0.001, 0.05, 1.0])
def test_wiener_is_scikit_images(blurred, spec, balance):
    psf = convcli.get_kernel(spec)
    want = restoration.wiener(blurred, np.array(psf.matrix), balance, clip=False)
    got = wiener(blurred, psf, balance, boundary="wrap")
    _close(got, want)


def test_noise_estimate(photo):
    rng = np.random.default_rng(1)
    smooth = convcli.convolve(photo, "gaussian:sigma=2", dtype=np.float64)
    for sigma in (0.005, 0.02, 0.05):
        noisy = smooth + sigma * rng.normal(size=photo.shape)
        assert abs(estimate_noise(noisy) - sigma) < 0.15 * sigma


#: the PSNR gains (dB) the README states for this photograph, blur and noise
README_GAINS = {"richardson-lucy": 2.5, "richardson-lucy-tv": 2.5, "wiener": 2.5}


def test_restoration_improves_psnr_on_a_blurred_noisy_photo(photos):
    original = photos["astronaut"][:, :, 1].astype(np.float64) / 255.0
    psf = convcli.get_kernel("gaussian:sigma=2")
    rng = np.random.default_rng(0)
    blurred = convcli.convolve(original, psf, dtype=np.float64)
    blurred = np.clip(blurred + 0.01 * rng.normal(size=blurred.shape), 0, 1)
    before = psnr(original, blurred)
    after = {
        "richardson-lucy": psnr(original, richardson_lucy(blurred, psf, 30)),
        "richardson-lucy-tv": psnr(original, richardson_lucy(blurred, psf, 30, tv=0.002)),
        "wiener": psnr(original, wiener(blurred, psf)),
    }
    for name, value in after.items():
        assert value - before > README_GAINS[name], (name, before, value)


def test_images_keep_alpha_depth_and_channels(photos):
    rgb = photos["coffee"][:64, :80]
    alpha = np.linspace(0, 255, 64 * 80).reshape(64, 80).astype(np.uint8)
    rgba = np.dstack([rgb, alpha])
    psf = convcli.get_kernel("gaussian:sigma=1")
    options = DeconvolveOptions(iterations=5, boundary="fill")
    out = deconvolve_image(rgba, psf, options).pixels
    assert out.dtype == np.uint8 and out.shape == rgba.shape
    np.testing.assert_array_equal(out[..., 3], alpha)
    for c in range(3):
        want = richardson_lucy(rgb[..., c] / 255.0, psf, 5, boundary="fill") * 255
        assert np.max(np.abs(out[..., c] - np.clip(np.round(want), 0, 255))) <= 1
    sixteen = (rgb.astype(np.uint16) * 257)[..., 0]
    out16 = deconvolve_image(sixteen, psf, options).pixels
    assert out16.dtype == np.uint16
    want16 = richardson_lucy(sixteen / 65535.0, psf, 5, boundary="fill") * 65535
    assert np.max(np.abs(out16 - np.clip(np.round(want16), 0, 65535))) <= 1
    floats = deconvolve_image(rgb / 255.0, psf, options, PixelOptions(depth="float")).pixels
    assert floats.dtype == np.float32
    np.testing.assert_allclose(
        floats[..., 1], richardson_lucy(rgb[..., 1] / 255.0, psf, 5, boundary="fill"), atol=1e-6
    )


def test_bad_requests():
    with pytest.raises(UsageError):
        DeconvolveOptions(method="blind")
    with pytest.raises(UsageError):
        DeconvolveOptions(iterations=0)
    with pytest.raises(UsageError, match="Wiener"):
        DeconvolveOptions(method="richardson-lucy", balance=0.1)
    with pytest.raises(UsageError, match="conflict"):
        DeconvolveOptions(method="wiener", balance=0.1, noise=0.01)
    with pytest.raises(UsageError, match="sums to 0"):
        validate_psf(convcli.get_kernel("sobel-x"), DeconvolveOptions())
    with pytest.raises(UsageError, match="negative"):
        validate_psf(Kernel([[0.5, -0.1, 0.6]]), DeconvolveOptions())
    validate_psf(Kernel([[0.5, -0.1, 0.6]]), DeconvolveOptions(method="wiener"))
    with pytest.raises(InputError, match="non-negative"):
        richardson_lucy(-np.ones((8, 8)), convcli.get_kernel("box"))
    with pytest.raises(InputError, match="larger than"):
        deconvolve_image(
            np.zeros((4, 4), np.uint8), convcli.get_kernel("box:size=5"), DeconvolveOptions()
        )
