"""The interleaved path (integer kernels in integer arithmetic, other kernels by OpenCV's
float calls on the interleaved samples) gives the general path's samples on 8- and 16-bit
images bit for bit: over every kernel in the library, every --range, offsets, every
--depth, the boundaries, rounding rules, banding, image widths; and it applies where it
should."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from convcli.compute.engine import Options, as_operation
from convcli.compute.image import BandJob, plan_image
from convcli.compute.pixels import Filtered, PixelOptions
from convcli.io.rows import ArrayRows
from convcli.kernels.model import Kernel
from convcli.kernels.registry import default_registry
from convcli.vocabulary import DEPTHS, RANGES

pytest.importorskip("cv2")


def _job(image: np.ndarray, kernel, pixels=PixelOptions(), band_bytes=None, **options) -> BandJob:
    kw = {} if band_bytes is None else {"band_bytes": band_bytes}
    backend = options.pop("backend", "opencv")
    return plan_image(
        ArrayRows(image),
        as_operation(kernel),
        pixels,
        options=Options.make(**options),
        backend=backend,
        **kw,
    )


def _both(job: BandJob) -> tuple[Filtered, Filtered]:
    """The job's result and the general path's (the same job without the integer path)."""
    results = []
    for j in (job, replace(job, exact=None)):
        stats = Filtered(np.empty(0), j.stacked)
        stats.pixels = j.collect(stats)
        results.append(stats)
    return results[0], results[1]


def _same(job: BandJob) -> None:
    fast, general = _both(job)
    assert fast.pixels.dtype == general.pixels.dtype
    np.testing.assert_array_equal(fast.pixels, general.pixels)
    assert (fast.clipped, fast.total) == (general.clipped, general.total)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """A real photograph (texture, flat areas, saturated highlights) and some noise."""
    data = pytest.importorskip("skimage.data")
    return np.ascontiguousarray(data.astronaut()[100:260, 150:330])


def _library_kernels() -> list[str]:
    return sorted(default_registry().names())


@pytest.mark.parametrize("name", _library_kernels())
@pytest.mark.parametrize("range_", RANGES)
def test_every_library_kernel_and_range(photo, name, range_):
    job = _job(photo, name, PixelOptions(range=range_))
    kernel = as_operation(name)
    integer = isinstance(kernel, Kernel) and np.array_equal(
        kernel.as_2d(), np.round(kernel.as_2d())
    )
    if integer:  # integer kernels always take the integer route
        assert job.exact is not None and job.exact.float_filter is None
    _same(job)


@pytest.mark.parametrize("name", ["sobel-x", "laplacian", "sharpen", "emboss", "identity"])
@pytest.mark.parametrize("depth", DEPTHS)
@pytest.mark.parametrize(
    "offset",
    [(0.0, False), (128.0, False), (-3.0, False), (2.5, False), (50.0, True), (10.0, True)],
)
@pytest.mark.parametrize("range_", ["clip", "abs"])
def test_depths_and_offsets(photo, name, depth, offset, range_):
    pixels = PixelOptions(depth=depth, range=range_, offset=offset[0], offset_percent=offset[1])
    _same(_job(photo, name, pixels))


@pytest.mark.parametrize("quantize", ["nearest", "half-up", "imagemagick"])
@pytest.mark.parametrize("depth", ["same", "16"])
def test_rounding_rules(photo, quantize, depth):
    _same(_job(photo, "laplacian", PixelOptions(quantize=quantize, depth=depth, offset=1.5)))


@pytest.mark.parametrize("boundary", ["fill", "reflect", "mirror", "nearest"])
@pytest.mark.parametrize("name", ["sobel-y", "scharr-x", "sharpen"])
def test_boundaries(photo, boundary, name):
    job = _job(photo, name, boundary=boundary)
    assert job.exact is not None
    _same(job)


@pytest.mark.parametrize("bits", [8, 16])
def test_gray_and_16_bit(photo, bits):
    gray = np.ascontiguousarray(photo[:, :, 1])
    for image in (gray, photo):
        image = image.astype(np.uint16) * 257 + 3 if bits == 16 else image
        for pixels in (
            PixelOptions(),
            PixelOptions(range="abs", depth="8"),
            PixelOptions(range="rescale"),
        ):
            # (16-bit runs sobel-x as separable float64 passes: not exact)
            job = _job(image, "laplacian" if bits == 16 else "sobel-x", pixels)
            assert job.exact is not None
            _same(job)


def test_thin_bands_give_the_same_numbers(photo):
    job = _job(photo, "scharr-y", PixelOptions(range="abs"), band_bytes=64 * 1024)
    assert job.band_rows < photo.shape[0] // 4
    _same(job)
    whole = _job(photo, "scharr-y", PixelOptions(range="abs"))
    np.testing.assert_array_equal(job.collect(), whole.collect())


@pytest.mark.parametrize("boundary", ["fill", "reflect", "mirror", "nearest"])
@pytest.mark.parametrize("name", ["sobel-x", "gaussian:size=5", "box:size=7", "gaussian:sigma=3"])
@pytest.mark.parametrize("rows", [160, 12, 5, 1])
def test_every_boundary_at_the_image_ends_in_thin_bands(photo, boundary, name, rows):
    # OpenCV extends a band's rows at the image's ends; a kernel taller than the image
    # (5 and 1 rows) takes rows gathered by the boundary instead
    image = np.ascontiguousarray(photo[:rows])
    job = _job(image, name, band_bytes=16 * 1024, boundary=boundary)
    assert job.exact is not None
    assert rows <= 12 or job.band_rows < rows // 2
    _same(job)


@pytest.mark.parametrize(
    ("kernel", "options", "why"),
    [
        ("sobel-x", {"mode": "full"}, "another output size"),
        ("sobel-x", {"boundary": "wrap"}, "a boundary OpenCV cannot extend"),
        ("sobel-x", {"boundary": "fill", "fill_value": 3.0}, "a non-zero fill"),
        ("sobel-x", {"method": "fft"}, "an inexact method"),
        ("sobel", {}, "a bank"),
        ("gaussian:sigma=3", {"method": "fft"}, "OpenCV's DFT"),
        ("gaussian:size=9", {"method": "direct"}, "filter2D's DFT"),
        ("sobel-x", {"backend": "scipy"}, "another backend"),
    ],
)
def test_where_it_does_not_apply(photo, kernel, options, why):
    job = _job(photo, kernel, **options)
    assert job.exact is None, why


def test_gray_of_colour_and_alpha_take_the_general_path(photo):
    assert _job(photo, "sobel-x", PixelOptions(gray=True)).exact is None
    rgba = np.dstack([photo, np.full(photo.shape[:2], 200, np.uint8)])
    assert _job(rgba, "sobel-x").exact is None


@pytest.mark.parametrize(
    ("kernel", "options"),
    [
        ("sobel-x", {"method": "separable"}),  # factors that are not whole numbers
        ("box", {}),
        ("gaussian:size=5", {}),
        ("gaussian:sigma=2", {}),
        ("unsharp", {}),
    ],
)
@pytest.mark.parametrize("width", [180, 179, 177, 64, 13, 1001, 1003])
def test_float_kernels_take_the_float_route_at_every_width(photo, kernel, options, width):
    """Every sample gets OpenCV's arithmetic of whole vectors whatever the row's length, so
    the float route applies at every width, and its samples are the general path's."""
    image = np.ascontiguousarray(np.tile(photo, (1, 3, 1))[:, :width])
    job = _job(image, kernel, **options)
    assert job.exact is not None and job.exact.float_filter is not None
    _same(job)
    _same(_job(image, kernel, PixelOptions(range="abs"), **options))


@pytest.mark.parametrize("width", [4000, 1001])
def test_kernels_that_cannot_clip_round_in_the_filter(photo, width):
    """A kernel whose results stay within 0..255 (a Gaussian) writes the 8-bit samples from
    its own filter, where the probe shows OpenCV rounds them as the general path does; one
    that may clip, or asked for an offset, does not."""
    wide = np.ascontiguousarray(np.tile(photo[:40], (1, 23, 1))[:, :width])
    for kernel in ("gaussian:size=5", "gaussian:sigma=2", "box:size=7"):
        job = _job(wide, kernel)
        assert job.exact is not None and job.exact.rounds
        # and reads the samples as they are: the filter is the whole computation
        assert job.exact.one_pass
        _same(job)
        _same(_job(wide, kernel, PixelOptions(range="abs")))
        offset = _job(wide, kernel, PixelOptions(offset=10.0))
        assert offset.exact is not None and not offset.exact.rounds
        _same(offset)
    job = _job(wide, "unsharp")
    assert job.exact is not None and not job.exact.rounds
    _same(job)


def test_sums_too_large_for_float32_take_the_float_route(photo):
    huge = [[0, 0, 0], [0, 70000, 0], [0, 0, 0]]
    job = _job(photo, huge)
    assert job.exact is None or job.exact.float_filter is not None
    _same(job)
    large = [[0, -200, 0], [0, 300, 0], [0, 0, 0]]  # beyond 16 bits: summed as float32
    job = _job(photo, large, PixelOptions(range="abs"))
    assert job.exact is not None
    _same(job)


_vector = st.lists(st.integers(-9, 9), min_size=1, max_size=7)
_kernels = st.builds(
    lambda rows, cols, values: np.resize(np.array(values, float), (rows, cols)),
    st.integers(1, 7),
    st.integers(1, 7),
    st.lists(st.integers(-6, 6), min_size=1, max_size=49),
) | st.builds(lambda c, r: np.outer(c, r).astype(float), _vector, _vector)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kernel=_kernels,
    shape=st.tuples(st.integers(1, 23), st.integers(1, 19)),
    channels=st.sampled_from([1, 3]),
    boundary=st.sampled_from(["fill", "reflect", "mirror", "nearest"]),
    correlate=st.booleans(),
    range_=st.sampled_from(RANGES),
    offset=st.sampled_from([0.0, 5.0, -7.0, 0.5]),
    depth=st.sampled_from(DEPTHS),
    bits=st.sampled_from([8, 8, 16]),
    seed=st.integers(0, 2**16),
)
def test_random_integer_kernels(
    kernel, shape, channels, boundary, correlate, range_, offset, depth, bits, seed
):
    if not kernel.any():
        kernel[0, 0] = 1
    rng = np.random.default_rng(seed)
    top, dtype = (256, np.uint8) if bits == 8 else (65536, np.uint16)
    image = rng.integers(0, top, (*shape, channels) if channels == 3 else shape, dtype)
    pixels = PixelOptions(range=range_, offset=0.0 if range_ == "rescale" else offset, depth=depth)
    job = _job(image, kernel.tolist(), pixels, boundary=boundary, correlate=correlate)
    _same(job)


@pytest.mark.parametrize("name", ["sobel-x", "laplacian", "sharpen", "emboss", "prewitt-y"])
@pytest.mark.parametrize("range_", ["clip", "abs"])
@pytest.mark.parametrize("offset", [(0.0, False), (128.0, False), (-40.0, False), (50.0, True)])
def test_shifted_integer_sums_count_and_map_as_the_plain_ones(photo, name, range_, offset):
    """Integer sums come from OpenCV shifted by the kernel's reach (all at least 0, so that
    their histogram is small): the samples and every clipping figure are those of the
    unshifted sums."""
    from convcli.compute import exact
    from convcli.compute import pixels as pixels_module

    pixels = PixelOptions(range=range_, offset=offset[0], offset_percent=offset[1])
    histogram = pixels_module.integer_histogram
    results = []
    for int16_max in (exact._INT16_MAX, 0):  # 0: no reach is small enough to shift
        shifts: list[int] = []

        def spy(sums, reach, shift=0, shifts=shifts):  # type: ignore[no-untyped-def]
            shifts.append(shift)
            return histogram(sums, reach, shift)

        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(exact, "_INT16_MAX", int16_max)
            mp.setattr(pixels_module, "integer_histogram", spy)
            job = _job(photo, name, pixels)
            assert job.exact is not None and job.exact.float_filter is None
            stats = Filtered(np.empty(0), None)
            stats.pixels = job.collect(stats)
            results.append(stats)
        if offset[1]:  # 127.5 levels: the general rules map them, from the sums unshifted
            assert not shifts
        else:
            assert shifts and all(s == (job.exact.reach if int16_max else 0) for s in shifts)
    shifted, plain = results
    np.testing.assert_array_equal(shifted.pixels, plain.pixels)
    assert vars(shifted).keys() == vars(plain).keys()
    for field in vars(plain):
        if field != "pixels":
            assert getattr(shifted, field) == getattr(plain, field), field


def test_rank_one_kernels_run_as_two_integer_passes(photo):
    job = _job(photo, "sobel-x")
    assert job.exact is not None and job.exact.factors is not None
    assert _job(photo, "laplacian").exact.factors is None  # rank 2: one 2-D pass


@pytest.mark.parametrize("spec", ["gaussian:sigma=2", "sobel-x", "sharpen"])
def test_one_thread_collects_bigger_bands_with_the_same_numbers(photo, spec, monkeypatch):
    """A batch worker (one thread) computes several planned bands at once: same numbers."""
    from convcli import machine

    tall = np.ascontiguousarray(np.concatenate([photo, photo[::-1]] * 2))
    job = _job(tall, spec, PixelOptions(range="abs"), band_bytes=64 * 1024)
    assert job.band_rows * 4 < tall.shape[0]  # several merged bands, and more than one
    banded = job.collect()
    monkeypatch.setattr(machine, "_threads", 1)
    stats = Filtered(np.empty(0), None)
    np.testing.assert_array_equal(job.collect(stats), banded)
    general = replace(job, exact=None)
    np.testing.assert_array_equal(general.collect(), banded)


def test_a_streamed_tiff_gives_the_in_memory_numbers(photo, tmp_path):
    """Rows read band by band from a striped TIFF: each band's rows are read once."""
    tifffile = pytest.importorskip("tifffile")
    from convcli.io.rows import open_rows

    tall = np.ascontiguousarray(np.concatenate([photo, photo[::-1]] * 2))
    path = tmp_path / "tall.tif"
    tifffile.imwrite(path, tall, rowsperstrip=7)
    reader = open_rows(path)
    try:
        job = plan_image(
            reader, as_operation("laplacian"), PixelOptions(range="abs"), band_bytes=64 * 1024
        )
        assert job.exact is not None and job.band_rows < tall.shape[0]
        streamed = np.concatenate([s for _, _, s in job.bands()])
    finally:
        reader.close()
    np.testing.assert_array_equal(
        streamed, _job(tall, "laplacian", PixelOptions(range="abs")).collect()
    )
