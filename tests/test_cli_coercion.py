"""The quick coercion of command-line values gives exactly Typer's values and errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import typer

from convcli.cli import app
from convcli.cli import coercion as cli_coercion

ARGS = [
    ["-k", "sobel", "a.png"],
    ["-k", "sobel", "-k", "box:size=3", "a.png", "b.png", "-o", "x.png"],
    ["-k", "box", "-j", "2", "--mode", "full", "--boundary", "wrap", "--fill-value", "-1.5e2"],
    ["-k", "box", "--fill-value", "nan", "--quality", "95", "--compress", "0", "--precision", "3"],
    ["-k", "box", "--fill-value", ".5", "--range", "abs", "--depth", "16", "--alpha", "ignore"],
    ["-k", "box", "--fill-value", "1_000", "-d", "out", "--name", "{stem}{ext}", "-q"],
    ["-k", "box", "--method", "fft", "--backend", "scipy", "--device", "cpu", "--correlate"],
    ["-k", "box", "--combine", "max", "--compat", "opencv", "--offset", "50%", "--gray"],
    ["-k", "box", "--no-correlate", "--files-from", "-", "-0", "--skip-existing", "-r"],
    ["-k", "box", "--jobs", "+3", "--fill-value", "+7", "--memory", "1G", "--fail-fast"],
    # values Typer refuses: the same message either way
    ["-k", "box", "-j", "0"],
    ["-k", "box", "-j", "two"],
    ["-k", "box", "--quality", "101"],
    ["-k", "box", "--mode", "FULL"],
    ["-k", "box", "--mode", "circular"],
    ["-k", "box", "--fill-value", "1,5"],
    ["-k", "box", "--precision", "-1"],
    ["-k", "box", "--compress", " 3"],
]


def _parse(args: list[str], quick: bool, monkeypatch) -> tuple[str, object]:
    command = typer.main.get_command(app).commands["apply"]
    if not quick:
        monkeypatch.setattr(cli_coercion, "install", lambda params: None)
    try:
        ctx = command.make_context("apply", list(args))
    except Exception as exc:  # a usage error: compare what the user is told
        return "error", f"{type(exc).__name__}: {exc.format_message()}"
    finally:
        monkeypatch.undo()
    return "ok", {k: (type(v), repr(v)) for k, v in ctx.params.items()}  # repr: nan == nan


@pytest.mark.parametrize("args", ARGS, ids=" ".join)
def test_quick_coercion_matches_typer(args, monkeypatch):
    assert _parse(args, True, monkeypatch) == _parse(args, False, monkeypatch)


def test_a_plain_command_does_not_import_pydantic(tmp_path):
    """Typer builds its coercion on pydantic (~70 ms a run); plain values never need it."""
    code = (
        "import sys, json\nfrom convcli.cli import app\n"
        "try:\n    app(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
        "print(json.dumps('pydantic' in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, "apply", "-k", "box", "-j", "1", "[1, 2, 3]", "--print"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(out.stdout.splitlines()[-1]) is False, out.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["-k", "box", "-j", "9" * 30],  # past the quick path's 18 digits: Typer's value
        ["-k", "box", "-j", "9" * 4301],  # past Python's and pydantic's limit: Typer's error
        ["-k", "box", "-j", "\u0663"],  # an Arabic-Indic 3: not an ASCII digit
        ["-k", "box", "--precision", "0017", "--fill-value", "1e400"],
        ["-k", "box", "--name", "", "--offset", "-5%", "--format", "png"],
    ],
    ids=["30 digits", "4301 digits", "arabic-indic digit", "leading zeros, 1e400", "empty"],
)
def test_quick_coercion_matches_typer_at_the_edges(args, monkeypatch):
    assert _parse(args, True, monkeypatch) == _parse(args, False, monkeypatch)
