"""Quick coercion of command-line values, ahead of Typer's.

Typer (0.16 on) turns each parameter's value into its type through a pydantic TypeAdapter,
built for every parameter of the command on every run, even one left at its default:
importing pydantic and building some 40 adapters costs `convcli apply` about 70 ms, a quarter
of a small image's whole run (and `apply --help` and `list-kernels` pay for pydantic too,
through the root's completion options). Typer has no public way around it: every annotation,
and ``parser=``, goes through an adapter; only a flag whose value is already a bool skips it.

The values convcli takes are plain: strings, integers, decimals, flags, lists of strings and
string enums. Through click's public ``Parameter.process_value(ctx, value)``, where a parameter
turns what the parser (or its default) gave into what the command receives (the type, then
the required check, then the callback), ``install`` gives each plain Typer parameter a
``process_value`` that converts a value when the conversion is certain (an integer spelt with
digits, an enum value spelt exactly) and calls the parameter's callback; anything else (a bad
value, a number out of its range, a type not listed) goes to Typer's own ``process_value``, so
that results and error messages are Typer's. Of Typer only public attributes are read
(``type_descriptor`` and its ``annotation``, ``parameter_info``, ``is_file`` and ``is_path``);
tests/test_cli_coercion.py checks them, and the values Typer gives, against this Typer.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from enum import Enum
from typing import Any, get_args, get_origin

_INT = re.compile(r"[+-]?[0-9]{1,18}")  # longer ones: Typer's limit and message
_FLOAT = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")
_UNSURE = object()


def install(params: Iterable[Any]) -> None:
    """Give each plain Typer parameter in ``params`` the quick coercion (once)."""
    for param in params:
        if isinstance(param.process_value, QuickValue):
            continue
        plain = _plain(param)
        if plain is not None:
            param.process_value = QuickValue(param, *plain)


class QuickParsing:
    """Mixed into a Typer command or group: its parameters (the help option too, made on
    first use) get the quick coercion before the arguments are parsed."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        install(self.get_params(ctx))  # type: ignore[attr-defined]
        return super().parse_args(ctx, args)  # type: ignore[misc]


class QuickValue:
    """A parameter's ``process_value``: the quick conversion, or Typer's own."""

    def __init__(self, param: Any, annotation: Any, low: Any, high: Any) -> None:
        self.param = param
        self.typer: Callable[[Any, Any], Any] = param.process_value
        self.annotation = annotation
        self.low, self.high = low, high

    def __call__(self, ctx: Any, value: Any) -> Any:
        param = self.param
        quick = self.convert(value) if ctx.token_normalize_func is None else _UNSURE
        if quick is _UNSURE or (param.required and param.value_is_missing(quick)):
            return self.typer(ctx, value)
        if param.callback is not None:
            quick = param.callback(ctx, param, quick)
        return quick

    def convert(self, value: Any) -> Any:
        """``value`` as Typer would give it, where that is certain, else _UNSURE."""
        multiple = self.param.multiple or self.param.nargs == -1
        if value is None:
            return () if multiple else None
        if multiple and isinstance(value, str):
            return _UNSURE  # Typer's error
        quick = _quick(self.annotation, value)
        if quick is _UNSURE:
            return quick
        if (self.low is not None and quick < self.low) or (
            self.high is not None and quick > self.high
        ):
            return _UNSURE  # Typer's message
        return quick


def _plain(param: Any) -> tuple[Any, Any, Any] | None:
    """(annotation, min, max) of a Typer parameter whose values can be plain, else None."""
    descriptor: Any = getattr(param, "type_descriptor", None)
    info = getattr(descriptor, "parameter_info", None)
    if info is None or descriptor.is_file or descriptor.is_path:
        return None
    if getattr(info, "parser", None) is not None or getattr(info, "clamp", False):
        return None
    annotation = descriptor.annotation
    if get_origin(annotation) is list:
        plain = get_args(annotation) == (str,)
    elif annotation in (str, bool):
        plain = True
    elif annotation in (int, float):
        return annotation, info.min, info.max
    else:
        plain = (
            isinstance(annotation, type)
            and issubclass(annotation, str)
            and issubclass(annotation, Enum)
            and info.case_sensitive is True
        )
    return (annotation, None, None) if plain else None


def _quick(annotation: Any, value: Any) -> Any:
    """``value`` as ``annotation`` where the conversion is certain, else _UNSURE."""
    if get_origin(annotation) is list:
        if isinstance(value, (list, tuple)) and all(type(v) is str for v in value):
            return list(value)
        return _UNSURE
    if type(value) is annotation:
        return value
    if type(value) is not str:
        return _UNSURE
    if annotation is int and _INT.fullmatch(value):
        return int(value)
    if annotation is float and _FLOAT.fullmatch(value):
        return float(value)
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        for member in annotation:  # Typer's choice: the first member spelt so
            if member.value == value:
                return member
    return _UNSURE
