"""Tabulated radial integrals with a guaranteed accuracy (cubic splines on a uniform grid)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.interpolate import CubicSpline

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
        self._spline = spline

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self._spline(x)
