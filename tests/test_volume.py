"""Volumes: 3-D arrays convolved with 3-D kernels, checked against scipy.ndimage and
scipy.signal in N dimensions for every boundary, mode, method and backend; slabs of z give
the in-memory result bit for bit; --volume reads 3-D .npy and TIFF z-stacks."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage, signal

import convcli
from convcli.compute.backends import available, get_backend
from convcli.compute.engine import as_operation
from convcli.compute.plan import Options
from convcli.compute.volume import choose_volume_method, convolve_volume
from convcli.errors import KernelError
from convcli.kernels.registry import for_ndim, get_kernel

BOUNDARIES = {
    "fill": "constant",
    "reflect": "reflect",
    "mirror": "mirror",
    "nearest": "nearest",
    "wrap": "wrap",
}
BACKENDS = [
    "scipy",
    pytest.param("opencv", marks=pytest.mark.skipif(not available("opencv"), reason="no cv2")),
    pytest.param(
        "torch",
        marks=[
            pytest.mark.torch,
            pytest.mark.skipif(not available("torch"), reason="torch is not installed"),
        ],
    ),
]


@pytest.fixture(scope="module")
def volume():
    return np.random.default_rng(3).random((11, 12, 13))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("method", ["direct", "fft"])
@pytest.mark.parametrize("boundary", list(BOUNDARIES))
def test_ndimage_correlate_and_convolve(volume, backend, method, boundary):
    k = np.random.default_rng(4).random((3, 5, 4)) - 0.3
    mode = BOUNDARIES[boundary]
    got = convcli.convolve(
        volume,
        k,
        channel_axis=None,
        boundary=boundary,
        fill_value=0.5,
        correlate=True,
        method=method,
        backend=backend,
    )
    np.testing.assert_allclose(got, ndimage.correlate(volume, k, mode=mode, cval=0.5), atol=1e-12)
    odd = k[:, :, :3]  # ndimage.convolve centres even kernels otherwise than scipy.signal
    got = convcli.convolve(
        volume, odd, channel_axis=None, boundary=boundary, method=method, backend=backend
    )
    np.testing.assert_allclose(got, ndimage.convolve(volume, odd, mode=mode), atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", ["full", "same", "valid"])
@pytest.mark.parametrize("method", ["direct", "fft"])
def test_scipy_signal_convolve_every_mode(volume, backend, mode, method):
    k = np.random.default_rng(5).random((4, 3, 2))  # even sizes: scipy.signal's alignment
    got = convcli.convolve(
        volume, k, channel_axis=None, mode=mode, boundary="fill", method=method, backend=backend
    )
    np.testing.assert_allclose(got, signal.convolve(volume, k, mode=mode), atol=1e-12)
    got = convcli.convolve(
        volume,
        k,
        channel_axis=None,
        mode=mode,
        boundary="fill",
        correlate=True,
        method=method,
        backend=backend,
    )
    np.testing.assert_allclose(got, signal.correlate(volume, k, mode=mode), atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("boundary", list(BOUNDARIES))
def test_gaussian_ndim_3_is_gaussian_filter(volume, backend, boundary):
    got = convcli.convolve(
        volume, "gaussian:sigma=1.2,ndim=3", channel_axis=None, boundary=boundary, backend=backend
    )
    want = ndimage.gaussian_filter(volume, 1.2, mode=BOUNDARIES[boundary])
    np.testing.assert_allclose(got, want, atol=1e-13)


@pytest.mark.parametrize("backend", BACKENDS)
def test_separable_passes_equal_the_direct_sum(volume, backend):
    """A box (and any outer product) runs as 1-D passes; the numbers are those of every tap."""
    rng = np.random.default_rng(6)
    k = np.multiply.outer(np.multiply.outer(rng.random(3), rng.random(5)), rng.random(2))
    assert get_kernel("box:size=3,ndim=3").separable
    kernel = convcli.Kernel(k)
    assert kernel.separable and kernel.axis_factors is not None
    for boundary, mode in BOUNDARIES.items():
        got = convcli.convolve(
            volume,
            kernel,
            channel_axis=None,
            boundary=boundary,
            fill_value=2.0,
            method="separable",
            backend=backend,
        )
        want = ndimage.convolve(volume, k, mode=mode, cval=2.0, origin=(0, 0, -1))
        np.testing.assert_allclose(got, want, atol=1e-12, err_msg=boundary)


def test_lower_dimensional_kernels_filter_along_the_last_axes(volume):
    k2 = np.array([[1.0, 2, 0], [0, -1, 3]])
    got = convcli.convolve(volume, k2, channel_axis=None, boundary="nearest", correlate=True)
    np.testing.assert_allclose(
        got, ndimage.correlate(volume, k2[np.newaxis], mode="nearest"), atol=1e-13
    )
    got = convcli.convolve(volume, "sobel-x", channel_axis=None)
    want = ndimage.convolve(volume, get_kernel("sobel-x").matrix[np.newaxis], mode="reflect")
    np.testing.assert_allclose(got, want, atol=1e-13)


def test_a_parametric_kernel_on_a_volume_takes_its_dimension(volume):
    """Without ``ndim`` a Gaussian or box on a volume is 3-D; a given ``ndim`` is kept."""
    got = convcli.convolve(volume, "box:size=3", channel_axis=None)
    np.testing.assert_allclose(got, ndimage.uniform_filter(volume, 3, mode="reflect"), atol=1e-13)
    got = convcli.convolve(volume, "box:size=3,ndim=2", channel_axis=None)
    want = ndimage.uniform_filter(volume, (1, 3, 3), mode="reflect")
    np.testing.assert_allclose(got, want, atol=1e-13)
    assert for_ndim(get_kernel("gaussian:sigma=1"), 3).shape == (9, 9, 9)
    assert for_ndim(get_kernel("sobel-x"), 3).shape == (3, 3)  # not parametric: as it is


def test_chains_and_banks(volume):
    got = convcli.convolve(
        volume, ["gaussian:sigma=1,ndim=3", "laplacian"], channel_axis=None, boundary="wrap"
    )
    smooth = ndimage.gaussian_filter(volume, 1.0, mode="wrap")
    want = ndimage.convolve(smooth, get_kernel("laplacian").matrix[np.newaxis], mode="wrap")
    np.testing.assert_allclose(got, want, atol=1e-12)
    stacked = convcli.convolve(
        volume, ["box:size=3,ndim=3", "sobel-y"], channel_axis=None, combine="stack"
    )
    assert stacked.shape == (2, *volume.shape)
    np.testing.assert_allclose(stacked[0], ndimage.uniform_filter(volume, 3), atol=1e-13)


SLAB_CASES = [
    ("direct", "box:size=3,ndim=3"),
    ("separable", "gaussian:sigma=1.5,ndim=3"),
    ("fft", "gaussian:sigma=1,ndim=3"),
    ("direct", "[[1, 2, -1], [0, 3, 1]]"),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("boundary", list(BOUNDARIES))
@pytest.mark.parametrize("method, spec", SLAB_CASES)
def test_slabs_are_the_whole_volume_bit_for_bit(backend, boundary, method, spec):
    """Any cut into slabs of z gives the in-memory numbers exactly, FFT and chains too."""
    vol = np.random.default_rng(7).random((40, 6, 7)).astype(np.float32)
    options = Options.make(boundary=boundary, fill_value=0.25, method=method)
    chosen = get_backend(backend, boundary=options.boundary, fill=0.25)
    for operation in (as_operation(spec), as_operation([spec, "box:size=2,ndim=3"])):
        operation = for_ndim(operation, 3)
        whole = convolve_volume(vol, operation, options, chosen, np.float32)
        # torch's CPU conv3d costs milliseconds a call: fewer cuts (its tiles are the same)
        for slab in (7,) if backend == "torch" else (1, 7, 33):
            cut = convolve_volume(vol, operation, options, chosen, np.float32, slab=slab)
            assert np.array_equal(cut, whole), (slab, operation.name)


def test_method_choice():
    assert choose_volume_method((17, 17, 17), True).method == "separable"
    assert choose_volume_method((3, 3, 3), False).method == "direct"
    assert choose_volume_method((9, 9, 9), False).method == "fft"
    assert choose_volume_method((1, 1, 1), True).method == "direct"


def test_three_d_kernels_and_their_errors(tmp_path):
    matrix = np.arange(12.0).reshape(2, 2, 3)
    (tmp_path / "k.json").write_text(json.dumps({"matrix": matrix.tolist()}))
    (tmp_path / "k.toml").write_text(f"matrix = {matrix.tolist()}\norigin = [0, 1, 2]\n")
    assert get_kernel(str(tmp_path / "k.json")).shape == (2, 2, 3)
    kernel = get_kernel(str(tmp_path / "k.toml"))
    assert kernel.origin == (0, 1, 2) and not kernel.separable
    with pytest.raises(KernelError, match="3-D kernel: it filters volumes"):
        convcli.convolve(np.zeros((5, 5)), kernel)
    with pytest.raises(KernelError, match="ndim must be 1, 2 or 3"):
        get_kernel("gaussian:sigma=1,ndim=4")
    vol = np.random.default_rng(8).random((6, 7, 8))
    got = convcli.convolve(vol, kernel, channel_axis=None, boundary="fill")
    flipped = matrix[::-1, ::-1, ::-1]
    # the origin (0, 1, 2) of the kernel lands on each output voxel
    ext = np.pad(vol, ((1, 0), (0, 1), (0, 2)))
    want = signal.correlate(ext, flipped, mode="valid")
    np.testing.assert_allclose(got, want, atol=1e-12)


# -- the command line --------------------------------------------------------------------------
@pytest.fixture
def stack(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    rng = np.random.default_rng(9)
    data = (rng.random((8, 20, 24)) * 255).astype(np.uint8)
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, data)
    return path, data


def test_cli_npy_volume(tmp_path, cli):
    vol = np.random.default_rng(10).random((10, 12, 14)).astype(np.float32)
    np.save(tmp_path / "v.npy", vol)
    result = cli(
        "apply", "--volume", "-k", "gaussian:sigma=1", str(tmp_path / "v.npy"), "-o",
        str(tmp_path / "out.npy"),
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    out = np.load(tmp_path / "out.npy")
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, ndimage.gaussian_filter(vol, 1.0), atol=1e-6)


def test_cli_tiff_z_stack_keeps_its_depth_and_pages(stack, cli):
    import tifffile

    path, data = stack
    result = cli("apply", "--volume", "-k", "box:size=3", str(path))
    assert result.exit_code == 0, result.stderr
    target = path.with_name("stack.box-size3.tif")
    assert result.stdout.strip() == str(target)
    with tifffile.TiffFile(target) as tif:
        assert len(tif.pages) == 8
    out = tifffile.imread(target)
    want = np.rint(ndimage.uniform_filter(data.astype(np.float64), 3, mode="reflect"))
    assert out.dtype == np.uint8 and np.array_equal(out, want.astype(np.uint8))


def test_cli_streams_slabs_identical_to_memory(tmp_path, cli):
    vol = np.random.default_rng(11).random((60, 40, 40)).astype(np.float32)
    np.save(tmp_path / "v.npy", vol)
    outs = {}
    for memory in ("1GiB", "1MiB"):
        target = tmp_path / f"out-{memory}.npy"
        result = cli(
            "apply", "--volume", "-k", "gaussian:sigma=2", "-k", "[[[1,2],[3,4]]]",
            "--memory", memory, str(tmp_path / "v.npy"), "-o", str(target),
        )  # fmt: skip
        assert result.exit_code == 0, result.stderr
        outs[memory] = np.load(target)
    assert np.array_equal(outs["1GiB"], outs["1MiB"])
    explained = cli(
        "apply", "--volume", "-k", "gaussian:sigma=2", "--memory", "1MiB",
        str(tmp_path / "v.npy"), "-o", str(tmp_path / "x.npy"), "--explain",
    )  # fmt: skip
    assert "streamed in slabs of z" in explained.stdout
    assert not (tmp_path / "x.npy").exists()


def test_cli_volume_errors(tmp_path, stack, cli):
    np.save(tmp_path / "flat.npy", np.zeros((4, 5)))
    result = cli("apply", "--volume", "-k", "box", str(tmp_path / "flat.npy"))
    assert result.exit_code == 1
    assert result.stderr.strip().endswith("is 2-D; a volume is a 3-D array (depth, rows, columns)")
    result = cli("apply", "-k", "gaussian:sigma=1,ndim=3", str(stack[0]))
    assert result.exit_code == 2 and "give --volume" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    result = cli("apply", "--volume", "--linear", "-k", "box", str(stack[0]))
    assert result.exit_code == 2 and "--linear is for images" in result.stderr
    result = cli("apply", "--volume", "-k", "box", str(stack[0]), "-o", str(tmp_path / "x.png"))
    assert result.exit_code == 2 and "not PNG" in result.stderr
    assert not list(tmp_path.glob("x*")) and not list(tmp_path.glob(".*part"))


def test_cli_explain_describes_the_nd_plan(stack, cli):
    result = cli("apply", "--volume", "-k", "gaussian:sigma=1.5", str(stack[0]), "--explain")
    assert result.exit_code == 0, result.stderr
    text = result.stdout
    assert "volume 8x20x24 (depth x rows x columns) uint8" in text
    assert "3-D convolution, same mode on every axis" in text
    assert "13x13x13" in text and "method separable" in text
    assert "extended by z 6/6; y 6/6; x 6/6" in text


def test_a_3d_kernel_has_a_size_limit():
    with pytest.raises(KernelError, match="more than a 3-D kernel may hold"):
        get_kernel("gaussian:sigma=40,ndim=3")
    with pytest.raises(KernelError, match="more taps than a 3-D kernel may hold"):
        convcli.Kernel(np.zeros((257, 256, 256), np.float32))


@pytest.mark.parametrize("correlate", [False, True])
def test_compat_ndimage_centres_even_kernels_as_ndimage(tmp_path, cli, correlate):
    rng = np.random.default_rng(14)
    vol = rng.random((9, 10, 11))
    k = rng.random((2, 4, 3))
    np.save(tmp_path / "v.npy", vol)
    (tmp_path / "k.json").write_text(json.dumps({"matrix": k.tolist()}))
    flags = ["--correlate"] if correlate else []
    r = cli("apply", "--volume", "--compat", "ndimage", *flags, "-k", str(tmp_path / "k.json"),
            str(tmp_path / "v.npy"), "-o", str(tmp_path / "o.npy"))  # fmt: skip
    assert r.exit_code == 0, r.stderr
    want = (ndimage.correlate if correlate else ndimage.convolve)(vol, k, mode="reflect")
    np.testing.assert_allclose(np.load(tmp_path / "o.npy"), want, atol=1e-12)


def test_inputs_that_are_not_volumes(tmp_path, cli):
    import tifffile

    write = tifffile.imwrite
    (tmp_path / "a.png").write_bytes(b"")
    write(tmp_path / "rgb.tif", np.zeros((4, 5, 6, 3), np.uint8), photometric="rgb")
    with tifffile.TiffWriter(tmp_path / "ragged.tif") as tif:
        tif.write(np.zeros((4, 5), np.uint8))
        tif.write(np.zeros((4, 6), np.uint8))
    np.save(tmp_path / "nan.npy", np.full((3, 4, 5), np.nan))
    cases = {
        "a.png": "a volume is read from a 3-D .npy array or a multi-page TIFF",
        "rgb.tif": "a TIFF z-stack holds one gray sample per pixel",
        "ragged.tif": "page 2 is 4x6 uint8, page 1 4x5 uint8: the slices of a volume must match",
        "nan.npy": "NaN",
    }
    for name, message in cases.items():
        r = cli("apply", "--volume", "-k", "box", str(tmp_path / name), "-d", str(tmp_path / "o"))
        assert r.exit_code == 1, (name, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], (name, lines)
        assert lines[0].startswith(f"convcli: error: {tmp_path / name}: ")
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())
