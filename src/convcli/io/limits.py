"""The pixel limit: images larger than it are refused from their header, before decoding
(decompression bombs: a small file can declare billions of pixels)."""

from __future__ import annotations

import os

from convcli.errors import LimitError, UsageError

#: default 256 megapixels; CONVCLI_MAX_PIXELS raises it (decompression-bomb guard)
DEFAULT_MAX_PIXELS = 256 * 1024 * 1024


def max_pixels() -> int:
    raw = os.environ.get("CONVCLI_MAX_PIXELS", "").strip()
    if not raw:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(float(raw))
    except ValueError:
        raise UsageError(f"CONVCLI_MAX_PIXELS must be a number, got {raw!r}") from None
    return value if value > 0 else DEFAULT_MAX_PIXELS


def check_pixels(w: int, h: int, label: str) -> None:
    """Refuse images larger than the pixel limit before decoding them (decompression bombs:
    a small file can declare billions of pixels)."""
    limit = max_pixels()
    if w * h > limit:
        msg = (
            f"image is {w}x{h} = {w * h} pixels, over the limit of {limit} pixels "
            "(set CONVCLI_MAX_PIXELS to raise it)"
        )
        raise LimitError(msg, subject=label)
