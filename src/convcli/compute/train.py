"""Learning a kernel as a convolutional network learns one: an ``nn.Conv2d`` trained by
gradient descent on the same examples and semantics as :mod:`convcli.compute.fit`.

The input planes are extended as ``apply`` extends them, so the layer (``padding=0``, no bias)
computes exactly the valid correlation apply computes; its weights are the correlation
weights, flipped back into a kernel for a convolution. The loss is the mean squared error,
which is the least-squares objective, so training converges to the least-squares kernel.
Data are scaled to unit range for the optimiser and the weights scaled back.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from convcli.compute.fit import (
    FitOptions,
    FitResult,
    MemberFit,
    Pair,
    check_shapes,
    describe,
    extend,
    prepare,
    residuals,
)
from convcli.errors import BackendError, UsageError
from convcli.kernels.model import AnyKernel, Kernel, KernelBank
from convcli.machine import threads_per_worker

OPTIMIZERS = ("lbfgs", "adam")

#: how training reports progress: (step, steps, loss)
Progress = Callable[[int, int, float], None]


def train_kernel(
    pairs: Sequence[tuple[Any, Any]] | Sequence[Pair],
    options: FitOptions,
    *,
    images: bool = True,
    optimizer: str = "lbfgs",
    steps: int | None = None,
    learning_rate: float | None = None,
    seed: int = 0,
    device: str = "cpu",
    progress: Progress | None = None,
) -> FitResult:
    """Train ``nn.Conv2d`` weights that map each input to its target (see
    :func:`convcli.compute.fit.fit_kernel` for ``pairs`` and ``options``).

    ``optimizer`` is ``lbfgs`` (default: the loss is quadratic, and L-BFGS reaches the
    least-squares kernel to float64 precision in a few dozen steps) or ``adam`` (the usual
    choice for networks; slower to converge). Weights start from ``torch.manual_seed(seed)``.
    """
    constrained = options.total is not None or options.symmetric or options.separable
    if options.ridge or options.offset or constrained:
        raise UsageError(
            "--backend torch trains the plain kernel; --ridge, --offset, --sum, --symmetric "
            "and --separable need the least-squares solver (--backend scipy)"
        )
    if optimizer not in OPTIMIZERS:
        raise UsageError(f"--optimizer {optimizer!r} is not one of {', '.join(OPTIMIZERS)}")
    try:
        import torch
    except ImportError:
        raise BackendError("--backend torch needs PyTorch: pip install 'convcli[torch]'") from None
    started = time.perf_counter()
    prepared = [
        p if isinstance(p, Pair) else prepare(p[0], p[1], options, images=images) for p in pairs
    ]
    for pair in prepared:
        check_shapes(pair, options)
    each = options.channels == "each"
    members = prepared[0].inputs.shape[0] if each else prepared[0].targets.shape[0]
    scale = max(float(np.max(np.abs(p.inputs))) for p in prepared) or 1.0
    target_scale = max(float(np.max(np.abs(p.targets))) for p in prepared) or 1.0
    dtype = torch.float64 if device == "cpu" else torch.float32
    data = []
    for pair in prepared:
        ext = np.stack([extend(plane, options) for plane in pair.inputs]) / scale
        x = torch.from_numpy(ext).to(device=device, dtype=dtype)
        y = torch.from_numpy(pair.targets / target_scale).to(device=device, dtype=dtype)
        if each:  # one group per channel: (1, C, H, W) -> (1, C, Ho, Wo)
            data.append((x[np.newaxis], y[0][np.newaxis]))
        else:  # channels as a batch: (C, 1, H, W) -> (C, M, Ho, Wo)
            data.append((x[:, np.newaxis], y.permute(1, 0, 2, 3)))
    count = sum(int(y.numel()) for _, y in data)
    # small layers run fastest on one thread (the pool's start-up costs more than the work);
    # the caller's setting is put back after
    threads = torch.get_num_threads()
    torch.set_num_threads(1 if count < SMALL else min(threads, threads_per_worker()))
    try:
        return _train(
            torch,
            data,
            prepared,
            options,
            members,
            each,
            count,
            scale,
            target_scale,
            optimizer=optimizer,
            steps=steps,
            learning_rate=learning_rate,
            seed=seed,
            device=device,
            dtype=dtype,
            progress=progress,
            started=started,
            images=images,
        )
    finally:
        torch.set_num_threads(threads)


#: samples below which training runs on one thread
SMALL = 1 << 20


def _train(
    torch: Any,
    data: list[tuple[Any, Any]],
    prepared: list[Pair],
    options: FitOptions,
    members: int,
    each: bool,
    count: int,
    scale: float,
    target_scale: float,
    *,
    optimizer: str,
    steps: int | None,
    learning_rate: float | None,
    seed: int,
    device: str,
    dtype: Any,
    progress: Progress | None,
    started: float,
    images: bool,
) -> FitResult:
    torch.manual_seed(seed)
    layer = torch.nn.Conv2d(
        members if each else 1,
        members,
        options.size,
        bias=False,
        groups=members if each else 1,
    ).to(device=device, dtype=dtype)

    def loss_of() -> Any:
        total = sum(((layer(x) - y) ** 2).sum() for x, y in data)
        return total / count

    steps = steps or (100 if optimizer == "lbfgs" else 3000)
    if optimizer == "lbfgs":
        opt: Any = torch.optim.LBFGS(
            layer.parameters(),
            lr=learning_rate or 1.0,
            max_iter=20,
            tolerance_grad=1e-15,
            tolerance_change=1e-20,
            history_size=50,
            line_search_fn="strong_wolfe",
        )
    else:
        opt = torch.optim.Adam(layer.parameters(), lr=learning_rate or 1e-2)
    previous = None
    for step in range(1, steps + 1):

        def closure() -> Any:
            opt.zero_grad()
            value = loss_of()
            value.backward()
            return value

        value = float(opt.step(closure).detach())
        if progress is not None:
            progress(step, steps, value * target_scale**2)
        if optimizer == "lbfgs" and previous is not None and abs(previous - value) <= 1e-16:
            break
        previous = value
    weights = layer.weight.detach().cpu().numpy().astype(np.float64) * target_scale / scale
    kernels = []
    for m in range(members):
        w = weights[m, 0]
        matrix = w if options.correlate else w[::-1, ::-1]
        name = options.name if members == 1 else f"{options.name}-{m}"
        kernels.append(
            Kernel(np.ascontiguousarray(matrix), name=name, description=describe(options, "torch"))
        )
    fits = []
    nan = float("nan")
    for m, kernel in enumerate(kernels):
        rms, worst = residuals(prepared, kernel, m, options)
        fits.append(MemberFit(kernel, rms, worst, nan, (nan, nan), step))
    result: AnyKernel = kernels[0]
    if members > 1:
        result = KernelBank(
            tuple(kernels), combine="stack", name=options.name, description=describe(options)
        )
    return FitResult(
        kernel=result,
        members=tuple(fits),
        samples=count // members,
        unknowns=options.taps,
        units="levels of the target" if images else "target units",
        seconds=time.perf_counter() - started,
    )
