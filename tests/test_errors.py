"""The error tree: every deliberate error is a ConvcliError with an exit code, and bad values
are also ValueError (as numpy, scipy and Pillow raise), failed writes also OSError."""

import numpy as np
import pytest

import convcli
from convcli.errors import (
    BackendError,
    ConvcliError,
    InputError,
    KernelError,
    LimitError,
    OutputError,
    UsageError,
)


@pytest.mark.parametrize(
    ("cls", "base", "code"),
    [
        (UsageError, ValueError, 2),
        (KernelError, ValueError, 2),
        (BackendError, ValueError, 2),
        (InputError, ValueError, 1),
        (LimitError, ValueError, 1),
        (OutputError, OSError, 1),
    ],
)
def test_the_tree(cls, base, code):
    err = cls("what is wrong", subject="in.png")
    assert isinstance(err, ConvcliError) and isinstance(err, base)
    assert err.exit_code == code
    assert str(err) == "in.png: what is wrong"


@pytest.mark.parametrize(
    ("call", "cls"),
    [
        (lambda: convcli.convolve([1.0, 2.0], "no-such-kernel"), KernelError),
        (lambda: convcli.convolve([1.0, 2.0], "box-1d", mode="middle"), UsageError),
        (lambda: convcli.convolve(np.array(["a"]), "box-1d"), InputError),
        (lambda: convcli.get_kernel("gaussian:sigma=-1"), KernelError),
    ],
)
def test_bad_values_are_value_errors(call, cls):
    with pytest.raises(ValueError) as caught:
        call()
    assert isinstance(caught.value, cls)
