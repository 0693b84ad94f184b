"""Fuzz targets for convcli and the machinery around them.

Shared by the atheris entry points (``fuzz_<target>.py``), the plain-Python runner
(``run.py``, also ``python -m tests.fuzz``) and the pytest replay and smoke tests.

Every target takes raw bytes and calls convcli the way a user's input would reach it. The
contract under test: a bad input becomes a :class:`convcli.errors.ConvcliError` (a subclass)
with a one-line message, never another exception, a hang or a crash, and the command line
ends with 0, 1 or 2 and at most one ``convcli: error:`` line per failed input. Anything else
raises :class:`Finding`. Targets also check a few oracles that cost little: a kernel written
out by ``show-kernel --format`` reads back as the same kernel, every method gives the same
numbers, a written result reads back, ``probe_image`` agrees with ``open_image``.

Nothing here imports numpy, Pillow or convcli at module level, so that the atheris entry
points can import them under instrumentation first.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import logging
import os
import pathlib
import random
import re
import signal
import sys
import tempfile
import time
import traceback
import warnings
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CRASHERS = HERE / "crashers"
CORPUS = HERE / "corpus"
FINDINGS = HERE / "findings"
TARGETS = ("kernels", "arrays", "images", "cli")

#: the environment of every fuzz process: small limits, so that no input can ask for a huge
#: image or kernel, and one thread per library (the fuzzer is the parallelism)
FUZZ_ENV = {
    "CONVCLI_MAX_PIXELS": "4000000",
    "CONVCLI_MAX_KERNEL_SIZE": "64",
    "NO_COLOR": "1",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENCV_LOG_LEVEL": "OFF",
}
#: the largest input each target is given (libFuzzer's -max_len; the plain mutator's cap)
MAX_LEN = {"kernels": 2048, "arrays": 4096, "images": 16384, "cli": 16384}
#: seconds one input may take before it counts as a hang (plain runner; atheris uses -timeout)
SLOW_SECONDS = 10.0


# -- findings --------------------------------------------------------------------------------------
class Finding(Exception):
    """A broken contract: an exception other than ConvcliError escaped, or an oracle failed."""

    def __init__(self, kind: str, message: str, signature: str, detail: str = "") -> None:
        super().__init__(f"[{kind}] {message}")
        self.kind = kind
        self.message = message
        self.signature = signature
        self.detail = detail

    @classmethod
    def from_exception(cls, what: str, exc: BaseException) -> Finding:
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        where = _where(exc)
        detail = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        return cls(
            "exception",
            f"{what}: {type(exc).__name__}: {first} (at {where})",
            f"{type(exc).__name__}@{where}",
            detail,
        )


class SlowInput(BaseException):
    """Raised by the plain runner's alarm: one input took longer than SLOW_SECONDS.

    A BaseException, so that no ``except Exception`` in convcli swallows it."""


def _where(exc: BaseException) -> str:
    """The innermost convcli frame of a traceback (module.function), else the innermost one."""
    frames = traceback.extract_tb(exc.__traceback__)
    for frame in reversed(frames):
        parts = Path(frame.filename).parts
        if "convcli" in parts and "tests" not in parts:
            return f"convcli.{Path(frame.filename).stem}.{frame.name}"
    if frames:
        return f"{Path(frames[-1].filename).stem}.{frames[-1].name}"
    return "?"


#: bugs already reported (each has an xfail regression test); their findings do not fail the
#: smoke test. id -> (regex on the signature or message, one-line description)
KNOWN_BUGS: dict[str, tuple[str, str]] = {
    "nul-path": (
        r"ValueError.*embedded null byte",
        "a kernel spec, bank member or .mat path holding a NUL byte raises ValueError",
    ),
    "long-name": (
        r"OSError.*File name too long",
        "a kernel spec or input (an inline array too) longer than NAME_MAX raises OSError",
    ),
    "home-dir": (
        r"RuntimeError.*home directory",
        "a kernel spec starting with ~user of an unknown user raises RuntimeError",
    ),
    "json-depth": (
        r"RecursionError",
        "deeply nested JSON (kernel, array, kernel file) raises RecursionError",
    ),
    "int-digits": (
        r"Exceeds the limit \(\d+ digits\) for integer string conversion",
        "an integer literal of more than 4300 digits raises ValueError",
    ),
    "big-int": (
        r"TypeError@convcli\.numeric\._check_number|internal error: TypeError: ufunc 'isfinite'",
        "an integer too large for int64 (JSON, TOML) raises TypeError from np.isfinite",
    ),
    "scale-overflow": (
        r"matrix-finite",
        "a kernel file's scale is applied after the matrix is checked: matrix * scale can "
        "overflow to infinity",
    ),
    "origin-validation": (
        r"(TypeError|OverflowError|ValueError)@convcli\.kernel\.(__post_init__|<genexpr>)",
        "a kernel file's origin that is not a list of whole numbers (1, [inf, 0], ['a', 0]) "
        "raises TypeError, OverflowError or ValueError",
    ),
    "generator-size": (
        r"(OverflowError|MemoryError|ZeroDivisionError)@convcli\.generators\.",
        "gaussian/box/log parameters: overflow, division by zero, or the whole matrix is "
        "allocated before the size limit is checked",
    ),
    "npy-header": (
        r"(SyntaxError|TokenError|IndentationError|TabError|TypeError)@convcli\."
        r"(arrays\.read_array|batch)"
        r"|\.npy: internal error: (SyntaxError|TokenError|IndentationError|TabError|TypeError)",
        "a .npy file with a malformed header dict raises SyntaxError, TokenError, "
        "IndentationError or TypeError",
    ),
    "huge-length-field": (
        r"MemoryError@convcli\.(arrays|decode|tiff|batch)|out-of-memory",
        "a tiny .npy (header length) or PNG (IDAT length) claiming gigabytes makes the reader "
        "allocate a buffer that size: MemoryError under a memory limit",
    ),
    "tiny-weights": (
        r"values-scipy/direct",
        "the scipy backend's direct method drops kernel weights of magnitude <= 2.2e-16",
    ),
    "decoder-exceptions": (
        r"(?<!Memory)Error@convcli\.(decode|tiff)\.(open_image|_?decode\w*|_special_decoder"
        r"|_to_array|_opencv\w*|_orientation)",
        "open_image lets TypeError, KeyError, ... from Pillow's load() and from tifffile "
        "(for TIFFs Pillow opens) escape",
    ),
    "png16-bytes": (
        r"OpenCV could not decode the 16-bit PNG|bytes-refused",
        "a 16-bit colour PNG given as bytes (stdin) is refused as corrupt",
    ),
    "probe-16bit": (
        r"probe-differs",
        "probe_image (--explain, the memory budget) says uint8 for 16-bit colour images",
    ),
    "probe-tifffile": (
        r"probe-refuses-TIFF",
        "probe_image refuses TIFFs that open_image reads through tifffile",
    ),
    "tiff-pixel-limit": (
        r"pixel-limit-TIFF",
        "TIFFs decoded by tifffile skip the CONVCLI_MAX_PIXELS check",
    ),
    "tifffile-unchecked": (
        r"layout-|internal-IndexError",
        "open_image returns whatever tifffile decodes, unchecked: empty (0,) arrays (an "
        "internal IndexError in the CLI), bool/uint32/float64 samples, (H, W, 1)",
    ),
    "la16-png": (
        r"imencodeWithMetadata|error@convcli\.encode\._encode_colour16",
        "a 16-bit gray+alpha result written as PNG raises cv2.error",
    ),
    "stray-stderr": (
        r"stray-stderr",
        "Pillow warnings and tifffile log records are printed on stderr beside the error line",
    ),
    "error-line-break": (
        r"error-line-break",
        "an input name holding a newline breaks the error line in two",
    ),
    "offset-roundtrip": (
        r"roundtrip.*unknown key 'offset'",
        "a .mat kernel with an offset exported as TOML/JSON does not read back",
    ),
    "toml-control-chars": (
        r"roundtrip.*invalid TOML",
        "a kernel name or description with a control character is exported as invalid TOML",
    ),
    "chain-member-roundtrip": (
        r"roundtrip.*unknown key 'chain'",
        "a bank member that is an ImageMagick ';' chain is exported as JSON that does not "
        "read back",
    ),
}


def known_bug(finding: Finding) -> str | None:
    """The id of the known bug a finding is an instance of, or None for a new one."""
    text = f"{finding.kind}: {finding.signature} {finding.message}"
    for bug, (pattern, _) in KNOWN_BUGS.items():
        if re.search(pattern, text):
            return bug
    return None


@dataclass
class Recorder:
    """Keeps the first input of every distinct finding (by signature) and counts the rest."""

    target: str
    directory: Path | None = None
    quiet: bool = False
    counts: dict[str, int] = field(default_factory=dict)
    first: dict[str, tuple[Finding, bytes]] = field(default_factory=dict)

    def add(self, finding: Finding, data: bytes) -> None:
        key = f"{finding.kind}:{finding.signature}"
        self.counts[key] = self.counts.get(key, 0) + 1
        if key in self.first:
            return
        self.first[key] = (finding, data)
        bug = known_bug(finding)
        label = f"known:{bug}" if bug else "NEW"
        saved = ""
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
            digest = hashlib.sha1(data).hexdigest()[:12]
            path = self.directory / f"{self.target}-{digest}.bin"
            # (builtins.open: the sandbox's guard on Path.open is for convcli's reads)
            with open(path, "wb") as fh:
                fh.write(data)
            with open(
                path.with_suffix(".txt"), "w", encoding="utf-8", errors="backslashreplace"
            ) as fh:
                fh.write(
                    f"target: {self.target}\nkind: {finding.kind}\n"
                    f"signature: {finding.signature}\nknown: {bug or '-'}\n"
                    f"message: {finding.message}\n\n{finding.detail}"
                )
            saved = f" -> {path}"
        if not self.quiet:
            sys.stderr.write(
                f"FINDING {self.target} {label} {finding.kind} {finding.signature}: "
                f"{finding.message[:300]}{saved}\n"
            )
            sys.stderr.flush()

    @property
    def new(self) -> list[str]:
        return [k for k, (f, _) in self.first.items() if known_bug(f) is None]

    def summary(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "findings": [
                {
                    "key": key,
                    "count": self.counts[key],
                    "known": known_bug(finding),
                    "message": finding.message,
                    "input": data.hex() if len(data) <= 256 else data[:256].hex() + "...",
                }
                for key, (finding, data) in self.first.items()
            ],
        }


# -- the process and its sandbox -------------------------------------------------------------------
def prepare_environment() -> None:
    """The fuzz environment variables; call before numpy, OpenCV or convcli are imported."""
    os.environ.update(FUZZ_ENV)


def limit_memory(extra_mb: int | None = None) -> None:
    """Cap the address space at what the process maps now plus ``extra_mb`` (default 3 GiB,
    ``CONVCLI_FUZZ_MEMORY_MB``), so that an input asking for a huge allocation gets a
    MemoryError (a finding) instead of swapping the machine or being killed."""
    import resource

    extra = extra_mb or int(os.environ.get("CONVCLI_FUZZ_MEMORY_MB", "3072"))
    mapped = 0
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status") as fh:  # (builtins.open: not the sandbox's guard)
            status = fh.read()
        for line in status.splitlines():
            if line.startswith("VmSize:"):
                mapped = int(line.split()[1]) * 1024
    if not mapped:
        return
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = mapped + extra * 1024 * 1024
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
        sys.stderr.write(
            f"fuzz: address space capped at {limit >> 20} MiB ({mapped >> 20} MiB mapped now)\n"
        )


_SANDBOX_KERNELS = {
    "kernels/mine.toml": 'name = "mine"\ntags = ["edge"]\nmatrix = [[1, 0, -1], [2, 0, -2], '
    "[1, 0, -1]]\nscale = 0.5\n",
    "kernels/mybank.toml": 'name = "mybank"\ncombine = "magnitude"\n[[kernels]]\nname = '
    '"sobel-x"\n[[kernels]]\nname = "inner"\nmatrix = [[-1, -2, -1], [0, 0, 0], [1, 2, 1]]\n'
    '[[kernels]]\nname = "mine"\n',
    "kernels/loop.toml": 'name = "loop"\ncombine = "sum"\nkernels = ["loop", "box"]\n',
    "kernels/mygen.json": '{"name": "mygen", "generator": "gaussian", "params": {"sigma": 1}}',
    "kernels/arr.json": "[[0, 1, 0], [1, -4, 1], [0, 1, 0]]",
    "kernels/stack.json": '{"name": "stack", "combine": "stack", "kernels": ['
    '{"name": "a", "matrix": [[1, -1]]}, {"name": "b", "matrix": [[1], [-1]]}]}',
    "vips.mat": "3 3 16 128\n1 2 1\n2 4 2\n1 2 1\n",
    "offset.mat": "2 2 2 0.5\n1 0\n0 -1\n",
    "rect.toml": "matrix = [[1, 2, 3, 4]]\norigin = [0, 3]\n",
}


class Sandbox:
    """A scratch directory the fuzzed inputs live in, set as the working directory, with a few
    kernel files on CONVCLI_KERNEL_PATH. While it is entered, ``pathlib.Path.open`` (what
    convcli reads kernel files with) refuses paths outside it and the built-in kernels, so a
    fuzzed spec such as ``/dev/zero`` or ``/dev/stdin`` cannot block the fuzzer."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="convcli-fuzz-")).resolve()
        self._saved_env: dict[str, str | None] = {}
        self._saved_cwd = ""
        self._saved_open: Any = None

    def __enter__(self) -> Sandbox:
        for rel, text in _SANDBOX_KERNELS.items():
            path = self.root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        for sub in ("work", "cli", "config"):
            (self.root / sub).mkdir(exist_ok=True)
        env = {
            **FUZZ_ENV,
            "CONVCLI_KERNEL_PATH": str(self.root / "kernels"),
            "XDG_CONFIG_HOME": str(self.root / "config"),
        }
        for key, value in env.items():
            self._saved_env[key] = os.environ.get(key)
            os.environ[key] = value
        self._saved_cwd = os.getcwd()
        os.chdir(self.root)
        from convcli.kernels.registry import builtin_dir

        # the sandbox, the kernel library, and Python itself (lazy imports read through
        # Path.open too); not /dev, /proc or the rest of the machine
        allowed = tuple(
            os.path.realpath(p)
            for p in (self.root, builtin_dir(), sys.prefix, sys.base_prefix, HERE.parents[1])
        )
        real_open = pathlib.Path.open
        self._saved_open = real_open

        def guarded_open(path: pathlib.Path, *args: Any, **kwargs: Any) -> Any:
            text = str(path)
            if "\0" not in text:  # (let the real open raise its own ValueError for a NUL)
                real = os.path.realpath(text)
                if not any(real == a or real.startswith(a + os.sep) for a in allowed):
                    raise PermissionError(errno.EACCES, "outside the fuzz sandbox", text)
            return real_open(path, *args, **kwargs)

        pathlib.Path.open = guarded_open  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        pathlib.Path.open = self._saved_open  # type: ignore[method-assign]
        os.chdir(self._saved_cwd)
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        import shutil

        shutil.rmtree(self.root, ignore_errors=True)

    def file(self, name: str, data: bytes) -> Path:
        """Write ``data`` to ``work/name`` (relative to the sandbox) and return that path."""
        path = Path("work") / name
        path.write_bytes(data)
        return path


_sandbox: Sandbox | None = None


def sandbox() -> Sandbox:
    if _sandbox is None:
        raise RuntimeError("enter a fuzzlib.session() first")
    return _sandbox


@contextlib.contextmanager
def session() -> Iterator[Sandbox]:
    """The sandbox every target runs in (re-entrant: an outer session is reused)."""
    global _sandbox
    if _sandbox is not None:
        yield _sandbox
        return
    with Sandbox() as box:
        _sandbox = box
        try:
            yield box
        finally:
            _sandbox = None


# -- helpers for targets ---------------------------------------------------------------------------
def call(what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call convcli; a ConvcliError passes through (after checking its message), anything else
    becomes a Finding."""
    from convcli.errors import ConvcliError

    try:
        return fn(*args, **kwargs)
    except ConvcliError as exc:
        text = str(exc)
        if not text.strip() or "\n" in text or "\r" in text:
            raise Finding(
                "message",
                f"{what}: {type(exc).__name__} message is not one line: {text[:200]!r}",
                f"{type(exc).__name__}@{_where(exc)}",
            ) from exc
        raise
    except (Finding, SlowInput, KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:
        raise Finding.from_exception(what, exc) from exc


def _choose(options: tuple[Any, ...] | list[Any], byte: int) -> Any:
    return options[byte % len(options)]


def _close(a: Any, b: Any, scale: float, rtol: float = 1e-7) -> bool:
    import numpy as np

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return False
    return bool(np.all(np.abs(a - b) <= rtol * max(scale, 1e-300)))


_TEST_PLANE = None


def test_plane() -> Any:
    """A fixed 6x7 array of small values that every kernel is tried on."""
    global _TEST_PLANE
    if _TEST_PLANE is None:
        import numpy as np

        _TEST_PLANE = (np.arange(42, dtype=np.float64).reshape(6, 7) * 7 % 11) - 5
    return _TEST_PLANE


# -- target (a): kernel specs and kernel files -----------------------------------------------------
KERNEL_KINDS = ("spec", ".toml", ".json", ".mat")
MODES = ("same", "full", "valid")
BOUNDARIES = ("reflect", "fill", "mirror", "nearest", "wrap")


def target_kernels(data: bytes) -> None:
    """Byte 0: low 2 bits pick a spec string / TOML / JSON / .mat file, the rest the mode and
    boundary the kernel is tried with; the other bytes are the spec or the file."""
    if not data:
        return
    from convcli.errors import ConvcliError
    from convcli.kernels.registry import get_kernel

    kind = KERNEL_KINDS[data[0] % 4]
    body = data[1:]
    if kind == "spec":
        spec = body.decode("utf-8", "surrogateescape")
    else:
        spec = str(sandbox().file("fuzzed" + kind, body))
    try:
        kernel = call(f"get_kernel({spec[:60]!r})", get_kernel, spec)
    except ConvcliError:
        return
    check_kernel(kernel, data[0] >> 2)


def check_kernel(kernel: Any, options: int = 0) -> None:
    """What every kernel convcli accepts must satisfy (see the module docstring)."""
    import numpy as np

    from convcli.errors import ConvcliError
    from convcli.kernels.model import Kernel, KernelBank, KernelChain

    if not isinstance(kernel, Kernel | KernelBank | KernelChain):
        raise Finding("invariant", f"get_kernel returned {type(kernel).__name__}", "type")
    leaves = [kernel] if isinstance(kernel, Kernel) else kernel.leaves()
    limit = int(os.environ.get("CONVCLI_MAX_KERNEL_SIZE", "1025"))
    for leaf in leaves:
        m = leaf.matrix
        if m.dtype != np.float64 or m.ndim not in (1, 2) or m.size == 0:
            raise Finding("invariant", f"kernel matrix {m.dtype} {m.shape}", "matrix-layout")
        if not np.all(np.isfinite(m)):
            raise Finding("invariant", "kernel matrix holds NaN or infinity", "matrix-finite")
        if max(m.shape) > limit:
            raise Finding("invariant", f"kernel {m.shape} over the size limit", "matrix-limit")
    check_exports(kernel)
    mode = _choose(MODES, options)
    boundary = _choose(BOUNDARIES, options // 3)
    if isinstance(kernel, Kernel):
        check_methods(kernel, mode, boundary, correlate=bool(options & 32))
    else:
        from convcli import convolve

        with contextlib.suppress(ConvcliError):
            call(
                "convolve(bank or chain)",
                convolve,
                test_plane(),
                kernel,
                mode=mode,
                boundary=boundary,
            )


def check_exports(kernel: Any) -> None:
    """``show-kernel --format toml|json|imagemagick|vips`` must read back as the same kernel."""
    from convcli.errors import ConvcliError
    from convcli.kernels.formats import export
    from convcli.kernels.model import Kernel
    from convcli.kernels.registry import get_kernel

    formats = ["toml", "json"] + (["imagemagick", "vips"] if isinstance(kernel, Kernel) else [])
    for fmt in formats:
        try:
            text = call(f"export({fmt})", export, kernel, fmt)
        except ConvcliError:
            continue  # a chain or nested bank has no such form: refused with a message
        if fmt == "imagemagick":
            spec = text.strip()
        else:
            ext = {"toml": ".toml", "json": ".json", "vips": ".mat"}[fmt]
            path = sandbox().file("exported" + ext, text.encode("utf-8", "surrogateescape"))
            spec = str(path)
        try:
            back = call(f"reading the {fmt} export", get_kernel, spec)
        except ConvcliError as exc:
            raise Finding(
                "roundtrip",
                f"{fmt} export does not read back: {exc} -- export was {text[:200]!r}",
                f"{fmt}-unreadable",
            ) from exc
        _same_kernel(kernel, back, fmt)


def _same_kernel(a: Any, b: Any, fmt: str) -> None:
    import numpy as np

    from convcli.kernels.model import Kernel

    la = [a] if isinstance(a, Kernel) else a.leaves()
    lb = [b] if isinstance(b, Kernel) else b.leaves()
    if len(la) != len(lb):
        raise Finding("roundtrip", f"{fmt}: {len(la)} kernels became {len(lb)}", f"{fmt}-count")
    for ka, kb in zip(la, lb, strict=True):
        if fmt == "vips":  # centred and flipped twice: the same convolution, compare results
            x = test_plane()
            scale = float(np.abs(x).max() * np.abs(ka.matrix).sum()) + abs(ka.offset)
            if scale > 1e250:
                continue
            ra = _convolve_or_none(x, ka)
            rb = _convolve_or_none(x, kb)
            if ra is None or rb is None or not _close(ra, rb, scale, 1e-12):
                raise Finding(
                    "roundtrip", f"vips export convolves differently ({ka.name!r})", "vips-values"
                )
            continue
        ma = ka.as_2d() if fmt == "imagemagick" else ka.matrix
        if ma.shape != kb.matrix.shape or not np.array_equal(ma, kb.matrix):
            raise Finding(
                "roundtrip",
                f"{fmt}: matrix {ka.matrix.tolist()!r:.120} became {kb.matrix.tolist()!r:.120}",
                f"{fmt}-matrix",
            )
        if ka.origin_2d != kb.origin_2d or ka.offset != kb.offset:
            raise Finding(
                "roundtrip",
                f"{fmt}: origin/offset {ka.origin_2d}/{ka.offset} became "
                f"{kb.origin_2d}/{kb.offset}",
                f"{fmt}-origin",
            )


def _convolve_or_none(x: Any, kernel: Any, **options: Any) -> Any:
    from convcli import convolve
    from convcli.errors import ConvcliError

    try:
        return call("convolve", convolve, x, kernel, **options)
    except ConvcliError:
        return None


def reference_correlation(x: Any, kernel: Any, mode: str, boundary: str, correlate: bool) -> Any:
    """The result by definition: convcli's plan (weights, extension), then a plain sum of
    shifted copies in float64. Only the numbers are checked here; the alignment is checked
    against scipy and numpy by tests/test_properties.py."""
    import numpy as np

    from convcli.compute.boundary import as_boundary, pad
    from convcli.compute.engine import Options, plan_kernel

    plan = plan_kernel(kernel, Options.make(mode, boundary, correlate=correlate), x.shape)
    ext = pad(x[np.newaxis], plan.pads, as_boundary(boundary))[0]
    kh, kw = plan.shape
    h, w = ext.shape[0] - kh + 1, ext.shape[1] - kw + 1
    out = np.zeros((h, w))
    for i in range(kh):
        for j in range(kw):
            out += plan.weights[i, j] * ext[i : i + h, j : j + w]
    return out + plan.offset


def check_methods(kernel: Any, mode: str, boundary: str, correlate: bool = False) -> None:
    """direct, separable and fft, on scipy and OpenCV, give the numbers of the definition."""
    import numpy as np

    from convcli.errors import ConvcliError

    x = test_plane()
    scale = float(np.abs(x).max() * np.abs(kernel.matrix).sum())
    if not 0 < scale < 1e250:
        return
    try:
        want = reference_correlation(x, kernel, mode, boundary, correlate)
    except ConvcliError:
        return
    for backend in ("scipy", "opencv"):
        for method in ("direct", "separable", "fft"):
            got = _convolve_or_none(
                x,
                kernel,
                mode=mode,
                boundary=boundary,
                method=method,
                backend=backend,
                correlate=correlate,
            )
            if got is None:
                continue
            name = f"{backend}/{method}"
            if got.shape != want.shape:
                raise Finding(
                    "methods",
                    f"{name} gives {got.shape}, the definition {want.shape}",
                    f"shape-{name}",
                )
            if np.all(np.isfinite(got)) and not _close(want, got, scale, 1e-6):
                err = float(np.max(np.abs(want - got))) / scale
                raise Finding(
                    "methods",
                    f"{name} is off by {err:.2e} of the scale for "
                    f"{kernel.matrix.tolist()!r:.200} ({mode}, {boundary})",
                    f"values-{name}",
                )


# -- target (b): arrays ----------------------------------------------------------------------------
ARRAY_KINDS = (".npy", ".csv", ".txt", ".json", "inline")
ARRAY_KERNELS = ("box-1d:size=2", "[[1, 2], [3, 4]]", "box", "[[1], [-1]]", "sobel")


def target_arrays(data: bytes) -> None:
    """Byte 0: the format (npy/csv/txt/json file or inline JSON text) and the kernel, mode and
    boundary the array is filtered with; the rest is the file."""
    if not data:
        return
    import numpy as np

    from convcli import convolve
    from convcli.errors import ConvcliError
    from convcli.io.arrays import parse_array, read_array

    kind = ARRAY_KINDS[data[0] % 5]
    body = data[1:]
    try:
        if kind == "inline":
            arr = call("parse_array", parse_array, body.decode("utf-8", "surrogateescape"))
        else:
            arr = call(f"read_array({kind})", read_array, sandbox().file("fuzzed" + kind, body))
    except ConvcliError:
        return
    if (
        not isinstance(arr, np.ndarray)
        or arr.dtype.kind not in "biuf"
        or arr.ndim not in (1, 2, 3)
        or arr.size == 0
        or (arr.dtype.kind == "f" and not np.all(np.isfinite(arr)))
    ):
        raise Finding(
            "invariant",
            f"array reader returned {type(arr).__name__} "
            f"{getattr(arr, 'dtype', '')} {getattr(arr, 'shape', '')}",
            "array-layout",
        )
    selector = data[0] // 5
    kernel = _choose(ARRAY_KERNELS, selector)
    mode = _choose(MODES, selector // 5)
    boundary = _choose(BOUNDARIES, selector // 15)
    try:
        result = call("convolve(array)", convolve, arr, kernel, mode=mode, boundary=boundary)
    except ConvcliError:
        return
    check_array_writes(result)


def check_array_writes(result: Any) -> None:
    """A result written as .npy/.csv/.txt/.json reads back as the same numbers."""
    import numpy as np

    from convcli.errors import ConvcliError
    from convcli.io.arrays import encode_array, read_array

    if not np.all(np.isfinite(result)):
        return  # an overflowing result is written, but is no longer an input convcli takes
    for fmt, ext in (("NPY", ".npy"), ("CSV", ".csv"), ("TXT", ".txt"), ("JSON", ".json")):
        if fmt == "JSON" and result.ndim > 2:
            continue  # written as nested lists, but JSON input is 1-D or 2-D (documented)
        try:
            data = call(f"encode_array({fmt})", encode_array, result, fmt)
        except ConvcliError:
            continue
        try:
            back = call(f"reading the {fmt} result", read_array, sandbox().file("out" + ext, data))
        except ConvcliError as exc:
            raise Finding(
                "roundtrip",
                f"a {result.shape} result written as {fmt} does not read back: {exc}",
                f"array-{fmt}",
            ) from exc
        if back.size != result.size or not np.array_equal(
            back.reshape(result.shape).astype(np.float64), result.astype(np.float64)
        ):
            raise Finding(
                "roundtrip",
                f"a {result.shape} result written as {fmt} reads back as "
                f"{back.shape} with other values",
                f"array-{fmt}-values",
            )


# -- target (c): images ----------------------------------------------------------------------------
IMAGE_DTYPES = ("uint8", "uint16", "int32", "float32")


def target_images(data: bytes) -> None:
    """The bytes are an image file. It is decoded, probed, filtered and written back."""
    if not data:
        return
    from convcli.errors import ConvcliError
    from convcli.io.decode import open_image

    try:
        picture = call("open_image", open_image, data)
    except ConvcliError as exc:
        # bytes (stdin) and a file must be read alike: refused from both, or from neither
        path = sandbox().file("fuzzed.img", data)
        with contextlib.suppress(ConvcliError):
            call("open_image(file)", open_image, path)
            raise Finding(
                "bytes-vs-file",
                f"open_image refuses the bytes ({exc}) but reads the same bytes from a file",
                "bytes-refused",
            ) from exc
        return
    check_picture(picture.pixels, data, picture.format or "?")


def check_picture(pixels: Any, data: bytes, fmt: str = "?") -> None:
    import numpy as np

    from convcli.compute.image import filter_image
    from convcli.compute.pixels import PixelOptions
    from convcli.errors import ConvcliError
    from convcli.io.decode import open_image, probe_image
    from convcli.io.encode import encode
    from convcli.io.limits import max_pixels

    shape, dtype = pixels.shape, str(pixels.dtype)
    if (
        dtype not in IMAGE_DTYPES
        or pixels.ndim not in (2, 3)
        or (pixels.ndim == 3 and shape[2] not in (2, 3, 4))
    ):
        raise Finding(
            "invariant",
            f"open_image gave {dtype} {shape}, not the documented layout",
            f"layout-{dtype}-{pixels.ndim}d",
        )
    if shape[0] * shape[1] > max_pixels():
        raise Finding(
            "invariant",
            f"open_image decoded a {fmt} of {shape[1]}x{shape[0]} over "
            f"the pixel limit {max_pixels()}",
            f"pixel-limit-{fmt}",
        )
    try:
        probed = call("probe_image", probe_image, data)
    except ConvcliError as exc:
        raise Finding(
            "probe", f"probe_image refuses a {fmt} open_image reads: {exc}", f"probe-refuses-{fmt}"
        ) from exc
    if tuple(probed[0]) != tuple(shape) or probed[1] != dtype:
        raise Finding(
            "probe",
            f"probe_image says {probed}, open_image gives {shape} {dtype} ({fmt})",
            f"probe-differs-{fmt}",
        )
    if pixels.size > 50_000:
        return
    crc = zlib.crc32(data)
    options = PixelOptions(
        alpha=_choose(("keep", "filter", "premultiplied"), crc),
        gray=bool(crc & 8),
        range=_choose(("clip", "abs", "rescale"), crc >> 4),
        depth=_choose(("same", "same", "8", "16", "float"), crc >> 6),
    )
    kernel = _choose(("box", "sobel", "[[0, 1], [-1, 0]]", "gaussian:sigma=1"), crc >> 9)
    try:
        out = call("filter_image", filter_image, pixels, kernel, options).pixels
    except ConvcliError:
        return
    fmt = "PNG" if out.dtype in (np.uint8, np.uint16) else "TIFF"
    try:
        encoded = call(f"encode({fmt})", encode, out, fmt)
    except ConvcliError:
        return
    try:
        back = call(f"reading the {fmt} result", open_image, encoded).pixels
    except ConvcliError as exc:
        raise Finding(
            "roundtrip",
            f"a {out.dtype} {out.shape} result written as {fmt} does not read back: {exc}",
            f"image-{fmt}",
        ) from exc
    if out.ndim == 3 and out.shape[2] == 1:
        out = out[:, :, 0]
    if (
        back.shape != out.shape
        or back.dtype != out.dtype
        or not np.array_equal(back, out, equal_nan=out.dtype.kind == "f")
    ):
        raise Finding(
            "roundtrip",
            f"a {out.dtype} {out.shape} result written as {fmt} reads "
            f"back as {back.dtype} {back.shape}",
            f"image-{fmt}-values",
        )


# -- target (d): the command line ------------------------------------------------------------------
CLI_SCENARIOS = ("input", "kernel-file", "show-kernel", "stdin", "inline")
CLI_INPUTS = (".png", ".jpg", ".tif", ".gif", ".bmp", ".webp", ".npy", ".csv", ".txt", ".json")
CLI_OPTIONS: tuple[tuple[str, ...], ...] = (
    (),
    ("--mode", "full"),
    ("--mode", "valid", "--boundary", "fill", "--fill-value", "3"),
    ("--boundary", "wrap", "--correlate"),
    ("--range", "abs"),
    ("--range", "rescale"),
    ("--depth", "16"),
    ("--depth", "float"),
    ("--alpha", "premultiplied"),
    ("--alpha", "filter", "--boundary", "mirror"),
    ("--gray", "--boundary", "nearest"),
    ("--normalize",),
    ("--offset", "50%"),
    ("-k", "sobel-x", "--combine", "stack"),
    ("-k", "sobel-y", "--combine", "magnitude"),
    ("--method", "fft"),
    ("--method", "separable", "-k", "gaussian:sigma=1"),
    ("--backend", "opencv"),
    ("--compat", "pillow"),
    ("--compat", "torch"),
    ("-k", "sharpen"),
)
CLI_OUTPUTS: tuple[tuple[str, ...], ...] = (
    (),
    ("-d", "out"),
    ("-o", "out.png"),
    ("-o", "out.tif"),
    ("-o", "out.npy"),
    ("-o", "out.csv"),
    ("-o", "-", "--format", "npy"),
    ("--print",),
    ("--explain",),
    ("-o", "out.jpg", "--quality", "50"),
    ("-o", "out.json"),
    ("-o", "out.webp"),
)
SHOW_FORMATS: tuple[tuple[str, ...], ...] = (
    (),
    ("--json",),
    ("--format", "toml"),
    ("--format", "json"),
    ("--format", "imagemagick"),
    ("--format", "vips"),
)
_CLI_LINE = re.compile(r"^convcli: (error|warning): ")


@dataclass
class CliResult:
    args: list[str]
    code: Any
    stdout: bytes
    stderr: str


def run_cli(args: list[str], stdin: bytes = b"") -> CliResult:
    """``convcli ARGS`` in-process, as the script runs it, with stdout, stderr and stdin
    replaced (stderr with the interpreter's backslashreplace, as a real terminal has)."""
    from convcli.cli import app

    out, err = io.BytesIO(), io.BytesIO()
    streams = (sys.stdout, sys.stderr, sys.stdin)
    # (the wrappers are kept until the end: dropping one closes the BytesIO below it)
    wrappers = (
        io.TextIOWrapper(out, encoding="utf-8", write_through=True),
        io.TextIOWrapper(err, encoding="utf-8", errors="backslashreplace", write_through=True),
        io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8"),
    )
    # As in a fresh process: warnings printed on stderr (not recorded, as under pytest), and
    # no logging handlers (so records of WARNING and above reach stderr through lastResort)
    root = logging.getLogger()
    handlers = root.handlers[:]
    root.handlers = []
    sys.stdout, sys.stderr, sys.stdin = wrappers
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.showwarning = _print_warning
            code = call(
                f"convcli {' '.join(args)[:120]}",
                app,
                args=args,
                prog_name="convcli",
                standalone_mode=False,
            )
        result = CliResult(args, code, out.getvalue(), err.getvalue().decode("utf-8", "replace"))
    finally:
        sys.stdout, sys.stderr, sys.stdin = streams
        root.handlers = handlers
    return result


def _print_warning(
    message: Any,
    category: Any,
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    """The interpreter's own way of showing a warning: on (the current) sys.stderr."""
    sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def target_cli(data: bytes) -> None:
    """Bytes 0-3 pick the scenario, the input or kernel-file type, the options and the output;
    the rest is the file (or stdin, or the inline array)."""
    if len(data) < 4:
        return
    import shutil

    scenario = _choose(CLI_SCENARIOS, data[0])
    body = data[4:]
    work = sandbox().root / "cli"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    options = list(_choose(CLI_OPTIONS, data[2]))
    output = [
        a if not a.startswith("out") else str(work / a) for a in _choose(CLI_OUTPUTS, data[3])
    ]
    kernel = [] if "-k" in options and "--combine" not in options else ["-k", "box"]
    stdin = b""
    if scenario == "input":
        path = work / ("in" + _choose(CLI_INPUTS, data[1]))
        path.write_bytes(body)
        args = ["apply", "-j", "1", *kernel, *options, *output, str(path)]
    elif scenario == "kernel-file":
        path = work / ("k" + _choose((".toml", ".json", ".mat"), data[1]))
        path.write_bytes(body)
        inputs = _choose(("[[1, 2, 3], [4, 5, 6], [7, 8, 9]]", "[1, 2, 3, 4, 5]"), data[1] >> 2)
        args = ["apply", "-j", "1", "-k", str(path), *options, *output, inputs]
    elif scenario == "show-kernel":
        path = work / ("k" + _choose((".toml", ".json", ".mat"), data[1]))
        path.write_bytes(body)
        args = ["show-kernel", str(path), *_choose(SHOW_FORMATS, data[2])]
    elif scenario == "stdin":
        stdin = body
        if not output or output[0] in ("--print", "--explain"):
            output = ["-o", "-", "--format", _choose(("png", "tiff", "npy", "json"), data[1])]
        args = ["apply", "-j", "1", *kernel, *options, *output, "-"]
    else:
        # (a command-line argument cannot hold a NUL byte)
        text = body.decode("utf-8", "surrogateescape").replace("\0", "")
        args = ["apply", "-j", "1", *kernel, *options, *output, "--", text]
    result = run_cli(args, stdin)
    check_cli(result, work)


def check_cli(result: CliResult, work: Path | None = None) -> None:
    """Exit 0, 1 or 2; one error line when it fails, none when it succeeds; no traceback or
    internal error; whatever it says it wrote reads back."""
    code, err = result.code, result.stderr
    command = " ".join(a[:40] for a in result.args)[:200]
    if code not in (0, 1, 2):
        raise Finding("cli", f"exit code {code!r} for: {command} -- {err[-300:]!r}", f"exit-{code}")
    lines = err.splitlines()
    errors = [ln for ln in lines if ln.startswith("convcli: error: ")]
    if "Traceback (most recent call last)" in err:
        raise Finding("cli", f"traceback for: {command} -- {err[-400:]!r}", "traceback")
    internal = [ln for ln in errors if "internal error" in ln or "out of memory" in ln]
    if internal:
        raise Finding(
            "cli", f"{internal[0][:300]} for: {command}", _internal_signature(internal[0])
        )
    if code == 0 and errors:
        raise Finding(
            "cli", f"exit 0 with an error line for: {command} -- {errors[0]!r}", "error-on-success"
        )
    if code != 0 and len(errors) != 1:
        raise Finding(
            "cli",
            f"exit {code} with {len(errors)} error lines for: {command} -- {err[-300:]!r}",
            "error-lines",
        )
    stray = [ln for ln in lines if not _CLI_LINE.match(ln)]
    if stray:
        first = stray[0]
        if any(first and first in a for a in result.args):
            kind = "error-line-break"  # a newline in the input's name, printed as is
        elif re.search(r"\w+Warning: |^\s+warnings\.warn\(", first):
            kind = "stray-stderr:warning"
        else:
            kind = "stray-stderr:other"
        raise Finding("cli", f"{kind} for: {command} -- {first[:200]!r}", kind)
    if code == 0 and work is not None:
        _check_outputs(result, work)


def _internal_signature(line: str) -> str:
    match = re.search(r"internal error: (\w+)", line)
    return f"internal-{match.group(1)}" if match else "out-of-memory"


def _check_outputs(result: CliResult, work: Path) -> None:
    """Every path printed on stdout (when it wrote files) exists and reads back."""
    from convcli.errors import ConvcliError
    from convcli.io.arrays import read_array
    from convcli.io.decode import open_image
    from convcli.io.formats import is_array_path

    if "-o" in result.args and result.args[result.args.index("-o") + 1] == "-":
        if not result.stdout:
            raise Finding("cli", f"-o - wrote nothing: {result.args}", "empty-stdout")
        return
    if not any(a in result.args for a in ("-o", "-d")):
        return
    for raw in result.stdout.splitlines():
        path = Path(os.fsdecode(raw))
        if not path.is_absolute() or work not in path.parents:
            raise Finding(
                "cli", f"printed {raw[:100]!r}, not a file under the output", "stdout-path"
            )
        try:
            if is_array_path(path):
                read_array(path)
            else:
                open_image(path)
        except ConvcliError as exc:
            if path.suffix == ".json" and "more than 2 dimensions" in str(exc):
                continue  # an image written as JSON is 3-D; JSON input is 1-D or 2-D
            raise Finding(
                "roundtrip",
                f"the written {path.suffix} does not read back: {exc}",
                f"cli-output-{path.suffix}",
            ) from exc


TARGET_FUNCTIONS: dict[str, Callable[[bytes], None]] = {
    "kernels": target_kernels,
    "arrays": target_arrays,
    "images": target_images,
    "cli": target_cli,
}


def run_one(target: str, data: bytes) -> Finding | None:
    """Run one input; the Finding it produced, or None."""
    try:
        TARGET_FUNCTIONS[target](data)
    except Finding as finding:
        return finding
    except SlowInput:
        return Finding("slow", f"one input took over {SLOW_SECONDS:.0f} s", "slow")
    return None


# -- seeds -----------------------------------------------------------------------------------------
def seeds(target: str) -> list[bytes]:
    """Valid (and a few nearly valid) inputs of each target, generated here."""
    return {
        "kernels": kernel_seeds,
        "arrays": array_seeds,
        "images": image_seeds,
        "cli": cli_seeds,
    }[target]()


KERNEL_SPECS = (
    "sobel",
    "sobel-x",
    "Gaussian:sigma=1.5",
    "gaussian:size=7,sigma=1.5",
    "box:size=4",
    "box-1d:size=4",
    "log:sigma=1.4",
    "unsharp:sigma=2,amount=1.5",
    "identity",
    "laplacian",
    "emboss",
    "prewitt-1d",
    "gaussian-1d:sigma=2",
    "scharr",
    "gaussian-5x5-seed",
    "[[1,0,-1],[2,0,-2],[1,0,-1]]",
    "[0.25,0.25,0.25,0.25]",
    "[[1e300, -1e-300]]",
    "[[1, 2]]",
    "[[0.5], [0.5]]",
    "3x3+1+1: 1,2,3,4,5,6,7,8,9",
    "3: 1,2,3,4,5,6,7,8,9",
    "1,2,3,4,5,6,7,8,9",
    "2x1+0+0: 1 -1; 1x2: 1,-1",
    "3x1: 1,nan,1",
    "mine",
    "mybank",
    "loop",
    "mygen:sigma=2",
    "arr",
    "stack",
    "kernels/mine.toml",
    "kernels/arr.json",
    "vips.mat",
    "offset.mat",
    "rect.toml",
    "gaussian:sigma=0.1",
    "box:size=64",
)
KERNEL_TOML = (
    'name = "sobel-x"\ndescription = "Sobel"\ntags = ["edge"]\n'
    "matrix = [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]\nscale = 1.0\n",
    'name = "sobel"\ncombine = "magnitude"\n[[kernels]]\nname = "sobel-x"\n[[kernels]]\n'
    'name = "sobel-y"\nmatrix = [[-1, -2, -1], [0, 0, 0], [1, 2, 1]]\n',
    'name = "g"\ngenerator = "gaussian"\n[params]\nsigma = 2.5\nsize = 9\n',
    'name = "u"\ngenerator = "unsharp"\nparams = {amount = 0.5}\n',
    "matrix = [[1, 2, 3], [4, 5, 6]]\norigin = [1, 2]\nscale = -0.25\n",
    "matrix = [1.5e-3, 2, 3e2]\norigin = [2]\n",
    'name = "b"\ncombine = "stack"\nkernels = ["box", "mine", {name = "z", matrix = [[0]]}]\n',
    'name = "c"\ncombine = "max"\nkernels = ["3x3: 1,1,1,1,1,1,1,1,1;3x3: 0,1,0,1,1,1,0,1,0"]\n',
)


def _json_kernels() -> list[str]:
    return [
        '{"name": "sobel-x", "tags": ["edge"], "matrix": [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]}',
        '{"name": "bank", "combine": "sum", "kernels": [{"name": "sobel-x"}, '
        '{"matrix": [[1, 2], [3, 4]], "origin": [0, 1]}]}',
        "[[1, 2, 1], [2, 4, 2], [1, 2, 1]]",
        "[1, -1]",
        '{"generator": "log", "params": {"sigma": 1}}',
        '{"name": "n\\u00e4me", "matrix": [[1e-308, 1.7976931348623157e308]], "scale": 1e-10}',
    ]


VIPS_MATS = (
    "3 3\n1 2 1\n2 4 2\n1 2 1\n",
    "3 3 16 128\n1 2 1\n2 4 2\n1 2 1\n",
    "2 1 0.5\n1 -1\n",
    "# a comment\n1 3 1 -2\n1\n2\n1\n",
    "4 2 1 0.25\n1 2 3 4\n5 6 7 8\n",
)


def kernel_seeds() -> list[bytes]:
    out = []
    for i, spec in enumerate(KERNEL_SPECS):
        out.append(bytes([(i % 48) << 2]) + spec.encode())
    for i, text in enumerate(KERNEL_TOML):
        out.append(bytes([1 | ((i * 7) % 64) << 2]) + text.encode())
    for i, text in enumerate(_json_kernels()):
        out.append(bytes([2 | ((i * 5) % 64) << 2]) + text.encode())
    for i, text in enumerate(VIPS_MATS):
        out.append(bytes([3 | ((i * 11) % 64) << 2]) + text.encode())
    return out


def _npy(arr: Any, version: tuple[int, int] | None = None) -> bytes:
    import numpy as np

    buffer = io.BytesIO()
    if version is None:
        np.save(buffer, arr, allow_pickle=False)
    else:
        np.lib.format.write_array(buffer, arr, version=version, allow_pickle=False)
    return buffer.getvalue()


def array_seeds() -> list[bytes]:
    import numpy as np

    npys = [
        _npy(np.arange(12, dtype=np.float64).reshape(3, 4)),
        _npy(np.array([1, 2, 3, 4, 5, 4, 3, 2, 1], dtype=np.int32)),
        _npy(np.arange(60, dtype=np.uint8).reshape(4, 5, 3)),
        _npy(np.eye(3, dtype=bool)),
        _npy(np.linspace(-1, 1, 6, dtype=np.float16).reshape(2, 3)),
        _npy(np.arange(6, dtype=">f8").reshape(2, 3)),
        _npy(np.asfortranarray(np.arange(12.0).reshape(3, 4))),
        _npy(np.arange(4, dtype=np.float32).reshape(2, 2), version=(2, 0)),
        _npy(np.array([2**63 - 1, -(2**63)], dtype=np.int64)),
        _npy(np.array([[2**64 - 1]], dtype=np.uint64)),
    ]
    texts = {
        1: ["1,2,3\n4,5,6\n", "# comment\n1.5,2e3,-4,\n\n7,8,9,\n", "1,2,3,4,5,4,3,2,1\n"],
        2: ["1 2 3\n4 5 6\n", "1\t2\n3\t4\n", "  -1e-3   4\n5 6\n"],
        3: ["[[1, 2], [3, 4]]", "[1, 2, 3, 4, 5, 4, 3, 2, 1]", "[[1.5e308, -1e-320]]"],
        4: ["[[1,2,3],[4,5,6],[7,8,9]]", "[1, 2, 3]", "[[0]]"],
    }
    out = []
    for i, data in enumerate(npys):
        out.append(bytes([5 * (i % 51)]) + data)
    for kind, items in texts.items():
        for i, text in enumerate(items):
            out.append(bytes([kind + 5 * ((7 * i + kind) % 51)]) + text.encode())
    return out


def image_seeds() -> list[bytes]:
    """Small valid images of every format and mode convcli reads."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(7)
    rgb = rng.integers(0, 256, (5, 6, 3), dtype=np.uint8)
    gray = rgb[:, :, 0]
    rgba = np.dstack([rgb, gray])
    out: list[bytes] = []

    def save(im: Any, fmt: str, **kw: Any) -> None:
        buffer = io.BytesIO()
        im.save(buffer, format=fmt, **kw)
        out.append(buffer.getvalue())

    for fmt in ("PNG", "TIFF", "BMP", "GIF", "WEBP", "JPEG"):
        save(Image.fromarray(rgb), fmt)
        save(Image.fromarray(gray), fmt)
    save(Image.fromarray(rgba), "PNG")
    save(Image.fromarray(np.dstack([gray, gray])), "PNG")  # LA
    save(Image.fromarray(rgba), "WEBP", lossless=True)
    save(Image.fromarray(rgba), "TIFF", compression="tiff_deflate")
    save(Image.fromarray(gray > 128), "PNG")  # 1-bit
    save(Image.fromarray(gray > 128), "TIFF", compression="group4")
    save(Image.fromarray(rgb).convert("P"), "PNG", transparency=0)
    save(
        Image.fromarray(rgb).convert("P"),
        "GIF",
        save_all=True,
        append_images=[Image.fromarray(rgb[::-1]).convert("P")],
        duration=10,
    )
    save(Image.fromarray(rgb).convert("CMYK"), "JPEG")
    save(Image.fromarray(rgb).convert("CMYK"), "TIFF")
    save(Image.fromarray(gray.astype(np.uint16) * 257), "PNG")  # I;16
    save(Image.fromarray(gray.astype(np.uint16) * 257), "TIFF")
    save(Image.fromarray(gray.astype(np.int32) * 1000 - 50000), "TIFF")  # I
    save(Image.fromarray(gray.astype(np.float32) / 255), "TIFF")  # F
    save(Image.fromarray(rgb), "BMP", bitmap_format="bmp")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated: EXIF orientation applied on read
    save(Image.fromarray(rgb), "JPEG", exif=exif.tobytes())
    save(Image.fromarray(rgb), "PNG", exif=exif.tobytes())
    save(Image.fromarray(rgb), "JPEG", quality=20, progressive=True, subsampling=2)
    with contextlib.suppress(ImportError):
        import cv2

        ok, buf = cv2.imencode(".png", (rgb.astype(np.uint16) * 257))
        if ok:
            out.append(buf.tobytes())  # 16-bit colour PNG (read through OpenCV)
    with contextlib.suppress(ImportError):
        import tifffile

        for arr, extra in (
            (rgb.astype(np.uint16) * 257, {}),
            (rgb.astype(np.float32) / 255, {}),
            (rgba.astype(np.uint16) * 257, {"extrasamples": ["unassalpha"]}),
            (rgb.astype(np.float32), {"compression": "zlib"}),
            (np.moveaxis(rgb, 2, 0).astype(np.uint16), {"planarconfig": "separate"}),
        ):
            buffer = io.BytesIO()
            tifffile.imwrite(buffer, arr, photometric="rgb", **extra)
            out.append(buffer.getvalue())
    return out


def cli_seeds() -> list[bytes]:
    images = image_seeds()
    arrays = array_seeds()
    by_suffix = {
        ".png": images[0],
        ".tif": images[2],
        ".bmp": images[4],
        ".gif": images[6],
        ".webp": images[8],
        ".jpg": images[10],
    }
    out = []
    for i, suffix in enumerate(CLI_INPUTS):
        if suffix in by_suffix:
            body = by_suffix[suffix]
        else:
            kind = ARRAY_KINDS.index(suffix)
            body = next(a[1:] for a in arrays if a[0] % 5 == kind)
        for j in range(3):
            opt = (i * 3 + j * 7) % len(CLI_OPTIONS)
            outp = (i + j * 5) % len(CLI_OUTPUTS)
            out.append(bytes([0, i, opt, outp]) + body)
    for i, text in enumerate([*KERNEL_TOML[:3], *_json_kernels()[:3], *VIPS_MATS[:2]]):
        ext = 0 if i < 3 else 1 if i < 6 else 2
        out.append(bytes([1, ext + 3 * (i % 2), (i * 5) % len(CLI_OPTIONS), i % 8]) + text.encode())
        out.append(bytes([2, ext, i % len(SHOW_FORMATS), 0]) + text.encode())
    for i, image in enumerate(images[:12:2]):
        out.append(bytes([3, i, i * 3, 6]) + image)
    for text in ("[[1, 2, 3], [4, 5, 6]]", "[1, 2, 3, 4, 5, 4, 3, 2, 1]", "[[1e308, 1e308]]"):
        out.append(bytes([4, 0, 0, 7]) + text.encode())
    return out


#: tokens the mutators insert (also libFuzzer's -dict): the syntax of each input
TOKENS: dict[str, tuple[bytes, ...]] = {
    "kernels": (
        b"[",
        b"]",
        b"[[",
        b"]]",
        b",",
        b":",
        b"=",
        b";",
        b"+",
        b"-",
        b"x",
        b"sigma=",
        b"size=",
        b"amount=",
        b"gaussian:",
        b"box:",
        b"log:",
        b"unsharp:",
        b"1e308",
        b"1e-320",
        b"-0",
        b"NaN",
        b"Infinity",
        b"1e400",
        b"0",
        b"-1",
        b"65",
        b"1" * 30,
        b"matrix = ",
        b"[[kernels]]\n",
        b"combine = ",
        b'"stack"',
        b'"magnitude"',
        b"origin = ",
        b"scale = ",
        b"generator = ",
        b"params",
        b"\\u0000",
        b"\\n",
        b'"',
        b"'",
        b"\x00",
        b"/",
        b"..",
        b"loop",
        b"mybank",
        b"nan",
        b"inf",
        b"kernels",
        b"\n",
    ),
    "arrays": (
        b"[",
        b"]",
        b",",
        b" ",
        b"\t",
        b"\n",
        b"#",
        b"1e308",
        b"-1e308",
        b"1e-320",
        b"NaN",
        b"inf",
        b"-0",
        b"1_0",
        b"0x10",
        b"true",
        b"null",
        b'"1"',
        b"'shape': (",
        b"'descr': '",
        b"<f8",
        b">i2",
        b"|u1",
        b"<c16",
        b"|O",
        b"|b1",
        b"<f2",
        b"<M8",
        b"fortran_order': True",
        b"\x93NUMPY\x01\x00",
        b"\x93NUMPY\x02\x00",
        b"\x93NUMPY\x03\x00",
        b"), }",
        b"(0,)",
        b"(1, 1, 1, 1)",
        b"(3, 4)",
    ),
    "images": (
        b"\x89PNG\r\n\x1a\n",
        b"IHDR",
        b"IDAT",
        b"IEND",
        b"PLTE",
        b"tRNS",
        b"eXIf",
        b"iCCP",
        b"acTL",
        b"fcTL",
        b"II*\x00",
        b"MM\x00*",
        b"\xff\xd8\xff",
        b"\xff\xe1",
        b"Exif\x00\x00",
        b"GIF89a",
        b"BM",
        b"RIFF",
        b"WEBPVP8 ",
        b"WEBPVP8L",
        b"\xff\xff\xff\x7f",
        b"\x00\x00",
        b"\x10",
        b"\x20",
        b"\x00\x10\x00\x10",
    ),
    "cli": (
        b"\x89PNG\r\n\x1a\n",
        b"II*\x00",
        b"[",
        b"]",
        b",",
        b"\n",
        b"1e308",
        b"NaN",
        b"matrix = ",
        b"\x93NUMPY\x01\x00",
        b"combine = ",
    ),
}


# -- the plain-Python mutational engine (no atheris needed) ----------------------------------------
_INTERESTING = (0, 1, 0x7F, 0x80, 0xFF, 0x10, 0x20, 0x40)
_INTERESTING32 = (0, 1, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 65535 * 4, 100_000)


def mutate(
    data: bytes, rng: random.Random, pool: list[bytes], tokens: tuple[bytes, ...], max_len: int
) -> bytes:
    """A few random edits: bit flips, interesting bytes and integers, inserted tokens,
    deleted or duplicated ranges, splices with another input."""
    b = bytearray(data)
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 4, 8))):
        op = rng.randrange(10)
        n = len(b)
        i = rng.randrange(n + 1)
        if op == 0 and n:
            b[min(i, n - 1)] ^= 1 << rng.randrange(8)
        elif op == 1 and n:
            b[min(i, n - 1)] = rng.choice(_INTERESTING)
        elif op == 2:
            b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif op == 3 and n:
            del b[i : i + rng.randint(1, max(1, n // 8))]
        elif op == 4 and n:
            j = rng.randrange(n)
            b[i:i] = b[j : j + rng.randint(1, 64)]
        elif op in (5, 6) and tokens:
            token = rng.choice(tokens) * rng.choice((1, 1, 1, 2, 50, 3000))
            if op == 5:
                b[i:i] = token
            else:
                b[i : i + len(token)] = token
        elif op == 7 and pool:
            other = rng.choice(pool)
            j = rng.randrange(len(other) + 1)
            b = b[:i] + other[j:]
        elif op == 8 and n >= 4:
            k = min(i, n - 4)
            value = rng.choice(_INTERESTING32)
            b[k : k + 4] = value.to_bytes(4, rng.choice(("little", "big")))
        elif op == 9 and n:
            b[min(i, n - 1)] = rng.randrange(256)
    return bytes(b[:max_len])


@contextlib.contextmanager
def alarm(seconds: float) -> Iterator[None]:
    """Raise SlowInput in the main thread after ``seconds`` (plain runner only)."""
    if seconds <= 0 or not hasattr(signal, "setitimer"):
        yield
        return

    def fire(signum: int, frame: Any) -> None:
        raise SlowInput()

    previous = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@dataclass
class RunStats:
    target: str
    engine: str
    seconds: float = 0.0
    executions: int = 0
    corpus: int = 0
    recorder: Recorder | None = None

    @property
    def findings(self) -> int:
        return len(self.recorder.first) if self.recorder else 0

    @property
    def new(self) -> int:
        return len(self.recorder.new) if self.recorder else 0


def _outcome_class(finding: Finding | None, error: str) -> str:
    if finding is not None:
        return f"F:{finding.kind}:{finding.signature}"
    return re.sub(r"[\d'\"]+", "", error)[:60]


def fuzz_plain(
    target: str,
    *,
    seconds: float | None = None,
    runs: int | None = None,
    seed: int = 0,
    recorder: Recorder | None = None,
    slow_seconds: float = SLOW_SECONDS,
) -> RunStats:
    """Mutate the seeds for ``seconds`` or ``runs`` inputs, keeping mutants whose outcome (the
    ConvcliError message shape, or a finding) is new. Call inside a :func:`session`."""
    from convcli.errors import ConvcliError

    rng = random.Random(seed)
    recorder = recorder or Recorder(target)
    pool = seeds(target)
    tokens = TOKENS[target]
    seen: set[str] = set()
    stats = RunStats(target, "plain", recorder=recorder)
    started = time.perf_counter()
    target_fn = TARGET_FUNCTIONS[target]
    n_seeds = len(pool)
    while True:
        if runs is not None and stats.executions >= runs:
            break
        if seconds is not None and time.perf_counter() - started >= seconds:
            break
        if stats.executions < n_seeds:
            data = pool[stats.executions]
        else:
            data = mutate(rng.choice(pool), rng, pool, tokens, MAX_LEN[target])
        finding, error = None, ""
        try:
            with alarm(slow_seconds):
                target_fn(data)
        except Finding as exc:
            finding = exc
        except SlowInput:
            finding = Finding("slow", f"one input took over {slow_seconds:.0f} s", "slow")
        except ConvcliError as exc:  # a target lets none through; be lenient anyway
            error = str(exc)
        stats.executions += 1
        if finding is not None:
            recorder.add(finding, data)
        cls = _outcome_class(finding, error)
        if cls not in seen and len(pool) < 5000:
            seen.add(cls)
            pool.append(data)
    stats.seconds = time.perf_counter() - started
    stats.corpus = len(pool)
    return stats


# -- atheris entry point ---------------------------------------------------------------------------
def import_target_modules(target: str) -> None:
    """Import what the target runs (under atheris: inside its instrumentation)."""
    import importlib

    modules = [
        "convcli.kernels.registry",
        "convcli.kernels.formats",
        "convcli.kernels.model",
        "convcli.kernels.generators",
        "convcli.numeric",
        "convcli.compute.engine",
        "convcli.io.arrays",
        "convcli.io.decode",
        "convcli.io.encode",
        "convcli.io.tiff",
        "convcli.compute.image",
        "convcli.compute.backends.scipy_backend",
        "convcli.compute.backends.opencv_backend",
    ]
    if target == "cli":
        modules += [
            "convcli.cli.program",
            "convcli.cli.apply_command",
            "convcli.run.process",
            "convcli.run.pool",
            "convcli.cli.render",
            "convcli.compute.compat",
        ]
    modules += ["tomllib"]
    for name in modules:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    if target in ("images", "cli"):
        from PIL import Image

        Image.init()
        with contextlib.suppress(ImportError):
            import tifffile  # noqa: F401


def write_dictionary(target: str, path: Path) -> None:
    """The target's tokens as a libFuzzer dictionary."""
    lines = []
    for token in TOKENS[target]:
        escaped = "".join(
            chr(c) if 32 <= c < 127 and chr(c) not in '"\\' else f"\\x{c:02x}" for c in token
        )
        lines.append(f'"{escaped}"')
    path.write_text("\n".join(lines) + "\n")


def atheris_main(target: str, argv: list[str]) -> None:
    """``python tests/fuzz/fuzz_<target>.py [libFuzzer options] [corpus dirs or files]``.

    Without a corpus directory, ``tests/fuzz/corpus/<target>`` is used, seeded with the
    generated seeds. Each distinct finding is printed as a ``FINDING`` line and its input
    saved under ``tests/fuzz/findings/`` (``CONVCLI_FUZZ_FINDINGS`` to change), and fuzzing
    goes on; set ``CONVCLI_FUZZ_STOP=1`` to let libFuzzer stop (and minimize) at the first.
    """
    prepare_environment()
    import atheris
    import numpy  # noqa: F401  (imported first: not instrumented, it is large and compiled)

    with atheris.instrument_imports(include=["convcli", "PIL", "tifffile", "tomllib"]):
        import_target_modules(target)
    findings_dir = Path(os.environ.get("CONVCLI_FUZZ_FINDINGS", FINDINGS)).resolve()
    findings_dir.mkdir(parents=True, exist_ok=True)
    recorder = Recorder(target, findings_dir)
    stop = os.environ.get("CONVCLI_FUZZ_STOP") == "1"
    summary_path = findings_dir / f"{target}-summary.json"
    args = [argv[0]]
    positional = [str(Path(a).resolve()) for a in argv[1:] if not a.startswith("-")]
    flags = [a for a in argv[1:] if a.startswith("-")]
    corpus = CORPUS / target
    if not positional:
        corpus.mkdir(parents=True, exist_ok=True)
        for data in seeds(target):
            (corpus / f"seed-{hashlib.sha1(data).hexdigest()[:12]}").write_bytes(data)
        positional = [str(corpus)]
    dictionary = findings_dir / f"{target}.dict"
    write_dictionary(target, dictionary)
    defaults = {
        "-timeout": "0",  # SIGALRM is ours: a slow input is recorded, and fuzzing goes on
        "-artifact_prefix": str(findings_dir / f"{target}-"),
        "-rss_limit_mb": "6144",
        "-max_len": str(MAX_LEN[target]),
        "-dict": str(dictionary),
        "-print_final_stats": "1",
    }
    if target in ("images", "cli"):  # the seeds are whole files: mutate them at full length
        defaults["-len_control"] = "0"
    for key, value in defaults.items():
        if not any(f.startswith(key + "=") for f in flags):
            flags.append(f"{key}={value}")
    args += flags + positional
    global _sandbox
    _sandbox = Sandbox().__enter__()  # for the life of the process
    limit_memory()

    def one(data: bytes) -> None:
        with alarm(SLOW_SECONDS):
            finding = run_one(target, data)
        if finding is None:
            return
        recorder.add(finding, data)
        summary_path.parent.mkdir(parents=True, exist_ok=True)
        with open(summary_path, "w", encoding="utf-8") as fh:
            json.dump(recorder.summary(), fh, indent=1)
        if stop:
            raise finding

    atheris.Setup(args, one)
    atheris.Fuzz()
