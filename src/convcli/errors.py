"""Exceptions raised by the convcli library.

Every error the library raises on purpose is a :class:`ConvcliError`. Its message names the
thing that is wrong (a kernel, a file, an option) so that the command line can print it as one
line. ``exit_code`` says how the command line should end: 2 for a usage error (bad option,
unknown kernel, bad kernel file: nothing can be done), 1 for a failure of one input (the others
are still processed).

Errors about a bad value (an option, a kernel, an input's contents, a limit) are also
``ValueError`` and those about writing also ``OSError``, so that code written for numpy, scipy
or Pillow catches them where it would catch theirs.
"""

from __future__ import annotations


class ConvcliError(Exception):
    """Base class of every error convcli raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, *, subject: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.subject = subject  # the input path or spec the error is about, if any

    def __str__(self) -> str:
        if self.subject:
            return f"{self.subject}: {self.message}"
        return self.message


class UsageError(ConvcliError, ValueError):
    """The request itself is wrong: options that conflict, a value out of range."""

    exit_code = 2


class KernelError(UsageError):
    """A kernel spec, kernel file or kernel matrix is invalid or cannot be found."""


class BackendError(UsageError):
    """A backend or device was asked for that is not installed or cannot do the request."""


class InputError(ConvcliError, ValueError):
    """One input cannot be read or processed (unreadable file, corrupt image, bad array)."""


class OutputError(ConvcliError, OSError):
    """A result cannot be written where it was asked to go."""


class LimitError(ConvcliError, ValueError):
    """A safety limit tripped (image too large, kernel too large, memory budget)."""


class Stopped(BaseException):
    """A stop signal (SIGTERM, or Ctrl-C in a worker) arrived during work. Like
    KeyboardInterrupt it is no error of the input: it unwinds (removing any partial output)
    to where the command ends with status 128 + the signal's number."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
