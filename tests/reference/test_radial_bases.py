"""Every registered radial basis against brute-force quadrature of its own functions, and the
monomials against featomic 0.6.7's ``Monomials`` functions."""

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.special import ive, spherical_jn

import lodekit
from lodekit import InputError
from lodekit.basis import RADIAL_BASES, MonomialBasis
from lodekit.density import real_space

# monomials: the overlap of r^(l+2n) has condition numbers up to ~4e5 here, so orthonormality
# holds to ~1e-11 in double precision (1.6e7 and 2.5e-10 with max_radial = 4, l = 3)
RADIUS, MAX_RADIAL, MAX_ANGULAR = 4.0, 3, 3
NAMES = sorted(RADIAL_BASES)


def _basis(name):
    return RADIAL_BASES[name](MAX_RADIAL, RADIUS)


def _radial_quad(basis, integrand, l, n):
    """∫_0^40 integrand(r) R_nl(r) dr, with a break point at the radius (compact supports)."""

    def f(r):
        return integrand(r) * basis.functions(np.array([r]), MAX_ANGULAR)[0, l, n]

    return quad(f, 0, 40, points=[RADIUS], epsabs=1e-13, limit=400)[0]


@pytest.mark.parametrize("name", NAMES)
def test_functions_are_orthonormal_per_l(name):
    basis = _basis(name)
    for l in range(MAX_ANGULAR + 1):
        for n in range(basis.size):
            for m in range(n + 1):
                value = quad(
                    lambda r, n=n, m=m, l=l: (
                        r * r * np.prod(basis.functions(np.array([r]), l)[0, l, [n, m]])
                    ),
                    0,
                    40,
                    points=[RADIUS],
                    epsabs=1e-13,
                    limit=200,
                )[0]
                assert value == pytest.approx(float(n == m), abs=1e-10)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("k", [0.0, 0.3, 1.7, 4.2])
def test_kspace_integral_and_derivative_by_quadrature(name, k):
    basis = _basis(name)
    values = basis.kspace_integral(np.array([k]), MAX_ANGULAR)[0]
    slopes = basis.kspace_integral_derivative(np.array([k]), MAX_ANGULAR)[0]
    for l in range(MAX_ANGULAR + 1):
        for n in range(basis.size):
            ref = _radial_quad(basis, lambda r, l=l: r * r * spherical_jn(l, k * r), l, n)
            assert values[l, n] == pytest.approx(ref, abs=1e-10)
            d_ref = _radial_quad(
                basis, lambda r, l=l: r**3 * spherical_jn(l, k * r, derivative=True), l, n
            )
            assert slopes[l, n] == pytest.approx(d_ref, abs=1e-10)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("d", [0.0, 0.4, 2.5, 3.9, 4.6])
def test_gaussian_integral_and_derivative_by_quadrature(name, d):
    basis, sigma = _basis(name), 0.4
    values = basis.gaussian_integral(np.array([d]), MAX_ANGULAR, sigma)[0]
    norm = 4 * np.pi * (np.pi * sigma**2) ** -0.75

    def kernel(r, l, d):
        # exp(-(r^2 + d^2)/2s^2) i_l(r d / s^2), written to avoid overflow
        x = r * d / sigma**2
        scaled = float(l == 0) if x == 0 else np.sqrt(np.pi / (2 * x)) * ive(l + 0.5, x)
        return norm * r * r * scaled * np.exp(-((r - d) ** 2) / (2 * sigma**2))

    h = 1e-5
    slopes = basis.gaussian_integral_derivative(np.array([d]), MAX_ANGULAR, sigma)[0]
    centred = basis.gaussian_integral(np.array([d - h, d + h]), MAX_ANGULAR, sigma)
    for l in range(MAX_ANGULAR + 1):
        for n in range(basis.size):
            ref = _radial_quad(basis, lambda r, l=l: kernel(r, l, d), l, n)
            assert values[l, n] == pytest.approx(ref, abs=1e-10)
    if d > 0:  # the derivative against central differences of the values
        np.testing.assert_allclose(slopes, (centred[1] - centred[0]) / (2 * h), atol=1e-7)


@pytest.mark.parametrize("name", NAMES)
def test_moments_by_quadrature(name):
    basis = _basis(name)
    moments = basis.moments(6, MAX_ANGULAR)
    for k in (0, 1, 4, 6):
        for l in range(MAX_ANGULAR + 1):
            for n in range(basis.size):
                ref = _radial_quad(basis, lambda r, k=k: r ** (2 + k), l, n)
                assert moments[k, l, n] == pytest.approx(ref, rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("p", [0, 1, 3, 6])
def test_centre_moment_by_quadrature(name, p):
    basis = _basis(name)
    values = basis.centre_moment(0.3, p)
    for n in range(basis.size):
        ref = _radial_quad(basis, lambda r: r * r * real_space(np.array([r]), 0.3, p)[0], 0, n)
        assert values[n] == pytest.approx(ref, rel=1e-11, abs=1e-13)


def test_monomials_equal_featomic_functions():
    """featomic orthonormalises r^(l+2n) with a Gram matrix it integrates numerically."""
    featomic_basis = pytest.importorskip("featomic.basis")
    basis = MonomialBasis(MAX_RADIAL, RADIUS)
    r = np.linspace(0.0, RADIUS, 57)
    ours = basis.functions(r, MAX_ANGULAR)
    for l in range(MAX_ANGULAR + 1):
        theirs = featomic_basis.Monomials(
            angular_channel=l, max_radial=MAX_RADIAL, radius=RADIUS
        ).compute(r, derivative=False)
        np.testing.assert_allclose(ours[:, l, :], theirs, rtol=0, atol=1e-9 * np.abs(theirs).max())
    # zero beyond the support
    assert not basis.functions(np.array([RADIUS + 1e-9, 9.0]), MAX_ANGULAR).any()


def test_monomial_basis_too_large_to_orthonormalise():
    with pytest.raises(InputError, match="`max_radial` is 12 but the monomial basis"):
        lodekit.LodeSphericalExpansion(
            smearing=0.5, max_radial=12, max_angular=2, radius=4.0, radial_basis="monomials"
        )


def test_radial_basis_choice_and_json():
    with pytest.raises(InputError, match="`radial_basis` is 'bessel'"):
        lodekit.SphericalExpansion(
            cutoff=3.0, smearing=0.4, max_radial=3, max_angular=2, radial_basis="bessel"
        )
    calculator = lodekit.LodeSphericalExpansion(
        smearing=0.5, max_radial=3, max_angular=2, radius=4.0, radial_basis="monomials"
    )
    assert calculator.get_hypers()["radial_basis"] == "monomials"
    again = lodekit.LodeSphericalExpansion.from_json(calculator.to_json())
    assert again == calculator and again._basis.name == "monomials"
    default = lodekit.LodeSphericalExpansion(smearing=0.5, max_radial=3, max_angular=2, radius=4.0)
    assert default.get_hypers()["radial_basis"] == "gto"
