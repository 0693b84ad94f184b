"""Quick coercion of command-line values, ahead of Typer's.

Typer (0.16 on) turns each parameter's string into its type through a pydantic TypeAdapter,
built for every parameter of the command on every run: importing pydantic and building some
40 adapters costs `convcli apply` about 70 ms, a quarter of a small image's whole run. The
values convcli takes are plain: strings, integers, decimals, flags, lists of strings and
string enums. Those are converted here when they are unambiguous (an integer spelt with
digits, an enum value spelt exactly); anything else (a bad value, a number out of its range,
a type not listed) goes to Typer's own coercion, so that results and error messages are
Typer's. A Typer without this mechanism (before 0.16) is left alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from enum import Enum
from typing import Any, get_args, get_origin

_INT = re.compile(r"[+-]?[0-9]+")
_FLOAT = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")
_UNSURE = object()


def install(params: Iterable[Any]) -> None:
    """Give each plain Typer parameter in ``params`` the quick coercion."""
    for param in params:
        descriptor = getattr(param, "type_descriptor", None)
        if descriptor is None or not hasattr(param, "_runtime_param"):
            continue  # not a Typer parameter that coerces at run time
        if param._runtime_param is None and _plain(descriptor):
            info = descriptor.parameter_info
            bounds = (info.min, info.max) if descriptor.is_ranged else (None, None)
            param._runtime_param = _QuickCoercion(descriptor.annotation, bounds)


class QuickParsing:
    """Mixed into a Typer command or group: its parameters (the help option too, made on
    first use) get the quick coercion before the arguments are parsed."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        install(self.get_params(ctx))  # type: ignore[attr-defined]
        return super().parse_args(ctx, args)  # type: ignore[misc]


def _plain(descriptor: Any) -> bool:
    if descriptor.is_file or descriptor.is_path:
        return False
    if descriptor.is_ranged and getattr(descriptor.parameter_info, "clamp", False):
        return False
    annotation = descriptor.annotation
    if get_origin(annotation) is list:
        return get_args(annotation) == (str,)
    return annotation in (str, int, float, bool) or (
        isinstance(annotation, type)
        and issubclass(annotation, str)
        and issubclass(annotation, Enum)
    )


class _QuickCoercion:
    """Stands in for Typer's runtime parameter: the same ``coerce`` call."""

    def __init__(self, annotation: Any, bounds: tuple[Any, Any]) -> None:
        self.annotation = annotation
        self.low, self.high = bounds
        self._typer: Any = None

    def coerce(self, value: Any, param: Any, ctx: Any) -> Any:
        multiple = param.multiple or param.nargs == -1
        if value is None:
            return () if multiple else None
        if not (multiple and isinstance(value, str)):
            quick = _quick(self.annotation, value)
            if quick is not _UNSURE and self._in_range(quick):
                return quick
        if self._typer is None:
            from typer._coercion import build_runtime_param

            self._typer = build_runtime_param(param.type_descriptor)
        return self._typer.coerce(value, param=param, ctx=ctx)

    def _in_range(self, number: Any) -> bool:
        return (self.low is None or number >= self.low) and (
            self.high is None or number <= self.high
        )


def _quick(annotation: Any, value: Any) -> Any:
    """``value`` as ``annotation`` where the conversion is certain, else _UNSURE."""
    if get_origin(annotation) is list:
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            return list(value)
        return _UNSURE
    if annotation is bool:
        return value if isinstance(value, bool) else _UNSURE
    if isinstance(value, annotation) and not (annotation is int and isinstance(value, bool)):
        return value
    if not isinstance(value, str):
        return _UNSURE
    if annotation is int and _INT.fullmatch(value):
        return int(value)
    if annotation is float and _FLOAT.fullmatch(value):
        return float(value)
    if issubclass(annotation, Enum) and value in annotation._value2member_map_:
        return annotation(value)
    return _UNSURE
