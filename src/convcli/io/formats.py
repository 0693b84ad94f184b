"""Format names and file suffixes: which format a path or ``--format`` means, and back.

>>> format_for("out/a.JPG"), extension_for("JPEG"), is_array_path("k.npy")
('JPEG', '.jpg', True)
"""

from __future__ import annotations

from pathlib import Path, PurePath

from convcli.errors import UsageError

ARRAY_FORMATS = {".npy": "NPY", ".csv": "CSV", ".txt": "TXT", ".json": "JSON"}


_FORMAT_ALIASES = {"JPG": "JPEG", "TIF": "TIFF", "NUMPY": "NPY"}


def normalize_format(fmt: str) -> str:
    name = fmt.strip().lstrip(".").upper()
    return _FORMAT_ALIASES.get(name, name)


#: the common image formats, known without asking Pillow to load all of its plugins (which
#: costs a noticeable part of a single command's time)
COMMON_FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".jpe": "JPEG",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".webp": "WEBP",
    ".bmp": "BMP",
    ".gif": "GIF",
}


def format_for(path: str | Path | None, explicit: str | None = None) -> str:
    """The output format: ``--format`` if given, else from the file extension."""
    if explicit:
        fmt = normalize_format(explicit)
        if fmt in ARRAY_FORMATS.values() or fmt in COMMON_FORMATS.values():
            return fmt
        if fmt not in _pillow_formats():
            raise UsageError(f"unknown output format {explicit!r}")
        return fmt
    if path is None or str(path) == "-":
        raise UsageError("writing to stdout needs --format (png, jpeg, tiff, npy, csv, ...)")
    suffix = Path(path).suffix.lower()
    if suffix in ARRAY_FORMATS:
        return ARRAY_FORMATS[suffix]
    if suffix in COMMON_FORMATS:
        return COMMON_FORMATS[suffix]
    from PIL import Image

    detected = Image.registered_extensions().get(suffix)
    if detected is None or detected not in _pillow_formats():
        raise UsageError(
            f"{path}: cannot tell the output format from {suffix or 'no extension'!r}"
            " (give --format)"
        )
    return detected


def _pillow_formats() -> set[str]:
    from PIL import Image

    Image.init()
    return set(Image.SAVE)


def extension_for(fmt: str) -> str:
    """A file extension for a format (``JPEG`` -> ``.jpg``)."""
    for ext, name in ARRAY_FORMATS.items():
        if name == fmt:
            return ext
    preferred = {"JPEG": ".jpg", "TIFF": ".tif", "PNG": ".png", "WEBP": ".webp", "BMP": ".bmp"}
    if fmt in preferred:
        return preferred[fmt]
    from PIL import Image

    for ext, name in Image.registered_extensions().items():
        if name == fmt:
            return ext
    return "." + fmt.lower()


def is_array_path(path: str | Path) -> bool:
    suffix = path.suffix if isinstance(path, PurePath) else PurePath(path).suffix
    return suffix.lower() in ARRAY_FORMATS
