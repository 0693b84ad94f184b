"""Memory sizes as users write them (``512MiB``, ``2GB``), and the default memory budget.

>>> parse_size("256MiB")
268435456
>>> format_size(3 * 1024**3)
'3.0 GiB'
"""

from __future__ import annotations

import math
import os

from convcli.errors import UsageError

UNITS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kb": 1000,
    "kib": 1024,
    "m": 1024**2,
    "mb": 1000**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gb": 1000**3,
    "gib": 1024**3,
    "t": 1024**4,
    "tb": 1000**4,
    "tib": 1024**4,
}


def parse_size(text: str, what: str = "memory size") -> int:
    """``"256MiB"`` -> 268435456; plain numbers are bytes. A size that is no finite number
    or less than a byte is refused (``0.5`` rounded to no budget would mean the default).

    >>> parse_size("0.5")
    Traceback (most recent call last):
    ...
    convcli.errors.UsageError: memory size '0.5' is less than one byte
    """
    raw = text.strip().lower().replace(" ", "")
    number = raw.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = raw[len(number) :]
    try:
        value = float(number)
    except ValueError:
        value = -1.0
    if unit not in UNITS or not value > 0 or not math.isfinite(value * UNITS[unit]):
        raise UsageError(f"{what} {text!r} is not like 512MiB, 2GiB or 4GB")
    size = int(value * UNITS[unit])
    if size < 1:
        raise UsageError(f"{what} {text!r} is less than one byte")
    return size


def default_budget() -> int:
    """A quarter of the machine's memory (``CONVCLI_MEMORY`` overrides)."""
    env = os.environ.get("CONVCLI_MEMORY", "").strip()
    if env:
        return parse_size(env, "CONVCLI_MEMORY")
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        total = 8 * 1024**3
    return max(256 * 1024**2, total // 4)


def format_size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"
