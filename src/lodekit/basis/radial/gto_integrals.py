"""Integrals of the GTO basis in closed form (confluent and Gauss hypergeometric functions).

Two families (math.md §4.1 and §5), both for unnormalised primitives r^n exp(-r^2/(2 s^2))
and then rotated to the orthonormal basis with S^-1/2:

* k-space (LODE): I_nl(k) = ∫ r^2 R_n(r) j_l(k r) dr;
* Gaussian density (SOAP): J_nl(d) = 4 pi (pi sigma^2)^(-3/4) exp(-d^2/(2 sigma^2))
  ∫ r^2 R_n(r) exp(-r^2/(2 sigma^2)) i_l(r d / sigma^2) dr, so that the projection of a
  Gaussian at displacement d is J_nl(|d|) Y_lm(d̂).

Both use ∫_0^∞ r^mu e^(-alpha r^2) {j_l, i_l}(beta r) dr
 = sqrt(pi) beta^l Gamma((mu+l+1)/2) / (2^(l+2) alpha^((mu+l+1)/2) Gamma(l+3/2))
   1F1((mu+l+1)/2; l+3/2; ∓ beta^2 / (4 alpha)).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy.special import gamma, gammaln, hyp1f1, hyp2f1

if TYPE_CHECKING:
    from .gto import GtoBasis

__all__ = [
    "gaussian_radial_integral",
    "gaussian_radial_integral_derivative",
    "gto_moment",
    "kspace_radial_integral",
    "kspace_radial_integral_derivative",
    "multipole_moments",
]


def _orders(basis: GtoBasis, max_angular: int):
    n = np.arange(basis.size, dtype=np.float64)[None, :]
    l = np.arange(max_angular + 1, dtype=np.float64)[:, None]
    a = 0.5 * (n + l + 3)
    b = l + 1.5
    return n, l, a, b


def _kspace_log_prefactor(basis: GtoBasis, n, s, a, b) -> np.ndarray:
    """log of N_n sqrt(pi/2) 2^(n/2) s^(n+3) Gamma(a)/Gamma(b), shape (L+1, n_radial)."""
    return (
        basis.log_norms[None, :]
        + 0.5 * np.log(0.5 * np.pi)
        + 0.5 * n * np.log(2.0)
        + (n + 3) * np.log(s)
        + gammaln(a)
        - gammaln(b)
    )


def kspace_radial_integral(k: np.ndarray, basis: GtoBasis, max_angular: int) -> np.ndarray:
    """I_nl(k) for the orthonormal basis.

    Parameters
    ----------
    k : ndarray, shape (n_k,)
        Wave-vector norms in 1/Å (k >= 0).

    Returns
    -------
    ndarray, shape (n_k, max_angular + 1, n_radial), units Å^(3/2)
    """
    k = np.asarray(k, dtype=np.float64)[:, None, None]
    n, l, a, b = _orders(basis, max_angular)
    s = basis.widths[None, :]
    # N_n sqrt(pi/2) 2^(n/2) s^(n+3) Gamma(a)/Gamma(b), in logs; then (k s / sqrt 2)^l
    log_pref = _kspace_log_prefactor(basis, n, s, a, b)
    ks = k * s / np.sqrt(2.0)
    values = np.exp(log_pref) * ks**l * hyp1f1(a, b, -(ks**2))
    return values @ basis.orthonormalization.T


def kspace_radial_integral_derivative(
    k: np.ndarray, basis: GtoBasis, max_angular: int
) -> np.ndarray:
    """dI_nl/dk, same shape as :func:`kspace_radial_integral` (units Å^(5/2)).

    With u = k s / sqrt 2: d/dk [u^l 1F1(a; b; -u^2)] = (s / sqrt 2) [l u^(l-1) 1F1(a; b; -u^2)
    - 2 (a / b) u^(l+1) 1F1(a+1; b+1; -u^2)] (DLMF 13.3.15).
    """
    k = np.asarray(k, dtype=np.float64)[:, None, None]
    n, l, a, b = _orders(basis, max_angular)
    s = basis.widths[None, :]
    log_pref = _kspace_log_prefactor(basis, n, s, a, b)
    u = k * s / np.sqrt(2.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        lower = np.where(l == 0, 0.0, l * u ** (l - 1))
    d_values = (s / np.sqrt(2.0)) * (
        lower * hyp1f1(a, b, -(u**2)) - 2.0 * (a / b) * u ** (l + 1) * hyp1f1(a + 1, b + 1, -(u**2))
    )
    return (np.exp(log_pref) * d_values) @ basis.orthonormalization.T


def _gaussian_terms(d, basis: GtoBasis, max_angular: int, smearing: float):
    """Shared pieces of J_nl(d) and its derivative: d (n, 1, 1), l, a, b, sigma^2, alpha,
    beta = d/sigma^2, z = beta^2/(4 alpha) and the log prefactor (math.md §5)."""
    d = np.asarray(d, dtype=np.float64)[:, None, None]
    _n, l, a, b = _orders(basis, max_angular)
    sig2 = smearing * smearing
    alpha = 0.5 / sig2 + 0.5 / basis.widths[None, :] ** 2
    beta = d / sig2
    z = beta**2 / (4 * alpha)
    log_pref = (
        np.log(4 * np.pi)
        - 0.75 * np.log(np.pi * sig2)
        + basis.log_norms[None, :]
        + 0.5 * np.log(np.pi)
        - (l + 2) * np.log(2.0)
        - a * np.log(alpha)
        + gammaln(a)
        - gammaln(b)
    )
    return d, l, a, b, sig2, alpha, beta, z, log_pref


def gaussian_radial_integral(
    d: np.ndarray, basis: GtoBasis, max_angular: int, smearing: float
) -> np.ndarray:
    """J_nl(d) for a Gaussian of width ``smearing`` at distance ``d`` (Å).

    Returns
    -------
    ndarray, shape (n_d, max_angular + 1, n_radial), units Å^(3/2) (density L2-normalised)
    """
    d, l, a, b, sig2, _alpha, beta, z, log_pref = _gaussian_terms(d, basis, max_angular, smearing)
    # exp(-d^2/2 sigma^2) 1F1(a; b; z) = exp(z - d^2/2sigma^2) 1F1(b - a; b; -z) (Kummer): the
    # two exponentials would over/underflow separately for sharp Gaussians.
    with np.errstate(divide="ignore", invalid="ignore"):
        log_beta_l = np.where(l == 0, 0.0, l * np.log(beta))
    expo = log_pref + log_beta_l + z - 0.5 * d * d / sig2
    values = np.exp(expo) * hyp1f1(b - a, b, -z)
    return values @ basis.orthonormalization.T


def gaussian_radial_integral_derivative(
    d: np.ndarray, basis: GtoBasis, max_angular: int, smearing: float
) -> np.ndarray:
    """dJ_nl/dd, same shape as :func:`gaussian_radial_integral` (units Å^(1/2)).

    With J = exp(E) 1F1(b - a; b; -z), E = log_pref + l log(beta) + z - d^2/(2 sigma^2),
    beta = d/sigma^2 and z = beta^2/(4 alpha): dE/dd = l/d + 2z/d - d/sigma^2 and
    d 1F1(b - a; b; -z)/dd = -((b - a)/b) 1F1(b - a + 1; b + 1; -z) 2z/d (DLMF 13.3.15). The
    l/d term is written as l beta^(l-1)/sigma^2 so that d = 0 is finite.
    """
    d, l, a, b, sig2, alpha, beta, z, log_pref = _gaussian_terms(d, basis, max_angular, smearing)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_beta = np.log(beta)
        log_beta_l = np.where(l == 0, 0.0, l * log_beta)
        log_beta_l1 = np.where(l <= 1, 0.0, (l - 1) * log_beta)
        common = log_pref + z - 0.5 * d * d / sig2
        scale = np.exp(common + log_beta_l)
        # 2z/d = d / (2 alpha sigma^4), finite at d = 0
        two_z_over_d = d / (2 * alpha * sig2 * sig2)
        lower = np.where(l == 0, 0.0, l * np.exp(common + log_beta_l1) / sig2)
    kummer = hyp1f1(b - a, b, -z)
    shifted = hyp1f1(b - a + 1, b + 1, -z)
    values = lower * kummer + scale * (
        (two_z_over_d - d / sig2) * kummer - ((b - a) / b) * two_z_over_d * shifted
    )
    return values @ basis.orthonormalization.T


def multipole_moments(basis: GtoBasis, max_order: int) -> np.ndarray:
    """M_{k,n} = ∫ r^(2+k) R_n(r) dr, k = 0..max_order, shape (max_order + 1, n_radial).

    Moments of the primitives: N_m Gamma((k+m+3)/2) / 2 (2 s_m^2)^((k+m+3)/2).
    """
    k = np.arange(max_order + 1, dtype=np.float64)[:, None]
    m = np.arange(basis.size, dtype=np.float64)[None, :]
    s = basis.widths[None, :]
    log_moment = (
        basis.log_norms[None, :]
        + gammaln(0.5 * (k + m + 3))
        - np.log(2.0)
        + 0.5 * (k + m + 3) * np.log(2 * s * s)
    )
    return np.exp(log_moment) @ basis.orthonormalization.T


def gto_moment(n: np.ndarray, width: np.ndarray, smearing: float, exponent: int) -> np.ndarray:
    """∫_0^∞ r^(2+n) exp(-r^2/(2 s^2)) g_p(r) dr for unnormalised GTO primitives.

    Closed form: writing gamma(a, x) = x^a ∫_0^1 t^(a-1) e^(-x t) dt (a = p/2) and
    integrating over r first leaves ∫_0^1 t^(a-1) (1 + c t)^(-b) dt = 2F1(b, a; a+1; -c) / a with
    b = (n+3)/2 and c = s^2/sigma^2; a Pfaff transformation moves the argument to
    c/(1+c) in [0, 1), where the series is well behaved.
    """
    n = np.asarray(n, dtype=np.float64)
    s2 = np.asarray(width, dtype=np.float64) ** 2
    sig2 = smearing * smearing
    b = 0.5 * (n + 3)
    if exponent == 0:
        alpha = 0.5 / s2 + 0.5 / sig2
        return (np.pi * sig2) ** -0.75 * gamma(b) / (2 * alpha**b)
    a = 0.5 * exponent
    c = s2 / sig2
    radial = 0.5 * gamma(b) * (2 * s2) ** b  # ∫ r^(2+n) exp(-r^2/(2 s^2)) dr
    t_integral = (1 + c) ** (-b) * hyp2f1(b, 1.0, a + 1, c / (1 + c)) / a
    return (2 * sig2) ** (-a) / gamma(a) * radial * t_integral
