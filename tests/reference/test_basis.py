"""Pure maths checked against brute-force quadrature and closed forms."""

import mpmath
import numpy as np
import pytest
from scipy.integrate import quad
from scipy.special import ive, spherical_jn

from lodekit.basis import GtoBasis
from lodekit.basis.radial.gto_integrals import (
    gaussian_radial_integral,
    gto_moment,
    kspace_radial_integral,
)
from lodekit.density import fourier_transform, fourier_transform_at_zero, real_space

BASIS = GtoBasis(max_radial=5, radius=4.0)


def test_gto_basis_is_orthonormal():
    def integrand(r, n, m):
        values = BASIS(np.array([r]))[0]
        return r * r * values[n] * values[m]

    for n in range(BASIS.size):
        for m in range(n + 1):
            value = quad(integrand, 0, 40, args=(n, m), epsabs=1e-13, limit=200)[0]
            assert value == pytest.approx(float(n == m), abs=1e-10)


@pytest.mark.parametrize("k", [0.0, 0.3, 1.7, 4.2])
@pytest.mark.parametrize("l", [0, 1, 3, 6])
def test_kspace_radial_integral_by_quadrature(k, l):
    values = kspace_radial_integral(np.array([k]), BASIS, 6)[0, l]
    for n in range(BASIS.size):
        ref = quad(
            lambda r, n=n: r * r * BASIS(np.array([r]))[0, n] * spherical_jn(l, k * r),
            0,
            40,
            epsabs=1e-13,
            limit=400,
        )[0]
        assert values[n] == pytest.approx(ref, abs=1e-10)


@pytest.mark.parametrize("d", [0.0, 0.4, 2.5, 3.9])
@pytest.mark.parametrize("l", [0, 2, 5])
def test_gaussian_radial_integral_by_quadrature(d, l):
    sigma = 0.4
    values = gaussian_radial_integral(np.array([d]), BASIS, 5, sigma)[0, l]
    norm = (np.pi * sigma**2) ** -0.75

    def integrand(r, n):
        # exp(-(r^2 + d^2)/2s^2) i_l(r d / s^2), written to avoid overflow
        x = r * d / sigma**2
        # e^-x i_l(x) = sqrt(pi / 2x) ive(l + 1/2, x), finite for any x
        scaled = float(l == 0) if x == 0 else np.sqrt(np.pi / (2 * x)) * ive(l + 0.5, x)
        bessel = scaled * np.exp(-((r - d) ** 2) / (2 * sigma**2))
        return 4 * np.pi * norm * r * r * BASIS(np.array([r]))[0, n] * bessel

    for n in range(BASIS.size):
        ref = quad(integrand, 0, 40, args=(n,), epsabs=1e-13, points=[d], limit=400)[0]
        assert values[n] == pytest.approx(ref, abs=1e-10)


@pytest.mark.parametrize("p", [0, 1, 2, 3, 4, 5, 6])
def test_fourier_transform_by_hankel_quadrature(p):
    """ĝ_p(k) = 4 pi ∫ r^2 [g_p(r) - tail] j_0(kr) dr + FT of the tail 1/r^p, done with mpmath."""
    sigma = 0.7
    mpmath.mp.dps = 30
    for k in [0.5, 1.3, 3.0]:
        if p == 0:
            ref = (
                4
                * np.pi
                * quad(
                    lambda r, k=k: (
                        r * r * real_space(np.array([r]), sigma, 0)[0] * np.sinc(k * r / np.pi)
                    ),
                    0,
                    50,
                    epsabs=1e-14,
                    limit=400,
                )[0]
            )
        else:
            # ĝ_p(k) = pi^(3/2) (2 s^2)^((3-p)/2) / Gamma(p/2) ∫_0^1 ... : use the defining
            # integral in Gaussian form, g_p(r) = ∫_0^{1/(2 s^2)} t^(p/2-1) e^(-t r^2) dt/Gamma(p/2)
            def gaussian_ft(t, k=k):
                return (
                    mpmath.power(t, p / 2 - 1)
                    * mpmath.power(mpmath.pi / t, 1.5)
                    * mpmath.exp(-(k**2) / (4 * t))
                )

            ref = float(mpmath.quad(gaussian_ft, [0, 1 / (2 * sigma**2)]) / mpmath.gamma(p / 2))
        assert fourier_transform(np.array([k]), sigma, p)[0] == pytest.approx(ref, rel=1e-11)


@pytest.mark.parametrize("p", [0, 4, 5, 6])
def test_fourier_transform_at_zero(p):
    sigma = 0.7
    mpmath.mp.dps = 30
    if p == 0:
        ref = (4 * np.pi * sigma**2) ** 0.75
    else:
        ref = float(
            mpmath.quad(
                lambda t: mpmath.power(t, p / 2 - 1) * mpmath.power(mpmath.pi / t, 1.5),
                [0, 1 / (2 * sigma**2)],
            )
            / mpmath.gamma(p / 2)
        )
    assert fourier_transform_at_zero(sigma, p) == pytest.approx(ref, rel=1e-12)


@pytest.mark.parametrize("p", [0, 1, 2, 3, 6])
def test_centre_moment_by_quadrature(p):
    for n, s in [(0, 0.7), (3, 1.5), (6, 2.0)]:
        ref = quad(
            lambda r, n=n, s=s: (
                r ** (2 + n) * np.exp(-r * r / (2 * s * s)) * real_space(np.array([r]), 0.3, p)[0]
            ),
            0,
            60,
            epsabs=0,
            epsrel=1e-13,
            limit=500,
        )[0]
        assert gto_moment(n, s, 0.3, p) == pytest.approx(ref, rel=1e-12)


def test_real_space_density_limits():
    r = np.array([0.0, 1e-6, 30.0])
    for p in (1, 2, 6):
        values = real_space(r, 0.5, p)
        assert values[0] == pytest.approx(values[1], rel=1e-9)
        assert values[2] == pytest.approx(30.0**-p, rel=1e-12)
