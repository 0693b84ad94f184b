"""The torch backend: every mode, boundary and method against the slow reference and the scipy
backend, banks as one conv2d call, devices, and the seed notebook's nn.Conv2d layer."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import convcli  # noqa: E402
from conftest import BOUNDARIES, METHODS, MODES, PARITY_KERNELS, close32, reference  # noqa: E402
from convcli.compute.backends import get_backend  # noqa: E402
from convcli.compute.backends.torch_backend import TorchBackend, _fast_length  # noqa: E402
from convcli.compute.boundary import Boundary, pad  # noqa: E402
from convcli.compute.engine import Options, plan_kernel  # noqa: E402
from convcli.errors import BackendError  # noqa: E402
from convcli.kernels.model import Kernel  # noqa: E402

pytestmark = pytest.mark.torch

KERNEL_SHAPES = [(1, 1), (3, 3), (4, 4), (2, 5), (1, 4), (6, 1), (7, 7)]
FILL = 0.75


# -- parity with the reference --------------------------------------------------------------------
@pytest.mark.parametrize("shape", KERNEL_SHAPES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("method", METHODS)
def test_every_method_matches_the_reference(rng, shape, mode, boundary, method):
    """float64 stays float64 on the CPU: agreement to 1e-9, convolution and correlation."""
    x = rng.normal(size=(10, 9))
    k = rng.normal(size=shape)
    for correlate in (False, True):
        want = reference(x, k, mode, boundary, fill=FILL, correlate=correlate)
        got = convcli.convolve(
            x, k, mode=mode, boundary=boundary, fill_value=FILL, correlate=correlate,
            method=method, backend="torch",
        )  # fmt: skip
        assert got.dtype == np.float64
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("mode", ["full", "same"])
@pytest.mark.parametrize("method", METHODS)
def test_extensions_longer_than_the_image(rng, boundary, mode, method):
    """A 7x9 kernel on a 3x4 image: torch's reflect/circular stop at one pass, ours (like
    numpy.pad) reflect and wrap again."""
    x = rng.normal(size=(3, 4))
    k = rng.normal(size=(7, 9))
    want = reference(x, k, mode, boundary, fill=-1.5)
    got = convcli.convolve(
        x, k, mode=mode, boundary=boundary, fill_value=-1.5, method=method, backend="torch"
    )
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("rows, cols", [(1, 5), (5, 1), (1, 1), (2, 2)])
def test_tiny_images(rng, boundary, rows, cols):
    """Axes of length 1 and 2 cannot be reflected natively by F.pad at all."""
    x = rng.normal(size=(rows, cols))
    k = rng.normal(size=(3, 3))
    for mode in ("full", "same"):
        want = reference(x, k, mode, boundary, fill=2.0)
        got = convcli.convolve(x, k, mode=mode, boundary=boundary, fill_value=2.0, backend="torch")
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("boundary", list(Boundary))
@pytest.mark.parametrize(
    "pads",
    [((1, 2), (0, 3)), ((0, 0), (4, 0)), ((2, 0), (0, 0)), ((3, 3), (4, 4)), ((9, 1), (0, 11))],
)
def test_the_extension_is_numpy_pad(rng, boundary, pads):
    """F.pad where torch allows it, the border gathered through the index map elsewhere: both
    are convcli.compute.boundary.pad exactly (a 3x4 image: some widths reach past it)."""
    from convcli.compute.backends.torch_backend import _extend

    planes = rng.normal(size=(2, 3, 4))
    got = _extend(torch.from_numpy(planes)[:, None], pads, boundary, -3.0)[:, 0].numpy()
    np.testing.assert_array_equal(got, pad(planes, pads, boundary, -3.0))


@pytest.mark.parametrize("kernel", PARITY_KERNELS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_float32_matches_the_scipy_backend(rng, kernel, mode, boundary):
    """Colour float32 images, the method auto picks: torch and scipy agree to float32."""
    x = (rng.random(size=(23, 26, 3)) * 255).astype(np.float32)
    kwargs = {"mode": mode, "boundary": boundary, "fill_value": 17.0}
    want = convcli.convolve(x, kernel, backend="scipy", **kwargs)
    got = convcli.convolve(x, kernel, backend="torch", **kwargs)
    assert got.dtype == np.float32
    close32(got, want)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_large_non_separable_kernel(rng, method, boundary):
    """A 21x21 random kernel (auto picks fft) on a float32 image, against the reference."""
    x = rng.random(size=(40, 37)).astype(np.float32)
    k = rng.normal(size=(21, 21))
    want = reference(x, k, "same", boundary, fill=FILL)
    got = convcli.convolve(x, k, boundary=boundary, fill_value=FILL, method=method, backend="torch")
    assert got.dtype == np.float32
    close32(got, want)


def test_auto_picks_fft_for_the_large_kernel(rng):
    plan = plan_kernel(Kernel(rng.normal(size=(21, 21))), Options(), (40, 37))
    assert plan.method == "fft"


@pytest.mark.parametrize("shape", [(12, 15), (12, 15, 3), (12, 15, 4)], ids=["gray", "rgb", "rgba"])
@pytest.mark.parametrize("method", METHODS)
def test_image_layouts(rng, shape, method):
    """Channels are filtered one by one (they are the batch of conv2d)."""
    x = rng.normal(size=shape)
    k = "gaussian:sigma=1"
    got = convcli.convolve(x, k, boundary="mirror", method=method, backend="torch")
    want = convcli.convolve(x, k, boundary="mirror", method=method, backend="scipy")
    assert got.shape == want.shape == shape
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)


def test_channel_axis_first(rng):
    x = rng.normal(size=(3, 12, 15))
    got = convcli.convolve(x, "sobel-y", channel_axis=0, backend="torch")
    want = convcli.convolve(x, "sobel-y", channel_axis=0, backend="scipy")
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_1d_signals(mode, boundary):
    x = np.array([1, 2, 3, 4, 5, 4, 3, 2, 1], dtype=float)
    k = [0.25, 0.5, 0.75, 0.5, 0.25]
    want = reference(x[np.newaxis], np.asarray(k), mode, boundary, fill=FILL)[0]
    for method in METHODS:
        got = convcli.convolve(
            x, k, mode=mode, boundary=boundary, fill_value=FILL, method=method, backend="torch"
        )
        assert got.ndim == 1
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)


def test_integer_and_uint8_input_compute_in_the_work_dtype(rng):
    x = rng.integers(0, 256, size=(9, 11)).astype(np.uint8)
    got = convcli.convolve(x, "box", backend="torch")
    assert got.dtype == np.float32
    close32(got, convcli.convolve(x, "box", backend="scipy"))
    got16 = convcli.convolve(x.astype(np.uint16), "box", backend="torch")
    assert got16.dtype == np.float64


# -- banks ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("combine", ["stack", "magnitude", "sum", "mean", "max", "min"])
@pytest.mark.parametrize("shape", [(20, 24), (20, 24, 3)], ids=["gray", "rgb"])
def test_banks_match_the_scipy_backend(rng, combine, shape):
    x = rng.random(size=shape).astype(np.float32)
    bank = ["sobel-x", "sobel-y", "box"]
    got = convcli.convolve(x, bank, combine=combine, backend="torch")
    want = convcli.convolve(x, bank, combine=combine, backend="scipy")
    if combine == "stack":
        assert got.shape == (3, *shape)
    close32(got, want)


class Spy:
    """Counts the calls to torch.nn.functional.conv2d and the output channels of each."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.channels: list[int] = []
        real = torch.nn.functional.conv2d

        def conv2d(x, weight, *args, **kwargs):
            self.channels.append(int(weight.shape[0]))
            return real(x, weight, *args, **kwargs)

        monkeypatch.setattr(torch.nn.functional, "conv2d", conv2d)


def test_a_same_shaped_bank_is_one_conv2d_call(rng, monkeypatch):
    x = rng.random(size=(20, 24, 3)).astype(np.float32)
    spy = Spy(monkeypatch)
    got = convcli.convolve(x, ["sobel-x", "sobel-y", "box"], combine="stack", backend="torch")
    assert spy.channels == [3]  # one call, K = 3 output channels, channels as the batch
    want = convcli.convolve(x, ["sobel-x", "sobel-y", "box"], combine="stack", backend="scipy")
    close32(got, want)


def test_a_separable_bank_is_two_conv2d_calls(rng, monkeypatch):
    x = rng.normal(size=(30, 31))
    bank = ["gaussian:size=15,sigma=3", "gaussian:size=15,sigma=2"]
    spy = Spy(monkeypatch)
    got = convcli.convolve(x, bank, combine="stack", method="separable", backend="torch")
    assert spy.channels == [2, 2]  # (kh, 1) passes together, then (1, kw) as groups
    want = convcli.convolve(x, bank, combine="stack", method="direct", backend="scipy")
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)


def test_a_mixed_bank_falls_back_to_one_call_per_kind(rng, monkeypatch):
    """Members of different shapes cannot share a weight tensor; the results keep the bank's
    order."""
    x = rng.normal(size=(16, 18))
    bank = [Kernel(rng.normal(size=(3, 3))), Kernel(rng.normal(size=(5, 5))),
            Kernel(rng.normal(size=(3, 3)))]  # fmt: skip
    spy = Spy(monkeypatch)
    got = convcli.convolve(x, bank, combine="stack", method="direct", backend="torch")
    assert sorted(spy.channels) == [1, 2]
    want = convcli.convolve(x, bank, combine="stack", method="direct", backend="scipy")
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)


def test_correlate_many_keeps_the_order_of_mixed_methods_and_pads(rng):
    """Plans grouped by extension and kind come back in the order they were given."""
    planes = rng.normal(size=(2, 13, 14))
    kernels = [rng.normal(size=s) for s in [(3, 3), (4, 4), (3, 3), (4, 4), (1, 5)]]
    methods = ["direct", "fft", "separable", "direct", "fft"]
    modes = ["same", "same", "full", "same", "valid"]
    plans = [
        plan_kernel(Kernel(k), Options.make(mode=mode, method=m), (13, 14))
        for k, m, mode in zip(kernels, methods, modes, strict=True)
    ]
    outs = TorchBackend().correlate_many(planes, plans, Boundary.WRAP, 0.0)
    for plan, out in zip(plans, outs, strict=True):
        ext = pad(planes, plan.pads, Boundary.WRAP)
        want = np.stack([reference(e, plan.weights, "valid", "fill", correlate=True) for e in ext])
        np.testing.assert_allclose(out, want, rtol=1e-9, atol=1e-9)


def test_read_only_and_reversed_planes(rng):
    """torch.from_numpy refuses negative strides and warns on read-only memory."""
    planes = rng.normal(size=(2, 9, 10))
    plan = plan_kernel(Kernel(rng.normal(size=(3, 3))), Options())
    want = TorchBackend().correlate(planes.copy(), plan, Boundary.REFLECT, 0.0)
    frozen = planes.copy()
    frozen.setflags(write=False)
    np.testing.assert_array_equal(TorchBackend().correlate(frozen, plan, Boundary.REFLECT, 0), want)
    reversed_ = planes[::-1].copy()[::-1]
    np.testing.assert_array_equal(
        TorchBackend().correlate(reversed_, plan, Boundary.REFLECT, 0), want
    )


# -- devices --------------------------------------------------------------------------------------
def test_cpu_and_auto_devices():
    backend = get_backend("torch", boundary=Boundary.FILL, fill=0.0, device="cpu")
    assert isinstance(backend, TorchBackend)
    assert backend.name == "torch"
    assert backend.device.type == "cpu"
    auto = TorchBackend().on_device("auto")
    if torch.cuda.is_available():
        assert auto.device.type == "cuda"
    elif not (torch.backends.mps.is_available()):
        assert auto.device.type == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
def test_missing_cuda_is_a_clear_error(rng):
    with pytest.raises(BackendError, match=r"^--device cuda: no CUDA device is available"):
        TorchBackend().on_device("cuda")
    with pytest.raises(BackendError, match="no CUDA device"):
        convcli.convolve(rng.normal(size=(5, 5)), "box", device="cuda")


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="an MPS device is present")
def test_missing_mps_is_a_clear_error():
    with pytest.raises(BackendError, match=r"^--device mps: no MPS device is available"):
        TorchBackend().on_device("mps")


def test_unknown_device_is_a_clear_error():
    with pytest.raises(BackendError, match="unknown device"):
        TorchBackend().on_device("tpu")


def test_a_cpu_only_backend_refuses_a_gpu_device():
    with pytest.raises(BackendError, match="needs --backend torch"):
        get_backend("scipy", boundary=Boundary.FILL, fill=0.0, device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_cuda_matches_the_reference_in_float32(rng, method, boundary):
    """GPUs compute float32 (even for float64 planes, which come back float64)."""
    x = rng.normal(size=(33, 47, 3))
    k = rng.normal(size=(7, 6))
    got = convcli.convolve(
        x, k, boundary=boundary, fill_value=FILL, method=method, backend="torch", device="cuda"
    )
    assert got.dtype == np.float64
    for c in range(3):
        close32(got[..., c], reference(x[..., c], k, "same", boundary, fill=FILL))
    bank = convcli.convolve(x, ["sobel-x", "sobel-y"], combine="magnitude", device="cuda")
    close32(bank, convcli.convolve(x, ["sobel-x", "sobel-y"], combine="magnitude"))


# -- the seed notebook ----------------------------------------------------------------------------
def test_the_seed_conv_layer():
    """nn.Conv2d(1, 3, 3) with the notebook's weights and zero bias is correlate=True, valid."""
    w0 = np.ones((3, 3)) / 9
    w1 = [[-1, 0, 1]] * 3
    w2 = [[1, 1, 1], [0, 0, 0], [-1, -1, -1]]
    layer = torch.nn.Conv2d(1, 3, 3)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(np.array([w0, w1, w2]), dtype=torch.float32)[:, None])
        layer.bias.zero_()
    x = np.zeros((16, 16), dtype=np.float32)
    x[:4, :4] = 1
    with torch.no_grad():
        want = layer(torch.from_numpy(x)[None, None])[0].numpy()
    got = convcli.convolve(
        x, [w0.tolist(), w1, w2], combine="stack", correlate=True, mode="valid", backend="torch"
    )
    assert got.shape == want.shape == (3, 14, 14)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_fast_fft_lengths():
    assert [_fast_length(n) for n in (1, 2, 11, 13, 17, 3014, 4014)] == [
        1, 2, 12, 14, 18, 3024, 4032,
    ]  # fmt: skip
