"""The PyTorch backend: the valid correlation of each plan with ``torch.nn.functional.conv2d``.

Why torch: ``F.conv2d`` is a cross-correlation over a batch, which is exactly the shape of the
work. The planes (colour channels, or the channels of a stack) are the batch, ``(N, 1, H, W)``,
and a bank of K kernels that share shape, centre and extension is one weight tensor
``(K, 1, kh, kw)``: one call computes every member on every plane, on the CPU or on a GPU.

The boundary is applied first (``F.pad`` natively where torch has the mode and allows the
width; an index map of :func:`convcli.compute.boundary.index_map` with ``index_select`` otherwise,
which covers our ``reflect`` and extensions longer than the image), then the ``direct``,
``separable`` (two 1-D ``conv2d`` passes per rank) or ``fft`` (``torch.fft.rfft2``) method
computes the valid correlation. Float32 is computed on GPUs (MPS has no float64); the CPU keeps
the planes' dtype. Results come back as numpy arrays of the planes' dtype.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import numpy as np
import torch
import torch.nn.functional as F

from convcli.compute.backends.base import Backend, Plan
from convcli.compute.blocks import smooth_length
from convcli.compute.boundary import TORCH_PAD, Boundary, index_map
from convcli.errors import BackendError

Pads = tuple[tuple[int, int], tuple[int, int]]
K = TypeVar("K", bound=Hashable)


def _resolve(device: str) -> torch.device:
    """The torch device ``--device`` names, or a one-line error saying why it is not there."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise BackendError(
            f"--device {device}: unknown device (choose from auto, cpu, cuda, mps)"
        ) from None
    if dev.type == "cpu":
        return dev
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise BackendError(f"--device {device}: no CUDA device is available (torch sees none)")
        if dev.index is not None and dev.index >= count:
            raise BackendError(f"--device {device}: torch sees only {count} CUDA device(s)")
        return dev
    if dev.type == "mps":
        if not _mps_available():
            raise BackendError(
                f"--device {device}: no MPS device is available (torch sees none; it needs "
                "Apple silicon and a torch build with MPS)"
            )
        return dev
    raise BackendError(f"--device {device}: unknown device (choose from auto, cpu, cuda, mps)")


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


@contextmanager
def _exact_fp32(device: torch.device) -> Iterator[None]:
    """cuDNN convolutions may run float32 as TF32 (10-bit mantissa) by default, far outside
    the tolerance every method promises; ask for IEEE float32 for the duration of the call."""
    if device.type != "cuda":
        yield
        return
    conv = getattr(torch.backends.cudnn, "conv", None)
    if conv is not None and hasattr(conv, "fp32_precision"):  # torch >= 2.9
        old_precision = conv.fp32_precision
        conv.fp32_precision = "ieee"
        try:
            yield
        finally:
            conv.fp32_precision = old_precision
    else:
        old_allow = torch.backends.cudnn.allow_tf32
        torch.backends.cudnn.allow_tf32 = False
        try:
            yield
        finally:
            torch.backends.cudnn.allow_tf32 = old_allow


def _fast_length(n: int) -> int:
    """The smallest 2-3-5-7-smooth length >= n: FFT sizes pocketfft and cuFFT do quickly."""
    return smooth_length(n, (3, 5, 7))


class TorchBackend(Backend):
    """Valid correlation with ``torch.nn.functional.conv2d`` (and ``torch.fft``) on a device.

    ``TorchBackend()`` runs on the CPU; :meth:`on_device` gives one bound to another device.
    """

    name = "torch"

    def __init__(self, device: torch.device | None = None) -> None:
        self.device = device if device is not None else torch.device("cpu")

    def __repr__(self) -> str:
        return f"TorchBackend(device={str(self.device)!r})"

    def on_device(self, device: str) -> TorchBackend:
        dev = _resolve(device)
        return self if dev == self.device else TorchBackend(dev)

    def compute_dtype(self, dtype: np.dtype) -> torch.dtype:
        """float32 on GPUs (MPS has no float64, and GPUs are slow at it); the planes' own
        dtype on the CPU."""
        if self.device.type != "cpu" or dtype == np.float32:
            return torch.float32
        return torch.float64

    # -- the contract -------------------------------------------------------------------------
    def correlate(
        self, planes: np.ndarray, plan: Plan, boundary: Boundary, fill: float
    ) -> np.ndarray:
        return self.correlate_many(planes, [plan], boundary, fill)[0]

    def correlate_many(
        self, planes: np.ndarray, plans: list[Plan], boundary: Boundary, fill: float
    ) -> list[np.ndarray]:
        """Plans that share an extension share one padded tensor; those that also share
        shape and method run as one batched computation (one ``conv2d`` for ``direct``)."""
        if planes.ndim != 3:
            raise ValueError(f"expected planes of shape (N, H, W), got {planes.shape}")
        results: dict[int, np.ndarray] = {}
        with torch.inference_mode(), _exact_fp32(self.device):
            x = self._to_tensor(planes)
            for pads, indices in _groups(plans, lambda p: p.pads).items():
                ext = _extend(x, pads, boundary, fill)
                by_pads = [plans[i] for i in indices]
                for (_, method), members in _groups(by_pads, _kind).items():
                    group = [by_pads[i] for i in members]
                    if method == "fft":
                        out = _fft(ext, group)
                    elif method == "separable":
                        out = _separable(ext, group)
                    else:
                        out = _direct(ext, group)
                    # one transfer per group; each member is a (N, Ho, Wo) view of it
                    arr = out.cpu().numpy()
                    if arr.dtype != planes.dtype:
                        arr = arr.astype(planes.dtype)
                    for k, i in enumerate(members):
                        results[indices[i]] = arr[:, k]
        return [results[i] for i in range(len(plans))]

    def _to_tensor(self, planes: np.ndarray) -> torch.Tensor:
        """(N, 1, H, W) on the device in the compute dtype, sharing the numpy memory when it
        can (CPU, same dtype)."""
        if planes.dtype not in (np.float32, np.float64):
            planes = planes.astype(np.float64)
        if not planes.flags.writeable or any(s < 0 for s in planes.strides):
            # torch.from_numpy refuses negative strides and warns on read-only memory
            planes = np.array(planes, order="C", copy=True)
        t = torch.from_numpy(planes)
        dtype = self.compute_dtype(planes.dtype)
        if t.dtype != dtype:  # convert before the transfer: half the bytes to move
            t = t.to(dtype)
        return t.to(self.device).unsqueeze(1)


def _groups(items: list[Plan], key: Callable[[Plan], K]) -> dict[K, list[int]]:
    """Indices of ``items`` grouped by ``key(item)``, in first-seen order."""
    out: dict[K, list[int]] = {}
    for i, item in enumerate(items):
        out.setdefault(key(item), []).append(i)
    return out


def _kind(plan: Plan) -> tuple[tuple[int, int], str]:
    """Plans of one kind (on one extension) run as one batched computation."""
    return plan.shape, plan.method


# -- boundary -----------------------------------------------------------------------------------
def _extend(x: torch.Tensor, pads: Pads, boundary: Boundary, fill: float) -> torch.Tensor:
    """``x`` (N, 1, H, W) extended by ``pads`` exactly as :func:`convcli.compute.boundary.pad`."""
    (top, bottom), (left, right) = pads
    if not (top or bottom or left or right):
        return x
    h, w = x.shape[-2], x.shape[-1]
    widths = (left, right, top, bottom)
    if boundary is Boundary.FILL:
        return F.pad(x, widths, mode="constant", value=fill)
    native = (
        boundary is Boundary.NEAREST
        # torch reflects only once and wraps at most once around the axis
        or (boundary is Boundary.MIRROR and max(top, bottom) < h and max(left, right) < w)
        or (boundary is Boundary.WRAP and max(top, bottom) <= h and max(left, right) <= w)
    )
    if native:
        return F.pad(x, widths, mode=TORCH_PAD[boundary])
    # F.pad has no symmetric mode (our reflect) and stops at one reflection or wrap
    return _extend_by_index(x, pads, boundary)


def _extend_by_index(x: torch.Tensor, pads: Pads, boundary: Boundary) -> torch.Tensor:
    """Any boundary but fill, any width: the image copied into the middle once, and only the
    border gathered through the index map of every extended position (as numpy.pad does)."""
    (top, bottom), (left, right) = pads
    h, w = x.shape[-2], x.shape[-1]
    rows = torch.from_numpy(index_map(h, top, bottom, boundary)).to(x.device)
    cols = torch.from_numpy(index_map(w, left, right, boundary)).to(x.device)
    ext = x.new_empty((*x.shape[:-2], h + top + bottom, w + left + right))
    ext[..., top : top + h, left : left + w] = x
    if top:
        ext[..., :top, left : left + w] = x.index_select(2, rows[:top])
    if bottom:
        ext[..., top + h :, left : left + w] = x.index_select(2, rows[top + h :])
    # the columns come from the rows already extended, which fills the corners too
    band = ext[..., left : left + w]
    if left:
        ext[..., :left] = band.index_select(3, cols[:left])
    if right:
        ext[..., left + w :] = band.index_select(3, cols[left + w :])
    return ext


# -- methods: each returns (N, K, Ho, Wo), one channel per plan ---------------------------------
def _weights(values: list[np.ndarray], like: torch.Tensor) -> torch.Tensor:
    stacked = np.stack([np.asarray(v) for v in values])
    return torch.from_numpy(stacked).to(device=like.device, dtype=like.dtype)


def _direct(ext: torch.Tensor, plans: list[Plan]) -> torch.Tensor:
    """One conv2d with a (K, 1, kh, kw) weight: every kernel of the bank on every plane."""
    w = _weights([p.weights for p in plans], ext).unsqueeze(1)
    return F.conv2d(ext, w)


def _separable(ext: torch.Tensor, plans: list[Plan]) -> torch.Tensor:
    """A (kh, 1) pass for every factor of every plan in one conv2d, then the matching
    (1, kw) passes as one grouped conv2d, then each plan's ranks summed."""
    kh, kw = plans[0].shape
    if kh == 1 or kw == 1:
        # one of the passes would be a 1-tap scaling: the direct pass is the same arithmetic
        return _direct(ext, plans)
    cols = _weights([c for p in plans for c, _ in p.factors], ext)
    rows = _weights([r for p in plans for _, r in p.factors], ext)
    count = cols.shape[0]
    y = F.conv2d(ext, cols.view(count, 1, kh, 1))
    y = F.conv2d(y, rows.view(count, 1, 1, kw), groups=count)
    ranks = [len(p.factors) for p in plans]
    if all(r == 1 for r in ranks):
        return y
    parts = torch.split(y, ranks, dim=1)
    return torch.cat([part.sum(dim=1, keepdim=True) for part in parts], dim=1)


def _fft(ext: torch.Tensor, plans: list[Plan]) -> torch.Tensor:
    """Valid correlation through the spectrum: conj(W) * X is the circular correlation, and
    with a transform at least as long as the extension the first Ho x Wo values never wrap."""
    kh, kw = plans[0].shape
    hp, wp = ext.shape[-2], ext.shape[-1]
    ho, wo = hp - kh + 1, wp - kw + 1
    size = (_fast_length(hp), _fast_length(wp))
    spectrum = torch.fft.rfft2(ext, s=size)  # (N, 1, Hf, Wf // 2 + 1)
    kernels = torch.fft.rfft2(_weights([p.weights for p in plans], ext), s=size)  # (K, ...)
    out = torch.fft.irfft2(spectrum * kernels.conj(), s=size)  # (N, K, Hf, Wf)
    return out[..., :ho, :wo]
