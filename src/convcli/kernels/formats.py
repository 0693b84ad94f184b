"""Kernels to and from other tools: ImageMagick kernel strings and libvips matrix files.

A kernel taken from a tool gives that tool's pixels:

* ImageMagick 6 ``-morphology Convolve 'WxH+X+Y: v,v,...'`` is a true convolution; the origin
  ``+X+Y`` is the kernel element that lands on the output pixel, which is exactly
  :attr:`Kernel.origin` (row ``Y``, column ``X``). Without an origin IM uses the centre,
  ``((H-1)//2, (W-1)//2)``, the same as scipy's alignment. Several kernels separated by ``;``
  are applied one after another (a chain).
* ``vips conv`` correlates (the mask is not flipped) and computes ``sum / scale + offset``, with
  the mask centred at ``(w//2, h//2)``; so a ``.mat`` file is flipped on load, divided by its
  scale and keeps the offset, which makes it the same convolution with the default alignment.

Both were checked against the real tools (tests/test_interop.py).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from convcli import bounded, paths
from convcli.errors import KernelError, LimitError
from convcli.kernels.model import (
    AnyKernel,
    Kernel,
    KernelBank,
    KernelChain,
    max_kernel_size,
    short,
)


class KernelFileError(KernelError):
    """A kernel error whose message already names its kernel file (``kernel file 'x.toml':
    ...``), so whoever passes it on need not name the file again."""


_GEOMETRY = re.compile(r"^\s*(\d+)(?:x(\d+))?(?:([+-]\d+)([+-]\d+))?\s*:(.*)$", re.S)
_NUMBERS_ONLY = re.compile(r"^[\s,]*[-+0-9.eE]+(?:[\s,]+[-+0-9.eE]+)+[\s,]*$")


def is_imagemagick_spec(text: str) -> bool:
    """True for ``'3x3: ...'``, ``'3: ...'``, ``'3x3+0+0: ...'`` and ``;``-lists of them."""
    first = text.split(";", 1)[0]
    return bool(_GEOMETRY.match(first) or _NUMBERS_ONLY.match(first))


def parse_imagemagick(text: str) -> AnyKernel:
    """Parse an ImageMagick kernel string; a ``;``-list gives a :class:`KernelChain`."""
    parts = [p for p in text.split(";") if p.strip()]
    if not parts:
        raise KernelError(f"kernel {text!r}: empty ImageMagick kernel list")
    kernels = [_parse_one(p.strip(), i) for i, p in enumerate(parts, start=1)]
    if len(kernels) == 1:
        return kernels[0]
    return KernelChain(tuple(kernels), name=text.strip())


def _parse_one(text: str, index: int) -> Kernel:
    match = _GEOMETRY.match(text)
    if match:
        w = int(match.group(1))
        h = int(match.group(2)) if match.group(2) else w
        body = match.group(5)
    else:
        body = text
        w = h = 0
    tokens = [t for t in re.split(r"[\s,]+", body.strip()) if t]
    values = []
    for t in tokens:
        if t.lower() in ("nan", "-"):  # IM: "not part of the neighbourhood"; adds nothing
            values.append(0.0)
            continue
        try:
            values.append(float(t))
        except ValueError:
            raise KernelError(f"kernel {text!r}: {t!r} is not a number") from None
    if not match:
        side = round(len(values) ** 0.5)
        if side * side != len(values) or side % 2 == 0:
            msg = f"kernel {text!r}: {len(values)} values without a WxH: size need an odd square"
            raise KernelError(msg)
        w = h = side
    if w == 0 or h == 0:
        raise KernelError(f"kernel {text!r}: the size {w}x{h} is empty")
    if len(values) != w * h:
        raise KernelError(f"kernel {text!r}: {w}x{h} needs {w * h} values, got {len(values)}")
    origin = None
    if match and match.group(3) is not None:
        x, y = int(match.group(3)), int(match.group(4))
        if not (0 <= x < w and 0 <= y < h):
            raise KernelError(f"kernel {text!r}: origin +{x}+{y} lies outside {w}x{h}")
        origin = (y, x)
    name = f"im{index}" if index > 1 else "im"
    matrix = np.array(values).reshape(h, w)
    return Kernel(matrix, name=name, source="ImageMagick kernel string", origin=origin)


def kernel_file_limit() -> int:
    """The most bytes a kernel file may hold: a kernel of the largest size allowed, each
    value written in full (32 characters), and 1 MiB besides. A kernel file that is a FIFO
    or a device (``-k /dev/zero``) is read no further."""
    return 32 * max_kernel_size() ** 2 + (1 << 20)


def read_text(path: Path) -> str:
    """A kernel file's text (UTF-8), or a :class:`KernelFileError` that names the file and
    says in a few words why it cannot be read."""
    label = short(str(path))
    reason = paths.problem(path)
    if reason is not None:
        raise KernelFileError(f"kernel file {label!r}: {reason}")
    limit = kernel_file_limit()

    def too_much() -> str:
        return (
            f"kernel file {label!r}: larger than {limit} bytes, more than the largest kernel "
            "needs (set CONVCLI_MAX_KERNEL_SIZE to raise it)"
        )

    try:
        raw = bounded.read_path(path, limit, too_much)
    except LimitError as exc:
        raise KernelFileError(exc.message) from None
    except IsADirectoryError:
        raise KernelFileError(f"kernel file {label!r}: is a directory") from None
    except OSError as exc:
        raise KernelFileError(f"kernel file {label!r}: {exc.strerror or exc}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise KernelFileError(f"kernel file {label!r}: not UTF-8 text") from None


def read_vips_matrix(path: Path) -> Kernel:
    """Read a libvips ``.mat`` file: ``width height [scale [offset]]`` then ``height`` rows."""
    label = short(str(path))
    text = read_text(path)
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise KernelFileError(f"kernel file {label!r}: empty matrix file")
    try:
        header = [float(v) for v in lines[0].split()]
        rows = [[float(v) for v in ln.split()] for ln in lines[1:]]
    except ValueError as exc:
        raise KernelFileError(f"kernel file {label!r}: {exc}") from None
    if not 2 <= len(header) <= 4 or not all(v.is_integer() and v > 0 for v in header[:2]):
        msg = f"kernel file {label!r}: the header must be 'width height [scale [offset]]'"
        raise KernelFileError(msg)
    w, h = int(header[0]), int(header[1])
    scale = header[2] if len(header) > 2 else 1.0
    offset = header[3] if len(header) > 3 else 0.0
    if scale == 0:
        raise KernelFileError(f"kernel file {label!r}: scale is 0")
    if len(rows) != h:
        msg = f"kernel file {label!r}: the header says {h} rows, found {len(rows)}"
        raise KernelFileError(msg)
    for i, row in enumerate(rows, start=1):
        if len(row) != w:
            msg = f"kernel file {label!r}: row {i} has {len(row)} values, expected {w}"
            raise KernelFileError(msg)
    mask = np.array(rows, dtype=np.float64)
    # vips correlates: flipping makes it a convolution with the default alignment.
    return Kernel(
        mask[::-1, ::-1] / scale,
        name=path.stem,
        source=f"libvips matrix {label}",
        offset=offset,
    )


def to_imagemagick(kernel: Kernel) -> str:
    """The kernel as an ImageMagick kernel string that gives the same pixels."""
    if kernel.offset:
        raise KernelError(
            f"kernel {short(kernel.name)!r}: an ImageMagick kernel string cannot "
            f"carry its offset {kernel.offset:g} (give ImageMagick "
            f"-define convolve:bias={kernel.offset:g})"
        )
    m = kernel.as_2d()
    h, w = m.shape
    origin = ""
    if kernel.origin is not None:
        oy, ox = kernel.origin if kernel.ndim == 2 else (0, kernel.origin[0])
        origin = f"+{ox}+{oy}"
    values = ",".join(_fmt(v) for v in m.flat)
    return f"{w}x{h}{origin}: {values}"


def to_vips(kernel: Kernel) -> str:
    """The kernel as a libvips ``.mat`` file that gives the same pixels with ``vips conv``."""
    m = kernel.centred()[::-1, ::-1]
    h, w = m.shape
    offset = f" {_fmt(kernel.offset)}" if kernel.offset else ""
    lines = [f"{w} {h} 1{offset}"]
    lines += [" ".join(_fmt(v) for v in row) for row in m]
    return "\n".join(lines) + "\n"


def _fmt(v: float) -> str:
    return repr(float(v)).removesuffix(".0") if float(v).is_integer() else repr(float(v))


def _check_file_form(kernel: AnyKernel) -> None:
    """Kernel files hold a kernel or a bank of kernels and banks, never a chain."""
    if isinstance(kernel, KernelChain):
        raise KernelError("a chain of kernels has no kernel-file form; write each kernel")
    if isinstance(kernel, KernelBank):
        for member in kernel.members:
            _check_file_form(member)


def to_toml(kernel: AnyKernel) -> str:
    """The kernel (or bank) as a convcli TOML kernel file, written by tomli-w: a bank's
    members (and theirs, for a bank in a bank) are ``[[kernels]]`` tables."""
    import tomli_w  # only the writer needs it

    _check_file_form(kernel)
    return tomli_w.dumps(kernel.to_dict(), indent=2)


def to_json(kernel: AnyKernel) -> str:
    """The kernel (or bank) as a convcli JSON kernel file: indented by two, with each list of
    plain values (a matrix row, the tags, the origin) on one line."""
    _check_file_form(kernel)
    return _json_block(kernel.to_dict(), "") + "\n"


def _json_block(value: object, indent: str) -> str:
    """``value`` as indented JSON; every piece of text is written by ``json.dumps``."""
    inner = indent + "  "
    if isinstance(value, dict) and value:
        items = [f"{inner}{json.dumps(k)}: {_json_block(v, inner)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{indent}}}"
    if isinstance(value, list) and any(isinstance(v, list | dict) for v in value):
        items = [inner + _json_block(v, inner) for v in value]
        return "[\n" + ",\n".join(items) + f"\n{indent}]"
    return json.dumps(value, separators=(", ", ": "))  # a value, or a list of them on one line


def export(kernel: AnyKernel, fmt: str) -> str:
    """``show-kernel --format``: toml, json, imagemagick or vips."""
    if fmt == "toml":
        return to_toml(kernel)
    if fmt == "json":
        return to_json(kernel)
    if fmt == "imagemagick":
        if isinstance(kernel, KernelChain):
            return "; ".join(export(s, fmt).strip() for s in kernel.steps) + "\n"
        if not isinstance(kernel, Kernel):
            raise KernelError(
                f"{kernel.name!r} is a bank; ImageMagick kernel strings hold "
                "one kernel (or a ';' chain)"
            )
        return to_imagemagick(kernel) + "\n"
    if not isinstance(kernel, Kernel):
        raise KernelError(f"{kernel.name!r} is a bank or chain; a vips matrix holds one kernel")
    return to_vips(kernel)
