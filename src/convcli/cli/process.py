"""Process-wide settings, made by the command line alone, for the time a command runs.

The library changes nothing outside convcli: a program that embeds it keeps its Pillow
limit, its logging, its warnings filters and its file descriptors. The command line owns its
process, and while a command runs it sets:

* Pillow's decompression-bomb limit off (``PIL.Image.MAX_IMAGE_PIXELS = None``): convcli's
  own limit (``CONVCLI_MAX_PIXELS``), checked from the header before decoding, is the one that
  applies, and its error says how to raise it;
* Pillow's and tifffile's log records, and the decoders' Python warnings, off stderr: a problem
  with an input reaches the user as one ``convcli: error:`` line;
* ``CONVCLI_FORMATS`` as apply's ``--formats`` sets it (the workers inherit it);
* file descriptor 2 on /dev/null, with Python's ``sys.stderr`` on a copy of the real one: C
  libraries (libpng, libjpeg and libtiff inside OpenCV) print their complaints on descriptor 2
  directly. This only when ``sys.stderr`` is the interpreter's own: a caller that replaced it
  (a test capturing it) keeps it, and its descriptors.

Each is put back when the command ends. Batch workers, forked during the command, inherit them.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import warnings
from collections.abc import Iterator

#: the loggers of the decoders, whose problems reach users as convcli's errors
DECODER_LOGGERS = ("PIL", "tifffile")
#: the modules whose warnings are the decoders' (a warning is filtered by the module it names)
DECODER_MODULES = r"(PIL|tifffile|convcli\.io)(\..*)?$"


@contextlib.contextmanager
def command_settings() -> Iterator[None]:
    """The process-wide settings of a command, as the module docstring lists them."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(pillow_limit_off())
        stack.enter_context(decoder_logs_off())
        stack.enter_context(decoder_warnings_off())
        stack.enter_context(native_stderr_off())
        stack.enter_context(environment_kept("CONVCLI_FORMATS"))
        yield


@contextlib.contextmanager
def environment_kept(name: str) -> Iterator[None]:
    """An environment variable as it was before the command, put back after it: an option
    (apply's --formats) sets it for the command and the workers it starts."""
    saved = os.environ.get(name)
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = saved


@contextlib.contextmanager
def pillow_limit_off() -> Iterator[None]:
    from PIL import Image

    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = saved


@contextlib.contextmanager
def decoder_logs_off() -> Iterator[None]:
    import logging

    handler = logging.NullHandler()
    saved = [(log, log.propagate) for log in map(logging.getLogger, DECODER_LOGGERS)]
    for log, _ in saved:
        log.addHandler(handler)
        log.propagate = False
    try:
        yield
    finally:
        for log, propagate in saved:
            log.removeHandler(handler)
            log.propagate = propagate


@contextlib.contextmanager
def decoder_warnings_off() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", module=DECODER_MODULES)
        yield


#: the copies of stderr made by native_stderr_off, which stay open (see there)
_KEPT_OPEN: list[object] = []


@contextlib.contextmanager
def native_stderr_off() -> Iterator[None]:
    stream = sys.stderr
    try:
        owned = stream is sys.__stderr__ and stream is not None and stream.fileno() == 2
    except (AttributeError, OSError, ValueError):
        owned = False
    if not owned:
        yield
        return
    stream.flush()
    saved = os.dup(2)
    # The copy is never closed here: a log handler made during the command may hold it (and
    # with it the descriptor, which must not be reused for another file meanwhile).
    copy = os.fdopen(saved, "w", buffering=1, encoding=stream.encoding, errors=stream.errors)
    _KEPT_OPEN.append(copy)  # never garbage-collected (which warns "unclosed file") either
    atexit.register(copy.close)  # but closed when the interpreter ends (a quiet exit)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
    finally:
        os.close(devnull)
    sys.stderr = copy
    try:
        yield
    finally:
        copy.flush()
        sys.stderr = stream
        os.dup2(saved, 2)
