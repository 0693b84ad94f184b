"""--compat presets give the pixels of the library they name (checked against the library)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage, signal

import convcli
from conftest import write_png
from convcli.compute.compat import PRESETS
from convcli.vocabulary import Compat, values

KERNELS = [
    np.array([[1.0, 2.0, 0.5], [-1.0, 3.0, 0.25], [0.0, -2.0, 1.0]]),  # odd, asymmetric
    np.array([[1.0, 2.0, 0.5, -1.0], [-1.0, 3.0, 0.25, 2.0]]),  # even, asymmetric
]


def run(cli, tmp_path, x: np.ndarray, kernel: np.ndarray, compat: str, *extra: str):
    np.save(tmp_path / "x.npy", x)
    r = cli(
        "apply",
        "-k",
        str(kernel.tolist()).replace(" ", ""),
        "--compat",
        compat,
        str(tmp_path / "x.npy"),
        "-o",
        str(tmp_path / "y.npy"),
        *extra,
    )
    assert r.exit_code == 0, r.stderr
    return np.load(tmp_path / "y.npy")


def test_every_preset_is_a_choice():
    assert set(PRESETS) == set(values(Compat))


@pytest.mark.parametrize("k", KERNELS)
def test_scipy_is_convolve2d_defaults(cli, tmp_path, rng, k):
    x = rng.normal(size=(9, 11))
    np.testing.assert_allclose(
        run(cli, tmp_path, x, k, "scipy"), signal.convolve2d(x, k), atol=1e-12
    )


@pytest.mark.parametrize("k", KERNELS)
def test_ndimage_is_ndimage_convolve_even_kernels_included(cli, tmp_path, rng, k):
    x = rng.normal(size=(9, 11))
    np.testing.assert_allclose(
        run(cli, tmp_path, x, k, "ndimage"), ndimage.convolve(x, k), atol=1e-12
    )


@pytest.mark.parametrize("k", KERNELS)
def test_opencv_is_filter2d_defaults(cli, tmp_path, rng, k):
    cv2 = pytest.importorskip("cv2")
    x = rng.normal(size=(9, 11)).astype(np.float64)
    np.testing.assert_allclose(
        run(cli, tmp_path, x, k, "opencv"), cv2.filter2D(x, -1, k), atol=1e-10
    )


@pytest.mark.parametrize("k", KERNELS)
def test_torch_is_conv2d_defaults(cli, tmp_path, rng, k):
    torch = pytest.importorskip("torch")
    x = rng.normal(size=(9, 11))
    want = torch.nn.functional.conv2d(torch.tensor(x)[None, None], torch.tensor(k)[None, None])
    np.testing.assert_allclose(run(cli, tmp_path, x, k, "torch"), want[0, 0].numpy(), atol=1e-10)


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@pytest.mark.parametrize("k", KERNELS)
def test_torch_same_padding_for_even_kernels(cli, tmp_path, rng, k):
    """With --mode same and zero fill, even kernels align like padding='same'."""
    torch = pytest.importorskip("torch")
    x = rng.normal(size=(9, 11))
    want = torch.nn.functional.conv2d(
        torch.tensor(x)[None, None], torch.tensor(k)[None, None], padding="same"
    )
    got = run(cli, tmp_path, x, k, "torch", "--mode", "same")
    np.testing.assert_allclose(got, want[0, 0].numpy(), atol=1e-10)


@pytest.mark.parametrize("size", [3, 5])
def test_pillow_is_imagefilter_kernel(cli, tmp_path, photos, rng, size):
    from PIL import Image, ImageFilter

    k = rng.integers(-3, 6, size=(size, size)).astype(float)
    k[size // 2, size // 2] = 8.0  # a sum that is not zero: Pillow divides by it
    src = write_png(tmp_path / "in.png", photos["astronaut"][:60, :70])
    want = np.asarray(Image.open(src).filter(ImageFilter.Kernel((size, size), k.ravel())))
    r = cli(
        "apply",
        "-k",
        str(k.tolist()).replace(" ", ""),
        "--compat",
        "pillow",
        str(src),
        "-o",
        str(tmp_path / "ours.png"),
    )
    assert r.exit_code == 0, r.stderr
    got = convcli.read_image(tmp_path / "ours.png")
    # Exact ties (x.5) are broken by float32 noise in Pillow's sums: compare elsewhere.
    exact = convcli.convolve(
        convcli.read_image(src), (k[::-1, :] / k.sum()).tolist(), correlate=True, dtype=np.float64
    )
    tie = np.abs(exact - np.floor(exact) - 0.5) < 1e-6
    np.testing.assert_array_equal(got[~tie], want[~tie])
    assert np.max(np.abs(got.astype(int) - want.astype(int))) <= 1


def test_explicit_options_win_over_the_preset(cli, tmp_path, rng):
    x = rng.normal(size=(7, 8))
    k = KERNELS[0]
    got = run(cli, tmp_path, x, k, "scipy", "--mode", "same", "--boundary", "wrap")
    np.testing.assert_allclose(
        got, signal.convolve2d(x, k, mode="same", boundary="wrap"), atol=1e-12
    )
    flipped = run(cli, tmp_path, x, k, "torch", "--convolve")
    np.testing.assert_allclose(flipped, signal.convolve2d(x, k, mode="valid"), atol=1e-12)
