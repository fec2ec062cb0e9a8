"""Far-field (multipole) form of the projection of a 1/r^p field onto a radial basis.

For a field |r - d|^(-p) seen from a centre at distance d, the generating function of the
Gegenbauer polynomials gives, for r < d and u = r̂·d̂,

    |r - d|^(-p) = d^(-p) sum_k C_k^(p/2)(u) (r/d)^k,    C_k^(p/2)(u) = sum_l b_kl P_l(u),

so that its projection on R_nl(r) Y_lm(r̂) is 4 pi Y_lm(d̂) Q_nl(d) with

    Q_nl(d) = 1/(2l+1) sum_{k = l, l+2, ...} b_kl M_k,l,n d^(-p-k),  M_k,l,n = ∫ r^(2+k) R_nl dr.

For p = 1, b_kl = δ_kl and this is the familiar 4 pi/(2l+1) M_l,l,n Y_lm / d^(l+1). For a basis
that reaches past d (GTOs) the series is asymptotic, exact to ~exp(-d^2 / (2 s_max^2)); for one
with compact support it converges once d exceeds the support. The basis says where it may be
used (:meth:`~lodekit.basis.radial.RadialBasis.far_field`).
"""

from __future__ import annotations

import numpy as np
from scipy.special import eval_gegenbauer, eval_legendre, roots_legendre

from .radial import RadialBasis

__all__ = ["MultipoleTail"]


def _gegenbauer_to_legendre(max_order: int, half_p: float) -> np.ndarray:
    """b[k, l] with C_k^(half_p)(u) = sum_l b[k, l] P_l(u), k, l = 0..max_order."""
    u, w = roots_legendre(max_order + 8)  # exact for polynomials of degree < 2 max_order + 16
    gegenbauer = np.stack([eval_gegenbauer(k, half_p, u) for k in range(max_order + 1)])
    legendre = np.stack([eval_legendre(l, u) for l in range(max_order + 1)])
    b = (gegenbauer * w) @ legendre.T * (2 * np.arange(max_order + 1) + 1) / 2
    # parity: only l = k, k-2, ... survive; clean the round-off of the others
    k, l = np.meshgrid(np.arange(max_order + 1), np.arange(max_order + 1), indexing="ij")
    b[(l > k) | ((k - l) % 2 == 1)] = 0.0
    return b


class MultipoleTail:
    """Q_nl(d) of a 1/r^p field at distances where its multipole series is exact.

    Parameters
    ----------
    basis : RadialBasis
    max_angular : int
    exponent : int
        p >= 1.
    n_terms : int
        Largest power k of r/d kept (the caller checks convergence at its switch distance).
    """

    def __init__(self, basis: RadialBasis, max_angular: int, exponent: int, n_terms: int = 80):
        self.exponent = exponent
        self.max_angular = max_angular
        self.n_terms = n_terms
        self._moments = basis.moments(n_terms, max_angular)  # (k, l, n)
        b = _gegenbauer_to_legendre(n_terms, 0.5 * exponent)  # (k, l)
        b = b[:, : max_angular + 1] / (2 * np.arange(max_angular + 1) + 1)
        # coefficient of d^(-p-k) in Q_nl: (k, l, n)
        self._coefficients = b[:, :, None] * self._moments

    def terms(self, d: np.ndarray) -> np.ndarray:
        """Individual series terms, shape (n_d, n_terms + 1, L + 1, n)."""
        d = np.asarray(d, dtype=np.float64)
        powers = d[:, None] ** -(self.exponent + np.arange(self.n_terms + 1))[None, :]
        return powers[:, :, None, None] * self._coefficients[None]

    def __call__(self, d: np.ndarray) -> np.ndarray:
        """Q_nl(d), shape (n_d, L + 1, n)."""
        d = np.asarray(d, dtype=np.float64)
        powers = d[:, None] ** -(self.exponent + np.arange(self.n_terms + 1))[None, :]
        return np.einsum("dk,kln->dln", powers, self._coefficients)

    def derivative(self, d: np.ndarray) -> np.ndarray:
        """dQ_nl/dd, shape (n_d, L + 1, n): the series differentiated term by term."""
        d = np.asarray(d, dtype=np.float64)
        orders = self.exponent + np.arange(self.n_terms + 1)
        powers = -orders[None, :] * d[:, None] ** -(orders + 1)[None, :]
        return np.einsum("dk,kln->dln", powers, self._coefficients)
