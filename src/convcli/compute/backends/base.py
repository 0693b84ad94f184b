"""What every backend receives: a stack of planes and one prepared kernel at a time.

The engine turns each kernel into a :class:`Plan` (correlation weights, their separable
factors, how far to extend each axis, the method) so that a backend only has to compute the
``valid`` correlation of the boundary-extended planes, in whatever way it does best.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from convcli.compute.boundary import Boundary, pad
from convcli.errors import BackendError


@dataclass(frozen=True, eq=False)
class Plan:
    """One kernel, ready to run: ``out[i] = sum_m ext(x)[i + m] * weights[m]``.

    ``centre`` is the index of the weight that lands on the output pixel (it fixes ``same``
    alignment); ``pads`` is how far each axis is extended before the valid correlation.
    """

    weights: np.ndarray  # 2-D correlation weights (the kernel, flipped for convolution)
    factors: tuple[tuple[np.ndarray, np.ndarray], ...]  # (column, row) correlation factors
    centre: tuple[int, int]
    pads: tuple[tuple[int, int], tuple[int, int]]
    method: str  # "direct", "separable" or "fft"
    offset: float = 0.0
    reason: str = ""  # why this method (for --explain)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.weights.shape[0], self.weights.shape[1])

    @property
    def is_same(self) -> bool:
        """True when the extension is the one ``same`` mode needs (the result keeps the size)."""
        (t, b), (left, r) = self.pads
        kh, kw = self.shape
        return (t, left) == self.centre and t + b == kh - 1 and left + r == kw - 1

    @property
    def rows_extended(self) -> bool:
        """True when the rows come already extended (a band of a larger input: no row
        padding, a valid result along rows) and the columns need ``same``'s extension."""
        (t, b), (left, r) = self.pads
        kw = self.shape[1]
        return (t, b) == (0, 0) and left == self.centre[1] and left + r == kw - 1


class Backend(ABC):
    """A computing library. Subclasses implement :meth:`correlate` for the methods they list."""

    name: str = ""

    def unsupported(self, boundary: Boundary, fill: float) -> str | None:
        """Why this backend cannot serve the request, or None if it can."""
        return None

    def on_device(self, device: str) -> Backend:
        """This backend on ``device`` (``auto``, ``cpu``, ``cuda``, ``mps``). CPU-only
        backends accept ``auto`` and ``cpu``; torch overrides this."""
        if device not in ("auto", "cpu"):
            raise BackendError(
                f"the {self.name} backend runs on the CPU; --device {device} needs --backend torch"
            )
        return self

    @abstractmethod
    def correlate(
        self, planes: np.ndarray, plan: Plan, boundary: Boundary, fill: float
    ) -> np.ndarray:
        """The valid correlation of the extended ``planes`` (N, H, W) with ``plan``."""

    def correlate_many(
        self, planes: np.ndarray, plans: list[Plan], boundary: Boundary, fill: float
    ) -> list[np.ndarray]:
        """Several kernels on the same planes (a bank); backends may do it in one call."""
        return [self.correlate(planes, p, boundary, fill) for p in plans]

    @staticmethod
    def extend(planes: np.ndarray, plan: Plan, boundary: Boundary, fill: float) -> np.ndarray:
        return pad(planes, plan.pads, boundary, fill)
