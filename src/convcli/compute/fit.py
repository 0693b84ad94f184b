"""Learning a kernel from examples: the kernel (or bank of kernels) that maps an input to a
target under convcli's own semantics (mode, boundary, flip), by exact linear least squares.

``apply`` computes ``y = valid_correlation(ext(x), w)`` where ``ext`` extends the input by the
boundary rule as far as the mode needs and ``w`` is the kernel, flipped for a convolution (see
:mod:`convcli.compute.boundary`). ``y`` is linear in ``w``, so the kernel that best maps ``x``
to ``y`` solves the normal equations ``G w = b`` with

* ``G[t, s] = sum_p ext(x)[p + t] * ext(x)[p + s]``, the Gram matrix of the input's windows
  (the correlations of the extended input with itself over the output's positions), and
* ``b[t] = sum_p ext(x)[p + t] * y[p]``, the correlation of the extended input with the
  target.

Both are accumulated band by band of output rows (one BLAS product of the band's windows per
band, so memory stays bounded), summed over the channels and the pairs the kernel is shared
by, and solved with scipy's symmetric solvers. Options act on that small system only: a
ridge adds to its diagonal, ``total`` (``--sum``) is an equality constraint solved through
the KKT system, ``symmetric`` restricts the unknowns to kernels that are even about both
axes, and ``separable`` fits a rank-1 kernel ``u v^T`` by alternating exact solves for ``u``
and ``v``. A target made by a kernel of the fitted size is recovered to rounding.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from convcli.compute.boundary import Mode, as_boundary, as_mode, output_length, pad
from convcli.compute.pixels import luminance, sample_max
from convcli.compute.plan import Options, plan_kernel
from convcli.errors import InputError, UsageError
from convcli.kernels.model import AnyKernel, Kernel, KernelBank

#: condition number above which the normal equations do not determine the kernel: the
#: input is flat, or too regular (a pure stripe pattern), for a kernel of that size
ILL_POSED = 1e12
#: memory for one band's windows (rows x width x taps float64 values)
BAND_BYTES = 32 * 1024 * 1024
CHANNEL_MODES = ("shared", "each")


@dataclass(frozen=True)
class FitOptions:
    """What to fit: the kernel's size, the semantics it is applied with, the constraints."""

    size: tuple[int, int]  # (rows, columns)
    mode: Mode = Mode.SAME
    boundary: str = "reflect"
    fill_value: float = 0.0
    correlate: bool = False
    offset: bool = False  # also fit a constant added to the result (the kernel's offset)
    ridge: float = 0.0  # relative: times the mean diagonal of the normal matrix
    total: float | None = None  # the kernel's sum (--sum), or free
    symmetric: bool = False  # even about both axes
    separable: bool = False  # rank 1
    channels: str = "shared"  # one kernel for every channel, or one per channel
    gray: bool = False  # fit luminance to luminance
    bank: int | None = None  # members of the bank the target holds
    name: str = "fit"

    def __post_init__(self) -> None:
        if len(self.size) != 2 or min(self.size) < 1:
            raise UsageError(f"--size {self.size}: a kernel needs at least 1x1 taps")
        if not np.isfinite(self.ridge) or self.ridge < 0:
            raise UsageError(f"--ridge must be a number >= 0, got {self.ridge}")
        if self.total is not None and not np.isfinite(self.total):
            raise UsageError(f"--sum must be a finite number, got {self.total}")
        if self.channels not in CHANNEL_MODES:
            raise UsageError(f"--channels {self.channels!r} is not one of shared, each")
        if self.bank is not None and self.bank < 1:
            raise UsageError(f"--bank must be at least 1, got {self.bank}")
        if self.offset and self.separable:
            raise UsageError("--offset and --separable conflict: fit one of them")
        if self.bank is not None and self.channels == "each":
            raise UsageError("--bank and --channels each conflict: a bank member is shared")
        object.__setattr__(self, "mode", as_mode(self.mode))
        object.__setattr__(self, "boundary", as_boundary(self.boundary))

    @property
    def taps(self) -> int:
        return self.size[0] * self.size[1]

    def convolution(self) -> Options:
        return Options.make(self.mode, self.boundary, self.fill_value, self.correlate)


def parse_size(text: str) -> tuple[int, int]:
    """``--size``: ``7`` (7x7) or ``5x9`` (5 rows, 9 columns)."""
    parts = text.lower().replace(" ", "").split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise UsageError(f"--size {text!r}: expected N or ROWSxCOLS, like 7 or 5x9") from None
    if len(values) == 1:
        values *= 2
    if len(values) != 2 or min(values) < 1:
        raise UsageError(f"--size {text!r}: expected N or ROWSxCOLS of positive sizes")
    return values[0], values[1]


@dataclass
class Normal:
    """The normal equations of one kernel: ``gram w = rhs``, and what the residual needs."""

    gram: np.ndarray  # (T, T)
    rhs: np.ndarray  # (T,)
    energy: float = 0.0  # sum of the squared targets
    count: int = 0  # output samples
    sums: np.ndarray | None = None  # (T,) each tap's sum over the windows (for an offset)
    target_sum: float = 0.0

    def __add__(self, other: Normal) -> Normal:
        return Normal(
            self.gram + other.gram,
            self.rhs + other.rhs,
            self.energy + other.energy,
            self.count + other.count,
            None if self.sums is None or other.sums is None else self.sums + other.sums,
            self.target_sum + other.target_sum,
        )

    def with_offset(self) -> Normal:
        """The system of the kernel and a constant added to its result: one more unknown,
        whose column in the design is all ones."""
        assert self.sums is not None
        gram = np.block([[self.gram, self.sums[:, None]], [self.sums[None, :], self.count]])
        return Normal(gram, np.append(self.rhs, self.target_sum), self.energy, self.count)


@dataclass(frozen=True)
class MemberFit:
    """One fitted kernel and how well it maps the inputs to the targets."""

    kernel: Kernel
    rms: float  # in output units
    max_error: float  # in output units
    condition: float  # of the system solved
    eigenvalues: tuple[float, float]  # its smallest and largest
    iterations: int = 0  # alternating solves (separable)


@dataclass(frozen=True)
class FitResult:
    """The fitted kernel (a bank when there are several members) and its residuals."""

    kernel: AnyKernel
    members: tuple[MemberFit, ...]
    samples: int  # output samples fitted per member
    unknowns: int  # free parameters per member
    units: str  # what the residuals are measured in
    seconds: float = 0.0
    notes: tuple[str, ...] = field(default=())

    @property
    def rms(self) -> float:
        return max(m.rms for m in self.members)

    @property
    def max_error(self) -> float:
        return max(m.max_error for m in self.members)

    @property
    def condition(self) -> float:
        return max(m.condition for m in self.members)


# -- the data: planes in the input's units -----------------------------------------------------
@dataclass
class Pair:
    """One example: the input's planes (C, H, W) and the target's (M, C, Ho, Wo), in the
    input's units; ``to_output`` turns those units into the target's."""

    inputs: np.ndarray
    targets: np.ndarray
    to_output: float = 1.0
    label: str = ""


def prepare(x: Any, y: Any, options: FitOptions, *, images: bool = True, label: str = "") -> Pair:
    """An input and its target as planes. Images are channels-last samples (alpha, the last
    of 2 or 4 channels, is dropped: apply copies it through); a target of another depth is
    brought to the input's units, as ``apply --depth`` maps results. Arrays are 2-D or 3-D
    (channels last) numbers. A target with one more leading axis is a stack (a bank)."""
    x = _numeric(x, label or "input")
    y = _numeric(y, label or "target")
    scale = 1.0
    if images and y.dtype.kind in "biu":  # float results are in the input's units already
        scale = sample_max(x.dtype) / sample_max(y.dtype)
    xp = _planes(x, images, options.gray, "input")
    # one more axis than the input is a stack of results (apply writes a stacked bank so),
    # except that a colour image made of a gray one is colour, not a stack
    stacked = y.ndim == x.ndim + 1 and not (images and y.ndim == 3 and y.shape[2] in (2, 3, 4))
    if options.bank is not None and x.ndim == 2 and y.ndim == 3 and y.shape[2] == options.bank:
        yp = np.moveaxis(y.astype(np.float64), 2, 0)[:, np.newaxis]  # target channels: members
    elif stacked:
        yp = np.stack([_planes(m, images, options.gray, "target") for m in y])
    else:
        yp = _planes(y, images, options.gray, "target")[np.newaxis]
    members = yp.shape[0]
    if options.bank is not None and members != options.bank:
        raise InputError(
            f"--bank {options.bank} needs a target holding {options.bank} results (a stack, "
            f"or that many channels of a gray input's target), this one holds {members}",
            subject=label or None,
        )
    if options.bank is None and members > 1:
        raise InputError(
            f"the target holds a stack of {members} results; give --bank {members}",
            subject=label or None,
        )
    if yp.shape[1] != xp.shape[0]:
        hint = f" (give --bank {yp.shape[1]})" if xp.shape[0] == 1 else " (or give --gray)"
        raise InputError(
            f"the input has {xp.shape[0]} channel(s) and the target {yp.shape[1]}{hint}",
            subject=label or None,
        )
    return Pair(xp, yp * scale, 1.0 / scale, label)


def _numeric(a: Any, what: str) -> np.ndarray:
    arr = np.asarray(a)
    if arr.dtype.kind not in "biuf":
        raise InputError(f"expected numbers, got dtype {arr.dtype}", subject=what)
    if arr.size == 0:
        raise InputError("empty", subject=what)
    if not np.all(np.isfinite(arr)):
        raise InputError("holds NaN or infinity", subject=what)
    return arr


def _planes(a: np.ndarray, images: bool, gray: bool, what: str) -> np.ndarray:
    if a.ndim == 1:
        a = a[np.newaxis]
    if a.ndim == 2:
        return a.astype(np.float64)[np.newaxis]
    if a.ndim != 3:
        raise InputError(f"{a.ndim}-D: expected an image or a 2-D array", subject=what)
    if images and a.shape[2] in (2, 4):
        a = a[:, :, :-1]
    if gray and a.shape[2] == 3:
        return luminance(a)[np.newaxis]
    return np.moveaxis(a.astype(np.float64), 2, 0)


# -- the normal equations ----------------------------------------------------------------------
def extend(plane: np.ndarray, options: FitOptions) -> np.ndarray:
    """The input plane extended as apply extends it for a kernel of the fitted size."""
    plan = plan_kernel(Kernel(np.ones(options.size), name=options.name), options.convolution())
    return pad(plane[np.newaxis], plan.pads, as_boundary(options.boundary), options.fill_value)[0]


def check_shapes(pair: Pair, options: FitOptions) -> None:
    """Refuse a pair the kernel size and mode do not fit."""
    h, w = pair.inputs.shape[1:]
    kh, kw = options.size
    subject = pair.label or None
    if kh > h or kw > w:
        raise InputError(
            f"the {kh}x{kw} kernel is larger than the {h}x{w} input; give a smaller --size",
            subject=subject,
        )
    want = (output_length(options.mode, h, kh), output_length(options.mode, w, kw))
    got = pair.targets.shape[2:]
    if tuple(got) != want:
        raise InputError(
            f"the target is {got[0]}x{got[1]}, but a {kh}x{kw} kernel in {options.mode.value} "
            f"mode maps the {h}x{w} input to {want[0]}x{want[1]}",
            subject=subject,
        )


def accumulate(ext: np.ndarray, targets: np.ndarray, size: tuple[int, int]) -> list[Normal]:
    """The normal equations of each target (M, Ho, Wo) from one extended input plane, band
    by band of output rows: every band's windows are one (rows x Wo, T) matrix ``A``, and
    ``A^T A`` and ``A^T y`` are added up."""
    kh, kw = size
    taps = kh * kw
    members, out_h, out_w = targets.shape
    gram = np.zeros((taps, taps))
    rhs = np.zeros((members, taps))
    sums = np.zeros(taps)
    rows = max(1, BAND_BYTES // (8 * taps * out_w))
    windows = np.lib.stride_tricks.sliding_window_view(ext, (kh, kw))
    for r0 in range(0, out_h, rows):
        r1 = min(out_h, r0 + rows)
        a = windows[r0:r1].reshape(-1, taps)
        gram += a.T @ a
        sums += a.sum(axis=0)
        rhs += targets[:, r0:r1].reshape(members, -1) @ a
    energies = np.einsum("mij,mij->m", targets, targets)
    totals = targets.reshape(members, -1).sum(axis=1)
    return [
        Normal(gram, rhs[m], float(energies[m]), out_h * out_w, sums, float(totals[m]))
        for m in range(members)
    ]


def normal_equations(pairs: Sequence[Pair], options: FitOptions, jobs: int = 1) -> list[Normal]:
    """One system per bank member (or per channel with ``channels="each"``), summed over the
    pairs (and the channels a kernel is shared by). ``jobs`` planes are accumulated at a
    time, on threads (BLAS and numpy's copies release the GIL)."""
    for pair in pairs:
        check_shapes(pair, options)
    tasks = [(pair, c) for pair in pairs for c in range(pair.inputs.shape[0])]

    def one(task: tuple[Pair, int]) -> list[Normal]:
        pair, c = task
        return accumulate(extend(pair.inputs[c], options), pair.targets[:, c], options.size)

    if jobs > 1 and len(tasks) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(min(jobs, len(tasks))) as pool:
            results = list(pool.map(one, tasks))
    else:
        results = [one(task) for task in tasks]
    systems: list[Normal] | None = None
    for (pair, c), normals in zip(tasks, results, strict=True):
        if options.channels == "each":
            found = [Normal(np.zeros((0, 0)), np.zeros(0)) for _ in range(pair.inputs.shape[0])]
            found[c] = normals[0]
        else:
            found = normals
        if systems is None:
            systems = found
        elif len(systems) != len(found):
            raise InputError(
                f"the pairs disagree: {len(systems)} kernels from the first, {len(found)} "
                "from this one",
                subject=pair.label or None,
            )
        else:
            for index, extra in enumerate(found):
                if extra.gram.size:
                    systems[index] = (
                        extra if not systems[index].gram.size else systems[index] + extra
                    )
    if systems is None:
        raise UsageError("give at least one input and target")
    return systems


# -- solving -----------------------------------------------------------------------------------
def symmetric_basis(size: tuple[int, int]) -> np.ndarray:
    """(T, m) indicator matrix of the taps' orbits under flips of rows and of columns: the
    kernels even about both axes are exactly ``basis @ z``."""
    kh, kw = size
    index = np.arange(kh * kw).reshape(kh, kw)
    flips = (index[::-1], index[:, ::-1], index[::-1, ::-1])
    orbit = np.minimum.reduce([index, *flips])
    keys, columns = np.unique(orbit.ravel(), return_inverse=True)
    basis = np.zeros((kh * kw, len(keys)))
    basis[np.arange(kh * kw), columns] = 1.0
    return basis


@dataclass(frozen=True)
class Solved:
    values: np.ndarray  # the unknowns
    condition: float
    eigenvalues: tuple[float, float]


def solve_quadratic(
    gram: np.ndarray,
    rhs: np.ndarray,
    basis: np.ndarray,
    ridge: float,
    total: float | None,
    what: str,
    taps: int | None = None,
) -> Solved:
    """Minimise ``|y - A w|^2 + ridge |w|^2`` over ``w = basis z`` (with ``sum(w) = total``
    when given), from the normal equations; refuses a system that does not determine ``z``."""
    import scipy.linalg

    kernel = basis[:taps]  # the rows of the kernel's taps (the rest: an offset)
    a = basis.T @ gram @ basis
    if ridge:
        a = a + ridge * (kernel.T @ kernel)
    b = basis.T @ rhs
    eig = scipy.linalg.eigvalsh(a)
    low, high = float(eig[0]), float(eig[-1])
    condition = high / low if low > 0 else float("inf")
    if high <= 0 or condition > ILL_POSED:
        raise InputError(
            f"the input does not determine {what} (condition number "
            f"{'infinite' if condition == float('inf') else f'{condition:.1e}'}): it is flat or "
            "too regular; give a more detailed input, a smaller --size, or --ridge"
        )
    if total is None:
        z = scipy.linalg.solve(a, b, assume_a="pos")
    else:
        # the constraint's row scaled like the system, so that the KKT matrix is balanced
        weight = np.sqrt(high / len(b))
        c = kernel.sum(axis=0) * weight
        kkt = np.block([[a, c[:, np.newaxis]], [c[np.newaxis, :], np.zeros((1, 1))]])
        z = scipy.linalg.solve(kkt, np.append(b, total * weight), assume_a="sym")[:-1]
    return Solved(z, condition, (low, high))


def solve(normal: Normal, options: FitOptions) -> tuple[np.ndarray, Solved, int, float]:
    """The correlation weights (kh, kw) of one member, the last system solved, the number
    of alternating solves (0 unless separable) and the fitted offset (0 unless asked)."""
    kh, kw = options.size
    ridge = options.ridge * float(np.trace(normal.gram)) / options.taps
    what = f"a {kh}x{kw} kernel"
    basis = symmetric_basis(options.size) if options.symmetric else np.eye(options.taps)
    if options.offset:
        system = normal.with_offset()
        basis = np.block(
            [[basis, np.zeros((options.taps, 1))], [np.zeros((1, basis.shape[1])), np.ones((1, 1))]]
        )
        solved = solve_quadratic(
            system.gram, system.rhs, basis, ridge, options.total, what, options.taps
        )
        values = basis @ solved.values
        return values[:-1].reshape(kh, kw), solved, 0, float(values[-1])
    if not options.separable or kh == 1 or kw == 1:
        solved = solve_quadratic(normal.gram, normal.rhs, basis, ridge, options.total, what)
        return (basis @ solved.values).reshape(kh, kw), solved, 0, 0.0
    return (*_separable(normal, options, ridge, what), 0.0)


def _separable(
    normal: Normal, options: FitOptions, ridge: float, what: str
) -> tuple[np.ndarray, Solved, int]:
    """A rank-1 kernel ``u v^T``: for fixed ``v`` the result is linear in ``u`` (and the
    other way round), so each half-step is an exact least-squares solve; the start is the
    leading singular pair of the unconstrained fit (regularised if it is singular)."""
    kh, kw = options.size
    total = options.total
    full = solve_quadratic(
        normal.gram, normal.rhs, np.eye(options.taps), ridge or 1e-9 * _scale(normal), None, what
    )
    u_s, s, vt = np.linalg.svd(full.values.reshape(kh, kw))
    u, v = u_s[:, 0] * s[0], vt[0]
    basis_u = symmetric_basis((kh, 1)) if options.symmetric else np.eye(kh)
    basis_v = symmetric_basis((1, kw)) if options.symmetric else np.eye(kw)
    previous = np.inf
    solved = full
    steps = 0
    for steps in range(1, 501):  # noqa: B007 - the count is reported
        # w = m_u @ u with v fixed (and the sum constraint on w is linear in u)
        m_u = np.kron(np.eye(kh), v[:, np.newaxis])
        solved = solve_quadratic(normal.gram, normal.rhs, m_u @ basis_u, ridge, total, what)
        u = basis_u @ solved.values
        m_v = np.kron(u[:, np.newaxis], np.eye(kw))
        solved = solve_quadratic(normal.gram, normal.rhs, m_v @ basis_v, ridge, total, what)
        v = basis_v @ solved.values
        norm = np.linalg.norm(v)
        u, v = u * norm, v / norm
        w = np.outer(u, v).ravel()
        loss = float(w @ normal.gram @ w - 2 * w @ normal.rhs + normal.energy)
        if abs(previous - loss) <= 1e-14 * max(normal.energy, 1e-300):
            break
        previous = loss
    return np.outer(u, v), solved, steps


def _scale(normal: Normal) -> float:
    return float(np.trace(normal.gram)) / len(normal.rhs)


# -- the whole fit -----------------------------------------------------------------------------
def fit_kernel(
    pairs: Sequence[tuple[Any, Any]] | Sequence[Pair],
    options: FitOptions,
    *,
    images: bool = True,
    jobs: int = 1,
) -> FitResult:
    """Fit the kernel (or bank) that maps each input to its target under ``options``.

    ``pairs`` are (input, target) arrays (images channels-last, see :func:`prepare`) or
    prepared :class:`Pair` s. The residuals are measured by applying the fitted kernel with
    :func:`convcli.convolve` (the very computation ``apply`` runs) in float64.

    >>> import numpy as np, convcli
    >>> x = np.random.default_rng(0).random((40, 50))
    >>> y = convcli.convolve(x, "sobel-x", dtype=np.float64)
    >>> fit = fit_kernel([(x, y)], FitOptions(size=(3, 3)), images=False)
    >>> (np.round(fit.kernel.matrix, 6) + 0.0).tolist()
    [[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]
    """
    started = time.perf_counter()
    prepared = [
        p if isinstance(p, Pair) else prepare(p[0], p[1], options, images=images) for p in pairs
    ]
    systems = normal_equations(prepared, options, jobs)
    kernels, solutions = [], []
    for index, normal in enumerate(systems):
        weights, solved, steps, offset = solve(normal, options)
        matrix = weights if options.correlate else weights[::-1, ::-1]
        name = options.name if len(systems) == 1 else f"{options.name}-{index}"
        kernels.append(
            Kernel(
                np.ascontiguousarray(matrix),
                name=name,
                description=describe(options),
                offset=offset,
            )
        )
        solutions.append((solved, steps))
    members = []
    for index, (kernel, (solved, steps)) in enumerate(zip(kernels, solutions, strict=True)):
        rms, worst = residuals(prepared, kernel, index, options)
        members.append(MemberFit(kernel, rms, worst, solved.condition, solved.eigenvalues, steps))
    result: AnyKernel = kernels[0]
    if len(kernels) > 1:
        result = KernelBank(
            tuple(kernels), combine="stack", name=options.name, description=describe(options)
        )
    free = symmetric_basis(options.size).shape[1] if options.symmetric else options.taps
    unknowns = free - (options.total is not None) + options.offset
    return FitResult(
        kernel=result,
        members=tuple(members),
        samples=systems[0].count,
        unknowns=unknowns,
        units="levels of the target" if images else "target units",
        seconds=time.perf_counter() - started,
    )


def describe(options: FitOptions, how: str = "least squares") -> str:
    """The fitted kernel's description: how it was fitted and how to apply it."""
    kh, kw = options.size
    flip = "correlation" if options.correlate else "convolution"
    extras = [
        word
        for word, on in (("separable", options.separable), ("symmetric", options.symmetric))
        if on
    ]
    if options.total is not None:
        extras.append(f"sum {options.total:g}")
    if options.ridge:
        extras.append(f"ridge {options.ridge:g}")
    if options.offset:
        extras.append("with an offset")
    tail = f" ({', '.join(extras)})" if extras else ""
    return (
        f"fitted by convcli fit ({how}): {kh}x{kw} {flip}, mode {options.mode.value}, boundary "
        f"{options.boundary}{tail}"
    )


def residuals(
    pairs: Sequence[Pair], kernel: Kernel, member: int, options: FitOptions
) -> tuple[float, float]:
    """RMS and largest absolute difference, in output units, between the targets and the
    kernel applied to the inputs (member ``member`` of each target, or channel ``member``
    with ``channels="each"``)."""
    from convcli.compute.engine import convolve

    total, count, worst = 0.0, 0, 0.0
    for pair in pairs:
        channels = [member] if options.channels == "each" else range(pair.inputs.shape[0])
        which = 0 if options.channels == "each" else member
        for c in channels:
            applied = convolve(
                pair.inputs[c],
                kernel,
                mode=options.mode.value,
                boundary=str(options.boundary),
                fill_value=options.fill_value,
                correlate=options.correlate,
                dtype=np.float64,
            )
            diff = (applied - pair.targets[which, c]) * pair.to_output
            total += float(np.sum(diff * diff))
            count += diff.size
            worst = max(worst, float(np.max(np.abs(diff))))
    return float(np.sqrt(total / max(count, 1))), worst
