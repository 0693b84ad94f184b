"""The boundary vocabulary and its one padding implementation."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import BOUNDARY_TO_NUMPY
from convcli.compute.boundary import Boundary, Mode, as_boundary, pad, pad_widths, window_into
from convcli.errors import UsageError


@pytest.mark.parametrize("boundary", list(Boundary))
@pytest.mark.parametrize("pads", [((1, 2), (0, 3)), ((5, 7), (9, 4)), ((0, 0), (0, 0))])
def test_pad_matches_numpy_pad(rng, boundary, pads):
    x = rng.normal(size=(2, 3, 4))
    extra = {"constant_values": 2.5} if boundary is Boundary.FILL else {}
    want = np.pad(x, ((0, 0), *pads), mode=BOUNDARY_TO_NUMPY[boundary.value], **extra)
    np.testing.assert_array_equal(pad(x, pads, boundary, 2.5), want)


@pytest.mark.parametrize("boundary", list(Boundary))
@pytest.mark.parametrize("shape", [(1, 1), (1, 5), (4, 3), (7, 9)])
def test_a_window_of_the_extension_is_the_padded_slice(rng, boundary, shape):
    """window_into writes what pad and a slice give, for windows inside the plane, across
    each edge and corner, wider and taller than the plane, and wholly outside it."""
    x = rng.normal(size=shape)
    reach = 12
    ext = pad(x, ((reach, reach), (reach, reach)), boundary, 2.5)
    h, w = shape
    windows = 0
    for r0 in range(-reach, h + 2, 3):
        for r1 in range(r0, min(h + reach, r0 + 20) + 1, 4):
            for c0 in range(-reach, w + 2, 2):
                for c1 in range(c0, min(w + reach, c0 + 20) + 1, 3):
                    got = np.full((r1 - r0, c1 - c0), np.nan)
                    window_into(got, x, (r0, r1), (c0, c1), boundary, 2.5)
                    want = ext[r0 + reach : r1 + reach, c0 + reach : c1 + reach]
                    np.testing.assert_array_equal(got, want)
                    windows += 1
    assert windows > 300


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
