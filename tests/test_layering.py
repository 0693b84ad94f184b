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
