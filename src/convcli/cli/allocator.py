"""Tuning glibc's allocator for a command that filters big images.

Filtering a 12-megapixel photo allocates and frees a few hundred megabytes of band-sized
arrays. By default glibc returns each freed block of more than a few megabytes to the
kernel, and the next allocation faults the same pages in again: about 75 000 page faults,
a quarter of the run's time. Keeping freed memory for reuse (blocks under 32 MiB come from
the heap, which is trimmed only beyond 1 GiB of free space) saves 10-20% of a whole command
for some 35 MiB more peak memory. Only the command line and its workers do this; a program
using the library keeps its own allocator settings, and so does a user who set glibc's
``MALLOC_*_`` variables.
"""

from __future__ import annotations

import os
import sys

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
_SETTINGS = {
    _M_MMAP_THRESHOLD: 32 * 2**20,  # glibc's largest; setting it stops its adaptation
    _M_TRIM_THRESHOLD: 2**30,
    _M_TOP_PAD: 64 * 2**20,
}


def keep_freed_memory() -> bool:
    """Apply the settings where the C library is glibc; whether they were applied."""
    if not sys.platform.startswith("linux") or any(k.startswith("MALLOC_") for k in os.environ):
        return False
    import ctypes

    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # another C library (musl has no mallopt)
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    return all(mallopt(param, value) == 1 for param, value in _SETTINGS.items())
