"""Kernel and KernelBank: validation, separability, derived kernels."""

from __future__ import annotations

import numpy as np
import pytest

from convcli.errors import KernelError
from convcli.kernels.model import Kernel, KernelBank, KernelChain, slug


def test_matrix_is_float64_and_read_only():
    k = Kernel([[1, 2], [3, 4]], name="k")
    assert k.matrix.dtype == np.float64
    with pytest.raises(ValueError):
        k.matrix[0, 0] = 5


@pytest.mark.parametrize(
    "values, message",
    [
        ([[1, 2], [3]], "row 2 has 1 value, expected 2"),
        ([[1, "a"]], "'a' is not a number"),
        ([], "empty"),
        ([[1, float("nan")]], "not a finite number"),
        ([[[[1]]]], "more than 3 dimensions"),
        ([[[1, 2]], [[1, 2], [3]]], "slice 2: row 2 has 1 value, expected 2"),
        ([[[1, 2]], [[1, 2], [3, 4]]], "slice 2 is 2x2, expected 1x2"),
        (np.zeros((2, 2, 2, 2)), "4 dimensions"),
        (np.array(3.0), "a single number"),
        (5, "a single number"),
    ],
)
def test_invalid_matrices(values, message):
    with pytest.raises(KernelError, match=message):
        Kernel(values, name="bad")


def test_size_limit_names_itself(monkeypatch):
    monkeypatch.setenv("CONVCLI_MAX_KERNEL_SIZE", "9")
    with pytest.raises(
        KernelError,
        match=r"11x11 is larger than the limit of 9 taps a side "
        r"\(set CONVCLI_MAX_KERNEL_SIZE to raise it\)",
    ):
        Kernel(np.ones((11, 11)), name="big")
    Kernel(np.ones((9, 9)))


def test_origin_must_lie_inside():
    with pytest.raises(KernelError, match="origin"):
        Kernel([[1, 2, 3]], origin=(0, 3))


@pytest.mark.parametrize(
    "matrix, rank",
    [
        ([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], 1),
        ([[0, 1, 0], [1, -4, 1], [0, 1, 0]], 2),
        ([[1, 2, 3], [4, 5, 6], [7, 8, 10]], 3),
        ([[1, 2, 3]], 1),
        ([[0, 0], [0, 0]], 1),
    ],
)
def test_factors_rebuild_the_matrix(matrix, rank):
    k = Kernel(matrix)
    assert k.rank == rank
    rebuilt = sum(np.outer(c, r) for c, r in k.factors)
    np.testing.assert_allclose(rebuilt, k.as_2d(), atol=1e-12)


def test_rank_one_factors_stay_exact_binary_fractions():
    """Sobel's factors come from the matrix itself, not an SVD: [-2, 0, 2] and [.5, 1, .5]."""
    ((col, row),) = Kernel([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]).factors
    assert row.tolist() == [-2.0, 0.0, 2.0]
    assert col.tolist() == [0.5, 1.0, 0.5]


def test_normalized_and_zero_sum():
    assert Kernel([[1, 3]]).normalized().matrix.tolist() == [[0.25, 0.75]]
    with pytest.raises(KernelError, match="its sum is 0"):
        Kernel([[1, -1]], name="d").normalized()


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6])
def test_centred_keeps_the_origin_on_the_default_centre(n):
    for o in range(n):
        k = Kernel(np.arange(1, n + 1, dtype=float)[np.newaxis], origin=(0, o))
        c = k.centred()[0]
        centre = (len(c) - 1) // 2
        assert c[centre] == k.matrix[0, o]
        assert np.count_nonzero(c) == n


def test_bank_validation():
    a = Kernel([[1]], name="a")
    with pytest.raises(KernelError, match="combine 'avg'"):
        KernelBank((a,), combine="avg")
    with pytest.raises(KernelError, match="no member"):
        KernelBank(())
    stacked = KernelBank((a,), combine="stack", name="inner")
    with pytest.raises(KernelError, match="only the outermost bank may stack"):
        KernelBank((stacked,), combine="sum", name="outer")
    bank = KernelBank((a, KernelBank((a, a), combine="sum")), combine="max")
    assert len(bank.leaves()) == 3
    chain = KernelChain((a, bank))
    assert len(chain.leaves()) == 4


def test_slug():
    assert slug("gaussian:size=7,sigma=1.5") == "gaussian-size7-sigma1.5"
    assert slug("../../etc") == "etc"
    assert slug("///") == "kernel"
