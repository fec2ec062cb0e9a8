"""LODE of slabs (pbc with two periodic axes) against independent references.

- p >= 3: the 2-D lattice sum converges absolutely; a brute-force real-space sum over a disc of
  images (exact pair projections, with a smooth window and the continuum tail beyond it)
  must agree within 1e-8 of the largest coefficient, every l <= 4.
- p = 1, 2: the slab is the limit of 3-D periodic sums with growing vacuum once the planar
  average of the copies is taken out analytically: for p = 1 the dipole (Yeh-Berkowitz) and
  charged-slab (Ballenegger-Arnold-Cerda) terms, the quadratic 2 pi (z_i - z_j)^2 / (A L), plus
  a constant set by the two k = 0 conventions; for p = 2 the expansion of
  -ln(2 sin(pi z / L)).
- Limits: a huge in-plane cell gives the isolated molecule; two far-apart layers give two
  independent slabs.
"""

import ase
import numpy as np
import pytest

import lodekit
from lodekit.basis import RADIAL_BASES
from lodekit.basis.spherical_harmonics import real_spherical_harmonics
from lodekit.density import fourier_transform
from tests.helpers import random_structure, three_species_slab

BASIS = dict(max_radial=3, radius=4.0)


def _flat(expansion):
    return np.concatenate(expansion.values, axis=-2)


def _window(rho, radius, width):
    """Smooth (C-infinity, Gaussian-edged) in-plane window: 1 inside, 0 far outside."""
    from scipy.special import erfc

    return 0.5 * erfc((rho - radius) / width)


def _brute_force(atoms, calculator, radius=70.0, width=10.0):
    """sum over images T and atoms j of W(rho) P(r_j + T - r_i), plus the continuum
    (1/A) ∫ (1 - W(rho)) <P>_phi d^2 rho beyond it, plus the centre's own field.

    P(d) = Y_lm(d̂) 4 pi Q_nl(|d|) is the exact projection of one smeared atom (the molecule
    path's pair function); W's Gaussian edge makes the lattice sum of W P equal its continuum
    integral to exp(-(g width)^2 / 4) ~ 1e-12 (Poisson summation), so only the window's smooth
    tail is replaced by an integral. The slab's normal is z.
    """
    field = calculator.molecule_field
    max_angular = calculator.max_angular
    cell = atoms.cell.array[:2]
    area = abs(np.cross(cell[0], cell[1])[2])
    types = np.unique(atoms.numbers)
    species = np.searchsorted(types, atoms.numbers)
    n_lm = (max_angular + 1) ** 2
    reach = radius + 7 * width
    n_max = int(np.ceil(reach / min(np.linalg.norm(cell, axis=1)))) + 2
    shifts = np.array(
        [
            i * cell[0] + j * cell[1]
            for i in range(-n_max, n_max + 1)
            for j in range(-n_max, n_max + 1)
        ]
    )
    out = np.zeros((len(atoms), len(types), n_lm, calculator.max_radial + 1))
    l_of_lm = np.repeat(np.arange(max_angular + 1), 2 * np.arange(max_angular + 1) + 1)
    # the continuum tail: <Y_lm>_phi = delta_m0 Y_l0(theta) about z, radial Gauss-Legendre
    # rules on [radius - 7 width, radius + 7 width] and 1/rho on the rest
    x, w = np.polynomial.legendre.leggauss(200)
    lo, hi = radius - 7 * width, radius + 7 * width
    rho_a, w_a = 0.5 * (hi - lo) * x + 0.5 * (hi + lo), 0.5 * (hi - lo) * w
    u = 0.5 / hi * (x + 1)  # rho = 1/u on (hi, inf)
    rho_b, w_b = 1 / u, 0.5 / hi * w / u**2
    rho_t = np.concatenate([rho_a, rho_b])
    w_t = np.concatenate([w_a * (1 - _window(rho_a, radius, width)), w_b])
    m0 = np.array([l * l + l for l in range(max_angular + 1)])
    for i in range(len(atoms)):
        for j in range(len(atoms)):
            d = atoms.positions[j] + shifts - atoms.positions[i]
            rho = np.linalg.norm(d[:, :2], axis=1)
            keep = (np.linalg.norm(d, axis=1) > 1e-9) & (rho < reach)
            d, rho = d[keep], rho[keep]
            weight = _window(rho, radius, width)
            radial = field(np.linalg.norm(d, axis=1))  # (m, l, n)
            ylm = real_spherical_harmonics(d, max_angular)
            out[i, species[j]] += np.einsum("m,mf,mfn->fn", weight, ylm, radial[:, l_of_lm])
            # continuum of j's sublattice (density 1/A) beyond the window
            z = d[0, 2]
            vectors = np.column_stack([rho_t, np.zeros_like(rho_t), np.full_like(rho_t, z)])
            y_t = real_spherical_harmonics(vectors, max_angular)[:, m0]  # (q, l)
            r_t = field(np.linalg.norm(vectors, axis=1))  # (q, l, n)
            tail = 2 * np.pi / area * np.einsum("q,q,ql,qln->ln", w_t, rho_t, y_t, r_t)
            out[i, species[j], m0] += tail
    single = calculator.compute(ase.Atoms("H", positions=[[0, 0, 0]]))
    self_field = single.values[0][0, 0, 0]
    out[np.arange(len(atoms)), species, 0] += self_field
    return out


@pytest.mark.parametrize(
    ("exponent", "smearing", "method"),
    [(3, 0.9, "kspace"), (4, 0.9, "kspace"), (6, 0.9, "kspace"), (3, 0.4, "range_separated")],
)
def test_slab_matches_brute_force_lattice_sum(exponent, smearing, method):
    atoms = three_species_slab(np.random.default_rng(3))
    calculator = lodekit.LodeSphericalExpansion(
        smearing=smearing, exponent=exponent, max_angular=4, accuracy=1e-10, **BASIS
    )
    expansion = calculator.compute(atoms)
    assert expansion.info["structures"][0]["method"] == method
    slab = _flat(expansion)
    reference = _brute_force(atoms, calculator)
    scale = np.abs(reference).max()
    assert np.abs(slab - reference).max() < 1e-8 * scale
    # the reference is not the molecule: images matter at this level
    molecule = atoms.copy()
    molecule.pbc = False
    isolated = _flat(calculator.compute(molecule))
    assert np.abs(isolated - reference).max() > 1e-3 * scale


def _moments(max_angular):
    return RADIAL_BASES["gto"](BASIS["max_radial"], BASIS["radius"]).moments(2, max_angular)


def _planar_terms(atoms, quadratic, constant, max_angular):
    """Projection of sum_{j in a} [constant + quadratic (z_i + r_z - z_j)^2] on R_nl Y_lm (normal
    z): the l <= 2, m = 0 coefficients, (n_atoms, n_species, lm, n)."""
    moments = _moments(max_angular)  # (k, l, n)
    types = np.unique(atoms.numbers)
    z = atoms.positions[:, 2]
    out = np.zeros((len(atoms), len(types), (max_angular + 1) ** 2, moments.shape[2]))
    for a, t in enumerate(types):
        dz = z[:, None] - z[atoms.numbers == t][None, :]  # (i, j)
        count = dz.shape[1]
        # constant and a^2 on l = 0; 2 a r_z on Y_10; r_z^2 = r^2 (1/3 + 2/3 P_2) on l = 0, 2
        out[:, a, 0] = np.sqrt(4 * np.pi) * (
            (constant * count + quadratic * (dz**2).sum(axis=1))[:, None] * moments[0, 0]
            + quadratic * count / 3 * moments[2, 0]
        )
        out[:, a, 2] = (
            quadratic * 2 * dz.sum(axis=1)[:, None] * np.sqrt(4 * np.pi / 3) * moments[1, 1][None]
        )
        out[:, a, 6] = quadratic * count * (2 / 3) * np.sqrt(4 * np.pi / 5) * moments[2, 2][None]
    return out


def _three_dimensional_reference(atoms, calculator, height):
    box = atoms.copy()
    box.cell = [atoms.cell[0], atoms.cell[1], [0.0, 0.0, height]]
    box.pbc = True
    return _flat(calculator.compute(box))


def _neutral_slab():
    rng = np.random.default_rng(11)
    cell = [[5.2, 0.0, 0.0], [1.1, 4.8, 0.0], [0.0, 0.0, 3.0]]
    return random_structure(rng, cell, ["Na", "Cl"] * 4, min_distance=1.4, pbc=[True, True, False])


@pytest.mark.parametrize(("smearing", "method"), [(1.0, "kspace"), (0.4, "range_separated")])
def test_coulomb_slab_is_the_limit_of_3d_sums_with_dipole_and_charged_slab_terms(smearing, method):
    atoms = _neutral_slab()
    calculator = lodekit.LodeSphericalExpansion(
        smearing=smearing, exponent=1, max_angular=3, accuracy=1e-11, **BASIS
    )
    expansion = calculator.compute(atoms)
    assert expansion.info["structures"][0]["method"] == method
    slab = _flat(expansion)
    scale = np.abs(slab).max()
    area = abs(np.cross(atoms.cell[0], atoms.cell[1])[2])
    raw, corrected = [], []
    for height in (40.0, 80.0, 160.0):
        box = _three_dimensional_reference(atoms, calculator, height)
        # 3-D (background) minus slab for a smeared sheet: pi L / 3A + 2 pi (z^2 + s^2) / (A L)
        # - 2 pi s sqrt(2/pi) / A (the slab's convention: zero in the sheet)
        quadratic = 2 * np.pi / (area * height)
        constant = (
            np.pi * height / (3 * area)
            + quadratic * smearing**2
            - 2 * np.pi * smearing * np.sqrt(2 / np.pi) / area
        )
        terms = _planar_terms(atoms, quadratic, constant, 3)
        raw.append(np.abs(box - slab).max() / scale)
        corrected.append(np.abs(box - terms - slab).max() / scale)
    # without the terms the 3-D sums do not approach the slab (the background's constant
    # grows with L); with them they agree at every height, to the 3-D sums' own accuracy
    assert raw[-1] > raw[0] > 1e-2
    assert max(corrected) < 1e-9


def test_p2_slab_is_the_limit_of_3d_sums():
    atoms = _neutral_slab()
    smearing = 1.0
    calculator = lodekit.LodeSphericalExpansion(
        smearing=smearing, exponent=2, max_angular=3, accuracy=1e-11, **BASIS
    )
    slab = _flat(calculator.compute(atoms))
    scale = np.abs(slab).max()
    area = abs(np.cross(atoms.cell[0], atoms.cell[1])[2])
    errors = []
    for height in (40.0, 80.0, 160.0):
        box = _three_dimensional_reference(atoms, calculator, height)
        # the copies' planar average: (1/AL) sum_{m != 0} ĝ_2(2 pi m / L) e^{i q z} minus the
        # slab's line is a constant (its value at z = 0, summed here) plus
        # (2 pi / A) [x^2 / 6 + x^4 / 180 + ...], x = pi z / L; the z^2 term is taken out
        m = np.arange(1, 400_000)
        constant = (
            2 * np.sum(fourier_transform(2 * np.pi * m / height, smearing, 2)) / (area * height)
        )
        quadratic = 2 * np.pi / area * np.pi**2 / (6 * height**2)
        terms = _planar_terms(atoms, quadratic, constant, 3)
        errors.append(np.abs(box - terms - slab).max() / scale)
    # the neglected z^4 term: 1/L^4, a factor 16 per doubling
    assert errors[0] / errors[1] > 10 and errors[1] / errors[2] > 10
    assert errors[-1] < 1e-6


@pytest.mark.parametrize("exponent", [3, 6])
def test_large_in_plane_cell_tends_to_the_molecule(exponent):
    rng = np.random.default_rng(5)
    molecule = random_structure(
        rng, np.eye(3) * 3.0, ["C", "O", "H", "H"], min_distance=1.0, pbc=False
    )
    calculator = lodekit.LodeSphericalExpansion(
        smearing=0.8, exponent=exponent, max_angular=3, accuracy=1e-9, **BASIS
    )
    isolated = _flat(calculator.compute(molecule))
    differences = []
    for side in (10.0, 20.0, 40.0):
        slab = molecule.copy()
        slab.cell = [[side, 0, 0], [0.3 * side, 0.9 * side, 0], [0, 0, 0]]
        slab.pbc = [True, True, False]
        differences.append(np.abs(_flat(calculator.compute(slab)) - isolated).max())
    # the images' field falls as side^(2 - p) (their planar average) or faster
    rate = 2.0 ** (exponent - 2)
    assert differences[0] / differences[1] > 0.8 * rate
    assert differences[1] / differences[2] > 0.8 * rate


def _rock_salt_layer():
    """A neutral, non-polar NaCl layer (all atoms in one plane)."""
    a = 2.8
    positions = [[0, 0, 0], [a, 0, 0], [0, a, 0], [a, a, 0]]
    return ase.Atoms(
        "NaClClNa",
        positions=positions,
        cell=[[2 * a, 0, 0], [0, 2 * a, 0], [0, 0, 0]],
        pbc=[True, True, False],
    )


@pytest.mark.parametrize("exponent", [1, 3])
def test_two_far_layers_tend_to_two_independent_slabs(exponent):
    layer = _rock_salt_layer()
    calculator = lodekit.LodeSphericalExpansion(
        smearing=0.8, exponent=exponent, max_angular=3, accuracy=1e-10, **BASIS
    )
    alone = calculator.compute(layer)
    charges = np.array([-1.0, 1.0])  # Cl, Na: the species channels in sorted order (17, 11)
    order = np.argsort([17, 11])
    differences = []
    for gap in (6.0, 12.0, 24.0):
        other = layer.copy()
        other.positions[:, 2] += gap
        other.positions[:, 0] += 0.7  # not stacked on top: its in-plane field differs
        both = layer + other
        both.cell, both.pbc = layer.cell, layer.pbc
        together = calculator.compute(both)
        a, b = _flat(alone), _flat(together)[: len(layer)]
        if exponent == 1:
            # neutral combination sum_a q_a c^a: independent of the k∥ = 0 convention
            a = np.einsum("a,iafn->ifn", charges[order], a)
            b = np.einsum("a,iafn->ifn", charges[order], b)
        differences.append(np.abs(a - b).max() / np.abs(a).max())
    if exponent == 1:
        # a neutral non-polar layer: no planar-average field outside it, the rest decays as
        # exp(-g gap), g = 2 pi / 5.6 Å: tiny at 24 Å
        assert differences[0] > 1e-6
        assert differences[-1] < 1e-9
    else:
        # the far sheet's planar average 2 pi N / (A (p - 2)) / gap^(p - 2): 1/gap
        assert 1.6 < differences[1] / differences[2] < 2.4


@pytest.mark.parametrize(("exponent", "smearing"), [(1, 0.4), (6, 0.9)])
def test_slab_meets_its_accuracy_contract(exponent, smearing):
    """Every coefficient within ``accuracy`` of the largest, against the same sum converged to
    1e-12 (itself checked against brute force and 3-D limits above); measured: 100 to 2000
    times inside the budget, as the planner's bounds are worst cases."""
    atoms = three_species_slab(np.random.default_rng(8))
    hypers = dict(smearing=smearing, exponent=exponent, max_radial=3, max_angular=3, radius=4.0)
    reference = _flat(lodekit.LodeSphericalExpansion(accuracy=1e-12, **hypers).compute(atoms))
    scale = np.abs(reference).max()
    for accuracy in (1e-3, 1e-6):
        calculator = lodekit.LodeSphericalExpansion(accuracy=accuracy, **hypers)
        values = _flat(calculator.compute(atoms))
        assert np.abs(values - reference).max() < accuracy * scale
