"""Where results go: output specs, name templates, stack member labels, formats and clashes."""

from __future__ import annotations

import os
import string
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from convcli.errors import ConvcliError, OutputError, UsageError
from convcli.io.formats import ARRAY_FORMATS, extension_for, format_for
from convcli.kernels.model import AnyKernel, KernelBank, KernelChain

if TYPE_CHECKING:
    from convcli.run.request import Request
    from convcli.run.sources import Source

DEFAULT_TEMPLATE = "{stem}.{kernel}{ext}"
TEMPLATE_FIELDS = {"stem", "ext", "kernel"}


@dataclass(frozen=True)
class OutputSpec:
    """Where results go."""

    path: str | None = None  # -o (one input); "-" = stdout
    out_dir: Path | None = None  # -d
    template: str = DEFAULT_TEMPLATE
    format: str | None = None
    quality: int | None = None
    compress: int | None = None
    in_place: bool = False
    skip_existing: bool = False
    print_result: bool = False  # --print

    def __post_init__(self) -> None:
        check_template(self.template)


def stack_labels(operation: AnyKernel) -> tuple[str, ...]:
    """Labels of the members of the stacking bank in ``operation``, if there is one."""
    if isinstance(operation, KernelBank):
        if operation.combine == "stack":
            return _unique(tuple(m.label for m in operation.members))
        return ()
    if isinstance(operation, KernelChain):
        for step in operation.steps:
            labels = stack_labels(step)
            if labels:
                return labels
    return ()


def _unique(labels: tuple[str, ...]) -> tuple[str, ...]:
    """Member labels made distinct (``a``, ``a`` -> ``a``, ``a-2``) so files do not collide."""
    seen: dict[str, int] = {}
    out = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        out.append(label if seen[label] == 1 else f"{label}-{seen[label]}")
    return tuple(out)


def check_template(template: str) -> None:
    """Refuse templates with unknown fields or that name a directory."""
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError as exc:
        raise UsageError(f"--name {template!r}: {exc}") from None
    unknown = fields - TEMPLATE_FIELDS
    if unknown:
        msg = (
            f"--name {template!r}: unknown field {{{sorted(unknown)[0]}}} "
            "(fields: {stem}, {ext}, {kernel})"
        )
        raise UsageError(msg)
    if "/" in template or "\\" in template or template in (".", ".."):
        raise UsageError(
            f"--name {template!r}: a name may not contain a directory; "
            "use -d to choose the directory"
        )


def output_targets(source: Source, request: Request, fmt_ext: str) -> list[Path]:
    """The files a source's result goes to (several for a stack written as images)."""
    out = request.output
    if out.in_place:
        assert source.path is not None
        return [source.path]
    if out.path is not None:
        return [Path(out.path)]
    labels = [request.label]
    if request.stack_labels and fmt_ext.lower() not in (".npy", ".json"):
        labels = list(request.stack_labels)
    if out.out_dir is not None:
        directory = out.out_dir / (source.rel.parent if source.rel is not None else Path())
    elif source.path is not None:
        directory = source.path.parent
    else:
        raise UsageError(f"{source.label}: give -o or -d to say where its result goes")
    targets = []
    for label in labels:
        name = out.template.format(stem=source.stem, ext=fmt_ext, kernel=label)
        if not name or name in (".", ".."):
            raise UsageError(f"--name {out.template!r} gives an empty file name")
        targets.append(directory / name)
    return targets


def frame_target(target: Path, frame: int, width: int) -> Path:
    """The file of one frame of a multi-frame input written to a format that holds one
    frame: the frame number, zero-padded to ``width`` digits so that names sort in frame
    order, before the extension (``in.box.png`` -> ``in.box.03.png``)."""
    name, suffix = target.name, target.suffix
    stem = name[: -len(suffix)] if suffix else name
    return target.with_name(f"{stem}.{frame:0{width}d}{suffix}")


def format_and_ext(source: Source, request: Request, detected: str | None) -> tuple[str, str]:
    """Output format name and the {ext} of output names.

    The extension a written name ends with decides its format: ``-o x.tif`` or ``--name
    '{stem}.x.tif'`` write TIFF, and a ``--format`` that contradicts it is refused (the bytes
    of one format in a file named as another are unreadable to most programs). ``--depth
    float`` with neither writes a float TIFF, the one image format that holds floats.
    """
    out = request.output
    if out.path not in (None, "-"):
        check_named_formats(out)
        return format_for(out.path, out.format), Path(str(out.path)).suffix
    fmt, ext = _input_format_and_ext(source, request, detected)
    if out.in_place or out.path == "-":
        return fmt, ext
    rendered = out.template.format(stem="name", ext=ext, kernel="kernel")
    named = named_format(rendered) if not out.template.endswith("{ext}") else None
    if named is not None and named != fmt:
        if out.format:
            raise UsageError(
                f"--name {out.template!r} names {Path(rendered).suffix} files but --format is "
                f"{out.format}; make them agree (or drop --format)"
            )
        return named, extension_for(named)
    if (
        named is None
        and not out.format
        and request.pixels.depth == "float"
        and fmt not in ("TIFF", *ARRAY_FORMATS.values())
    ):
        return "TIFF", ".tif"  # float samples: as a float TIFF (README, --depth)
    return fmt, ext


def check_named_formats(out: OutputSpec) -> None:
    """Refuse, once for the whole request, an ``-o`` name or a ``--name`` template whose
    extension names another format than ``--format`` (the per-input names are checked by
    :func:`format_and_ext`)."""
    if not out.format:
        return
    fmt = format_for(None, out.format)
    if out.path not in (None, "-"):
        named = named_format(str(out.path))
        if named is not None and named != fmt:
            raise UsageError(
                f"-o {out.path} names a {named} file but --format is {out.format}; "
                "make them agree (or drop --format)"
            )
    elif out.path is None and not out.in_place and not out.template.endswith("}"):
        rendered = out.template.format(stem="name", ext="", kernel="kernel")
        named = named_format(rendered)
        if named is not None and named != fmt:
            raise UsageError(
                f"--name {out.template!r} names {Path(rendered).suffix} files but --format is "
                f"{out.format}; make them agree (or drop --format)"
            )


def named_format(name: str) -> str | None:
    """The format a file name's extension names, or None for none or an unknown one."""
    if not Path(name).suffix:
        return None
    try:
        return format_for(name)
    except UsageError:
        return None


def _input_format_and_ext(
    source: Source, request: Request, detected: str | None
) -> tuple[str, str]:
    """The format from --format or from the input (its own format, or its extension)."""
    out = request.output
    if out.format:
        fmt = format_for(None, out.format)
        return fmt, extension_for(fmt)
    if out.path == "-":
        raise UsageError("-o - writes to stdout and needs --format")
    if source.path is not None and (source.is_array or not out.in_place):
        suffix = source.path.suffix
        if source.is_array:
            return ARRAY_FORMATS[suffix.lower()], suffix
        if detected:
            return format_for(source.path if suffix else None, detected), suffix or extension_for(
                detected
            )
        return format_for(source.path), suffix
    if source.path is not None:
        return format_for(source.path, detected), source.path.suffix
    if source.inline is not None:
        return "NPY", ".npy"
    fmt = detected or "PNG"
    return fmt, extension_for(fmt)


def clashing_outputs(items: list[Source], request: Request) -> dict[int, str]:
    """Inputs whose output another input of the batch would write too (same file name from
    two directories, say): they fail rather than silently overwrite each other's results."""
    out = request.output
    if out.in_place or out.path is not None or (out.out_dir is None and out.print_result):
        return {}
    owner: dict[str, Source] = {}
    clashes: dict[int, str] = {}
    for index, source in enumerate(items):
        if source.path is None or not source.path.suffix or "\0" in str(source.path):
            continue  # (a name with a NUL byte fails alone, when it is processed)
        try:
            _, ext = format_and_ext(source, request, None)
            targets = output_targets(source, request, ext)
        except ConvcliError:
            continue  # reported when the input itself is processed
        for target in targets:
            key = os.path.realpath(target)
            first = owner.setdefault(key, source)
            if first is not source:
                clashes[index] = (
                    f"{source.label}: its output {str(target)!r} is also the "
                    f"output of {first.label}; use -r on a directory to keep "
                    "the layout, or --name"
                )
    return clashes


def guard_targets(source: Source, request: Request, targets: list[Path]) -> None:
    """Never write over an input (unless --in-place), nor outside the output directory."""
    out = request.output
    if out.in_place:
        return
    for target in targets:
        if source.path is not None and same_file(target, source.path):
            raise OutputError(
                f"the output {str(target)!r} would overwrite the input; choose "
                "another --name or -o, or give --in-place",
                subject=source.label,
            )
        if out.out_dir is not None:
            root = os.path.realpath(out.out_dir)
            where = os.path.realpath(target)
            if os.path.commonpath([root, where]) != root:
                raise OutputError(
                    f"the output {str(target)!r} would leave the output "
                    f"directory {str(out.out_dir)!r}",
                    subject=source.label,
                )


def same_file(a: Path, b: Path) -> bool:
    """Do two paths name one file (links followed; by their real paths when one is absent)?"""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)
