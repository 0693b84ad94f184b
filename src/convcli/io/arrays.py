"""Numeric arrays in and out: ``.npy``, ``.csv`` (comma-separated rows), ``.txt``
(whitespace-separated rows), ``.json`` (nested lists), and inline JSON text.

>>> parse_array("[[1, 2], [3, 4]]").shape
(2, 2)
>>> encode_array(parse_array("[1, 2.5]"), "CSV")
b'1,2.5\\n'
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from convcli.errors import ConvcliError, InputError, OutputError
from convcli.io.inputs import check_readable, reason
from convcli.numeric import finite, loads_json, nested_to_array


def read_array(path: str | Path) -> np.ndarray:
    """Read a numeric array from .npy, .csv, .txt or .json, naming the file in errors."""
    p = Path(path)
    label = str(path)
    check_readable(p, label)
    suffix = p.suffix.lower()
    try:
        if suffix == ".npy":
            npy_header(p, label)
            try:
                arr = np.load(p, allow_pickle=False)
            except MemoryError:
                raise
            except Exception as exc:
                raise InputError(f"corrupt .npy file ({reason(exc)})", subject=label) from None
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
        raise InputError(f"not a valid .npy file ({reason(exc)})", subject=label) from None
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
    encode_array_into(buffer, arr, fmt)
    return buffer.getvalue()


def encode_array_into(out: Any, arr: np.ndarray, fmt: str) -> None:
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
