"""Orthonormalised Gaussian-type-orbital (GTO) radial basis (math.md §2).

Primitive functions phi_n(r) = N_n r^n exp(-r^2 / (2 s_n^2)), n = 0..max_radial, with
s_n = radius * max(sqrt(n), 1) / (max_radial + 1), normalised on [0, inf) and then Löwdin
orthonormalised, R_n = sum_m (S^-1/2)_nm phi_m. This is featomic 0.6's ``Gto`` basis.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
from scipy.special import gammaln

__all__ = ["GtoBasis"]


class GtoBasis:
    """The GTO radial basis for given ``max_radial`` and ``radius``.

    Parameters
    ----------
    max_radial : int
        Largest radial index; there are ``max_radial + 1`` functions.
    radius : float
        Basis radius in Å (sets the Gaussian widths; the basis is not truncated there).
    """

    def __init__(self, max_radial: int, radius: float):
        self.max_radial = int(max_radial)
        self.radius = float(radius)

    @property
    def size(self) -> int:
        return self.max_radial + 1

    @cached_property
    def widths(self) -> np.ndarray:
        """Gaussian widths s_n in Å, shape (n_radial,)."""
        n = np.arange(self.size, dtype=np.float64)
        return self.radius * np.maximum(np.sqrt(n), 1.0) / self.size

    @cached_property
    def log_norms(self) -> np.ndarray:
        """log N_n, with N_n = sqrt(2 / (s_n^(2n+3) Gamma(n + 3/2)))."""
        n = np.arange(self.size, dtype=np.float64)
        return 0.5 * (np.log(2.0) - (2 * n + 3) * np.log(self.widths) - gammaln(n + 1.5))

    @cached_property
    def overlap(self) -> np.ndarray:
        """Overlap matrix S_nm of the normalised primitives on [0, inf)."""
        n = np.arange(self.size, dtype=np.float64)
        a = 0.5 / self.widths**2
        nm = n[:, None] + n[None, :]
        log_s = (
            self.log_norms[:, None]
            + self.log_norms[None, :]
            + gammaln(0.5 * (nm + 3))
            - np.log(2.0)
            - 0.5 * (nm + 3) * np.log(a[:, None] + a[None, :])
        )
        return np.exp(log_s)

    @cached_property
    def orthonormalization(self) -> np.ndarray:
        """S^-1/2, shape (n_radial, n_radial): R_n = sum_m T[n, m] phi_m."""
        eigval, eigvec = np.linalg.eigh(self.overlap)
        return (eigvec / np.sqrt(eigval)) @ eigvec.T

    def primitives(self, r: np.ndarray) -> np.ndarray:
        """Normalised primitive functions phi_n(r), shape r.shape + (n_radial,)."""
        r = np.asarray(r, dtype=np.float64)[..., None]
        n = np.arange(self.size)
        with np.errstate(divide="ignore"):
            log_r = np.log(r)
        log_phi = self.log_norms + n * log_r - r**2 / (2 * self.widths**2)
        out = np.exp(log_phi)
        return np.where((r == 0) & (n == 0), np.exp(self.log_norms[0]), out)

    def __call__(self, r: np.ndarray) -> np.ndarray:
        """Orthonormal functions R_n(r) (1/Å^(3/2)), shape r.shape + (n_radial,)."""
        return self.primitives(r) @ self.orthonormalization.T
