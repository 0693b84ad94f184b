"""Computing backends, imported only when used.

``scipy`` is the reference and always present. ``auto`` picks the fastest installed backend
that can serve the request.
"""

from __future__ import annotations

import importlib
import importlib.util
from functools import cache

from convcli.compute.backends.base import Backend, Plan
from convcli.compute.boundary import Boundary
from convcli.errors import BackendError
from convcli.machine import set_threads_per_worker

__all__ = ["BACKENDS", "Backend", "Plan", "available", "get_backend", "limit_threads"]

#: name -> (module, class, the package it needs, the extra that installs it)
BACKENDS: dict[str, tuple[str, str, str, str]] = {
    "scipy": ("scipy_backend", "ScipyBackend", "scipy", ""),
    "opencv": ("opencv_backend", "OpenCVBackend", "cv2", "opencv"),
    "torch": ("torch_backend", "TorchBackend", "torch", "torch"),
}

#: the order ``auto`` tries installed backends in, fastest first
AUTO_ORDER: tuple[str, ...] = ("opencv", "scipy")


def available(name: str) -> bool:
    """True if the backend's library is installed (without importing it)."""
    return _installed(BACKENDS[name][2])


@cache
def _installed(package: str) -> bool:
    # once per process: the search of sys.path costs about a millisecond a call
    return importlib.util.find_spec(package) is not None


@cache
def _load(name: str) -> Backend:
    module, cls, package, extra = BACKENDS[name]
    if not available(name):
        raise BackendError(f"the {name} backend needs {package}: pip install 'convcli[{extra}]'")
    mod = importlib.import_module(f"{__name__}.{module}")
    backend: Backend = getattr(mod, cls)()
    return backend


def get_backend(name: str, *, boundary: Boundary, fill: float, device: str = "auto") -> Backend:
    """The backend called ``name`` (or the best for the request with ``auto``), on ``device``.

    A device other than ``auto``/``cpu`` asks for torch.
    """
    if name == "auto" and device not in ("auto", "cpu"):
        name = "torch"
    if name == "auto":
        for candidate in AUTO_ORDER:
            if available(candidate):
                backend = _load(candidate)
                if backend.unsupported(boundary, fill) is None:
                    return backend
        return _load("scipy")
    if name not in BACKENDS:
        raise BackendError(f"unknown backend {name!r} (choose from auto, {', '.join(BACKENDS)})")
    backend = _load(name).on_device(device)
    reason = backend.unsupported(boundary, fill)
    if reason:
        raise BackendError(f"the {name} backend cannot do this: {reason}")
    return backend


_computed = False


def mark_computed() -> None:
    """Record that this process has run a filter (its thread pools may be live)."""
    global _computed
    _computed = True


def has_computed() -> bool:
    return _computed


def limit_threads(threads: int) -> None:
    """Let the threaded libraries use at most ``threads`` threads (batch workers share the
    cores: two workers of two threads each on two cores would only fight)."""
    import sys

    set_threads_per_worker(threads)
    if "cv2" in sys.modules:
        sys.modules["cv2"].setNumThreads(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
