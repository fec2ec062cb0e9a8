"""Orthonormalised Gaussian-type-orbital (GTO) radial basis (math.md §2).

Primitive functions phi_n(r) = N_n r^n exp(-r^2 / (2 s_n^2)), n = 0..max_radial, with
s_n = radius * max(sqrt(n), 1) / (max_radial + 1), normalised on [0, inf) and then Löwdin
orthonormalised, R_n = sum_m (S^-1/2)_nm phi_m. The same functions serve every l. This is
featomic 0.6's ``Gto`` basis.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
from scipy.special import gammaln

from ...errors import InputError
from . import gto_integrals
from .base import RadialBasis

__all__ = ["GtoBasis"]

#: Smallest eigenvalue of the primitives' overlap, relative to the largest, accepted: below
#: it S^-1/2 amplifies round-off past 1e-2 of the functions (max_radial >= 20), and from
#: max_radial = 24 the computed overlap is not even positive definite (NaN functions).
MIN_RELATIVE_OVERLAP_EIGENVALUE = 1e-14


class GtoBasis(RadialBasis):
    """The GTO radial basis for given ``max_radial`` and ``radius``.

    Parameters
    ----------
    max_radial : int
        Largest radial index; there are ``max_radial + 1`` functions.
    radius : float
        Basis radius in Å (sets the Gaussian widths; the basis is not truncated there).
    """

    name = "gto"

    def check(self, max_angular: int) -> None:
        eigval = np.linalg.eigvalsh(self.overlap)
        if not eigval.min() > MIN_RELATIVE_OVERLAP_EIGENVALUE * eigval.max():
            raise InputError(
                f"`max_radial` is {self.max_radial} but the GTO basis cannot be orthonormalised "
                f"in double precision (overlap eigenvalues {eigval.min():.2g} to "
                f"{eigval.max():.2g}): use max_radial <= 19"
            )

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

    # ------------------------------------------------------------------ RadialBasis
    @property
    def decay_width(self) -> float:
        return float(self.widths.max())

    def functions(self, r: np.ndarray, max_angular: int) -> np.ndarray:
        values = self(r)
        return np.broadcast_to(
            values[..., None, :], (*values.shape[:-1], max_angular + 1, self.size)
        )

    def kspace_integral(self, k: np.ndarray, max_angular: int) -> np.ndarray:
        return gto_integrals.kspace_radial_integral(k, self, max_angular)

    def kspace_integral_derivative(self, k: np.ndarray, max_angular: int) -> np.ndarray:
        return gto_integrals.kspace_radial_integral_derivative(k, self, max_angular)

    def gaussian_integral(self, d: np.ndarray, max_angular: int, smearing: float) -> np.ndarray:
        return gto_integrals.gaussian_radial_integral(d, self, max_angular, smearing)

    def gaussian_integral_derivative(
        self, d: np.ndarray, max_angular: int, smearing: float
    ) -> np.ndarray:
        return gto_integrals.gaussian_radial_integral_derivative(d, self, max_angular, smearing)

    def moments(self, max_order: int, max_angular: int) -> np.ndarray:
        moments = gto_integrals.multipole_moments(self, max_order)  # (k, n), the same for all l
        return np.broadcast_to(moments[:, None, :], (max_order + 1, max_angular + 1, self.size))

    def centre_moment(self, smearing: float, exponent: int) -> np.ndarray:
        n = np.arange(self.size)
        moments = np.exp(self.log_norms) * gto_integrals.gto_moment(
            n, self.widths, smearing, exponent
        )
        return self.orthonormalization @ moments

    def far_field(self, smearing: float) -> tuple[float, int]:
        # Past d_switch the basis functions have decayed by exp(-32) where the smeared field
        # still differs from 1/r^p (within 8 sigma of the atom); the series is asymptotic
        # (the Gaussians reach past d), its useful length grows as (d / s_max)^2.
        d_switch = 8.0 * (self.widths.max() + smearing)
        n_terms = int(np.clip((d_switch / self.widths.max()) ** 2, 10, 150))
        return d_switch, n_terms
