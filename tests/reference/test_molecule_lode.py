"""LODE of isolated molecules (math.md §4.2, §7.6): brute-force quadrature and vacuum boxes."""

from itertools import pairwise

import ase
import ase.io
import numpy as np
import pytest
from scipy.integrate import quad
from scipy.special import roots_legendre

import lodekit
from lodekit.basis import RADIAL_BASES, GtoBasis, real_spherical_harmonics
from lodekit.density import real_space
from tests.conftest import bench_system


def dimer18():
    return bench_system("dimer18")


def water_molecule():
    return ase.Atoms(
        "OHH", positions=[[0.0, 0.0, 0.1173], [0.0, 0.7572, -0.4692], [0.0, -0.7572, -0.4692]]
    )


def brute_force(
    atoms, centre, *, smearing, exponent, max_radial, max_angular, radius, radial_basis="gto"
):
    """c_nlm = ∫ R_nl(r) Y_lm(r̂) V_a(r_i + r) d^3r on a product grid (independent of lodekit's
    expansion code: only the basis functions and the real-space density are shared)."""
    basis = RADIAL_BASES[radial_basis](max_radial, radius)
    # a panel edge at the radius: the monomials stop there
    edges = sorted({0.0, 1.0, 2.5, 5.0, 9.0, 15.0, 24.0, radius})
    x, w = roots_legendre(40)
    r = np.concatenate([0.5 * (b - a) * (x + 1) + a for a, b in pairwise(edges)])
    wr = np.concatenate([0.5 * (b - a) * w for a, b in pairwise(edges)])
    cos_t, wt = roots_legendre(48)
    phi = np.arange(96) * 2 * np.pi / 96
    sin_t = np.sqrt(1 - cos_t**2)
    directions = np.stack(
        [
            np.outer(sin_t, np.cos(phi)).ravel(),
            np.outer(sin_t, np.sin(phi)).ravel(),
            np.repeat(cos_t, len(phi)),
        ],
        axis=1,
    )
    w_angle = np.repeat(wt, len(phi)) * 2 * np.pi / len(phi)
    ylm = real_spherical_harmonics(directions, max_angular)  # (dirs, lm)
    l_of_lm = np.repeat(np.arange(max_angular + 1), 2 * np.arange(max_angular + 1) + 1)
    radial = basis.functions(r, max_angular)[:, l_of_lm, :]  # (r, lm, n)
    types = np.unique(atoms.numbers)
    out = np.zeros((len(types), ylm.shape[1], basis.size))
    points = atoms.positions[centre] + r[:, None, None] * directions[None, :, :]
    for a, z in enumerate(types):
        field = np.zeros(points.shape[:2])
        for position in atoms.positions[atoms.numbers == z]:
            dist = np.linalg.norm(points - position, axis=-1)
            field += real_space(dist.ravel(), smearing, exponent).reshape(dist.shape)
        angular = (field * w_angle) @ ylm  # (r, lm)
        out[a] = np.einsum("rl,rln->ln", angular * (wr * r * r)[:, None], radial)
    return out


def _quadrature_cases():
    """Both molecules, p = 1 and 6, every radial basis; the 18-atom dimer with the monomial
    basis (6-11 s each) is marked slow, its water cases stay in the fast suite."""
    for radial_basis in sorted(RADIAL_BASES):
        for exponent in (1, 6):
            for name, make, centres, smearing in (
                ("dimer18", dimer18, [0, 9, 17], 1.0),
                ("water", water_molecule, [0, 1], 0.7),
            ):
                slow = name == "dimer18" and radial_basis != "gto"
                yield pytest.param(
                    make,
                    centres,
                    smearing,
                    exponent,
                    radial_basis,
                    marks=(pytest.mark.slow,) if slow else (),
                    id=f"{name}-{exponent}-{radial_basis}",
                )


@pytest.mark.parametrize(
    ("make", "centres", "smearing", "exponent", "radial_basis"), list(_quadrature_cases())
)
def test_molecule_equals_brute_force_quadrature(make, centres, smearing, exponent, radial_basis):
    atoms = make()
    # monomials: max_radial 3 keeps their orthonormalisation well conditioned (see test_basis)
    max_radial = 5 if radial_basis == "gto" else 3
    hypers = dict(
        smearing=smearing,
        exponent=exponent,
        max_radial=max_radial,
        max_angular=4,
        radius=5.0,
        radial_basis=radial_basis,
    )
    expansion = lodekit.LodeSphericalExpansion(**hypers).compute(atoms)
    flat = np.concatenate(
        [
            v.reshape(len(atoms), len(expansion.neighbor_types), -1, max_radial + 1)
            for v in expansion.values
        ],
        axis=2,
    )
    scale = np.abs(flat).max()
    for centre in centres:
        reference = brute_force(atoms, centre, **hypers)
        assert np.abs(flat[centre] - reference).max() < 1e-6 * scale


def _moment(basis, power):
    """M_n,k = ∫ r^(2+k) R_n(r) dr by quadrature."""
    return np.array(
        [
            quad(lambda r, n=n: r ** (2 + power) * basis(np.array([r]))[0, n], 0, 60, limit=200)[0]
            for n in range(basis.size)
        ]
    )


def test_vacuum_boxes_converge_with_the_jellium_correction():
    """Periodic l = 0, 1 coefficients of a molecule in a cubic box of side L differ from the
    isolated ones by O(1/L) (per-channel background and images); the analytic correction of a
    smeared charge in a neutralising background, -xi/L + 2 pi sigma^2/V + (2 pi / 3V)|r - r_j|^2
    (xi = 2.8372974794, simple cubic), removes it."""
    xi = 2.8372974794
    atoms = dimer18()
    hypers = dict(smearing=1.0, exponent=1, max_radial=4, max_angular=1, radius=4.0)
    isolated = lodekit.LodeSphericalExpansion(**hypers).compute(atoms)
    basis = GtoBasis(4, 4.0)
    m0, m1, m2 = (_moment(basis, k) for k in range(3))
    types = isolated.neighbor_types
    scale = np.abs(isolated.values[0]).max()
    raw_errors, corrected_errors = [], []
    for side in (30.0, 45.0, 60.0):
        box = atoms.copy()
        box.positions += side / 2 - box.positions.mean(axis=0)
        box.cell = np.eye(3) * side
        box.pbc = True
        periodic = lodekit.LodeSphericalExpansion(**hypers, k_cutoff=5.0).compute(box)
        volume = side**3
        correction0 = np.zeros_like(isolated.values[0])
        correction1 = np.zeros_like(isolated.values[1])
        for a, z in enumerate(types):
            for j in np.flatnonzero(atoms.numbers == z):
                d = atoms.positions - atoms.positions[j]  # r_i - r_j for every centre i
                constant = -xi / side + 2 * np.pi * hypers["smearing"] ** 2 / volume
                quadratic = 2 * np.pi / (3 * volume)
                c0 = (constant + quadratic * np.sum(d * d, axis=1))[:, None] * m0 + quadratic * m2
                correction0[:, a, 0, :] += np.sqrt(4 * np.pi) * c0
                # 2 (2 pi / 3V) r·d projected on Y_1m: real Y_1 order (y, z, x)
                dm = d[:, [1, 2, 0]] * np.sqrt(4 * np.pi / 3)
                correction1[:, a, :, :] += 2 * quadratic * dm[:, :, None] * m1[None, None, :]
        raw_errors.append(np.abs(periodic.values[0] - isolated.values[0]).max() / scale)
        corrected = (
            max(
                np.abs(periodic.values[0] - correction0 - isolated.values[0]).max(),
                np.abs(periodic.values[1] - correction1 - isolated.values[1]).max(),
            )
            / scale
        )
        corrected_errors.append(corrected)
    # O(1/L): doubling L from 30 to 60 halves the raw error
    assert raw_errors[0] / raw_errors[2] == pytest.approx(2.0, rel=0.05)
    assert raw_errors[2] > 1e-3
    assert corrected_errors[2] < 1e-4
    assert corrected_errors[2] < corrected_errors[0]


@pytest.mark.parametrize("radial_basis", sorted(RADIAL_BASES))
@pytest.mark.parametrize("exponent", [0, 1, 2, 3, 6])
def test_continuity_through_the_table_switch(exponent, radial_basis):
    calculator = lodekit.LodeSphericalExpansion(
        smearing=0.8,
        exponent=exponent,
        max_radial=4,
        max_angular=3,
        radius=4.0,
        radial_basis=radial_basis,
    )
    d_switch = calculator.molecule_field.d_switch
    direction = np.array([0.3, -0.5, 0.8]) / np.linalg.norm([0.3, -0.5, 0.8])
    values = []
    for d in (d_switch - 1e-9, d_switch + 1e-9):
        pair = ase.Atoms("CO", positions=[np.zeros(3), d * direction])
        values.append(np.concatenate([v.ravel() for v in calculator.compute(pair).values]))
    near = ase.Atoms("CO", positions=[np.zeros(3), 1.2 * direction])
    scale = max(np.abs(v).max() for v in calculator.compute(near).values)
    assert np.abs(values[0] - values[1]).max() < 1e-10 * scale


@pytest.mark.parametrize("radial_basis", sorted(RADIAL_BASES))
@pytest.mark.parametrize("exponent", [1, 2, 3, 4, 5, 6])
def test_multipole_tail_equals_exact_projection_far_away(exponent, radial_basis):
    calculator = lodekit.LodeSphericalExpansion(
        smearing=0.8,
        exponent=exponent,
        max_radial=4,
        max_angular=3,
        radius=4.0,
        radial_basis=radial_basis,
    )
    field = calculator.molecule_field
    d = field.d_switch * np.array([1.0, 1.3, 2.0])
    from lodekit.basis.field_projection import FieldProjection
    from lodekit.density import fourier_transform

    exact = FieldProjection(
        calculator._basis, 3, lambda k: fourier_transform(k, 0.8, exponent), 12.0, d.max()
    )(d)
    tail = field.tail(d)
    near_field = np.abs(field.exact(np.linspace(0.0, 5.0, 26))).max()
    assert np.abs(tail - exact).max() < 1e-14 * near_field
    assert np.abs(tail - exact).max() < 1e-6 * np.abs(exact).max()
