"""The image formats convcli decodes: an allow-list, as libvips' ``VIPS_BLOCK_UNTRUSTED`` and
ImageMagick's ``policy.xml`` have.

Pillow opens some 40 formats, and some of its decoders are no place for files from anywhere:
EPS runs Ghostscript on the file's PostScript (a program: it can loop forever), and others
are little used and little tested. convcli decodes only PNG, JPEG, TIFF, WebP, BMP and GIF
unless ``CONVCLI_FORMATS`` (or apply's ``--formats``) says otherwise: a comma-separated list
of Pillow's format names, where ``default`` stands for those six and ``all`` for every format
Pillow opens (``default,ico,ppm`` widens the list by two).

>>> sorted(parse_formats("default,ppm"))
['BMP', 'GIF', 'JPEG', 'PNG', 'PPM', 'TIFF', 'WEBP']
>>> parse_formats("all") is None
True
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from convcli.errors import InputError, UsageError

#: the formats decoded by default, and the Pillow plugin of each
DEFAULT_PLUGINS = {
    "PNG": "PngImagePlugin",
    "JPEG": "JpegImagePlugin",
    "TIFF": "TiffImagePlugin",
    "WEBP": "WebPImagePlugin",
    "BMP": "BmpImagePlugin",
    "GIF": "GifImagePlugin",
}
DEFAULT_FORMATS = frozenset(DEFAULT_PLUGINS)
ENV = "CONVCLI_FORMATS"
_ALIASES = {"JPG": "JPEG", "TIF": "TIFF"}


def parse_formats(text: str, what: str = ENV) -> frozenset[str] | None:
    """The formats a list names (None: all of Pillow's), or a usage error naming ``what``."""
    chosen: set[str] = set()
    for item in text.split(","):
        name = item.strip().upper()
        name = _ALIASES.get(name, name)
        if not name:
            continue
        if name == "ALL":
            return None
        if name == "DEFAULT":
            chosen |= DEFAULT_FORMATS
            continue
        known = pillow_formats()
        if name not in known:
            raise UsageError(
                f"{what}: unknown image format {item.strip()!r} (Pillow opens "
                f"{', '.join(sorted(known))}; 'default' is {', '.join(sorted(DEFAULT_FORMATS))})"
            )
        chosen.add(name)
    if not chosen:
        raise UsageError(f"{what}: no image format named in {text!r}")
    return frozenset(chosen)


def allowed_formats() -> frozenset[str] | None:
    """The formats decoded now: ``CONVCLI_FORMATS``, or the default six (None: all)."""
    raw = os.environ.get(ENV, "").strip()
    return parse_formats(raw) if raw else DEFAULT_FORMATS


def pillow_formats() -> set[str]:
    from PIL import Image

    Image.init()
    return set(Image.OPEN)


@functools.cache  # a plugin once imported stays so: each set of formats loads once
def load_plugins(formats: frozenset[str] | None) -> None:
    """Load Pillow's plugins for ``formats`` (None: all of them). Within the default six,
    only theirs are imported: importing Pillow's forty takes 40-70 ms, a quarter of a small
    image's whole command."""
    import importlib

    from PIL import Image

    if formats is not None and formats <= DEFAULT_FORMATS:
        for fmt in formats:
            importlib.import_module(f"PIL.{DEFAULT_PLUGINS[fmt]}")
    else:
        Image.init()


def identify(prefix: bytes, among: frozenset[str] | None = None) -> str | None:
    """The format of the first image plugin whose signature check accepts ``prefix`` (the
    first bytes of a file), of those for the formats ``among`` (None: every plugin);
    plugins that have no signature check are not asked."""
    from PIL import Image

    load_plugins(among)
    for name in Image.ID:
        if among is not None and name not in among:
            continue
        _, accept = Image.OPEN[name]
        if accept is None:
            continue
        try:
            if accept(prefix[:16] if name != "JPEG2000" else prefix):
                return name
        except Exception:  # a plugin's check that trips over a short prefix
            continue
    return None


def refusal(source: Path | bytes, label: str) -> InputError | None:
    """The error for an image in a format Pillow opens but the allow-list leaves out, or
    None if its format is allowed (or unknown)."""
    allowed = allowed_formats()
    if allowed is None:
        return None
    if isinstance(source, bytes):
        prefix = source[:64]
    else:
        try:
            with source.open("rb") as fh:
                prefix = fh.read(64)
        except OSError:
            return None
    found = identify(prefix)
    if found is None or found in allowed:
        return None
    return InputError(
        f"{found} is not among the image formats decoded ({', '.join(sorted(allowed))}); "
        f"allow it with --formats default,{found.lower()} or {ENV}=default,{found.lower()}",
        subject=label,
    )


def may_be_image(prefix: bytes) -> bool:
    """Whether the first bytes of a stream may begin an image of an allowed format (a stream
    that cannot is not read further: ``/dev/zero`` on stdin ends at once)."""
    allowed = allowed_formats()
    if allowed is not None:
        from PIL import Image

        load_plugins(allowed)
        if any(Image.OPEN[name][1] is None for name in allowed if name in Image.OPEN):
            return True  # a format without a signature: anything may be one
    found = identify(prefix, allowed)
    return found is not None
