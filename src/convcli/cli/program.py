"""The convcli program: the Typer app, its root options, one error line per problem and the
exit codes. The commands register themselves on ``app`` (kernel_commands, apply_command).

The cli package is the only one that imports typer. Heavy modules (numpy, scipy, Pillow,
rich) are imported inside the commands that need them, so ``convcli --help`` starts fast.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from typer.core import TyperCommand, TyperGroup

try:  # recent typer vendors its own copy of click
    from typer import _click as click
except ImportError:  # pragma: no cover - older typer uses click itself
    import click  # type: ignore[no-redef]

from convcli import __version__
from convcli.cli import process, streams
from convcli.cli.coercion import QuickParsing
from convcli.errors import ConvcliError, Stopped

if TYPE_CHECKING:
    pass


class BrokenPipe(Exception):
    """stdout was closed by the reader (``| head``): stop quietly."""


def error(message: str) -> None:
    """One line on stderr: ``convcli: error: ...``.

    Control characters (a newline in a file name) are escaped so that the line stays one
    line; file names that are not UTF-8 are written as their raw bytes, as on stdout.
    """
    line = "convcli: error: " + message.translate(_ESCAPES) + "\n"
    sys.stderr.flush()
    stream = getattr(sys.stderr, "buffer", None)
    if stream is None:
        sys.stderr.write(line.encode("utf-8", "backslashreplace").decode("utf-8"))
    else:
        stream.write(line.encode("utf-8", "surrogateescape"))
        stream.flush()


_ESCAPES = {c: f"\\x{c:02x}" for c in range(32)} | {10: "\\n", 13: "\\r", 9: "\\t"}


def _stop_on_sigterm() -> Callable[[], None]:
    """Make SIGTERM (kill, timeout, a service manager) stop the command as Ctrl-C does:
    unwinding, so that no partial output is left, and ending with status 143. Returns what
    puts the previous handler back (for callers such as test runners)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return lambda: None  # signal handlers belong to the main thread
    previous = signal.getsignal(signal.SIGTERM)
    stopping = False

    def stop(signum: int, frame: Any) -> None:
        nonlocal stopping
        if not stopping:  # a second signal must not cut the clean-up short
            stopping = True
            raise Stopped(signum)

    signal.signal(signal.SIGTERM, stop)

    def restore() -> None:
        signal.signal(signal.SIGTERM, previous)

    return restore


class ConvcliCommand(QuickParsing, TyperCommand):
    """A convcli command: Typer's, parsing plain values without pydantic."""


class ConvcliGroup(QuickParsing, TyperGroup):
    """Turns every failure into one ``convcli: error:`` line and the SPEC's exit code."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        debug = "--debug" in argv
        restore_sigterm = _stop_on_sigterm()
        try:
            streams.check_stdout()
            code = super().main(
                args=argv,
                prog_name=prog_name or "convcli",
                complete_var=complete_var,
                standalone_mode=False,
                **extra,
            )
            code = code if isinstance(code, int) else 0
        except click.exceptions.NoArgsIsHelpError as exc:
            click.echo(exc.ctx.get_help() if exc.ctx else str(exc))
            code = 0
        except click.exceptions.UsageError as exc:
            error(_usage_message(exc))
            code = 2
        except (typer.Abort, KeyboardInterrupt):
            code = 130
        except Stopped as stop:
            code = 128 + stop.signum
        except BrokenPipe:
            _silence_stdout()
            code = 141
        except ConvcliError as exc:
            if isinstance(exc, streams.StdoutError):
                _silence_stdout()  # the interpreter's last flush would fail again
            if debug:
                import traceback

                traceback.print_exc()
            error(str(exc))
            code = exc.exit_code
        except BrokenPipeError:
            _silence_stdout()
            code = 141
        except Exception as exc:  # a bug: still one line, the traceback with --debug
            if debug:
                raise
            error(f"internal error: {type(exc).__name__}: {exc} (--debug shows where)")
            code = 1
        finally:
            restore_sigterm()
        if standalone_mode:
            sys.exit(code)
        return code


def _usage_message(exc: click.exceptions.UsageError) -> str:
    return " ".join(exc.format_message().replace("Value error, ", "").split()).rstrip(".")


def _silence_stdout() -> None:
    """After EPIPE, make the interpreter's final flush of stdout harmless."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


app = typer.Typer(
    cls=ConvcliGroup,
    name="convcli",
    help="Convolve images and numeric arrays with named kernels, exactly as scipy does.",
    no_args_is_help=True,
    add_completion=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)


def complete_kernel(incomplete: str) -> list[str]:
    """Shell completion for -k: built-in and user kernel names (and files, by the shell)."""
    from convcli.kernels.registry import default_registry

    try:
        names = default_registry().names()
    except ConvcliError:
        return []
    return [n for n in names if n.startswith(incomplete.lower())]


def _version(value: bool) -> None:
    if value:
        print(f"convcli {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Convolve images and numeric arrays with named kernels, exactly as scipy does.

    \b
    Examples:
      convcli apply -k sobel photo.png              # writes photo.sobel.png
      convcli apply -k gaussian:sigma=2 -d out/ -r photos/
      convcli apply -k box-1d:size=4 --mode valid '[1,2,3,4,5,4,3,2,1]'
      convcli list-kernels --tag edge
      convcli show-kernel gaussian:sigma=1
    """
    ctx.with_resource(process.command_settings())  # until the command ends


def main() -> None:
    """Entry point of the ``convcli`` script."""
    with _only_command(sys.argv[1] if len(sys.argv) > 1 else ""):
        try:
            app()  # ends in SystemExit, with the command's exit code
        except SystemExit as stop:
            code = stop.code
        else:
            return
    _leave(code)


def _leave(code: Any) -> NoReturn:
    """End the process as ``sys.exit(code)`` would, without taking the interpreter apart.

    Once the command is over, the exit handlers run and the standard streams are flushed,
    as at any exit; what is skipped is freeing every module and object one by one (numpy's,
    OpenCV's, Typer's, convcli's), which adds 30-40 ms to every command: as much as
    ``vips`` takes for a small image's whole run. Every output is complete and renamed by
    then. Where a thread other than the main one is still running, or a stream cannot be
    flushed, the interpreter ends as it always does."""
    evaluator = sys.modules.get("convcli.compute.evaluate")
    if evaluator is not None:
        evaluator.close_threads()  # idle, but not daemon threads: they would count below
    others = [t for t in threading.enumerate() if t is not threading.main_thread()]
    if any(not t.daemon for t in others):
        sys.exit(code)
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:  # as the interpreter does with a SystemExit that carries a message
        print(code, file=sys.stderr)
        status = 1
    atexit._run_exitfuncs()
    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
    except (OSError, ValueError):
        sys.exit(status)  # the interpreter's own last flush reports it
    os._exit(status)


@contextlib.contextmanager
def _only_command(name: str) -> Iterator[None]:
    """Typer builds the options of every registered command before it parses anything
    (20-40 ms of a command that takes 0.3 s): a command named first is the only one it
    needs to build. Anything else (``--help``, a misspelt command) gets them all."""
    from typer.main import get_command_name  # how Typer names a command from its function

    commands = app.registered_commands
    named = [
        c
        for c in commands
        if c.callback is not None and (c.name or get_command_name(c.callback.__name__)) == name
    ]
    if len(named) == 1:
        app.registered_commands = named
    try:
        yield
    finally:
        app.registered_commands = commands
