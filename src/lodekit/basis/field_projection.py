"""Projection of a radially symmetric field, centred at distance d, onto R_n(r) Y_lm(r̂).

For a field f(|r - d|) with Fourier transform f̂(k), expanding the plane waves in spherical
waves gives (math.md §4.2)

    ∫ R_n(r) Y_lm(r̂) f(|r - d|) d^3r = 4 pi Y_lm(d̂) Q_nl(d),
    Q_nl(d) = 1/(2 pi^2) ∫_0^∞ k^2 f̂(k) I_nl(k) j_l(k d) dk,

with I_nl(k) the k-space radial integral of the basis. Q_nl is a smooth function of d alone,
evaluated here by Gauss-Legendre quadrature on panels that resolve the oscillations of
j_l(k d) (and grade towards k = 0, where f̂ of p = 3, 5 has a logarithmic term).
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise

import numpy as np
from scipy.special import roots_legendre, spherical_jn

from .radial import RadialBasis

__all__ = ["FieldProjection"]

_NODES_PER_PANEL = 24


def _quadrature(k_max: float, d_max: float) -> tuple[np.ndarray, np.ndarray]:
    """Composite Gauss-Legendre nodes and weights on [0, k_max]."""
    # one oscillation of j_l(k d_max) per panel: 24 nodes integrate it to ~1e-16
    n_panels = max(8, int(np.ceil(k_max * d_max / (2 * np.pi))))
    edges = list(np.linspace(0.0, k_max, n_panels + 1))
    first = edges[1]
    edges = [0.0, *(first * 2.0 ** -np.arange(10, 0, -1)), *edges[1:]]
    x, w = roots_legendre(_NODES_PER_PANEL)
    nodes, weights = [], []
    for a, b in pairwise(edges):
        nodes.append(0.5 * (b - a) * (x + 1) + a)
        weights.append(0.5 * (b - a) * w)
    return np.concatenate(nodes), np.concatenate(weights)


class FieldProjection:
    """Q_nl(d) for one field and one basis, exactly (to quadrature precision ~1e-15).

    Parameters
    ----------
    basis : RadialBasis
    max_angular : int
    fourier : callable
        k (1/Å, > 0) -> f̂(k), the field's Fourier transform.
    k_max : float
        Where k^2 f̂(k) I_nl(k) has decayed below double precision.
    d_max : float
        Largest distance the quadrature must resolve (Å).
    """

    def __init__(
        self,
        basis: RadialBasis,
        max_angular: int,
        fourier: Callable,
        k_max: float,
        d_max: float,
    ):
        self.max_angular = max_angular
        k, w = _quadrature(k_max, d_max)
        radial = basis.kspace_integral(k, max_angular)  # (k, l, n)
        self._k = k
        self._weights = (w * k * k * fourier(k) / (2 * np.pi**2))[:, None, None] * radial

    def __call__(self, d: np.ndarray) -> np.ndarray:
        """Q_nl(d), shape (n_d, max_angular + 1, n_radial)."""
        d = np.asarray(d, dtype=np.float64)
        kd = np.multiply.outer(d, self._k)
        out = np.empty((len(d), self.max_angular + 1, self._weights.shape[2]))
        for l in range(self.max_angular + 1):
            out[:, l, :] = spherical_jn(l, kd) @ self._weights[:, l, :]
        return out
