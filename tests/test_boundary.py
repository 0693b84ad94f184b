"""The boundary vocabulary and its one padding implementation."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import BOUNDARY_TO_NUMPY
from convcli.compute.boundary import Boundary, Mode, as_boundary, pad, pad_widths
from convcli.errors import UsageError


@pytest.mark.parametrize("boundary", list(Boundary))
@pytest.mark.parametrize("pads", [((1, 2), (0, 3)), ((5, 7), (9, 4)), ((0, 0), (0, 0))])
def test_pad_matches_numpy_pad(rng, boundary, pads):
    x = rng.normal(size=(2, 3, 4))
    extra = {"constant_values": 2.5} if boundary is Boundary.FILL else {}
    want = np.pad(x, ((0, 0), *pads), mode=BOUNDARY_TO_NUMPY[boundary.value], **extra)
    np.testing.assert_array_equal(pad(x, pads, boundary, 2.5), want)


def test_spec_pictures():
    """The SPEC's pictures: reflect dcba|abcd|dcba, mirror dcb|abcd|cba, nearest, wrap."""
    x = np.array([[1.0, 2.0, 3.0, 4.0]])
    row = {b: pad(x, ((0, 0), (3, 3)), b)[0].tolist() for b in Boundary}
    assert row[Boundary.REFLECT] == [3, 2, 1, 1, 2, 3, 4, 4, 3, 2]
    assert row[Boundary.MIRROR] == [4, 3, 2, 1, 2, 3, 4, 3, 2, 1]
    assert row[Boundary.NEAREST] == [1, 1, 1, 1, 2, 3, 4, 4, 4, 4]
    assert row[Boundary.WRAP] == [2, 3, 4, 1, 2, 3, 4, 1, 2, 3]
    assert row[Boundary.FILL] == [0, 0, 0, 1, 2, 3, 4, 0, 0, 0]


def test_pad_widths():
    assert pad_widths(Mode.FULL, 4, 2) == (3, 3)
    assert pad_widths(Mode.SAME, 4, 2) == (2, 1)
    assert pad_widths(Mode.VALID, 4, 2) == (0, 0)


def test_unknown_boundary():
    with pytest.raises(UsageError, match="boundary 'symm' is not one of fill, reflect"):
        as_boundary("symm")
