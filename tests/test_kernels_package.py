"""convcli.kernels stands on its own: it imports only convcli.errors, convcli.numeric,
convcli.paths, convcli.vocabulary and convcli.bounded (bounded reads of kernel files), and
its text refers to nothing outside the repository."""

from __future__ import annotations

import ast
import re

import pytest

from conftest import ROOT

KERNELS = ROOT / "src" / "convcli" / "kernels"
ALLOWED = {
    "convcli.bounded",
    "convcli.errors",
    "convcli.numeric",
    "convcli.paths",
    "convcli.vocabulary",
}
SOURCES = sorted(KERNELS.glob("*.py"))


def _convcli_imports(path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "convcli":
                found |= {f"convcli.{a.name}" for a in node.names}
            else:
                found.add(node.module)
    return {m for m in found if m == "convcli" or m.startswith("convcli.")}


def test_there_are_sources():
    assert {p.name for p in SOURCES} >= {"model.py", "registry.py", "generators.py", "formats.py"}


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_imports_only_the_base_modules(path):
    imports = _convcli_imports(path)
    assert {m for m in imports if m not in ALLOWED and not m.startswith("convcli.kernels")} == set()


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_names_no_file_outside_the_repository(path):
    text = path.read_text(encoding="utf-8")
    assert "../" not in text
    for name in re.findall(r"[\w./-]+\.md\b", text):
        assert (ROOT / name).exists(), f"{path.name} refers to {name}"
