"""Tabulated radial integrals with a guaranteed accuracy (cubic splines on a uniform grid)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.interpolate import CubicSpline

from ..errors import InputError

__all__ = ["TabulatedFunction"]


#: Largest table (points): past it the table stops refining (callers refuse inputs that
#: would need more, see SphericalExpansion).
MAX_POINTS = 2**20


class TabulatedFunction:
    """Cubic-spline table of a smooth vector-valued function of one variable on [0, x_max].

    The grid is doubled until the spline differs from ``function`` by at most
    ``accuracy`` times the largest value of the table, measured at every mid-point
    between grid nodes (where a cubic spline's error peaks).

    Parameters
    ----------
    function : callable
        Maps an array of shape (n,) to an array of shape (n, ...).
    x_max : float
    accuracy : float
        Relative (to the table's largest magnitude) bound on the interpolation error.
    """

    def __init__(self, function: Callable, x_max: float, accuracy: float, n_start: int = 64):
        n_points = n_start
        while True:
            grid = np.linspace(0.0, x_max, n_points)
            values = function(grid)
            spline = CubicSpline(grid, values, axis=0)
            mid = 0.5 * (grid[1:] + grid[:-1])
            error = np.abs(spline(mid) - function(mid)).max()
            scale = max(np.abs(values).max(), np.finfo(float).tiny)
            if error <= accuracy * scale or n_points >= MAX_POINTS:
                break
            n_points = 2 * n_points - 1
        self.n_points = n_points
        self.error = float(error / scale)
        self._step = float(grid[1] - grid[0])
        self._shape = values.shape[1:]
        # the spline's own cubic coefficients, one contiguous (interval, value) table per
        # power: a row gather per power and Horner's rule evaluate it without scipy's
        # per-point interval search (2-3x faster measured; numpy releases the GIL throughout)
        coefficients = spline.c.reshape(4, n_points - 1, -1)
        self._powers = [np.ascontiguousarray(coefficients[k]) for k in range(4)]

    @property
    def size(self) -> int:
        """Values per point (the product of ``function``'s trailing shape)."""
        return self._powers[0].shape[1]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """The spline at ``x`` (shape (n,)); shape (n, ...) as ``function``.

        Points beyond the table continue its last cubic (as scipy's CubicSpline does).
        """
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        if np.any(x < 0):
            raise InputError(f"`x` has negative entries (min {x.min()}); the table starts at 0")
        out = np.empty((len(x), self.size))
        self.evaluate(x, out)
        return out.reshape(len(x), *self._shape)

    def evaluate(self, x: np.ndarray, out: np.ndarray, scratch: np.ndarray | None = None) -> None:
        """Write the spline at ``x`` (shape (n,), all >= 0) into ``out`` (shape (n, size)).

        ``scratch``, an array of the shape of ``out``, lets the whole of ``x`` be done at
        once. Without it, blocks whose temporaries stay below 64 KiB: large fresh
        temporaries come from mmap and cost a page fault per 4 KiB, more than the
        arithmetic done on them.
        """
        if scratch is not None:
            self._evaluate(x, out, scratch)
            return
        block = max(16, _BLOCK_BYTES // (8 * self.size))
        scratch = np.empty((min(block, len(x)), self.size))
        for start in range(0, len(x), block):
            xs = x[start : start + block]
            self._evaluate(xs, out[start : start + block], scratch[: len(xs)])

    def _evaluate(self, x: np.ndarray, out: np.ndarray, scratch: np.ndarray) -> None:
        interval = np.minimum((x / self._step).astype(np.intp), len(self._powers[0]) - 1)
        t = (x - interval * self._step)[:, None]
        # mode="clip" (indices are in range): with "raise", numpy buffers ``out``
        np.take(self._powers[0], interval, axis=0, out=out, mode="clip")
        for power in self._powers[1:]:
            out *= t
            np.take(power, interval, axis=0, out=scratch, mode="clip")
            out += scratch


#: Bytes of the temporaries of :meth:`TabulatedFunction.evaluate`.
_BLOCK_BYTES = 1 << 16
