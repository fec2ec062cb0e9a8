"""Clebsch-Gordan coefficients for the real spherical harmonics of the expansions.

Complex coefficients come from ``wigners``; the unitary map U_l between complex and real
harmonics, Y_real = U_l Y_complex, is obtained by least squares from scipy's complex harmonics
(Condon-Shortley phase) and sphericart's real ones evaluated at the same directions, so the
real coefficients follow exactly the convention of the expansions, whatever phases either
library uses.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import wigners
from scipy.special import sph_harm_y

from ..basis.spherical_harmonics import real_spherical_harmonics

__all__ = ["real_clebsch_gordan"]


@lru_cache(maxsize=64)
def _complex_to_real(l: int) -> np.ndarray:
    rng = np.random.default_rng(2024)
    points = rng.normal(size=(8 * (2 * l + 1) + 20, 3))
    unit = points / np.linalg.norm(points, axis=1, keepdims=True)
    theta = np.arccos(np.clip(unit[:, 2], -1, 1))
    phi = np.arctan2(unit[:, 1], unit[:, 0])
    complex_y = np.stack([sph_harm_y(l, m, theta, phi) for m in range(-l, l + 1)], axis=1)
    real_y = real_spherical_harmonics(points, l)[:, l * l :]
    # real_y = complex_y @ U.T
    u_t, *_ = np.linalg.lstsq(complex_y, real_y.astype(complex), rcond=None)
    return u_t.T


@lru_cache(maxsize=512)
def real_clebsch_gordan(l1: int, l2: int, lam: int) -> np.ndarray:
    """C[m1, m2, mu] with T^lam_mu = sum C A_{l1 m1} B_{l2 m2} equivariant of order ``lam``.

    Returns
    -------
    ndarray, shape (2 l1 + 1, 2 l2 + 1, 2 lam + 1), real
        For l1 + l2 + lam odd the product is a pseudo-tensor (parity -1); the coefficients
        are still real (the imaginary unit of the complex construction is absorbed).
    """
    if not abs(l1 - l2) <= lam <= l1 + l2:
        raise ValueError(f"lambda = {lam} cannot be formed from l1 = {l1} and l2 = {l2}")
    cg = wigners.clebsch_gordan_array(l1, l2, lam)  # complex basis, (m1, m2, mu)
    u1, u2, u3 = _complex_to_real(l1), _complex_to_real(l2), _complex_to_real(lam)
    # Y1 = U1^H R1 etc.: T_real = U3 T_complex, with A_complex = U1^H A_real
    real = np.einsum("am,bn,mnk,ck->abc", u1.conj(), u2.conj(), cg, u3)
    if (l1 + l2 + lam) % 2 == 1:
        real = real * -1j
    if np.abs(real.imag).max() > 1e-10 * max(np.abs(real.real).max(), 1e-300):
        raise RuntimeError("real Clebsch-Gordan coefficients are not real: convention error")
    return np.ascontiguousarray(real.real)
