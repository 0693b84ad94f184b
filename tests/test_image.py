"""Image semantics: alpha keep/filter/premultiplied, gray, bit depth, offset and range."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

import convcli
from convcli.compute.image import filter_image
from convcli.compute.pixels import PixelOptions, parse_offset
from convcli.errors import UsageError


def _ref(channel: np.ndarray, spec: str, **kw) -> np.ndarray:
    return convcli.convolve(channel.astype(np.float64), spec, **kw)


def test_gray_8bit_same_depth_rounds_and_clips(photos):
    x = photos["camera"]
    got = filter_image(x, "sharpen").pixels
    want = np.clip(np.rint(_ref(x, "sharpen")), 0, 255).astype(np.uint8)
    assert got.dtype == np.uint8
    assert np.mean(got != want) < 1e-5


def test_rgb_channels_filtered_independently(photos):
    x = photos["astronaut"]
    got = filter_image(x, "gaussian:sigma=2").pixels
    for c in range(3):
        want = np.rint(ndimage.gaussian_filter(x[:, :, c].astype(float), 2.0))
        assert np.max(np.abs(got[:, :, c].astype(float) - want)) <= 1


def test_alpha_keep_copies_alpha_untouched(rng):
    rgba = (rng.random((20, 20, 4)) * 255).astype(np.uint8)
    got = filter_image(rgba, "box").pixels
    np.testing.assert_array_equal(got[:, :, 3], rgba[:, :, 3])
    assert not np.array_equal(got[:, :, :3], rgba[:, :, :3])


@pytest.mark.parametrize("mode", ["full", "valid"])
def test_alpha_keep_follows_the_output_grid(rng, mode):
    la = (rng.random((10, 12, 2)) * 255).astype(np.uint8)
    got = filter_image(la, "box:size=4", mode=mode, boundary="nearest").pixels
    expected_shape = {"full": (13, 15, 2), "valid": (7, 9, 2)}[mode]
    assert got.shape == expected_shape
    if mode == "valid":
        # valid output i sees inputs i..i+3; the origin (k-1)//2 = 1 of the flipped kernel
        # weighs input i + 2, so alpha is cropped to [2:9, 2:11]
        np.testing.assert_array_equal(got[:, :, 1], la[2:9, 2:11, 1])
        # the colour channel agrees: a delta kernel at the origin moves gray the same way
        delta = np.zeros((4, 4))
        delta[1, 1] = 1
        moved = filter_image(la, delta.tolist(), mode="valid").pixels
        np.testing.assert_array_equal(moved[:, :, 0], la[2:9, 2:11, 0])


def test_alpha_filter_filters_alpha_too(rng):
    rgba = (rng.random((16, 16, 4)) * 255).astype(np.uint8)
    got = filter_image(rgba, "box", PixelOptions(alpha="filter")).pixels
    want = np.rint(_ref(rgba[:, :, 3], "box"))
    np.testing.assert_array_equal(got[:, :, 3], want.astype(np.uint8))


def test_premultiplied_alpha_leaves_no_fringes():
    """A red square on fully transparent *green* pixels: blurring with straight alpha drags
    green into the edge; premultiplied alpha keeps the visible colour pure red."""
    img = np.zeros((21, 21, 4), np.uint8)
    img[:, :, 1] = 255  # invisible green everywhere
    img[6:15, 6:15] = [255, 0, 0, 255]  # opaque red square
    straight = filter_image(img, "gaussian:sigma=2", PixelOptions(alpha="filter")).pixels
    premult = filter_image(img, "gaussian:sigma=2", PixelOptions(alpha="premultiplied")).pixels
    edge = (slice(None), slice(None))
    visible = premult[..., 3] > 0
    assert np.all(premult[..., 0][visible] >= 254)  # pure red wherever anything shows
    assert np.all(premult[..., 1][visible] <= 1)
    assert straight[edge][..., 1][straight[..., 3] > 0].max() > 100  # the fringe we avoid
    np.testing.assert_array_equal(premult[..., 3], straight[..., 3])  # same coverage


def test_gray_converts_with_pillows_weights(photos):
    x = photos["astronaut"]
    got = filter_image(x, "identity", PixelOptions(gray=True)).pixels
    from PIL import Image

    pillow = np.asarray(Image.fromarray(x).convert("L")).astype(int)
    assert got.shape == x.shape[:2]
    assert np.max(np.abs(got.astype(int) - pillow)) <= 1


def test_gray_keeps_alpha(rng):
    rgba = (rng.random((8, 8, 4)) * 255).astype(np.uint8)
    got = filter_image(rgba, "identity", PixelOptions(gray=True)).pixels
    assert got.shape == (8, 8, 2)
    np.testing.assert_array_equal(got[:, :, 1], rgba[:, :, 3])


def test_16bit_stays_16bit_and_exact(rng):
    x = (rng.random((30, 30)) * 65535).astype(np.uint16)
    got = filter_image(x, "gaussian:sigma=1.5").pixels
    assert got.dtype == np.uint16
    want = np.clip(np.rint(ndimage.gaussian_filter(x.astype(float), 1.5)), 0, 65535)
    np.testing.assert_array_equal(got, want.astype(np.uint16))


@pytest.mark.parametrize(
    "depth, dtype, scale", [("8", np.uint8, 1), ("16", np.uint16, 257), ("float", np.float32, 1)]
)
def test_depth_conversion(photos, depth, dtype, scale):
    x = photos["camera"][:64, :64]
    got = filter_image(x, "identity", PixelOptions(depth=depth)).pixels
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, x.astype(np.float64) * scale)


def test_16bit_to_8bit(rng):
    x = (rng.random((6, 6)) * 65535).astype(np.uint16)
    got = filter_image(x, "identity", PixelOptions(depth="8")).pixels
    np.testing.assert_array_equal(got, np.rint(x / 257.0).astype(np.uint8))


def test_float_depth_keeps_signed_results(photos):
    x = photos["camera"]
    got = filter_image(x, "sobel-x", PixelOptions(depth="float")).pixels
    assert got.dtype == np.float32
    assert got.min() < -100
    np.testing.assert_allclose(got, _ref(x, "sobel-x"), atol=1e-3)


def test_range_abs_and_offset(photos):
    x = photos["camera"]
    raw = _ref(x, "sobel-x")
    absolute = filter_image(x, "sobel-x", PixelOptions(range="abs")).pixels
    np.testing.assert_array_equal(absolute, np.clip(np.rint(np.abs(raw)), 0, 255))
    half, percent = parse_offset("50%")
    shifted = filter_image(x, "sobel-x", PixelOptions(offset=half, offset_percent=percent))
    np.testing.assert_array_equal(shifted.pixels, np.clip(np.rint(raw + 127.5), 0, 255))
    plus = filter_image(x, "sobel-x", PixelOptions(offset=10)).pixels
    np.testing.assert_array_equal(plus, np.clip(np.rint(raw + 10), 0, 255))


def test_range_rescale_stretches_to_the_full_range(photos):
    x = photos["camera"]
    got = filter_image(x, "laplacian", PixelOptions(range="rescale")).pixels
    assert got.min() == 0 and got.max() == 255


def test_clip_counts_what_it_clipped(photos):
    f = filter_image(photos["camera"], "sobel-x")
    assert f.clipped > 0.1 * f.total


def test_stacked_bank_on_rgba(rng):
    rgba = (rng.random((9, 9, 4)) * 255).astype(np.uint8)
    f = filter_image(rgba, ["sobel-x", "sobel-y"], combine="stack")
    assert f.stacked == 2
    assert f.pixels.shape == (2, 9, 9, 4)
    np.testing.assert_array_equal(f.pixels[1, :, :, 3], rgba[:, :, 3])


def test_bad_pixel_options():
    with pytest.raises(UsageError, match="--offset has no effect with --range rescale"):
        PixelOptions(range="rescale", offset=5)
    with pytest.raises(UsageError, match="depth '12'"):
        PixelOptions(depth="12")
    with pytest.raises(UsageError, match="offset 'half'"):
        parse_offset("half")
