"""What is expanded: the Gaussian (SOAP) density and the smeared power law (LODE).

math.md §3. For one atom of species a, exponent p and smearing sigma (Å):

* p = 0: g_0(r) = (pi sigma^2)^(-3/4) exp(-r^2 / (2 sigma^2)), the L2-normalised Gaussian;
* p >= 1: g_p(r) = gamma(p/2, r^2/(2 sigma^2)) / (Gamma(p/2) r^p), which behaves as 1/r^p far
  away (p = 1 is the potential of a unit Gaussian charge, without 1/(4 pi eps0)).
"""

from __future__ import annotations

import numpy as np
from scipy.special import erf, erfc, exp1, gamma, gammainc

__all__ = [
    "SUPPORTED_EXPONENTS",
    "fourier_difference_at_zero",
    "fourier_transform",
    "fourier_transform_at_zero",
    "fourier_transform_derivative",
    "fourier_transform_difference",
    "real_space",
]

#: Exponents with a closed-form Fourier transform.
SUPPORTED_EXPONENTS = (0, 1, 2, 3, 4, 5, 6)


def real_space(r: np.ndarray, smearing: float, exponent: int) -> np.ndarray:
    """g_p(r), shape of ``r`` (r in Å, r >= 0)."""
    r = np.asarray(r, dtype=np.float64)
    s2 = smearing * smearing
    if exponent == 0:
        return (np.pi * s2) ** -0.75 * np.exp(-0.5 * r * r / s2)
    a = 0.5 * exponent
    x = 0.5 * r * r / s2
    with np.errstate(divide="ignore", invalid="ignore"):
        out = gammainc(a, x) / r**exponent
    # r -> 0: gamma(a, x) ~ x^a / a, so g_p(0) = (2 sigma^2)^(-p/2) / (a Gamma(a))
    small = x < 1e-8
    out[small] = (2 * s2) ** (-a) / (a * gamma(a)) * (1 - a * x[small] / (a + 1))
    return out


def _f(x: np.ndarray, exponent: int) -> np.ndarray:
    """f_p(x) = x^((p-3)/2) Gamma((3-p)/2, x), analytically continued (math.md §3)."""
    sx = np.sqrt(x)
    if exponent == 1:
        return np.exp(-x) / x
    if exponent == 2:
        return np.sqrt(np.pi / x) * erfc(sx)
    if exponent == 3:
        return exp1(x)
    if exponent == 4:
        return 2.0 * (np.exp(-x) - np.sqrt(np.pi * x) * erfc(sx))
    if exponent == 5:
        return np.exp(-x) - x * exp1(x)
    if exponent == 6:
        return ((2.0 - 4.0 * x) * np.exp(-x) + 4.0 * np.sqrt(np.pi) * x**1.5 * erfc(sx)) / 3.0
    raise ValueError(f"no closed form for exponent {exponent}")


def fourier_transform(k: np.ndarray, smearing: float, exponent: int) -> np.ndarray:
    """ĝ_p(k) for k > 0 (1/Å^-1 norms), shape of ``k``; units Å^(3-p)."""
    k = np.asarray(k, dtype=np.float64)
    s2 = smearing * smearing
    x = 0.5 * k * k * s2
    if exponent == 0:
        return (4.0 * np.pi * s2) ** 0.75 * np.exp(-x)
    prefactor = np.pi**1.5 * (2.0 * s2) ** (0.5 * (3 - exponent)) / gamma(0.5 * exponent)
    return prefactor * _f(x, exponent)


def fourier_transform_derivative(k: np.ndarray, smearing: float, exponent: int) -> np.ndarray:
    """dĝ_p/dk for k > 0, shape of ``k``; units Å^(4-p).

    With x = k^2 sigma^2 / 2 and f_p(x) = x^nu Gamma(-nu, x), nu = (p - 3)/2:
    f_p'(x) = (nu / x) f_p(x) - exp(-x)/x, and dx/dk = k sigma^2.
    """
    k = np.asarray(k, dtype=np.float64)
    s2 = smearing * smearing
    x = 0.5 * k * k * s2
    if exponent == 0:
        return -((4.0 * np.pi * s2) ** 0.75) * np.exp(-x) * k * s2
    prefactor = np.pi**1.5 * (2.0 * s2) ** (0.5 * (3 - exponent)) / gamma(0.5 * exponent)
    nu = 0.5 * (exponent - 3)
    derivative = (nu * _f(x, exponent) - np.exp(-x)) / x
    return prefactor * derivative * k * s2


def fourier_transform_at_zero(smearing: float, exponent: int) -> float:
    """ĝ_p(0): finite for p = 0 and p > 3, infinite (dropped background) for 1 <= p <= 3."""
    s2 = smearing * smearing
    if exponent == 0:
        return (4.0 * np.pi * s2) ** 0.75
    if exponent <= 3:
        return np.inf
    return (
        -(np.pi**1.5)
        * (2 * s2) ** (0.5 * (3 - exponent))
        / (gamma(0.5 * exponent) * 0.5 * (3 - exponent))
    )


def fourier_difference_at_zero(smearing: float, split: float, exponent: int) -> float:
    """lim_{k->0} [ĝ_p(k; smearing) - ĝ_p(k; split)]: finite for every p.

    For 1 <= p <= 3 each transform diverges at k = 0 with a smearing-independent leading term,
    which cancels: p = 1: 2 pi (split^2 - smearing^2); p = 2: 2 sqrt(2) pi^(3/2) (split -
    smearing); p = 3: 4 pi ln(split / smearing).
    """
    if exponent == 1:
        return 2 * np.pi * (split**2 - smearing**2)
    if exponent == 2:
        return 2 * np.sqrt(2) * np.pi**1.5 * (split - smearing)
    if exponent == 3:
        return 4 * np.pi * np.log(split / smearing)
    return fourier_transform_at_zero(smearing, exponent) - fourier_transform_at_zero(
        split, exponent
    )


def fourier_transform_difference(
    k: np.ndarray, smearing: float, split: float, exponent: int
) -> np.ndarray:
    """ĝ_p(k; smearing) - ĝ_p(k; split) for k > 0, without cancellation at small k.

    This is the transform of the short-ranged remainder of a range separation (math.md §4.3).
    For p = 1 and 2 both terms diverge as k -> 0 while their difference stays finite, so the
    difference is written in closed form (expm1, erf) instead of subtracted.
    """
    k = np.asarray(k, dtype=np.float64)
    if exponent == 1:
        x, x_split = 0.5 * (k * smearing) ** 2, 0.5 * (k * split) ** 2
        return -4 * np.pi * np.exp(-x) * np.expm1(x - x_split) / (k * k)
    if exponent == 2:
        # ĝ_2(k) = 2 pi^2 erfc(k sigma / sqrt 2) / k
        a, b = k * smearing / np.sqrt(2), k * split / np.sqrt(2)
        return 2 * np.pi**2 * (erf(b) - erf(a)) / k
    return fourier_transform(k, smearing, exponent) - fourier_transform(k, split, exponent)
