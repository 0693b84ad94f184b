"""Kernel specs to kernels: built-ins, parametric names, files, user paths and inline arrays.

A spec is one of:

* a name, case-insensitive: ``sobel``, ``Gaussian``;
* a name with parameters: ``gaussian:sigma=2``, ``box:size=4``;
* a kernel file: ``my.toml``, ``edges.json`` (a kernel or a bank), ``sobel.mat`` (libvips),
  or any path with a separator (``./box``, ``~/k/edges``). Only these are files: ``box`` is
  the built-in even where a file ``box`` lies in the working directory;
* an inline JSON array: ``'[[1,0,-1],[2,0,-2],[1,0,-1]]'``;
* an ImageMagick kernel string: ``'3x3: -1,0,1 -2,0,2 -1,0,1'``, ``'3x1+0+0: 1,2,1'``, or
  several separated by ``;`` (applied one after another).

Names are looked up, in order, in the directories of ``CONVCLI_KERNEL_PATH`` (``:``-separated),
in ``$XDG_CONFIG_HOME/convcli/kernels`` (default ``~/.config/convcli/kernels``) and in the
built-in library, so a user kernel shadows a built-in of the same name. Each kernel is a file
``<name>.toml`` or ``<name>.json``.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from convcli import paths
from convcli.errors import KernelError
from convcli.kernels import formats as interop
from convcli.kernels.formats import KernelFileError
from convcli.kernels.generators import DIMENSIONAL, GENERATORS
from convcli.kernels.model import (
    AnyKernel,
    Kernel,
    KernelBank,
    KernelChain,
    as_matrix,
    max_kernel_size,
    short,
)
from convcli.numeric import loads_json
from convcli.vocabulary import COMBINES

KERNEL_SUFFIXES = (".toml", ".json")  # the files a kernel name can refer to
FILE_SUFFIXES = (*KERNEL_SUFFIXES, ".mat")  # and libvips matrices, read by path only
_KERNEL_KEYS = {"name", "description", "tags", "source", "matrix", "scale", "origin", "offset"}
_GENERATOR_KEYS = {"name", "description", "tags", "source", "generator", "params"}
_BANK_KEYS = {"name", "description", "tags", "source", "combine", "kernels"}


class KernelCycleError(KernelError):
    """A bank that refers to itself, directly or through other kernels. Its message, with the
    chain of names, is passed on as it is from however deep it was found."""


class KernelCountError(KernelCycleError):
    """A spec that expands to more kernels than :func:`max_kernels` (banks naming each other
    as a DAG double at each level: 25 levels are 2^25 kernels). Passed on as it is, like a
    cycle."""


#: the most kernels one spec may expand to (every member of every bank, counted as expanded)
DEFAULT_MAX_KERNELS = 4096
#: the deepest nesting of banks and kernel files (a chain of distinct files is no cycle, but
#: Python's stack is finite)
MAX_NESTING = 64


def max_kernels() -> int:
    """``CONVCLI_MAX_KERNELS``, or 4096."""
    raw = os.environ.get("CONVCLI_MAX_KERNELS", "").strip()
    if not raw:
        return DEFAULT_MAX_KERNELS
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise KernelError(
            f"CONVCLI_MAX_KERNELS must be a whole number of kernels, at least 1, got {raw!r}"
        )
    return value


def builtin_dir() -> Path:
    """Where the built-in kernel files are.

    Inside an installed wheel they sit in the package (``convcli/kernels/library``); in a
    source checkout or an editable install they are the top-level ``kernels/`` folder.
    """
    here = Path(__file__).resolve().parent
    packaged = here / "library"
    if os.path.isdir(packaged):
        return packaged
    checkout = here.parents[2] / "kernels"
    if os.path.isdir(checkout):
        return checkout
    raise KernelError(f"the built-in kernel library is missing (looked in {packaged})")


def user_dirs() -> list[Path]:
    """User kernel directories, highest priority first."""
    dirs = [paths.expand(p) for p in os.environ.get("CONVCLI_KERNEL_PATH", "").split(":") if p]
    config = os.environ.get("XDG_CONFIG_HOME")
    dirs.append((Path(config) if config else paths.expand("~/.config")) / "convcli" / "kernels")
    return dirs


@dataclass(frozen=True)
class KernelInfo:
    """One line of ``list-kernels``."""

    name: str
    size: str
    tags: tuple[str, ...]
    description: str
    where: str  # "built-in" or the file it comes from
    kind: str  # "kernel", "bank" or "parametric"
    params: tuple[str, ...] = ()
    error: str = ""


class Registry:
    """Resolves kernel specs; one instance caches the directory listings it has read."""

    def __init__(self, dirs: Iterable[Path] | None = None) -> None:
        self.dirs = list(dirs) if dirs is not None else [*user_dirs(), builtin_dir()]
        self._builtin = builtin_dir()
        self._index: dict[str, Path] | None = None
        self._expanded = 0  # kernels made by the get() under way (see max_kernels)
        self._limit = DEFAULT_MAX_KERNELS
        self._taps = 0  # the taps of the kernels made by it

    # -- lookup -------------------------------------------------------------------------------
    @property
    def index(self) -> dict[str, Path]:
        """Lower-case kernel name -> file, earlier directories winning."""
        if self._index is None:
            index: dict[str, Path] = {}
            for d in reversed(self.dirs):
                try:
                    entries = sorted(d.iterdir())
                except OSError:
                    continue
                for path in entries:
                    if path.suffix.lower() in KERNEL_SUFFIXES and os.path.isfile(path):
                        index[path.stem.lower()] = path
            self._index = index
        return self._index

    def names(self) -> list[str]:
        return sorted(self.index)

    def get(self, spec: str) -> AnyKernel:
        """Resolve one spec to a :class:`Kernel` or :class:`KernelBank`."""
        self._expanded, self._limit, self._taps = 0, max_kernels(), 0
        return self._resolve(spec, stack=())

    def _resolve(self, spec: str, stack: tuple[str, ...]) -> AnyKernel:
        text = spec.strip()
        if not text:
            raise KernelError("empty kernel spec")
        self._count(stack, text)
        if text.startswith("["):
            return self._weigh(inline_kernel(text))
        if interop.is_imagemagick_spec(text):
            return self._weigh(interop.parse_imagemagick(text))
        if is_file_spec(text):
            path = paths.expand(text)
            return self._load_file(path, self._enter(stack, _file_key(path), text))
        name, _, param_text = text.partition(":")
        return self._by_name(name.strip(), param_text, stack)

    def _count(self, stack: tuple[str, ...], text: str) -> None:
        """Count a kernel about to be made, refusing the spec past the limits (before a
        bank DAG expands to millions of kernels, or nesting exhausts the stack)."""
        self._expanded += 1
        if self._expanded > self._limit:
            first = _shown(stack[0]) if stack else short(text)
            raise KernelCountError(
                f"kernel {first!r} expands to more than {self._limit} kernels (banks that "
                "name other banks multiply); set CONVCLI_MAX_KERNELS to raise the limit"
            )
        if len(stack) > MAX_NESTING:
            raise KernelCountError(
                f"kernel {_shown(stack[0])!r} nests banks and kernel files more than "
                f"{MAX_NESTING} deep"
            )

    def _weigh(self, kernel: AnyKernel) -> AnyKernel:
        """Count a kernel's taps against the spec's total (16 kernels of the largest size),
        so that a bank of 1500 large kernels is refused after the 16th, not made in full."""
        self._taps += sum(k.matrix.size for k in _leaves(kernel))
        limit = 16 * max_kernel_size() ** 2
        if self._taps > limit:
            raise KernelCountError(
                f"kernel {kernel.name!r}: the spec's kernels hold more than {limit} taps in "
                "all (16 of the largest size; set CONVCLI_MAX_KERNEL_SIZE to raise it)"
            )
        return kernel

    @staticmethod
    def _enter(stack: tuple[str, ...], key: str, text: str) -> tuple[str, ...]:
        """The stack with one more kernel on it, refusing a cycle."""
        if key in stack:
            loop = (*stack[stack.index(key) :], key)
            chain = " -> ".join(_shown(k) for k in loop)
            raise KernelCycleError(f"kernel {_shown(key)!r} refers to itself ({chain})")
        return (*stack, key)

    def _by_name(self, name: str, param_text: str, stack: tuple[str, ...]) -> AnyKernel:
        key = name.lower()
        self._enter(stack, key, name)
        path = self.index.get(key)
        if path is None:
            raise KernelError(f"unknown kernel {name!r}{self._suggest(key)}")
        return self._load_file(path, (*stack, key), param_text=param_text, name=key)

    def _suggest(self, key: str) -> str:
        close = difflib.get_close_matches(key, self.names(), n=4, cutoff=0.6)
        if not close:
            close = [n for n in self.names() if n.startswith(key[:3])][:4]
        if close:
            return "; did you mean " + ", ".join(repr(c) for c in close) + "?"
        return " (convcli list-kernels shows them all)"

    # -- files --------------------------------------------------------------------------------
    def _where(self, path: Path) -> str:
        """Where a kernel file's kernels say they come from: "built-in" or the file."""
        return "built-in" if path.parent == self._builtin else str(path)

    def _load_file(
        self, path: Path, stack: tuple[str, ...], param_text: str = "", name: str | None = None
    ) -> AnyKernel:
        label = name or str(path)
        if path.suffix.lower() == ".mat":
            if param_text:
                raise KernelError(f"kernel {label!r} takes no parameters")
            return self._weigh(interop.read_vips_matrix(path))
        data = read_definition(path)
        where = self._where(path)
        try:
            if isinstance(data, list):  # a JSON file holding a bare array
                if param_text:
                    raise KernelError(f"kernel {label!r} takes no parameters")
                kernel = Kernel(as_matrix(data, path.stem), name=path.stem, source=where)
                return self._weigh(kernel)
            data = {"name": path.stem, **data}  # (the parsed file is cached: never mutated)
            if not stack or os.path.isabs(stack[-1]):  # a file named by path: its name too
                stack = (*stack, str(data["name"]).lower())
            return self._from_definition(data, where, stack, param_text)
        except (KernelFileError, KernelCycleError):
            raise  # they say where they come from already
        except KernelError as exc:
            if where == "built-in" or name is not None:
                raise  # a kernel called by its name is known by it
            raise KernelFileError(f"kernel file {str(path)!r}: {exc.message}") from None

    def _from_definition(
        self, data: dict[str, Any], where: str, stack: tuple[str, ...], param_text: str = ""
    ) -> AnyKernel:
        name = str(data.get("name", "kernel"))
        if "kernels" in data or "combine" in data:
            _check_keys(data, _BANK_KEYS, name)
            if param_text:
                raise KernelError(f"kernel bank {name!r} takes no parameters")
            return self._bank(data, where, stack)
        if "generator" in data:
            _check_keys(data, _GENERATOR_KEYS, name)
            return self._weigh(self._generated(data, where, param_text))
        _check_keys(data, _KERNEL_KEYS, name)
        if param_text:
            raise KernelError(f"kernel {name!r} takes no parameters")
        if "matrix" not in data:
            raise KernelError(
                f"kernel {name!r}: no matrix (give 'matrix', or 'kernels' for a bank)"
            )
        return self._weigh(
            Kernel(
                data["matrix"],
                name=name,
                description=str(data.get("description", "")),
                tags=_tags(data, name),
                source=str(data.get("source", where)),
                scale=_number(data.get("scale", 1.0), f"kernel {name!r}: scale"),
                origin=_origin(data.get("origin"), name),
                offset=_number(data.get("offset", 0.0), f"kernel {name!r}: offset"),
            )
        )

    def _generated(self, data: dict[str, Any], where: str, param_text: str) -> Kernel:
        name = str(data["name"])
        generator = GENERATORS.get(str(data["generator"]))
        if generator is None:
            raise KernelError(f"kernel {name!r}: unknown generator {data['generator']!r}")
        defaults = data.get("params", {})
        if not isinstance(defaults, dict):
            raise KernelError(f"kernel {name!r}: 'params' must be a table of defaults")
        given = parse_params(param_text, name)
        full_name = name + (":" + ",".join(f"{k}={v}" for k, v in given.items()) if given else "")
        params = {k: generator.parse(k, str(v), full_name) for k, v in defaults.items()}
        params.update({k: generator.parse(k, v, full_name) for k, v in given.items()})
        matrix = generator(full_name, **params)
        return Kernel(
            matrix,
            name=full_name,
            description=str(data.get("description", "")),
            tags=_tags(data, name),
            source=str(data.get("source", where)),
            params=params,
            generator=generator.name,
        )

    def _bank(self, data: dict[str, Any], where: str, stack: tuple[str, ...]) -> KernelBank:
        name = str(data["name"])
        combine = str(data.get("combine", "stack"))
        if combine not in COMBINES:
            msg = f"kernel bank {name!r}: combine {combine!r} is not one of {', '.join(COMBINES)}"
            raise KernelError(msg)
        entries = data.get("kernels")
        if not isinstance(entries, list) or not entries:
            raise KernelError(f"kernel bank {name!r}: 'kernels' must be a non-empty list")
        members: list[AnyKernel] = []
        for i, entry in enumerate(entries, start=1):
            members.append(self._member(entry, i, name, where, stack))
        return KernelBank(
            tuple(members),
            combine=combine,
            name=name,
            description=str(data.get("description", "")),
            tags=_tags(data, name),
            source=str(data.get("source", where)),
        )

    def _member(
        self, entry: Any, i: int, bank: str, where: str, stack: tuple[str, ...]
    ) -> AnyKernel:
        if isinstance(entry, str):
            entry = {"name": entry}
        if not isinstance(entry, dict):
            raise KernelError(f"kernel bank {bank!r}: member {i} must be a table with a name")
        if set(entry) <= {"name"}:
            ref = entry.get("name")
            if not isinstance(ref, str) or not ref.strip():
                raise KernelError(f"kernel bank {bank!r}: member {i} has no name and no matrix")
            try:
                return self._resolve(ref, stack)
            except KernelCycleError:
                raise  # its chain of names already leads through this bank
            except KernelError as exc:
                raise KernelError(f"kernel bank {bank!r}: member {i}: {exc.message}") from None
        entry = dict(entry)
        entry.setdefault("name", f"{bank}-{i}")
        return self._from_definition(entry, where, stack)

    # -- listing ------------------------------------------------------------------------------
    def infos(self) -> list[KernelInfo]:
        """Every kernel that can be named, with a summary; broken user files are listed too."""
        infos = []
        for key, path in sorted(self.index.items()):
            where = self._where(path)
            try:
                data = read_definition(path)
                self._expanded, self._limit, self._taps = 0, max_kernels(), 0
                kernel = self._load_file(path, (key,), name=key)
            except KernelError as exc:
                infos.append(KernelInfo(key, "?", (), "", where, "error", error=exc.message))
                continue
            params: tuple[str, ...] = ()
            kind = "bank" if isinstance(kernel, KernelBank) else "kernel"
            if isinstance(data, dict) and "generator" in data:
                kind = "parametric"
                params = tuple(GENERATORS[str(data["generator"])].params)
            infos.append(
                KernelInfo(
                    name=key,
                    size=kernel.size_text,
                    tags=kernel.tags,
                    description=kernel.description,
                    where=where,
                    kind=kind,
                    params=params,
                )
            )
        return infos


def _leaves(kernel: AnyKernel) -> list[Kernel]:
    if isinstance(kernel, Kernel):
        return [kernel]
    parts = kernel.steps if isinstance(kernel, KernelChain) else kernel.members
    return [leaf for part in parts for leaf in _leaves(part)]


def _file_key(path: Path) -> str:
    """What a kernel file is known by on the stack of kernels being resolved: the file it
    finally is (``a.toml``, ``./a.toml`` and a link to it are one file)."""
    try:
        return os.path.realpath(path)
    except (OSError, ValueError):
        return str(path)


def _shown(key: str) -> str:
    """A stack entry as messages show it: a name, or a file's path relative to the working
    directory where that is shorter."""
    if not os.path.isabs(key):
        return key
    try:
        rel = os.path.relpath(key)
    except ValueError:
        return short(key)
    return short(rel if len(rel) < len(key) else key)


def is_file_spec(text: str) -> bool:
    """Whether a spec names a kernel file rather than a kernel: it ends in a kernel-file
    suffix (``.toml``, ``.json``, ``.mat``) or holds a path separator. Nothing else is a
    file, whatever lies in the working directory: ``box`` is the built-in even beside a
    file ``./box``, which ``./box`` names.

    >>> is_file_spec("edges.JSON"), is_file_spec("./box"), is_file_spec("box")
    (True, True, False)
    """
    if any(sep and sep in text for sep in ("/", os.sep, os.altsep)):
        return True
    return Path(text).suffix.lower() in FILE_SUFFIXES


def read_definition(path: Path) -> Any:
    """Read a TOML or JSON kernel file into plain data, naming the file on any error. Parsed
    files are kept (keyed by size and modification time), so a kernel named again and again
    (a batch, a library loop) is read once."""
    try:
        stat = path.stat()
        key = (str(path), stat.st_size, stat.st_mtime_ns)
    except (OSError, ValueError):
        key = None
    if key is not None and key in _PARSED:
        return _PARSED[key]
    data = _read_definition(path)
    if key is not None:
        _PARSED[key] = data
    return data


_PARSED: dict[tuple[str, int, int], Any] = {}


def _read_definition(path: Path) -> Any:
    label = short(str(path))
    text = interop.read_text(path)
    if path.suffix.lower() == ".json":
        try:
            data = loads_json(text)
        except ValueError as exc:
            raise KernelFileError(f"kernel file {label!r}: invalid JSON: {exc}") from None
        if not isinstance(data, dict | list):
            raise KernelFileError(f"kernel file {label!r}: expected an object or an array")
        return data
    try:
        return tomllib.loads(text)
    except (tomllib.TOMLDecodeError, ValueError) as exc:
        raise KernelFileError(f"kernel file {label!r}: invalid TOML: {exc}") from None
    except RecursionError:
        msg = f"kernel file {label!r}: invalid TOML: nested too deeply"
        raise KernelFileError(msg) from None


def inline_kernel(text: str) -> Kernel:
    """A kernel written as a JSON array: ``'[[1,0,-1],[2,0,-2],[1,0,-1]]'``."""
    try:
        values = loads_json(text)
    except ValueError as exc:
        raise KernelError(f"kernel {short(text)!r}: not a valid JSON array ({exc})") from None
    if not isinstance(values, list):
        raise KernelError(f"kernel {short(text)!r}: not a JSON array")
    return Kernel(as_matrix(values, text), name="inline", source="inline")


def parse_params(text: str, name: str) -> dict[str, str]:
    """``size=7,sigma=1.5`` -> ``{"size": "7", "sigma": "1.5"}``, naming any malformed item."""
    params: dict[str, str] = {}
    for item in text.split(","):
        if not item.strip():
            if text.strip():
                raise KernelError(f"kernel {name!r}: empty parameter in {text!r}")
            continue
        key, eq, value = item.partition("=")
        key, value = key.strip().lower(), value.strip()
        if not eq or not key or not value:
            raise KernelError(f"kernel {name!r}: parameter {item.strip()!r} is not key=value")
        if key in params:
            raise KernelError(f"kernel {name!r}: parameter {key!r} given twice")
        params[key] = value
    return params


def _check_keys(data: dict[str, Any], allowed: set[str], name: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        msg = f"kernel {name!r}: unknown key {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})"
        raise KernelError(msg)


def _tags(data: dict[str, Any], name: str) -> tuple[str, ...]:
    tags = data.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise KernelError(f"kernel {name!r}: 'tags' must be a list of strings")
    return tuple(tags)


def _origin(value: Any, name: str) -> tuple[int, ...] | None:
    """A kernel file's origin: a list of whole numbers, or nothing."""
    if value is None:
        return None
    if not isinstance(value, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        raise KernelError(f"kernel {name!r}: origin must be a list of whole numbers [row, column]")
    return tuple(value)


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise KernelError(f"{what} must be a number, got {value!r}")
    return float(value)


_default: Registry | None = None


def get_kernel(spec: str | AnyKernel, registry: Registry | None = None) -> AnyKernel:
    """Resolve a kernel spec (see the module docstring) to a Kernel or KernelBank.

    Examples
    --------
    >>> get_kernel("sobel-x").matrix.tolist()
    [[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]
    >>> get_kernel("box:size=2").matrix.tolist()
    [[0.25, 0.25], [0.25, 0.25]]
    """
    if isinstance(spec, Kernel | KernelBank | KernelChain):
        return spec
    return (registry or default_registry()).get(spec)


def for_ndim(operation: AnyKernel, ndim: int) -> AnyKernel:
    """The operation with each parametric kernel that can take a dimension (``gaussian``,
    ``box``) and was not given one (``ndim=``) made again in ``ndim`` dimensions: on a 1-D
    signal ``box:size=4`` is the 1-D box, on a volume ``gaussian:sigma=2`` the 3-D Gaussian.
    Every other kernel is left as it is.

    >>> for_ndim(get_kernel("box:size=4"), 1).matrix.tolist()
    [0.25, 0.25, 0.25, 0.25]
    """
    if isinstance(operation, KernelChain):
        return replace(operation, steps=tuple(for_ndim(s, ndim) for s in operation.steps))
    if isinstance(operation, KernelBank):
        return replace(operation, members=tuple(for_ndim(m, ndim) for m in operation.members))
    if (
        operation.generator not in DIMENSIONAL
        or "ndim" in operation.params
        or operation.ndim == ndim
    ):
        return operation
    params = {**operation.params, "ndim": ndim}
    matrix = GENERATORS[operation.generator](operation.name, **params)
    return replace(operation, matrix=matrix, params=params, origin=None)


def default_registry() -> Registry:
    """The registry for the current environment (re-read when the search path changes)."""
    global _default
    dirs = [*user_dirs(), builtin_dir()]
    if _default is None or _default.dirs != dirs:
        _default = Registry(dirs)
    return _default


def list_kernels(tag: str | None = None) -> list[KernelInfo]:
    """Summaries of every named kernel, optionally only those with ``tag``."""
    infos = default_registry().infos()
    if tag:
        infos = [i for i in infos if tag.lower() in (t.lower() for t in i.tags)]
    return infos
