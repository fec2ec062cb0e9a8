"""Piecewise Chebyshev tables of smooth vector-valued functions, with a checked accuracy."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.polynomial import chebyshev

__all__ = ["ChebyshevTable"]


class ChebyshevTable:
    """Interpolate ``function`` on [0, x_max] by Chebyshev polynomials on equal panels.

    Panels are halved until, at points between the interpolation nodes of every panel, the
    interpolant differs from ``function`` by at most ``accuracy`` times the largest magnitude
    of the function on the table. Within that bound the interpolant is as smooth as a
    polynomial and continuous across panels to the same accuracy.

    Parameters
    ----------
    function : callable
        Maps an array (n,) to an array (n, *shape).
    x_max : float
    accuracy : float
    degree : int
        Polynomial degree on each panel.
    panel_width : float
        Initial panel width.
    """

    def __init__(
        self,
        function: Callable,
        x_max: float,
        accuracy: float,
        degree: int = 16,
        panel_width: float = 1.0,
    ):
        self.x_max = float(x_max)
        self.degree = degree
        nodes = np.cos(np.pi * (np.arange(degree + 1) + 0.5) / (degree + 1))[::-1]
        checks = np.cos(np.pi * np.arange(1, degree + 1) / (degree + 1))[::-1]
        n_panels = max(1, int(np.ceil(self.x_max / panel_width)))
        while True:
            width = self.x_max / n_panels
            starts = np.arange(n_panels) * width
            x = (starts[:, None] + 0.5 * width * (nodes + 1)[None, :]).ravel()
            values = function(x)
            shape = values.shape[1:]
            values = values.reshape(n_panels, degree + 1, -1)
            # coefficients per panel: solve the interpolation with the Vandermonde matrix
            vander = chebyshev.chebvander(nodes, degree)
            coeffs = np.linalg.solve(vander, values.transpose(1, 0, 2).reshape(degree + 1, -1))
            coeffs = coeffs.reshape(degree + 1, n_panels, -1).transpose(1, 0, 2)
            xc = (starts[:, None] + 0.5 * width * (checks + 1)[None, :]).ravel()
            exact = function(xc).reshape(n_panels, degree, -1)
            approx = np.einsum("ck,pkj->pcj", chebyshev.chebvander(checks, degree), coeffs)
            scale = max(np.abs(values).max(), np.abs(exact).max(), np.finfo(float).tiny)
            error = np.abs(approx - exact).max() / scale
            if error <= accuracy or n_panels >= 4096:
                break
            n_panels *= 2
        self.error = float(error)
        self.n_panels = n_panels
        self._width = width
        self._coeffs = coeffs  # (panels, degree + 1, columns)
        self._shape = shape

    def derivative(self, x: np.ndarray) -> np.ndarray:
        """d/dx of the interpolant (not re-fitted: the exact derivative of the table), same
        shape as the values."""
        if not hasattr(self, "_d_coeffs"):
            # d/dx = (2 / width) d/dt on every panel
            self._d_coeffs = (2.0 / self._width) * np.concatenate(
                [chebyshev.chebder(self._coeffs, axis=1), np.zeros_like(self._coeffs[:, :1])],
                axis=1,
            )
        return self._evaluate(x, self._d_coeffs)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Interpolated values for 0 <= x <= x_max, shape (n, *shape)."""
        return self._evaluate(x, self._coeffs)

    def _evaluate(self, x: np.ndarray, coeffs: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        panel = np.minimum((x / self._width).astype(np.int64), self.n_panels - 1)
        t = 2.0 * (x - panel * self._width) / self._width - 1.0
        basis = chebyshev.chebvander(t, self.degree)  # (n, degree + 1)
        out = np.empty((len(x), self._coeffs.shape[2]))
        order = np.argsort(panel, kind="stable")
        bounds = np.searchsorted(panel[order], np.arange(self.n_panels + 1))
        for p in np.flatnonzero(np.diff(bounds)):
            rows = order[bounds[p] : bounds[p + 1]]
            out[rows] = basis[rows] @ coeffs[p]
        return out.reshape(len(x), *self._shape)
