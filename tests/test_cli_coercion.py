"""The quick coercion of command-line values gives exactly Typer's values and errors."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Annotated

import pytest
import typer

from convcli.cli import app
from convcli.cli import coercion as cli_coercion
from convcli.cli.program import ConvcliCommand
from convcli.vocabulary import Method, Mode

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


# -- what the quick coercion relies on in Typer: each test says what changed -----------------
def _commands():
    group = typer.main.get_command(app)
    return {"convcli": group, **group.commands}


def test_every_convcli_parameter_takes_the_quick_path():
    """Each parameter (the root's completion options and the help option too) is one the quick
    coercion handles, reading only public attributes of Typer's parameters."""
    for name, command in _commands().items():
        ctx = command.make_context(name, [], resilient_parsing=True)
        for param in command.get_params(ctx):
            descriptor = getattr(param, "type_descriptor", None)
            assert descriptor is not None, (
                f"{name} {param.name}: Typer's parameters no longer have a public "
                "type_descriptor; convcli/cli/coercion.py must be redone (or dropped, if "
                "Typer no longer coerces through pydantic)"
            )
            for attr in ("annotation", "parameter_info", "is_file", "is_path"):
                assert hasattr(descriptor, attr), f"Typer's type_descriptor lost {attr!r}"
            for attr in ("min", "max", "clamp", "parser", "case_sensitive"):
                assert hasattr(descriptor.parameter_info, attr), (
                    f"Typer's parameter_info lost {attr!r}"
                )
            assert isinstance(param.process_value, cli_coercion.QuickValue), (
                f"{name} {param.name} ({descriptor.annotation}) is not coerced quickly: it "
                "would bring back pydantic (~70 ms a run); extend convcli/cli/coercion.py"
            )


def test_typer_hands_process_value_what_the_quick_path_expects(monkeypatch):
    """The values click and Typer give ``process_value``: strings from the command line (a
    list for a repeated option, a tuple for variadic arguments) and the declared defaults."""
    monkeypatch.setattr(cli_coercion, "install", lambda params: None)
    command = _commands()["apply"]
    seen: dict[str, object] = {}
    for param in command.params:
        typer_process_value = param.process_value

        def record(ctx, value, name=param.name, typer_process_value=typer_process_value):
            seen[name] = value
            return typer_process_value(ctx, value)

        param.process_value = record
    args = ["-k", "sobel", "-k", "box", "-j", "2", "--mode", "full", "--fill-value", "1.5"]
    ctx = command.make_context("apply", [*args, "--correlate", "a", "b"])
    want = {
        "kernel": ["sobel", "box"],
        "inputs": ("a", "b"),
        "jobs": "2",
        "fill_value": "1.5",
        "mode": "full",
        "correlate": True,
        "normalize": False,
        "progress": None,
        "quality": None,
        "method": Method.AUTO,
        "name": "{stem}.{kernel}{ext}",
    }
    got = {k: seen.get(k, "<not processed>") for k in want}
    assert got == want, "click/Typer now hand process_value other values: check coercion.py"
    assert {k: (type(v), v) for k, v in ctx.params.items() if k in want} == {
        "kernel": (list, ["sobel", "box"]),
        "inputs": (list, ["a", "b"]),
        "jobs": (int, 2),
        "fill_value": (float, 1.5),
        "mode": (Mode, Mode.FULL),
        "correlate": (bool, True),
        "normalize": (bool, False),
        "progress": (type(None), None),
        "quality": (type(None), None),
        "method": (Method, Method.AUTO),
        "name": (str, "{stem}.{kernel}{ext}"),
    }, "Typer's coercion now gives other values: the quick path must follow"


def test_typer_still_needs_pydantic_for_plain_values():
    """The reason for convcli/cli/coercion.py: when this fails, Typer coerces plain values
    without pydantic, and the quick coercion may go (measure `convcli apply` first)."""
    code = (
        "import sys\nimport typer\nfrom convcli.cli import app, coercion\n"
        "coercion.install = lambda params: None\n"
        "command = typer.main.get_command(app).commands['show-kernel']\n"
        "command.make_context('show-kernel', ['box'])\n"
        "print('pydantic' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split()[-1:] == ["True"], (
        "Typer no longer imports pydantic to coerce a plain string: the quick coercion in "
        "convcli/cli/coercion.py may be unnecessary now"
    )


@pytest.mark.parametrize(
    "args",
    [["--help"], ["list-kernels"], ["apply", "--help"], ["show-kernel", "box"]],
    ids=" ".join,
)
def test_start_up_does_not_import_pydantic(args):
    code = (
        "import sys\nfrom convcli.cli import app\n"
        "try:\n    app(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
        "print('pydantic' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    assert out.stdout.split()[-1:] == ["False"], (
        f"convcli {' '.join(args)} imported pydantic (Typer's own coercion, ~70 ms): a "
        f"parameter misses the quick path of convcli/cli/coercion.py\n{out.stderr[-500:]}"
    )


_CALLS: list[tuple[str, object]] = []


def _note(ctx, param, value):
    _CALLS.append((param.name, value))
    if value == 13:
        raise typer.BadParameter("unlucky")
    return value


# what the quick path does besides converting: required parameters, callbacks (one refusing)
toy = typer.Typer()


@toy.command(cls=ConvcliCommand)
def _run(
    mode: Annotated[Mode, typer.Argument(callback=_note)],
    count: Annotated[int, typer.Option(min=1, callback=_note)],
    names: Annotated[list[str], typer.Option("--name", callback=_note)],
    label: Annotated[str | None, typer.Option(callback=_note)] = None,
) -> None:
    pass


@pytest.mark.parametrize(
    "args",
    [
        ["full", "--count", "2", "--name", "a", "--name", "b"],
        ["valid", "--count", "13", "--name", "a"],
        ["full", "--name", "a"],
        ["full", "--count", "2"],
        ["--count", "2", "--name", "a"],
        ["full", "--count", "0", "--name", "a", "--label", "x"],
    ],
    ids=["ok", "callback refuses", "no --count", "no --name", "no argument", "out of range"],
)
def test_required_values_and_callbacks_as_typer(args, monkeypatch):
    def parse(quick: bool) -> tuple[object, list[tuple[str, object]]]:
        _CALLS.clear()
        command = typer.main.get_command(toy)
        if not quick:
            monkeypatch.setattr(cli_coercion, "install", lambda params: None)
        try:
            ctx = command.make_context("run", list(args))
            result: object = {k: (type(v), v) for k, v in ctx.params.items()}
        except Exception as exc:
            result = f"{type(exc).__name__}: {exc.format_message()}"
        finally:
            monkeypatch.undo()
        return result, list(_CALLS)

    assert parse(True) == parse(False)
