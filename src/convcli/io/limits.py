"""The pixel limit: images larger than it are refused from their header, before decoding
(decompression bombs: a small file can declare billions of pixels).

convcli's limit is ``CONVCLI_MAX_PIXELS`` (256 megapixels unless set). Pillow has its own,
``PIL.Image.MAX_IMAGE_PIXELS``, a process-wide setting that convcli leaves to the program it
runs in: an image within convcli's limit that Pillow refuses gets an error naming Pillow's.
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path

from convcli.errors import LimitError, UsageError

#: default 256 megapixels; CONVCLI_MAX_PIXELS raises it (decompression-bomb guard)
DEFAULT_MAX_PIXELS = 256 * 1024 * 1024


def max_pixels() -> int:
    """``CONVCLI_MAX_PIXELS`` (a whole number of pixels, at least 1; ``1e9`` is fine), or the
    default; anything else is a usage error rather than silently the default."""
    raw = os.environ.get("CONVCLI_MAX_PIXELS", "").strip()
    if not raw:
        return DEFAULT_MAX_PIXELS
    try:
        number = float(raw)
    except ValueError:
        number = math.nan
    if not (math.isfinite(number) and number >= 1 and number.is_integer()):
        raise UsageError(
            f"CONVCLI_MAX_PIXELS must be a whole number of pixels, at least 1, got {raw!r}"
        )
    return int(number)


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


def declared_size(source: Path | bytes) -> tuple[int, int] | None:
    """The (width, height) an image's header declares, as Pillow's format plugins read it,
    without the decompression-bomb check of ``PIL.Image.open``; None if no plugin reads it."""
    from PIL import Image

    Image.init()
    with io.BytesIO(source) if isinstance(source, bytes) else source.open("rb") as fh:
        prefix = fh.read(16)
        for name in list(Image.ID):
            factory, accept = Image.OPEN[name]
            accepted = accept is None or accept(prefix)
            if not accepted or isinstance(accepted, str):
                continue
            try:
                fh.seek(0)
                width, height = factory(fh, "").size
            except Exception:  # not this format, or a plugin that checks the size itself
                continue
            return int(width), int(height)
    return None


def pillow_limit_error(source: Path | bytes, label: str) -> LimitError:
    """The error for an image that Pillow refuses as a decompression bomb.

    convcli's own limit is checked first (its error names CONVCLI_MAX_PIXELS). An image within
    it is over Pillow's limit, ``PIL.Image.MAX_IMAGE_PIXELS``, which belongs to the program
    that uses convcli: convcli never changes it (the command line turns it off for itself).
    """
    from PIL import Image

    size = declared_size(source)
    if size is not None:
        check_pixels(*size, label)
    what = f"image is {size[0]}x{size[1]} = {size[0] * size[1]} pixels, over" if size else "over"
    limit = Image.MAX_IMAGE_PIXELS
    bound = f" of {2 * limit} pixels (twice PIL.Image.MAX_IMAGE_PIXELS = {limit})" if limit else ""
    return LimitError(
        f"{what} Pillow's decompression-bomb limit{bound}; a program using convcli can raise "
        "PIL.Image.MAX_IMAGE_PIXELS, or set it to None to leave the limit to CONVCLI_MAX_PIXELS",
        subject=label,
    )
