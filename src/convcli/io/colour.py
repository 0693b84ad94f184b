"""What an image file says about its colour encoding, from its header: the embedded ICC
profile, a PNG ``gAMA`` and ``sRGB`` chunk (for ``--linear``; nothing is decoded)."""

from __future__ import annotations

import io
from pathlib import Path


def probe_colour(source: Path | bytes) -> tuple[bytes | None, float | None, bool]:
    """(ICC profile, PNG gamma, PNG sRGB chunk present) of an image; an image Pillow cannot
    open says nothing (the decoder names its problem when it is read)."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as im:
            info = im.info
            icc = info.get("icc_profile") or None
            gamma = info.get("gamma")
            return (
                bytes(icc) if icc else None,
                float(gamma) if gamma else None,
                "srgb" in info,
            )
    except Exception:  # any decoder failure: the read reports it
        return None, None, False
