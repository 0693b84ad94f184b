"""Nested lists of numbers (JSON, TOML, CSV rows) to float arrays, with errors that say where.

numpy only reports "inhomogeneous shape"; users need "row 2 has 4 values, expected 3".
"""

from __future__ import annotations

import json
import sys
from typing import Any

import numpy as np


def _is_seq(value: Any) -> bool:
    return isinstance(value, list | tuple)


def nested_to_array(values: Any, max_ndim: int = 2) -> np.ndarray:
    """Validate nested lists of real numbers (1-D, 2-D or, with ``max_ndim=3``, 3-D) and
    return a float64 array.

    Raises ``ValueError`` with a message that names the first problem: ragged rows, a value
    that is not a number, NaN or infinity, an empty array, too many dimensions.

    >>> nested_to_array([[1, 2], [3, 4]]).tolist()
    [[1.0, 2.0], [3.0, 4.0]]
    >>> nested_to_array([[1, 2], [3]])
    Traceback (most recent call last):
    ...
    ValueError: row 2 has 1 value, expected 2
    """
    if not _is_seq(values):
        if isinstance(values, int | float) and not isinstance(values, bool):
            raise ValueError("a single number, expected an array")
        raise ValueError(f"{_show(values)} is not an array")
    if not values:
        raise ValueError("the array is empty")
    if max_ndim >= 3 and _is_seq(values[0]) and values[0] and _is_seq(values[0][0]):
        return _nested_3d(values)
    if _is_seq(values[0]):
        width = len(values[0])
        for i, row in enumerate(values, start=1):
            if not _is_seq(row):
                raise ValueError(f"row {i} is {_show(row)}, expected a row of numbers")
            if len(row) != width:
                raise ValueError(f"row {i} has {_count(len(row))}, expected {width}")
            for value in row:
                if _is_seq(value):
                    raise ValueError(
                        f"more than {max_ndim} dimensions (expected 1-D to {max_ndim}-D)"
                        if max_ndim > 2
                        else "more than 2 dimensions (expected 1-D or 2-D)"
                    )
                _check_number(value, f"row {i}")
        if width == 0:
            raise ValueError("the array is empty")
    else:
        for i, value in enumerate(values, start=1):
            if _is_seq(value):
                raise ValueError(f"item {i} is a row, but item 1 is a number (ragged array)")
            _check_number(value, f"item {i}")
    return np.array(values, dtype=np.float64)


def _nested_3d(values: list[Any]) -> np.ndarray:
    """Slices of rows: each slice checked as a 2-D array of the first slice's shape."""
    slices = []
    for i, plane in enumerate(values, start=1):
        if not _is_seq(plane) or not plane or not _is_seq(plane[0]):
            raise ValueError(f"slice {i} is not a matrix of rows, but slice 1 is (ragged array)")
        try:
            slices.append(nested_to_array(plane))
        except ValueError as exc:
            if str(exc).startswith("more than 2 dimensions"):
                raise ValueError("more than 3 dimensions (expected 1-D to 3-D)") from None
            raise ValueError(f"slice {i}: {exc}") from None
        if slices[-1].shape != slices[0].shape:
            shape = "x".join(map(str, slices[-1].shape))
            first = "x".join(map(str, slices[0].shape))
            raise ValueError(f"slice {i} is {shape}, expected {first}")
    return np.stack(slices)


def finite(arr: np.ndarray) -> bool:
    """No NaN or infinity, checked in one pass without a temporary array. A sum of the
    values (:func:`_total`) is finite when every value is, unless it overflows; then the
    extremes decide: they are finite exactly when everything is (NaN propagates into them)."""
    if arr.dtype.kind != "f":
        return True
    if arr.dtype in (np.float32, np.float64) and arr.flags.c_contiguous and arr.size:
        with np.errstate(all="ignore"):
            if np.isfinite(_total(arr.reshape(-1))):
                return True
    return bool(np.isfinite(arr.min()) and np.isfinite(arr.max()))


def _total(flat: np.ndarray) -> float:
    """A sum over every value, non-finite if any value is (a NaN or an infinity stays in
    any sum): OpenCV's vectorised sum where OpenCV is loaded already (a quarter faster than
    BLAS on a 16 MP plane; it adds float32 in float64), else the sum of the squares in one
    BLAS pass."""
    cv2 = sys.modules.get("cv2")
    if cv2 is not None and flat.size < 2**31:
        return float(cv2.sumElems(flat.reshape(1, -1))[0])  # one row: (n, 1) is 4x slower
    return float(np.dot(flat, flat))


def _count(n: int) -> str:
    return f"{n} value" if n == 1 else f"{n} values"


def _check_number(value: Any, where: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{where}: {_show(value)} is not a number")
    try:
        number = float(value)
    except OverflowError:
        raise ValueError(f"{where}: {_show(value)} is too large for a float") from None
    if not np.isfinite(number):
        raise ValueError(f"{where}: {value} is not a finite number")


def loads_json(text: str) -> Any:
    """``json.loads`` whose every failure is a ValueError with a short reason (numbers of
    thousands of digits, nesting deeper than the interpreter allows, bad syntax)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise ValueError("nested too deeply") from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise ValueError(str(exc).split(";")[0]) from None


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
