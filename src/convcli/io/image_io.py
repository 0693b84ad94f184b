"""Images and numeric arrays in and out: Pillow codecs, bit depth, channels, atomic writes.

Images come back as numpy arrays in the layout Pillow and OpenCV use: ``(H, W)`` gray,
``(H, W, 2)`` gray + alpha, ``(H, W, 3)`` RGB, ``(H, W, 4)`` RGBA; ``uint8`` for 8-bit,
``uint16`` for 16-bit, ``int32`` for 32-bit integer and ``float32`` for float images. Palette,
1-bit, CMYK, YCbCr, LAB and HSV images are converted to gray or RGB(A) on read; EXIF
orientation is applied. 16-bit colour needs OpenCV (PNG) or tifffile (TIFF), which the
``opencv`` and ``tiff`` extras install; Pillow alone would keep only 8 bits.

Arrays: ``.npy``, ``.csv`` (comma-separated rows), ``.txt`` (whitespace-separated rows),
``.json`` (nested lists), and inline JSON text.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import logging
import os
import secrets
import struct
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from convcli import paths
from convcli.errors import ConvcliError, InputError, LimitError, OutputError, UsageError
from convcli.machine import has_opencv, has_tifffile, threads_per_worker
from convcli.numeric import finite, loads_json, nested_to_array

ARRAY_FORMATS = {".npy": "NPY", ".csv": "CSV", ".txt": "TXT", ".json": "JSON"}
#: default 256 megapixels; CONVCLI_MAX_PIXELS raises it (decompression-bomb guard)
DEFAULT_MAX_PIXELS = 256 * 1024 * 1024
_FORMAT_ALIASES = {"JPG": "JPEG", "TIF": "TIFF", "NUMPY": "NPY"}
_COLOUR_MODES_TO_RGB = {"CMYK", "YCbCr", "LAB", "HSV", "RGBX"}


@dataclass
class Picture:
    """A decoded image and what is worth carrying to its output."""

    pixels: np.ndarray
    format: str | None = None  # Pillow's name of the source format ("PNG", "JPEG", ...)
    icc_profile: bytes | None = None


def max_pixels() -> int:
    raw = os.environ.get("CONVCLI_MAX_PIXELS", "").strip()
    if not raw:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(float(raw))
    except ValueError:
        raise UsageError(f"CONVCLI_MAX_PIXELS must be a number, got {raw!r}") from None
    return value if value > 0 else DEFAULT_MAX_PIXELS


# -- formats ------------------------------------------------------------------------------------
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
    return Path(path).suffix.lower() in ARRAY_FORMATS


# -- reading images -----------------------------------------------------------------------------
def read_image(path: str | Path) -> np.ndarray:
    """Read an image file into a numpy array (see the module docstring for the layout).

    >>> import numpy as np, tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "a.png")
    >>> write_image(np.zeros((2, 3), np.uint8), p)
    >>> read_image(p).shape
    (2, 3)
    """
    return open_image(Path(path)).pixels


@contextlib.contextmanager
def _pillow_open(source: Path | bytes, label: str) -> Iterator[Any]:
    """Pillow's lazily decoded image of ``source``, with the decoders' warnings and log lines
    kept off stderr and Pillow's own pixel limit off (ours names itself and how to raise it)."""
    from PIL import Image

    if isinstance(source, Path):
        _check_readable(source, label)
    Image.MAX_IMAGE_PIXELS = None
    quiet_decoders()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as im:
            yield im


def open_image(source: Path | bytes, name: str | None = None) -> Picture:
    """Decode an image from a path or from bytes (stdin), naming it in every error.

    Whatever a decoder raises on a malformed file (decoders raise anything: TypeError,
    KeyError, struct.error, ...) becomes one InputError; their warnings and log lines are
    kept off stderr.
    """
    from PIL import UnidentifiedImageError

    label = name or str(source if isinstance(source, Path) else "<stdin>")
    try:
        with _pillow_open(source, label) as im:
            return _decode(im, source, label)
    except ConvcliError:
        raise
    except UnidentifiedImageError:
        if _is_tiff(source) and has_tifffile():
            try:  # float colour and other TIFFs Pillow does not open
                return Picture(_decode_tiff(source, label), "TIFF")
            except ConvcliError:
                raise
            except Exception as exc:
                raise InputError(
                    f"corrupt or unsupported TIFF ({_reason(exc)})", subject=label
                ) from None
        raise InputError(
            "not an image Pillow can read (unknown or corrupt format)", subject=label
        ) from None
    except MemoryError:
        raise
    except Exception as exc:
        raise InputError(f"corrupt or truncated image ({_reason(exc)})", subject=label) from None


def _decode(im: Any, source: Path | bytes, label: str) -> Picture:
    from PIL import ImageOps

    width, height = im.size
    check_pixels(width, height, label)
    if im.format == "PNG":
        _check_png_chunks(source, label)
    fmt = im.format
    icc = im.info.get("icc_profile")
    special = _special_decoder(im, source, label)
    if special is not None:
        return Picture(special, fmt, icc)
    fast = _opencv_decode(im, source)
    if fast is not None:
        return Picture(orient(fast, _orientation(im)), fmt, icc)
    im.load()
    pixels = _to_array(ImageOps.exif_transpose(im) or im)
    if not finite(pixels):
        raise InputError("the float image holds NaN or infinity", subject=label)
    return Picture(pixels, fmt, icc)


def quiet_decoders() -> None:
    """Keep Pillow's and tifffile's log records off stderr: their problems reach users as
    one error line of ours."""
    for name in ("PIL", "tifffile"):
        log = logging.getLogger(name)
        if not any(isinstance(h, logging.NullHandler) for h in log.handlers):
            log.addHandler(logging.NullHandler())
            log.propagate = False


def _check_png_chunks(source: Path | bytes, label: str) -> None:
    """Refuse a PNG whose chunk lengths run past the end of the file before a decoder
    allocates what they claim (a 56-byte file can claim a 4 GB chunk)."""
    stream: Any = io.BytesIO(source) if isinstance(source, bytes) else source.open("rb")
    with stream:
        size = stream.seek(0, io.SEEK_END)
        pos = 8
        while pos + 8 <= size:  # only the chunk headers are read
            stream.seek(pos)
            length, kind = struct.unpack(">I4s", stream.read(8))
            if pos + 12 + length > size:
                raise InputError(
                    f"corrupt or truncated PNG (its {kind.decode('latin-1')!r} "
                    "chunk runs past the end of the file)",
                    subject=label,
                )
            if kind == b"IEND":
                return
            pos += 12 + length


#: Pillow mode -> (channels, sample type) of the array convcli reads it as
_MODE_LAYOUT = {
    "1": (1, "uint8"),
    "L": (1, "uint8"),
    "P": (3, "uint8"),
    "PA": (4, "uint8"),
    "LA": (2, "uint8"),
    "La": (2, "uint8"),
    "RGB": (3, "uint8"),
    "RGBA": (4, "uint8"),
    "RGBa": (4, "uint8"),
    "RGBX": (3, "uint8"),
    "CMYK": (3, "uint8"),
    "YCbCr": (3, "uint8"),
    "LAB": (3, "uint8"),
    "HSV": (3, "uint8"),
    "I": (1, "int32"),
    "F": (1, "float32"),
    "I;16": (1, "uint16"),
    "I;16B": (1, "uint16"),
    "I;16L": (1, "uint16"),
    "I;16N": (1, "uint16"),
}


def probe_image(source: Path | bytes, name: str | None = None) -> tuple[tuple[int, ...], str]:
    """The shape and sample type an image would be read as, from its header alone."""
    from PIL import UnidentifiedImageError

    label = name or str(source if isinstance(source, Path) else "<stdin>")
    try:
        with _pillow_open(source, label) as im:
            w, h = im.size
            check_pixels(w, h, label)
            if im.format == "TIFF" and _tiff_needs_tifffile(im):
                return _probe_tiff(source, label)
            channels, dtype = _MODE_LAYOUT.get(im.mode, (3, "uint8"))
            if im.mode == "P" and "transparency" in im.info:
                channels = 4
            if im.format == "PNG" and channels >= 3 and _png_bit_depth(source) == 16:
                dtype = "uint16"
            orientation = _orientation(im)
    except ConvcliError:
        raise
    except UnidentifiedImageError:
        if _is_tiff(source) and has_tifffile():
            return _probe_tiff(source, label)
        raise InputError(
            "not an image Pillow can read (unknown or corrupt format)", subject=label
        ) from None
    except MemoryError:
        raise
    except Exception as exc:
        raise InputError(f"corrupt image header ({_reason(exc)})", subject=label) from None
    if orientation in (5, 6, 7, 8):  # EXIF rotations by 90 degrees swap the sides
        w, h = h, w
    shape = (h, w) if channels == 1 else (h, w, channels)
    return shape, dtype


def _probe_tiff(source: Path | bytes, label: str) -> tuple[tuple[int, ...], str]:
    try:
        with import_tifffile().TiffFile(
            io.BytesIO(source) if isinstance(source, bytes) else source
        ) as tif:
            shape, dtype = tiff_header(tif, label)
    except ConvcliError:
        raise
    except Exception as exc:
        raise InputError(f"corrupt or unsupported TIFF ({_reason(exc)})", subject=label) from None
    return shape, str(dtype)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:120]


def _check_readable(path: Path, label: str) -> None:
    reason = paths.problem(path)
    if reason is not None:
        raise InputError(reason, subject=label)
    if path.is_dir():
        raise InputError("is a directory (give -r to process a directory)", subject=label)
    if not os.access(path, os.R_OK):
        raise InputError("permission denied", subject=label)
    if path.stat().st_size == 0:
        raise InputError("empty file (0 bytes)", subject=label)


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


def _special_decoder(im: Any, source: Path | bytes, label: str) -> np.ndarray | None:
    """16-bit colour (and float colour TIFF), which Pillow would truncate to 8 bits."""
    if im.format == "PNG" and im.mode in ("RGB", "RGBA", "LA") and _png_bit_depth(source) == 16:
        return _decode_png16(source if isinstance(source, bytes) else source.read_bytes())
    if im.format == "TIFF" and _tiff_needs_tifffile(im):
        return _decode_tiff(source, label)
    return None


def _png_bit_depth(source: Path | bytes) -> int:
    if isinstance(source, bytes):
        head = source[:32]
    else:
        with source.open("rb") as fh:
            head = fh.read(32)
    return head[24] if len(head) > 24 else 8  # IHDR's bit depth


#: formats and Pillow modes that OpenCV decodes faster than Pillow (libjpeg-turbo, libpng,
#: libtiff straight into a numpy array), giving the same pixels
_OPENCV_READS = {"JPEG", "PNG", "TIFF", "BMP", "WEBP"}
_OPENCV_MODES = {"L": 2, "RGB": 3, "RGBA": 4}  # mode -> dimensions or channels it decodes to


def _opencv_decode(im: Any, source: Path | bytes) -> np.ndarray | None:
    """The pixels decoded by OpenCV, as RGB(A), for the plain 8-bit cases; None otherwise
    (Pillow then decodes, as it does every other mode and format)."""
    if im.format not in _OPENCV_READS or im.mode not in _OPENCV_MODES or not has_opencv():
        return None
    if im.format == "PNG" and (im.info.get("transparency") is not None or "gamma" in im.info):
        return None  # tRNS and gAMA are Pillow's business
    if getattr(im, "n_frames", 1) > 1:
        return None
    import cv2

    pixels = None
    with c_stderr_silenced():  # libpng/libjpeg/libtiff print their complaints on fd 2
        if isinstance(source, Path) and str(source).isprintable() and str(source).isascii():
            pixels = cv2.imread(str(source), cv2.IMREAD_UNCHANGED)  # no copy of the bytes
        if pixels is None:
            data = source if isinstance(source, bytes) else source.read_bytes()
            pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if pixels is None or pixels.dtype != np.uint8:
        return None
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    wanted = {"L": 1, "RGB": 3, "RGBA": 4}[im.mode]
    if channels != wanted or pixels.shape[:2] != (im.size[1], im.size[0]):
        return None
    return _bgr_to_rgb(pixels, in_place=True)


@contextlib.contextmanager
def c_stderr_silenced() -> Iterator[None]:
    """Send what C libraries write to file descriptor 2 to /dev/null meanwhile: a damaged
    file's problem reaches the user as one error line of ours (or, when the decoder
    recovers, not at all, as Pillow does)."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "wb") as devnull:
            sys.stderr.flush()
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _orientation(im: Any) -> int:
    """The EXIF orientation from the header; Pillow would decode a whole PNG to look for an
    eXIf chunk after the pixels, where the PNG specification does not put one."""
    if im.format == "PNG" and "exif" not in im.info:
        return 1
    return int(im.getexif().get(0x0112, 1))


def orient(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1-8) as Pillow's ImageOps.exif_transpose does."""
    if orientation not in range(2, 9):
        return pixels
    if orientation >= 5:  # the four orientations that swap the sides start from a transpose
        pixels = np.swapaxes(pixels, 0, 1)
    flips = {
        2: (slice(None), slice(None, None, -1)),
        3: (slice(None, None, -1),) * 2,
        4: (slice(None, None, -1),),
        5: (),
        6: (slice(None), slice(None, None, -1)),
        7: (slice(None, None, -1),) * 2,
        8: (slice(None, None, -1),),
    }[orientation]
    return np.ascontiguousarray(pixels[flips])


def _is_tiff(source: Path | bytes) -> bool:
    if isinstance(source, bytes):
        head = source[:4]
    else:
        with source.open("rb") as fh:
            head = fh.read(4)
    return head in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+")


def _tiff_needs_tifffile(im: Any) -> bool:
    bits = im.tag_v2.get(258)  # BitsPerSample
    samples = im.tag_v2.get(277, 1)  # SamplesPerPixel
    bits = bits[0] if isinstance(bits, tuple) else bits
    return samples > 1 and bits is not None and bits > 8


def _decode_png16(data: bytes) -> np.ndarray:
    """16-bit colour PNG (colour type 2 or 6) through OpenCV, which keeps the 16 bits."""
    if importlib.util.find_spec("cv2") is None:
        warnings.warn(
            "16-bit colour PNG read as 8-bit; install OpenCV to keep 16 bits: "
            "pip install 'convcli[opencv]'",
            stacklevel=3,
        )
        from PIL import Image

        with Image.open(io.BytesIO(data)) as im:
            return _to_array(im)
    import cv2

    with c_stderr_silenced():
        pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if pixels is None:
        raise OSError("OpenCV could not decode the 16-bit PNG (corrupt or truncated)")
    if data[25] == 4 and pixels.ndim == 3 and pixels.shape[2] == 4:  # gray + alpha, as BGRA
        return np.ascontiguousarray(pixels[:, :, [0, 3]])
    return _bgr_to_rgb(pixels)


def tiff_header(tif: Any, label: str) -> tuple[tuple[int, ...], np.dtype]:
    """The (H, W[, C]) shape and sample type tifffile will decode, checked before decoding."""
    if not len(tif.pages):
        raise InputError("the TIFF holds no images (0 pages)", subject=label)
    page = tif.pages.first
    shape = tuple(int(n) for n in page.shape)
    if page.planarconfig == 2 and len(shape) == 3:
        shape = (shape[1], shape[2], shape[0])
    if len(shape) == 3 and shape[2] == 1:
        shape = shape[:2]
    if len(shape) not in (2, 3) or 0 in shape or (len(shape) == 3 and shape[2] > 4):
        raise InputError(
            f"unsupported TIFF layout {'x'.join(map(str, shape)) or '(empty)'} "
            "(convcli reads 2-D images with 1 to 4 samples per pixel)",
            subject=label,
        )
    check_pixels(shape[1], shape[0], label)
    return shape, _tiff_sample_type(np.dtype(page.dtype), label)


def _tiff_sample_type(dtype: np.dtype, label: str) -> np.dtype:
    """The documented sample type a TIFF's samples are read as."""
    if dtype in (np.uint8, np.uint16, np.float32, np.int32):
        return dtype
    if dtype == np.bool_:
        return np.dtype(np.uint8)
    if dtype.kind == "f":
        return np.dtype(np.float32)
    if dtype.kind in "iu" and dtype.itemsize <= 4:
        return np.dtype(np.int32)
    raise InputError(f"unsupported TIFF samples ({dtype})", subject=label)


def _decode_tiff(source: Path | bytes, label: str) -> np.ndarray:
    if not has_tifffile():
        raise InputError(
            "16-bit or float colour TIFF needs tifffile: pip install 'convcli[tiff]'", subject=label
        )
    tifffile = import_tifffile()
    with tifffile.TiffFile(io.BytesIO(source) if isinstance(source, bytes) else source) as tif:
        shape, dtype = tiff_header(tif, label)
        page = tif.pages.first
        pixels = page.asarray()
        if page.planarconfig == 2 and pixels.ndim == 3:
            pixels = np.moveaxis(pixels, 0, -1)
    pixels = pixels.reshape(shape)
    if not finite(pixels):
        raise InputError("the float image holds NaN or infinity", subject=label)
    if pixels.dtype == np.bool_:
        return pixels.astype(np.uint8) * np.uint8(255)
    if pixels.dtype == np.uint32:  # as int32, clipped: the documented 32-bit type
        pixels = np.minimum(pixels, np.iinfo(np.int32).max)
    return np.ascontiguousarray(pixels, dtype=dtype)


def import_tifffile() -> Any:
    """tifffile, with its log warnings kept off our stderr (errors reach users as ours)."""
    import tifffile

    quiet_decoders()
    return tifffile


def _bgr_to_rgb(pixels: np.ndarray, in_place: bool = False) -> np.ndarray:
    """Swap the first and third channels (OpenCV's BGR order <-> RGB); the same both ways.
    ``in_place`` reuses the array (one that is ours to change)."""
    if pixels.ndim == 3 and pixels.shape[2] in (3, 4):
        import cv2

        code = cv2.COLOR_BGR2RGB if pixels.shape[2] == 3 else cv2.COLOR_BGRA2RGBA
        pixels = np.ascontiguousarray(pixels)
        return cv2.cvtColor(pixels, code, dst=pixels if in_place else None)
    return pixels


def _to_array(im: Any) -> np.ndarray:
    """Pillow image -> numpy array in the documented layout."""
    mode = im.mode
    if mode == "1":
        im = im.convert("L")
    elif mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in im.info
        im = im.convert("RGBA" if has_alpha else "RGB")
    elif mode == "La":
        im = im.convert("LA")
    elif mode == "RGBa":
        im = im.convert("RGBA")
    elif mode in _COLOUR_MODES_TO_RGB:
        im = im.convert("RGB")
    elif mode.startswith("I;16"):
        return np.array(im, dtype=np.uint16)
    return np.array(im)


# -- writing images -----------------------------------------------------------------------------
def write_image(
    pixels: np.ndarray,
    path: str | Path,
    *,
    format: str | None = None,
    quality: int | None = None,
    compress: int | None = None,
    icc_profile: bytes | None = None,
) -> None:
    """Write an image (or array, for .npy/.csv/.json/.txt) atomically.

    The data goes straight into a temporary file beside ``path`` that is renamed into place,
    so a reader never sees half a file.
    """
    fmt = format_for(path, format)
    with atomic_file(Path(path)) as fh:
        encode_into(fh, pixels, fmt, quality=quality, compress=compress, icc_profile=icc_profile)


def encode(
    pixels: np.ndarray,
    fmt: str,
    *,
    quality: int | None = None,
    compress: int | None = None,
    icc_profile: bytes | None = None,
) -> bytes:
    """Encode an image or array into the bytes of format ``fmt``."""
    buffer = io.BytesIO()
    encode_into(buffer, pixels, fmt, quality=quality, compress=compress, icc_profile=icc_profile)
    return buffer.getvalue()


def encode_into(
    out: Any,
    pixels: np.ndarray,
    fmt: str,
    *,
    quality: int | None = None,
    compress: int | None = None,
    icc_profile: bytes | None = None,
) -> None:
    """Encode an image or array as ``fmt`` into the binary file object ``out``."""
    if fmt in ARRAY_FORMATS.values():
        _encode_array(out, pixels, fmt)
        return
    pixels = np.asarray(pixels)
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    if pixels.ndim not in (2, 3) or (pixels.ndim == 3 and pixels.shape[2] not in (2, 3, 4)):
        shape = "x".join(map(str, pixels.shape))
        raise OutputError(f"a {shape} array is not an image; write it as .npy")
    colour = pixels.ndim == 3
    if fmt == "PNG" and pixels.dtype in (np.uint8, np.uint16):
        from convcli.io import png

        # convcli's own writer: standard PNG, compressed on every core
        png.write(
            out,
            pixels,
            level=1 if compress is None else compress,
            threads=threads_per_worker(),
            icc_profile=icc_profile,
        )
    elif pixels.dtype == np.uint16 and colour:
        _encode_colour16(out, pixels, fmt, compress)
    elif pixels.dtype.kind == "f" and colour:
        _encode_float_colour(out, pixels, fmt)
    else:
        _encode_pillow(out, pixels, fmt, quality, compress, icc_profile)


def _encode_pillow(
    out: Any,
    pixels: np.ndarray,
    fmt: str,
    quality: int | None,
    compress: int | None,
    icc_profile: bytes | None,
) -> None:
    from PIL import Image

    if pixels.dtype == np.uint16:
        if fmt not in ("PNG", "TIFF"):
            raise OutputError(f"{fmt} cannot store 16-bit samples; use PNG or TIFF, or --depth 8")
        im = Image.fromarray(pixels.astype(np.uint16, copy=False))  # mode I;16
    elif pixels.dtype == np.int32:
        if fmt != "TIFF":
            raise OutputError(f"{fmt} cannot store 32-bit integer samples; use TIFF or --depth 16")
        im = Image.fromarray(pixels)  # mode I
    elif pixels.dtype == np.float32:
        if fmt != "TIFF":
            raise OutputError(f"{fmt} cannot store float samples; use TIFF or .npy, or --depth 8")
        im = Image.fromarray(pixels)  # mode F
    elif pixels.dtype == np.uint8:
        im = Image.fromarray(pixels)
    else:
        raise OutputError(f"cannot write {pixels.dtype} samples as an image")
    if fmt == "JPEG" and im.mode in ("LA", "RGBA"):
        im = im.convert("L" if im.mode == "LA" else "RGB")  # JPEG has no alpha channel
    options: dict[str, Any] = {}
    if icc_profile and fmt in ("PNG", "JPEG", "TIFF", "WEBP"):
        options["icc_profile"] = icc_profile
    if fmt == "PNG":
        options["compress_level"] = 1 if compress is None else compress
    elif fmt in ("JPEG", "WEBP"):
        options["quality"] = 90 if quality is None else quality
        if fmt == "WEBP":
            options["method"] = 1
    elif fmt == "TIFF" and compress:
        options["compression"] = "tiff_adobe_deflate"
    try:
        im.save(out, format=fmt, **options)
    except (OSError, ValueError, KeyError) as exc:
        raise OutputError(f"cannot write this image as {fmt}: {_reason(exc)}") from None


def _encode_colour16(out: Any, pixels: np.ndarray, fmt: str, compress: int | None) -> None:
    """16-bit colour TIFF (PNG has its own writer)."""
    if fmt != "TIFF":
        raise OutputError(f"{fmt} cannot store 16-bit samples; use PNG or TIFF, or --depth 8")
    if has_tifffile():
        _write_tifffile(out, pixels, compress)
    elif has_opencv():
        import cv2

        ok, buf = cv2.imencode(".tif", _bgr_to_rgb(pixels))
        if not ok:
            raise OutputError("OpenCV could not encode the 16-bit TIFF")
        out.write(buf)
    else:
        raise OutputError(
            "writing 16-bit colour TIFF needs tifffile: pip install "
            "'convcli[tiff]' (or use PNG, or --depth 8)"
        )


def _encode_float_colour(out: Any, pixels: np.ndarray, fmt: str) -> None:
    if fmt != "TIFF":
        raise OutputError(f"{fmt} cannot store float samples; use TIFF or .npy, or --depth 8")
    if not has_tifffile():
        raise OutputError("writing float colour TIFF needs tifffile: pip install 'convcli[tiff]'")
    _write_tifffile(out, pixels.astype(np.float32, copy=False), None)


def _write_tifffile(out: Any, pixels: np.ndarray, compress: int | None) -> None:
    photometric = "rgb" if pixels.shape[2] >= 3 else "minisblack"
    extras = ["unassalpha"] if pixels.shape[2] in (2, 4) else None
    import_tifffile().imwrite(
        out,
        pixels,
        photometric=photometric,
        extrasamples=extras,
        compression="zlib" if compress else None,
    )


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that no reader ever sees half a file (see
    :func:`atomic_file`)."""
    with atomic_file(path) as fh:
        fh.write(data)


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[Any]:
    """A binary file object whose content appears at ``path`` only once complete.

    The data goes to a hidden ``.NAME.PID-XXXX.part`` file in the same directory, renamed
    over ``path`` when the block ends and removed on any error or interruption. A part file
    left by a process that was killed (``kill -9``) is removed by the next write of the same
    output, once its process is gone.
    """
    directory = path.parent if str(path.parent) else Path(".")
    remove_stale_parts(path)
    # The part file's name is known before the file exists, so that a signal arriving at any
    # point after its creation still finds it to remove (mkstemp names it only on return).
    tmp: Path | None = None
    try:
        for _ in range(100):
            tmp = directory / f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.part"
            try:  # mode 0o666 less the umask, as for any new file
                os.close(os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666))
                break
            except FileExistsError:
                continue  # another writer's part file: never ours to remove
        else:
            tmp = None
            raise OutputError("cannot find a free temporary name beside it", subject=str(path))
        with open(tmp, "w+b") as fh:  # by name: writers such as tifffile want one
            yield fh
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        if isinstance(exc, FileNotFoundError) and not directory.is_dir():
            raise OutputError(
                "the output directory does not exist (create it, or use -d, which creates it)",
                subject=str(path),
            ) from None
        if isinstance(exc, PermissionError):
            raise OutputError(
                "permission denied (cannot write in its directory)", subject=str(path)
            ) from None
        if isinstance(exc, OSError):
            raise OutputError(exc.strerror or str(exc), subject=str(path)) from None
        raise


def write_bands(
    path: Path,
    fmt: str,
    shape: tuple[int, ...],
    dtype: np.dtype,
    bands: Iterator[tuple[int, int, np.ndarray]],
    *,
    rows_per_band: int,
    stacked: bool = False,
    compress: int | None = None,
) -> None:
    """Write an image or array that arrives band by band (rows ``r0:r1``), atomically, never
    holding more than one band: a striped TIFF, or a ``.npy`` (a stack's bands carry the stack
    axis first)."""
    if fmt == "NPY":
        with atomic_file(path) as fh:
            np.lib.format.write_array_header_2_0(
                fh,
                {
                    "descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                    "fortran_order": False,
                    "shape": tuple(shape),
                },
            )
            offset = fh.tell()
            fh.truncate(offset + int(np.prod(shape)) * np.dtype(dtype).itemsize)
            mm = np.memmap(fh, dtype=dtype, mode="r+", offset=offset, shape=tuple(shape))
            for r0, r1, band in bands:
                if stacked:
                    mm[:, r0:r1] = band
                else:
                    mm[r0:r1] = band
            mm.flush()
            del mm
        return
    if fmt != "TIFF":
        raise OutputError(
            f"a streamed result is written as TIFF or .npy, not {fmt}", subject=str(path)
        )
    tifffile = import_tifffile()
    channels = shape[2] if len(shape) == 3 else 1
    photometric = "rgb" if channels >= 3 else "minisblack"
    extras = ["unassalpha"] if channels in (2, 4) else None
    with atomic_file(path) as fh:
        tifffile.imwrite(
            fh,
            (band for _, _, band in bands),
            shape=tuple(shape),
            dtype=dtype,
            photometric=photometric,
            extrasamples=extras,
            rowsperstrip=rows_per_band,
            compression="zlib" if compress else None,
        )


def remove_stale_parts(path: Path) -> None:
    """Delete part files of ``path`` whose writing process no longer exists."""
    directory = path.parent if str(path.parent) else Path(".")
    try:
        candidates = list(directory.glob(f".{glob_escape(path.name)}.*-*.part"))
    except OSError:
        return
    for part in candidates:
        pid_text = part.name[len(path.name) + 2 :].split("-", 1)[0]
        if pid_text.isdigit() and not _alive(int(pid_text)):
            with contextlib.suppress(OSError):
                part.unlink()


def glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# -- arrays -------------------------------------------------------------------------------------
def read_array(path: str | Path) -> np.ndarray:
    """Read a numeric array from .npy, .csv, .txt or .json, naming the file in errors."""
    p = Path(path)
    label = str(path)
    _check_readable(p, label)
    suffix = p.suffix.lower()
    try:
        if suffix == ".npy":
            npy_header(p, label)
            try:
                arr = np.load(p, allow_pickle=False)
            except MemoryError:
                raise
            except Exception as exc:
                raise InputError(f"corrupt .npy file ({_reason(exc)})", subject=label) from None
            return check_array(arr, label)
        text = p.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise InputError("not UTF-8 text", subject=label) from None
    except OSError as exc:
        raise InputError(exc.strerror or str(exc), subject=label) from None
    if suffix == ".json":
        return parse_array(text, label)
    return _parse_table(text, "," if suffix == ".csv" else None, label)


def npy_header(path: Path, label: str) -> tuple[tuple[int, ...], np.dtype]:
    """The shape and dtype a ``.npy`` file declares, checked against its size before numpy
    allocates anything (a 12-byte file can declare gigabytes), and refused if it holds
    Python objects."""
    fmt = np.lib.format
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            version = fmt.read_magic(fh)
            head = 10 if version == (1, 0) else 12
            fh.seek(head - (2 if version == (1, 0) else 4))
            declared = int.from_bytes(fh.read(head - 8), "little")
            if head + declared > size:
                raise InputError(
                    "truncated or corrupt .npy file (its header runs past the end of the file)",
                    subject=label,
                )
            fh.seek(0)
            fmt.read_magic(fh)
            read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            shape, _, dtype = read(fh)
            start = fh.tell()
    except ConvcliError:
        raise
    except Exception as exc:
        raise InputError(f"not a valid .npy file ({_reason(exc)})", subject=label) from None
    if dtype.hasobject:
        raise InputError(
            "holds Python objects, not numbers (refused: loading it could run code)", subject=label
        )
    expected = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if start + expected > size:
        raise InputError(
            f"truncated .npy file (declares {'x'.join(map(str, shape))} "
            f"{dtype} values, {expected} bytes, but holds "
            f"{max(0, size - start)})",
            subject=label,
        )
    return tuple(shape), dtype


def parse_array(text: str, label: str = "<inline>") -> np.ndarray:
    """An array written as JSON (``'[1, 2, 3]'``, ``'[[1, 2], [3, 4]]'``)."""
    try:
        values = loads_json(text)
    except ValueError as exc:
        raise InputError(f"not a valid JSON array ({exc})", subject=label) from None
    try:
        return nested_to_array(values)
    except ValueError as exc:
        raise InputError(str(exc), subject=label) from None


def _parse_table(text: str, delimiter: str | None, label: str) -> np.ndarray:
    rows: list[list[float]] = []
    width = None
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        cells = line.split(delimiter)
        if delimiter and line.rstrip().endswith(delimiter):
            cells = cells[:-1]
        values = []
        for cell in cells:
            try:
                value = float(cell)
            except ValueError:
                raise InputError(
                    f"line {lineno}: {cell.strip()!r} is not a number", subject=label
                ) from None
            if not np.isfinite(value):
                raise InputError(
                    f"line {lineno}: {cell.strip()} is not a finite number", subject=label
                )
            values.append(value)
        if width is None:
            width = len(values)
        elif len(values) != width:
            raise InputError(
                f"line {lineno} has {len(values)} values, expected {width}", subject=label
            )
        rows.append(values)
    if not rows or not width:
        raise InputError("no numbers in the file", subject=label)
    arr = np.array(rows)
    return arr[0] if len(rows) == 1 else arr


def check_array(arr: np.ndarray, label: str) -> np.ndarray:
    """Refuse arrays convcli cannot filter, with a reason."""
    if arr.dtype.kind not in "biuf":
        raise InputError(f"holds {arr.dtype} values, expected numbers", subject=label)
    if arr.ndim == 0:
        raise InputError("is a single number (0-d), expected a 1-D or 2-D array", subject=label)
    if arr.ndim > 3:
        raise InputError(
            f"is {arr.ndim}-D, expected 1-D, 2-D or 3-D (H x W x channels)", subject=label
        )
    if arr.size == 0:
        raise InputError("is empty", subject=label)
    if not finite(arr):
        raise InputError("holds NaN or infinity", subject=label)
    return arr


def encode_array(arr: np.ndarray, fmt: str) -> bytes:
    """Bytes of an array in NPY, CSV, TXT or JSON (full float precision)."""
    buffer = io.BytesIO()
    _encode_array(buffer, arr, fmt)
    return buffer.getvalue()


def _encode_array(out: Any, arr: np.ndarray, fmt: str) -> None:
    arr = np.asarray(arr)
    if fmt == "NPY":
        np.save(out, arr, allow_pickle=False)
        return
    if fmt == "JSON":
        out.write((json.dumps(arr.tolist()) + "\n").encode())
        return
    if arr.ndim > 2:
        raise OutputError(
            f"{fmt} holds 1-D or 2-D arrays, this result is {arr.ndim}-D; write it as .npy or .json"
        )
    rows = arr[np.newaxis] if arr.ndim == 1 else arr
    sep = "," if fmt == "CSV" else " "
    out.write("".join(sep.join(_number_text(v) for v in row) + "\n" for row in rows).encode())


def _number_text(value: Any) -> str:
    v = float(value)
    return str(int(v)) if v.is_integer() and abs(v) < 2**53 else repr(v)
