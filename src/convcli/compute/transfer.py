"""Transfer functions: how an image's encoded samples relate to linear light (``--linear``).

Filtering encoded (gamma) values darkens and shifts what should be averages of light: a box
blur of a black/white checkerboard gives sRGB 128 where the eye and a camera would see the
linear mid-grey, sRGB 188. ``--linear`` decodes the samples to linear light, filters, and
encodes the result with the same curve:

* the sRGB curve of IEC 61966-2-1 (piecewise: a line below 0.04045, a 2.4 power above, not
  a 2.2 power), for images that say nothing else or carry a PNG ``sRGB`` chunk;
* the tone curves (``rTRC``/``gTRC``/``bTRC``, or ``kTRC`` for gray) of an embedded ICC
  profile: sampled curves, pure gammas and the parametric curves of ICC.1:2010 (types 0 to
  4), each inverted exactly (analytically, or the sampled curve's own pieces);
* a PNG ``gAMA`` chunk: encoded = linear ** gamma, except 0.45455, which PNG writers
  (libpng, ImageMagick) give sRGB images and which stands for the sRGB curve.

Curves act on values in 0..1 of full scale; results outside that range (ringing of a
sharpening kernel, negative edges) are encoded by the curve extended beyond 1 and mirrored
below 0, so ``--range`` then treats them as it treats any result. Integer samples are decoded
through a table of every level, so an identity kernel gives back every sample exactly (8-bit
images computed in float32, 16-bit in float64).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from convcli.errors import InputError


@dataclass(frozen=True)
class Curve:
    """One tone curve, encoded 0..1 -> linear 0..1.

    ``kind`` is ``srgb``, ``gamma`` (``params = (g,)``: linear = encoded ** g), ``parametric``
    (ICC ``para``: ``function`` 0-4 and its parameters g, a, b, c, d, e, f as given) or
    ``table`` (ICC ``curv``: samples of linear light at evenly spaced encoded values).
    """

    kind: str
    params: tuple[float, ...] = ()
    function: int = 0
    table: tuple[float, ...] = ()

    def describe(self) -> str:
        if self.kind == "srgb":
            return "the sRGB curve (IEC 61966-2-1)"
        if self.kind == "gamma":
            return f"a {self.params[0]:.4g} power"
        if self.kind == "parametric":
            values = ", ".join(f"{p:.5g}" for p in self.params)
            return f"the ICC parametric curve type {self.function} ({values})"
        return f"an ICC curve of {len(self.table)} samples"

    @cached_property
    def _samples(self) -> tuple[np.ndarray, np.ndarray]:
        y = np.asarray(self.table, dtype=np.float64)
        x = np.linspace(0.0, 1.0, len(y))
        return x, np.maximum.accumulate(y)  # a tone curve rises; noise in a table must not fold it

    def decode(self, x: np.ndarray) -> np.ndarray:
        """Encoded values (any real) -> linear light, mirrored below 0."""
        sign, v = np.sign(x), np.abs(x)
        return sign * self._decode(v)

    def encode(self, y: np.ndarray) -> np.ndarray:
        """Linear light (any real) -> encoded values, mirrored below 0."""
        sign, v = np.sign(y), np.abs(y)
        return sign * self._encode(v)

    def _decode(self, v: np.ndarray) -> np.ndarray:
        if self.kind == "srgb":
            return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)
        if self.kind == "gamma":
            return v ** self.params[0]
        if self.kind == "table":
            xs, ys = self._samples
            inside = np.interp(v, xs, ys)
            slope = (ys[-1] - ys[-2]) / (xs[-1] - xs[-2]) if len(ys) > 1 else 0.0
            return np.where(v > 1.0, ys[-1] + (v - 1.0) * slope, inside)
        return _para_decode(self.function, self.params, v)

    def _encode(self, v: np.ndarray) -> np.ndarray:
        if self.kind == "srgb":
            with np.errstate(invalid="ignore"):
                return np.where(v <= 0.0031308, v * 12.92, 1.055 * v ** (1 / 2.4) - 0.055)
        if self.kind == "gamma":
            return v ** (1.0 / self.params[0])
        if self.kind == "table":
            xs, ys = self._samples
            inside = np.interp(v, ys, xs)
            slope = (ys[-1] - ys[-2]) / (xs[-1] - xs[-2]) if len(ys) > 1 else 0.0
            beyond = 1.0 + (v - ys[-1]) / slope if slope > 0 else np.ones_like(v)
            return np.where(v > ys[-1], beyond, inside)
        return _para_encode(self.function, self.params, v)


def _para_decode(function: int, p: tuple[float, ...], x: np.ndarray) -> np.ndarray:
    """ICC.1:2010 table 65, parametricCurveType functions 0 to 4."""
    g = p[0]
    if function == 0:
        return x**g
    a, b = p[1], p[2]
    with np.errstate(invalid="ignore"):
        base = np.maximum(a * x + b, 0.0) ** g
    if function == 1:
        return np.where(x >= -b / a, base, 0.0)
    if function == 2:
        return np.where(x >= -b / a, base + p[3], p[3])
    c, d = p[3], p[4]
    if function == 3:
        return np.where(x >= d, base, c * x)
    e, f = p[5], p[6]
    return np.where(x >= d, base + e, c * x + f)


def _para_encode(function: int, p: tuple[float, ...], y: np.ndarray) -> np.ndarray:
    """The exact inverse of :func:`_para_decode` (each piece inverted analytically)."""
    g = p[0]
    if function == 0:
        return y ** (1.0 / g)
    a, b = p[1], p[2]

    def power_inverse(v: np.ndarray) -> np.ndarray:
        return (np.maximum(v, 0.0) ** (1.0 / g) - b) / a

    if function == 1:
        return power_inverse(y)
    if function == 2:
        return power_inverse(y - p[3])
    c, d = p[3], p[4]
    if function == 3:
        knee = c * d
        return np.where(y >= knee, power_inverse(y), y / c if c else 0.0)
    e, f = p[5], p[6]
    knee = c * d + f
    return np.where(y >= knee, power_inverse(y - e), (y - f) / c if c else 0.0)


@dataclass(frozen=True)
class Transfer:
    """The curves of an image: one for all channels, or one per colour channel (an ICC
    profile may give red, green and blue their own)."""

    curves: tuple[Curve, ...]
    source: str  # where the curve comes from, in words

    def curve(self, channel: int) -> Curve:
        return self.curves[channel if channel < len(self.curves) else 0]

    def describe(self) -> str:
        """What --explain says about the linear step."""
        kinds = dict.fromkeys(c.describe() for c in self.curves)
        curve = " / ".join(kinds) if len(kinds) > 1 else next(iter(kinds))
        return (
            f"decoded to linear light by {curve} ({self.source}), filtered, "
            "re-encoded by the same curve"
        )

    def decode(self, samples: np.ndarray, channel: int, full: float, dtype: Any) -> np.ndarray:
        """Samples of one channel (0..full) -> linear light in the same units, ``dtype``.
        Integer samples go through a table of every level (exact, and one lookup each)."""
        curve = self.curve(channel)
        if samples.dtype in (np.uint8, np.uint16):
            levels = np.arange(np.iinfo(samples.dtype).max + 1, dtype=np.float64)
            table = (curve.decode(levels / full) * full).astype(dtype)
            return table[samples]
        values = np.asarray(samples, dtype=np.float64) / full
        return (curve.decode(values) * full).astype(dtype)

    def encode(self, plane: np.ndarray, channel: int, full: float) -> np.ndarray:
        """Linear light of one channel (in units of ``full``) -> encoded values, float64."""
        values = np.asarray(plane, dtype=np.float64) / full
        return self.curve(channel).encode(values) * full


SRGB = Transfer((Curve("srgb"),), "sRGB, the default")
#: the PNG gAMA of sRGB images (1/2.2 as PNG stores it, in units of 1e-5)
SRGB_GAMA = 0.45455


def transfer_for(
    icc_profile: bytes | None, gamma: float | None, srgb: bool, label: str = ""
) -> Transfer:
    """The transfer of an image: its ICC profile's tone curves, else the sRGB curve when
    a PNG sRGB chunk says so, else its PNG gAMA, else sRGB (what untagged images are)."""
    if icc_profile:
        return profile_transfer(icc_profile, label)
    if srgb:
        return Transfer((Curve("srgb"),), "the PNG sRGB chunk")
    if gamma and abs(gamma - SRGB_GAMA) < 5e-6:
        # PNG 11.3.3.5: the gAMA written beside an sRGB chunk, and what libpng, ImageMagick
        # and others write for an sRGB image: it stands for sRGB, as they read it
        return Transfer((Curve("srgb"),), "the PNG gAMA of 0.45455, the value for sRGB")
    if gamma:
        if not 0.01 <= gamma <= 100:
            raise InputError(
                f"--linear: the PNG gAMA of {gamma} is not a usable gamma", subject=label or None
            )
        return Transfer((Curve("gamma", (1.0 / gamma,)),), f"the PNG gAMA of {gamma:.5g}")
    return SRGB


def profile_transfer(icc: bytes, label: str = "") -> Transfer:
    """The tone curves of an ICC profile (validated by LittleCMS through Pillow's ImageCms
    when it is there, which also names it)."""
    name = _profile_name(icc, label)
    tags = _tag_table(icc, label)
    space = icc[16:20]
    wanted = [b"kTRC"] if space == b"GRAY" else [b"rTRC", b"gTRC", b"bTRC"]
    if space not in (b"GRAY", b"RGB "):
        raise InputError(
            f"--linear: the ICC profile {name} describes {space.decode('latin-1').strip()} "
            "colour, not RGB or gray",
            subject=label or None,
        )
    if not all(t in tags for t in wanted):
        names = ", ".join(t.decode() for t in wanted)
        raise InputError(
            f"--linear: the ICC profile {name} has no tone curves ({names}), only lookup "
            "tables, which convcli does not linearise; convert the image to sRGB",
            subject=label or None,
        )
    curves = tuple(_read_curve(icc, *tags[t], name, label) for t in wanted)
    if all(c == curves[0] for c in curves):
        curves = curves[:1]
    return Transfer(curves, f"the ICC profile {name}")


def _profile_name(icc: bytes, label: str) -> str:
    try:
        import io

        from PIL import ImageCms
    except ImportError:  # Pillow built without LittleCMS: the curves are read all the same
        return "embedded"
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        description = ImageCms.getProfileDescription(profile).strip()
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError) as exc:
        raise InputError(
            f"--linear: the ICC profile cannot be read ({exc})", subject=label or None
        ) from None
    return repr(description) if description else "embedded"


def _tag_table(icc: bytes, label: str) -> dict[bytes, tuple[int, int]]:
    try:
        (count,) = struct.unpack_from(">I", icc, 128)
        if count > 1000:
            raise ValueError(f"{count} tags")
        tags = {}
        for i in range(count):
            sig, offset, size = struct.unpack_from(">4sII", icc, 132 + 12 * i)
            if offset + size > len(icc):
                raise ValueError(f"tag {sig!r} lies past the end")
            tags[sig] = (offset, size)
    except (struct.error, ValueError) as exc:
        raise InputError(
            f"--linear: the ICC profile is malformed ({exc})", subject=label or None
        ) from None
    return tags


_PARA_COUNTS = {0: 1, 1: 3, 2: 4, 3: 5, 4: 7}


def _read_curve(icc: bytes, offset: int, size: int, name: str, label: str) -> Curve:
    data = icc[offset : offset + size]
    try:
        kind = data[:4]
        if kind == b"curv":
            (count,) = struct.unpack_from(">I", data, 8)
            if count == 0:
                return Curve("gamma", (1.0,))
            if count == 1:
                (fixed,) = struct.unpack_from(">H", data, 12)
                return Curve("gamma", (fixed / 256.0,))
            values = struct.unpack_from(f">{count}H", data, 12)
            return Curve("table", table=tuple(v / 65535.0 for v in values))
        if kind == b"para":
            (function,) = struct.unpack_from(">H", data, 8)
            if function not in _PARA_COUNTS:
                raise ValueError(f"unknown parametric curve type {function}")
            raw = struct.unpack_from(f">{_PARA_COUNTS[function]}i", data, 12)
            params = tuple(v / 65536.0 for v in raw)
            if params[0] <= 0 or (function > 0 and params[1] == 0):
                raise ValueError("a parametric curve with no slope")
            return Curve("parametric", params, function)
        raise ValueError(f"a tone curve of type {kind!r}")
    except (struct.error, ValueError) as exc:
        raise InputError(
            f"--linear: the ICC profile {name} has a bad tone curve ({exc})", subject=label or None
        ) from None
