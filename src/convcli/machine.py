"""What this machine offers convcli: the optional libraries installed, and the threads one
process may keep busy.

A bottom-level module (it imports nothing of convcli), so that the readers and writers
(:mod:`convcli.io`) and the computation (:mod:`convcli.compute`) can both ask without
importing each other.

>>> has_module("json"), has_module("no_such_module_here")
(True, False)
>>> threads_per_worker() >= 1
True
"""

from __future__ import annotations

import importlib.util
import os

_found: dict[str, bool] = {}
_threads: int | None = None


def has_module(name: str) -> bool:
    """True if the top-level module ``name`` is installed (found once, never imported)."""
    found = _found.get(name)
    if found is None:
        found = _found[name] = importlib.util.find_spec(name) is not None
    return found


def has_opencv() -> bool:
    return has_module("cv2")


def has_tifffile() -> bool:
    return has_module("tifffile")


def threads_per_worker() -> int:
    """How many threads one process may keep busy (all cores unless limited)."""
    return _threads or os.cpu_count() or 1


def set_threads_per_worker(threads: int | None) -> None:
    """Limit :func:`threads_per_worker` (batch workers share the cores); None: all cores."""
    global _threads
    _threads = threads
