"""Images in: Pillow, with OpenCV for speed and tifffile for what Pillow cannot keep.

Images come back as numpy arrays in the layout Pillow and OpenCV use: ``(H, W)`` gray,
``(H, W, 2)`` gray + alpha, ``(H, W, 3)`` RGB, ``(H, W, 4)`` RGBA; ``uint8`` for 8-bit,
``uint16`` for 16-bit, ``int32`` for 32-bit integer and ``float32`` for float images. Palette,
1-bit, CMYK, YCbCr, LAB and HSV images are converted to gray or RGB(A) on read; EXIF
orientation is applied. 16-bit colour needs OpenCV (PNG) or tifffile (TIFF), which the
``opencv`` and ``tiff`` extras install; without them such a file is refused (Pillow alone
would keep only 8 bits).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from convcli.errors import ConvcliError, InputError
from convcli.io import png
from convcli.io.allowed import allowed_formats, identify, refusal
from convcli.io.containers import CHECKED_BEFORE_OPENING, check_contained
from convcli.io.inputs import check_readable, reason
from convcli.io.limits import check_pixels, pillow_limit_error
from convcli.io.tiff import decode_tiff, is_tiff, needs_tifffile, probe_tiff
from convcli.machine import has_opencv, has_tifffile
from convcli.numeric import finite

_COLOUR_MODES_TO_RGB = {"CMYK", "YCbCr", "LAB", "HSV", "RGBX"}


@dataclass
class Picture:
    """A decoded image and what is worth carrying to its output."""

    pixels: np.ndarray
    format: str | None = None  # Pillow's name of the source format ("PNG", "JPEG", ...)
    icc_profile: bytes | None = None
    bgr: bool = False  # colour in OpenCV's order, blue first (only where asked for)


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file into a numpy array (see the module docstring for the layout).

    >>> import numpy as np, tempfile, os
    >>> from convcli import write_image
    >>> p = os.path.join(tempfile.mkdtemp(), "a.png")
    >>> write_image(np.zeros((2, 3), np.uint8), p)
    >>> read_image(p).shape
    (2, 3)

    An image of several frames (an animation, a multi-page TIFF) is refused rather than read
    as its first frame: :func:`convcli.read_frames` reads every frame.
    """
    from convcli.io.frames import probe

    animation = probe(Path(path), str(path))
    if animation is not None:
        raise InputError(
            f"is an {animation.name} of {animation.count} frames, and read_image reads one "
            "image; read its frames with convcli.read_frames",
            subject=str(path),
        )
    return open_image(Path(path)).pixels


@contextlib.contextmanager
def _pillow_open(source: Path | bytes, label: str) -> Iterator[Any]:
    """Pillow's lazily decoded image of ``source`` (a file checked to be readable first)."""
    from PIL import Image

    if isinstance(source, Path):
        check_readable(source, label)
    allowed = allowed_formats()
    formats = None if allowed is None else sorted(allowed)
    # before Pillow opens it: its ICO plugin decodes the largest icon while opening (this
    # loads the allowed formats' plugins, so that Pillow does not load all forty)
    found = _format_of(source, allowed)
    if found in CHECKED_BEFORE_OPENING:
        check_contained(found, source, label)
    with Image.open(
        io.BytesIO(source) if isinstance(source, bytes) else source, formats=formats
    ) as im:
        yield im


class TooLarge(Exception):
    """An image that ``open_image``'s ``fits`` refused, from its header (nothing decoded)."""


def open_image(
    source: Path | bytes,
    name: str | None = None,
    *,
    bgr: bool = False,
    fits: Callable[[tuple[int, ...], str], bool] | None = None,
) -> Picture:
    """Decode an image from a path or from bytes (stdin), naming it in every error. With
    ``bgr``, colour that OpenCV decodes may come in its order, blue first (``Picture.bgr``
    says whether it did): for a caller whose work is the same on every channel and whose
    encoder wants that order, which saves a pass at each end.

    Whatever a decoder raises on a malformed file (decoders raise anything: TypeError,
    KeyError, struct.error, ...) becomes one InputError. Nothing outside convcli is changed:
    the decoders' warnings and log records go where the program running convcli sends them
    (the command line keeps them off stderr), and Pillow's own pixel limit is the program's
    (see :mod:`convcli.io.limits`).

    ``fits(shape, sample type)``, when given, is asked once the header is read, before
    anything is decoded: an image it refuses raises :class:`TooLarge` (a caller that streams
    such images reads the header once, not once to decide and again to decode).
    """
    from PIL import Image, UnidentifiedImageError

    label = name or str(source if isinstance(source, Path) else "<stdin>")
    try:
        with _pillow_open(source, label) as im:
            return _decode(im, source, label, bgr, fits)
    except (ConvcliError, TooLarge):
        raise
    except Image.DecompressionBombError:
        raise pillow_limit_error(source, label) from None
    except UnidentifiedImageError:
        if is_tiff(source) and has_tifffile() and tiff_allowed():
            try:  # float colour and other TIFFs Pillow does not open
                if fits is not None and not fits(*probe_tiff(source, label)):
                    raise TooLarge
                return Picture(decode_tiff(source, label), "TIFF")
            except (ConvcliError, TooLarge):
                raise
            except Exception as exc:
                raise InputError(
                    f"corrupt or unsupported TIFF ({reason(exc)})", subject=label
                ) from None
        raise refusal(source, label) or unknown_format(label) from None
    except MemoryError:
        raise
    except Exception as exc:
        raise InputError(f"corrupt or truncated image ({reason(exc)})", subject=label) from None


def _decode(
    im: Any,
    source: Path | bytes,
    label: str,
    bgr: bool = False,
    fits: Callable[[tuple[int, ...], str], bool] | None = None,
) -> Picture:
    from PIL import ImageOps

    width, height = im.size
    check_pixels(width, height, label)
    check_contained(im.format, source, label)
    if fits is not None and not fits(*_layout_of(im, source, label)):
        raise TooLarge
    png_complete = _check_png_chunks(source, label) if im.format == "PNG" else False
    fmt = im.format
    icc = im.info.get("icc_profile")
    special = _special_decoder(im, source, label)
    if special is not None:
        return Picture(special, fmt, icc)
    fast = _tifffile_decode(im, source, label)
    if fast is not None:  # in RGB order, as tifffile decodes
        return Picture(orient(fast, _orientation(im)), fmt, icc)
    fast = _opencv_decode(im, source, png_complete, bgr)
    if fast is not None:
        colour = fast.ndim == 3 and fast.shape[2] in (3, 4)
        return Picture(orient(fast, _orientation(im)), fmt, icc, bgr and colour)
    im.load()
    pixels = _to_array(ImageOps.exif_transpose(im) or im)
    if not finite(pixels):
        raise InputError("the float image holds NaN or infinity", subject=label)
    return Picture(pixels, fmt, icc)


def _check_png_chunks(source: Path | bytes, label: str) -> bool:
    """Refuse a PNG whose chunk lengths run past the end of the file before a decoder
    allocates what they claim (a 56-byte file can claim a 4 GB chunk). True if the chunks
    reach the IEND chunk, False if the file ends before it (cut between two chunks)."""
    stream: Any = io.BytesIO(source) if isinstance(source, bytes) else source.open("rb")
    with stream:
        size = stream.seek(0, io.SEEK_END)
        return any(kind == b"IEND" for kind, _, _ in png.chunks(stream, size, label))


def _complete(im: Any, source: Path | bytes) -> bool:
    """Whether a JPEG ends with its end-of-image marker, and a TIFF's strips or tiles lie
    within the file; other formats are taken as complete (a PNG's chunks are walked by
    :func:`_check_png_chunks`)."""
    size = len(source) if isinstance(source, bytes) else source.stat().st_size
    if im.format == "JPEG":
        if isinstance(source, bytes):
            tail = source[-64:]
        else:
            with source.open("rb") as fh:
                fh.seek(max(0, size - 64))
                tail = fh.read()
        return tail.rstrip(b"\0").endswith(b"\xff\xd9")  # the end-of-image marker
    if im.format == "TIFF":
        tags = im.tag_v2
        offsets, counts = tags.get(324, tags.get(273)), tags.get(325, tags.get(279))
        if isinstance(offsets, int) and isinstance(counts, int):
            offsets, counts = (offsets,), (counts,)
        if not isinstance(offsets, tuple) or not isinstance(counts, tuple) or not counts:
            return False
        return all(o + c <= size for o, c in zip(offsets, counts, strict=False))
    return True


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
    from PIL import Image, UnidentifiedImageError

    label = name or str(source if isinstance(source, Path) else "<stdin>")
    try:
        with _pillow_open(source, label) as im:
            w, h = im.size
            check_pixels(w, h, label)
            check_contained(im.format, source, label)
            return _layout_of(im, source, label)
    except ConvcliError:
        raise
    except Image.DecompressionBombError:
        raise pillow_limit_error(source, label) from None
    except UnidentifiedImageError:
        if is_tiff(source) and has_tifffile() and tiff_allowed():
            return probe_tiff(source, label)
        raise refusal(source, label) or unknown_format(label) from None
    except MemoryError:
        raise
    except Exception as exc:
        raise InputError(f"corrupt image header ({reason(exc)})", subject=label) from None


def _layout_of(im: Any, source: Path | bytes, label: str) -> tuple[tuple[int, ...], str]:
    """The shape and sample type an opened image will be decoded as (its header only)."""
    if im.format == "TIFF" and needs_tifffile(im):
        return probe_tiff(source, label)
    w, h = im.size
    channels, dtype = _MODE_LAYOUT.get(im.mode, (3, "uint8"))
    if im.mode == "P" and "transparency" in im.info:
        channels = 4
    if _is_png16(im, source):
        check_png16(label)
        dtype = "uint16"
    if _orientation(im) in (5, 6, 7, 8):  # EXIF rotations by 90 degrees swap the sides
        w, h = h, w
    shape = (h, w) if channels == 1 else (h, w, channels)
    return shape, dtype


def _special_decoder(im: Any, source: Path | bytes, label: str) -> np.ndarray | None:
    """16-bit colour (and float colour TIFF), which Pillow would truncate to 8 bits."""
    if _is_png16(im, source):
        check_png16(label)
        return _decode_png16(source if isinstance(source, bytes) else source.read_bytes())
    if im.format == "TIFF" and needs_tifffile(im):
        return decode_tiff(source, label)
    return None


def _is_png16(im: Any, source: Path | bytes) -> bool:
    """16-bit colour or gray + alpha, which Pillow reads as their high bytes."""
    return im.format == "PNG" and im.mode in ("RGB", "RGBA", "LA") and _png_bit_depth(source) == 16


def check_png16(label: str) -> None:
    """Refuse a 16-bit colour PNG where only Pillow can read it, which would keep 8 of its
    16 bits: silently lower depth is data lost."""
    if not has_opencv():
        raise InputError(
            "16-bit colour PNG, which convcli reads at 16 bits through OpenCV, not installed "
            "(Pillow alone would keep 8 bits): pip install 'convcli[opencv]'",
            subject=label,
        )


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


def _opencv_decode(
    im: Any, source: Path | bytes, png_complete: bool, bgr: bool = False
) -> np.ndarray | None:
    """The pixels decoded by OpenCV, as RGB(A) (as BGR(A) with ``bgr``), for the plain 8-bit
    cases of complete files; None otherwise (Pillow then decodes, as it does every other mode
    and format).

    libpng, libjpeg and libtiff print their complaints about a truncated file on file
    descriptor 2, which belongs to the program that runs convcli; Pillow raises an exception
    instead (or decodes a PNG that lacks only its IEND chunk, which OpenCV refuses).
    """
    if im.format not in _OPENCV_READS or im.mode not in _OPENCV_MODES or not has_opencv():
        return None
    if im.format == "PNG" and (im.info.get("transparency") is not None or "gamma" in im.info):
        return None  # tRNS and gAMA are Pillow's business
    if getattr(im, "n_frames", 1) > 1:
        return None
    if not (png_complete if im.format == "PNG" else _complete(im, source)):
        return None
    import cv2

    # a colour JPEG straight to RGB (or BGR): libjpeg-turbo writes either order itself (the
    # same pixels swapped, without the pass); EXIF orientation is applied by orient()
    colour_jpeg = im.format == "JPEG" and im.mode == "RGB"
    rgb = colour_jpeg and not bgr and hasattr(cv2, "IMREAD_COLOR_RGB")
    if colour_jpeg and (rgb or bgr):
        flags = (cv2.IMREAD_COLOR_RGB if rgb else cv2.IMREAD_COLOR) | cv2.IMREAD_IGNORE_ORIENTATION
    else:
        flags = cv2.IMREAD_UNCHANGED
    if isinstance(source, Path) and str(source).isprintable() and str(source).isascii():
        pixels = cv2.imread(str(source), flags)  # no copy of the bytes
    else:  # (a file that imread could not decode is not tried again: Pillow says why)
        data = source if isinstance(source, bytes) else source.read_bytes()
        pixels = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if pixels is None or pixels.dtype != np.uint8:
        return None
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    if channels != _MODE_LAYOUT[im.mode][0] or pixels.shape[:2] != (im.size[1], im.size[0]):
        return None
    return pixels if rgb or bgr else bgr_to_rgb(pixels, in_place=True)


#: lossless TIFF compressions whose samples tifffile decodes as Pillow does: none, LZW,
#: deflate (both codes) and PackBits
_TIFFFILE_COMPRESSIONS = {1, 5, 8, 32946, 32773}


def _tifffile_decode(im: Any, source: Path | bytes, label: str) -> np.ndarray | None:
    """The pixels of a plain 8-bit gray, RGB or RGBA TIFF (one page, whole, losslessly
    compressed or not) decoded by tifffile, which reads an uncompressed 12 MP photo in 9 ms
    where libtiff through Pillow or OpenCV takes 75-80 ms; None otherwise (or where tifffile
    fails: Pillow then decodes, or says why not)."""
    if im.format != "TIFF" or im.mode not in _OPENCV_MODES or not has_tifffile():
        return None
    tags = im.tag_v2
    bits = tags.get(258, 1)
    formats = tags.get(339, 1)
    plain = (
        getattr(im, "n_frames", 1) == 1
        and set(bits if isinstance(bits, tuple) else (bits,)) == {8}
        and set(formats if isinstance(formats, tuple) else (formats,)) == {1}  # unsigned
        and tags.get(262) in (1, 2)  # black is zero, or RGB: no inversion, palette, YCbCr
        and tags.get(259, 1) in _TIFFFILE_COMPRESSIONS
        and (im.mode != "RGBA" or tags.get(338) in (2, (2,)))  # alpha not premultiplied
        and _complete(im, source)
    )
    if not plain:
        return None
    try:
        pixels = decode_tiff(source, label)
    except Exception:
        return None
    channels = _MODE_LAYOUT[im.mode][0]
    wanted = (im.size[1], im.size[0]) + (() if channels == 1 else (channels,))
    return pixels if pixels.shape == wanted and pixels.dtype == np.uint8 else None


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


def _decode_png16(data: bytes) -> np.ndarray:
    """16-bit colour PNG (colour type 2 or 6) through OpenCV, which keeps the 16 bits."""
    import cv2

    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if pixels is None:
        raise OSError("OpenCV could not decode the 16-bit PNG (corrupt or truncated)")
    if data[25] == 4 and pixels.ndim == 3 and pixels.shape[2] == 4:  # gray + alpha, as BGRA
        return np.ascontiguousarray(pixels[:, :, [0, 3]])
    return bgr_to_rgb(pixels)


def bgr_to_rgb(pixels: np.ndarray, in_place: bool = False) -> np.ndarray:
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


def _format_of(source: Path | bytes, among: frozenset[str] | None) -> str | None:
    if isinstance(source, bytes):
        return identify(source[:64], among)
    with source.open("rb") as fh:
        return identify(fh.read(64), among)


def tiff_allowed() -> bool:
    allowed = allowed_formats()
    return allowed is None or "TIFF" in allowed


def unknown_format(label: str) -> InputError:
    return InputError("not an image Pillow can read (unknown or corrupt format)", subject=label)
