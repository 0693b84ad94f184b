"""run/ and schedule keep to their layer: nothing there imports the command line, schedule
imports no other convcli module but errors, and no module takes another's private names."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "convcli"
RUN = sorted((SRC / "run").glob("*.py"))


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            found += [(a.name, []) for a in node.names]
    return found


@pytest.mark.parametrize("path", RUN, ids=lambda p: p.name)
def test_run_does_not_import_the_command_line(path):
    assert not [m for m, _ in _imports(path) if m.startswith("convcli.cli")]


def test_schedule_stands_alone():
    modules = {m for m, _ in _imports(SRC / "schedule.py") if m.startswith("convcli")}
    assert modules <= {"convcli.errors"}


@pytest.mark.parametrize("path", [*RUN, SRC / "schedule.py"], ids=lambda p: p.name)
def test_no_private_names_from_other_modules(path):
    private = [
        (m, n)
        for m, names in _imports(path)
        if m.startswith("convcli")
        for n in names
        if n.startswith("_")
    ]
    assert not private


#: what each package may import of convcli: dependencies point one way
#: (cli -> run -> compute/io -> kernels -> the bottom modules)
BOTTOM = {
    "errors",
    "vocabulary",
    "numeric",
    "paths",
    "bounded",
    "machine",
    "memory",
    "schedule",
}
ALLOWED = {
    "kernels": BOTTOM | {"kernels"},
    "io": BOTTOM | {"io"},
    "compute": BOTTOM | {"kernels", "io", "compute"},
    "run": BOTTOM | {"kernels", "io", "compute", "run"},
}


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_dependencies_point_one_way(package):
    for path in sorted((SRC / package).rglob("*.py")):
        for module, _ in _imports(path):
            if module.startswith("convcli."):
                top = module.split(".")[1]
                assert top in ALLOWED[package], f"{path.relative_to(SRC)} imports {module}"


@pytest.mark.parametrize("path", sorted(SRC.rglob("*.py")), ids=lambda p: str(p.relative_to(SRC)))
def test_no_private_names_across_modules(path):
    for module, names in _imports(path):
        if module.startswith("convcli"):
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            assert not private, f"{path.relative_to(SRC)} takes {private} from {module}"
