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
import re
from pathlib import Path
from typing import Any

import numpy as np

from convcli.errors import ConvcliError, InputError, LimitError, OutputError
from convcli.io.inputs import check_readable, reason
from convcli.memory import default_budget, format_size
from convcli.numeric import finite, loads_json, nested_to_array


def read_array(path: str | Path, memory: int | None = None) -> np.ndarray:
    """Read a numeric array from .npy, .csv, .txt or .json, naming the file in errors. A
    text array is parsed by numpy's C parser, and refused up front if it would need more
    than ``memory`` bytes (default: the memory budget, see :mod:`convcli.memory`)."""
    p = Path(path)
    label = str(path)
    check_readable(p, label)
    suffix = p.suffix.lower()
    budget = memory or default_budget()
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
        size = p.stat().st_size
        if 2 * size > budget:  # its bytes and its text, before a single number is parsed
            raise _too_large(label, f"a {format_size(size)} text file", 2 * size, budget)
        text = p.read_bytes().decode("utf-8").removeprefix("\ufeff")  # (Excel's BOM)
    except UnicodeDecodeError:
        raise InputError("not UTF-8 text", subject=label) from None
    except OSError as exc:
        raise InputError(exc.strerror or str(exc), subject=label) from None
    if suffix == ".json":
        return parse_array(text, label, budget)
    return _parse_table(text, "," if suffix == ".csv" else None, label, budget)


def _too_large(label: str, what: str, needed: int, budget: int) -> LimitError:
    return LimitError(
        f"{what} needs about {format_size(needed)} of memory to parse, over the budget of "
        f"{format_size(budget)} (raise --memory or CONVCLI_MEMORY, or save it as .npy)",
        subject=label,
    )


#: what a numeric JSON array may hold: numbers, brackets, commas and white space
_PLAIN_JSON = b"0123456789.eE+-,[] \t\r\n"
_ROW_BREAK = re.compile(r"\]\s*,\s*\[")
_TRAILING_COMMA = re.compile(r",[ \t]*(?=\r?\n|$)")
#: bytes a number costs when parsed the slow way (a Python float in a list), to find the
#: first problem of a file numpy's parser refuses
_SLOW_BYTES_PER_NUMBER = 64


def _plain_json(text: str) -> bool:
    """Whether JSON text holds nothing but an array of numbers (checked at C speed)."""
    try:
        raw = text.encode("ascii")
    except UnicodeEncodeError:
        return False
    stripped = raw.strip()
    return stripped[:1] == b"[" and stripped[-1:] == b"]" and not raw.translate(None, _PLAIN_JSON)


def _fast_table(text: str, delimiter: str | None, json: bool = False) -> np.ndarray | None:
    """The table parsed by numpy's C parser, or None if it refuses it (or it holds NaN,
    infinity or a ``_`` digit separator, which Python's float() would take) or it is empty.
    ``json``: the rows of a JSON array, where a trailing comma is an error."""
    import warnings

    if "_" in text:
        return None
    if (
        delimiter
        and not json
        and (f"{delimiter}\n" in text or text.rstrip(" \t\r\n").endswith(delimiter))
    ):
        text = _TRAILING_COMMA.sub("", text)  # (a delimiter ending each row, as some write)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ("input contained no data": an empty file)
            arr = np.loadtxt(
                io.StringIO(text), delimiter=delimiter, comments="#", dtype=np.float64, ndmin=2
            )
    except ValueError:
        return None
    if arr.size == 0 or not finite(arr):
        return None
    return arr[0] if arr.shape[0] == 1 else arr


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


def parse_array(text: str, label: str = "<inline>", memory: int | None = None) -> np.ndarray:
    """An array written as JSON (``'[1, 2, 3]'``, ``'[[1, 2], [3, 4]]'``); plain arrays of
    one or two dimensions are parsed by numpy's C parser, within ``memory`` bytes."""
    text = text.removeprefix("\ufeff")
    budget = memory or default_budget()
    count = text.count(",") + 1
    if count * 8 + len(text) > budget:
        raise _too_large(label, f"a JSON array of about {count} numbers", count * 8, budget)
    if _plain_json(text):
        inner = text.strip()[1:-1].strip()
        if inner.startswith("[") and inner.endswith("]") and "[[" not in inner:
            fast = _fast_table(_ROW_BREAK.sub("\n", inner[1:-1]), ",", json=True)
            if fast is not None and inner.count("[") == (fast.shape[0] if fast.ndim == 2 else 1):
                return fast
        elif "[" not in inner and inner:
            fast = _fast_table(inner, ",", json=True)
            if fast is not None:
                return fast.reshape(-1)
    if count * _SLOW_BYTES_PER_NUMBER > budget:
        raise InputError(
            f"not a plain JSON array of numbers of one or two dimensions, with rows of one "
            f"length (looked for no further: finding where would need over "
            f"{format_size(budget)} of memory)",
            subject=label,
        )
    try:
        values = loads_json(text)
    except ValueError as exc:
        raise InputError(f"not a valid JSON array ({exc})", subject=label) from None
    try:
        return nested_to_array(values)
    except ValueError as exc:
        raise InputError(str(exc), subject=label) from None


def _parse_table(
    text: str, delimiter: str | None, label: str, budget: int | None = None
) -> np.ndarray:
    budget = budget or default_budget()
    count = text.count(delimiter) + text.count("\n") + 1 if delimiter else (len(text) + 1) // 2
    if count * 8 + len(text) > budget:
        what = f"a table of about {count} numbers"
        raise _too_large(label, what, count * 8 + len(text), budget)
    fast = _fast_table(text, delimiter)
    if fast is not None:
        return fast
    if count * _SLOW_BYTES_PER_NUMBER > budget:
        raise InputError(
            "not a table of finite numbers with rows of one length (looked for no further: "
            f"finding where would need over {format_size(budget)} of memory)",
            subject=label,
        )
    return _slow_table(text, delimiter, label)


def _slow_table(text: str, delimiter: str | None, label: str) -> np.ndarray:
    """A table parsed line by line in Python: slow, but it names the first problem."""
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
                if "_" in cell:  # float() takes 1_000; a table of numbers does not
                    raise ValueError(cell)
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
