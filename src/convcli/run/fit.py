"""``fit`` as a run: read the example pairs (images or arrays, as apply reads its inputs), fit
the kernel by least squares or by training a torch layer, and write it as a kernel file
that ``apply -k`` reads, atomically, where apply's naming rules put it."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from convcli.compute.fit import FitOptions, FitResult, Pair, fit_kernel, prepare
from convcli.compute.train import Progress, train_kernel
from convcli.errors import ConvcliError, OutputError, UsageError
from convcli.io.atomic import atomic_write
from convcli.kernels.formats import to_json, to_toml
from convcli.kernels.model import AnyKernel
from convcli.run.naming import check_template, same_file
from convcli.run.process import load_one_image, make_dirs
from convcli.run.sources import Source, read_list

KERNEL_FORMATS = {".toml": "toml", ".json": "json"}
DEFAULT_NAME = "{stem}.{kernel}{ext}"


@dataclass(frozen=True)
class FitOutput:
    """Where the kernel file goes: -o PATH (``-``: stdout), -d DIR, --name, --format."""

    path: str | None = None
    out_dir: Path | None = None
    template: str = DEFAULT_NAME
    format: str | None = None

    def __post_init__(self) -> None:
        if self.path is not None and self.out_dir is not None:
            raise UsageError("-o and -d conflict: -o names the kernel file, -d a directory")
        check_template(self.template)
        if self.format is not None and self.format.lower() not in KERNEL_FORMATS.values():
            raise UsageError(f"--format {self.format!r}: a kernel file is toml or json")
        if self.path not in (None, "-") and self.format is None:
            suffix = Path(str(self.path)).suffix.lower()
            if suffix not in KERNEL_FORMATS:
                raise UsageError(
                    f"-o {self.path}: a kernel file ends in .toml or .json (or give --format)"
                )

    def kernel_format(self) -> str:
        if self.format is not None:
            return self.format.lower()
        if self.path not in (None, "-"):
            return KERNEL_FORMATS[Path(str(self.path)).suffix.lower()]
        return "toml"

    def target(self, first: Source, kernel_label: str) -> Path | None:
        """The kernel file's path (None: stdout): -o, else ``--name`` in -d or beside the
        first input."""
        if self.path == "-":
            return None
        if self.path is not None:
            return Path(self.path)
        name = self.template.format(
            stem=first.stem, ext="." + self.kernel_format(), kernel=kernel_label
        )
        if not name or name in (".", ".."):
            raise UsageError(f"--name {self.template!r} gives an empty file name")
        if self.out_dir is not None:
            return self.out_dir / name
        if first.path is None:
            return None  # an inline array: the kernel is printed
        return first.path.parent / name


def pair_sources(
    pairs: Sequence[tuple[str, str]], files_from: bytes | None = None, null: bool = False
) -> list[tuple[Source, Source]]:
    """The example pairs: those given, then those of ``--files-from`` (an input and its
    target per line, separated by a tab; with ``-0``, NUL-separated names taken two by
    two)."""
    items = [(_source(a), _source(b)) for a, b in pairs]
    if files_from is not None:
        names = read_list(files_from, null)
        if null:
            if len(names) % 2:
                raise UsageError("--files-from -0: the names must come in pairs (input, target)")
            split = list(zip(names[0::2], names[1::2], strict=True))
        else:
            split = []
            for line in names:
                parts = line.split("\t")
                if len(parts) != 2:
                    raise UsageError(
                        f"--files-from: {line!r} is not an input and a target separated by a tab"
                    )
                split.append((parts[0], parts[1]))
        items += [(_source(a), _source(b)) for a, b in split]
    if not items:
        raise UsageError("give an INPUT and a TARGET (or --pair INPUT TARGET, --files-from)")
    return items


def _source(item: str) -> Source:
    if item == "-":
        raise UsageError("fit reads files or inline arrays, not stdin")
    if item.lstrip().startswith("[") and not os.path.exists(item):
        return Source(item if len(item) <= 40 else item[:37] + "...", inline=item)
    return Source(item, path=Path(item))


def load_pair(sources: tuple[Source, Source], options: FitOptions) -> Pair:
    """One example read as apply reads inputs: two images, or two arrays."""
    first, second = sources
    label = f"{first.label} -> {second.label}"
    x, y = load_one_image(first, "fit"), load_one_image(second, "fit")
    if x.is_array != y.is_array:
        raise UsageError(f"{label}: an input and its target are both images or both arrays")
    try:
        return prepare(x.data, y.data, options, images=not x.is_array, label=first.label)
    except ConvcliError as exc:
        if exc.subject is None:
            exc.subject = first.label
        raise


def run_fit(
    pairs: Sequence[Pair],
    options: FitOptions,
    *,
    backend: str = "scipy",
    optimizer: str = "lbfgs",
    steps: int | None = None,
    learning_rate: float | None = None,
    seed: int = 0,
    device: str = "cpu",
    jobs: int = 1,
    progress: Progress | None = None,
) -> FitResult:
    """The least-squares fit, or with ``backend="torch"`` the trained layer."""
    label = pairs[0].label if pairs else None
    try:
        if backend == "torch":
            return train_kernel(
                pairs,
                options,
                optimizer=optimizer,
                steps=steps,
                learning_rate=learning_rate,
                seed=seed,
                device=device,
                progress=progress,
            )
        if backend not in ("scipy", "auto"):
            raise UsageError(f"--backend {backend!r}: fit solves with scipy or trains with torch")
        return fit_kernel(pairs, options, jobs=jobs)
    except ConvcliError as exc:
        if exc.subject is None and exc.exit_code == 1:
            exc.subject = label
        raise


def kernel_text(kernel: AnyKernel, fmt: str) -> str:
    return to_json(kernel) if fmt == "json" else to_toml(kernel)


def write_kernel(
    kernel: AnyKernel,
    output: FitOutput,
    sources: Sequence[tuple[Source, Source]],
) -> tuple[Path | None, str]:
    """Write the kernel file atomically (never over an input or target); returns its path
    (None when it goes to stdout) and its text."""
    text = kernel_text(kernel, output.kernel_format())
    target = output.target(sources[0][0], kernel.label)
    if target is None:
        return None, text
    for pair in sources:
        for source in pair:
            if source.path is not None and same_file(target, source.path):
                raise OutputError(
                    f"the kernel file {str(target)!r} would overwrite an input; choose "
                    "another -o or --name",
                    subject=source.label,
                )
    if output.out_dir is not None:
        make_dirs(target.parent)
    atomic_write(target, text.encode("utf-8"))
    return target, text
