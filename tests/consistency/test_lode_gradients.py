"""Position and strain gradients of periodic (k-space) LODE: finite differences and the
vector-Jacobian products against the dense Jacobians (featomic 0.6.7's position gradients:
tests/reference/test_featomic_gradients.py; featomic has no LODE strain gradients)."""

import numpy as np
import pytest

import lodekit
from lodekit.expansion.kspace import KSPACE_BACKENDS
from tests.helpers import (
    cubic_box,
    deformed,
    kspace_problem,
    molecule,
    three_species_box,
    triclinic_box,
)

DIRECT = KSPACE_BACKENDS["direct"]

STRUCTURES = {"cubic": cubic_box, "triclinic": triclinic_box, "three_species": three_species_box}
HYPERS = dict(smearing=0.9, max_radial=3, max_angular=3, radius=4.0, k_cutoff=4.0)


def _jacobian(calculator, atoms, centres=None):
    """Dense d c / d r of the whole expansion (in k_cutoff mode the k = 0, centre and
    background terms do not depend on positions)."""
    centres = np.arange(len(atoms)) if centres is None else centres
    return DIRECT.jacobian(kspace_problem(calculator, atoms, centres), False)[0]


def _flat(expansion):
    """(n_centres, n_species, lm, n) from the per-l arrays."""
    return np.concatenate(expansion.values, axis=2)


@pytest.mark.parametrize("kind", sorted(STRUCTURES))
@pytest.mark.parametrize("exponent", [0, 1, 2, 3, 4, 6])
def test_position_gradients_match_finite_differences(kind, exponent):
    atoms = STRUCTURES[kind](np.random.default_rng(11))
    calculator = lodekit.LodeSphericalExpansion(exponent=exponent, **HYPERS)
    centres = np.array([0, 3, len(atoms) - 1])
    jacobian = _jacobian(calculator, atoms, centres)
    h = 1e-5
    worst, scale = 0.0, np.abs(jacobian).max()
    for j in range(len(atoms)):
        for alpha in range(3):
            plus, minus = atoms.copy(), atoms.copy()
            plus.positions[j, alpha] += h
            minus.positions[j, alpha] -= h
            fd = (
                _flat(calculator.compute(plus, selected_atoms=centres))
                - _flat(calculator.compute(minus, selected_atoms=centres))
            ) / (2 * h)
            worst = max(worst, np.abs(fd - jacobian[:, j, alpha]).max())
    assert worst < 1e-7 * scale


@pytest.mark.parametrize("kind", sorted(STRUCTURES))
def test_vector_jacobian_product_equals_contracted_jacobian(kind):
    rng = np.random.default_rng(12)
    atoms = STRUCTURES[kind](rng)
    calculator = lodekit.LodeSphericalExpansion(exponent=1, **HYPERS)
    centres = np.arange(len(atoms))[::2]
    jacobian = _jacobian(calculator, atoms, centres)
    upstream = rng.normal(size=(len(centres), *jacobian.shape[3:]))
    vjp, strain = DIRECT.vjp(kspace_problem(calculator, atoms, centres), upstream, False)
    assert strain is None
    expected = np.einsum("ijxalm,ialm->jx", jacobian, upstream)
    np.testing.assert_allclose(vjp, expected, rtol=0, atol=1e-12 * np.abs(expected).max())
    # no net force on a periodic system: translation invariance
    np.testing.assert_allclose(vjp.sum(axis=0), 0.0, atol=1e-11 * np.abs(expected).max())


@pytest.mark.parametrize("kind", sorted(STRUCTURES))
@pytest.mark.parametrize("exponent", [0, 1, 2, 3, 4, 6])
def test_strain_gradients_match_finite_differences(kind, exponent):
    """The public strain Jacobian (``compute(..., gradients=["strain"])``: the k-space sum and,
    for p = 0 and p > 3, the k = 0 term ~ 1/V) against central differences of the public
    coefficients under r -> (1 + eps) r of positions and cell.

    Step study: at h = 2e-4 and 1e-4 the residual must fall by 4 (3 to 5), the O(h^2) error of
    a central difference of a smooth function, and at h = 1e-6 (rounding about 1e-10) it must
    be below 1e-7 of the largest entry. A wrong Jacobian leaves a residual that does not
    shrink with h. Larger steps are not usable: in k_cutoff mode a k-vector crosses the
    cutoff sphere within +-4e-4 of some of these cells, and the sum jumps there."""
    atoms = STRUCTURES[kind](np.random.default_rng(14))
    calculator = lodekit.LodeSphericalExpansion(exponent=exponent, **HYPERS)
    centres = np.array([1, 2, len(atoms) - 2])
    expansion = calculator.compute(atoms, selected_atoms=centres, gradients=["strain"])
    jacobian = np.concatenate(expansion.gradients["strain"].values, axis=-2)
    scale = np.abs(jacobian).max()

    def residual(h):
        worst = 0.0
        for a in range(3):
            for b in range(3):
                plus = _flat(calculator.compute(deformed(atoms, a, b, h), selected_atoms=centres))
                minus = _flat(calculator.compute(deformed(atoms, a, b, -h), selected_atoms=centres))
                worst = max(worst, np.abs((plus - minus) / (2 * h) - jacobian[:, a, b]).max())
        return worst / scale

    assert 3.0 < residual(2e-4) / residual(1e-4) < 5.0
    assert residual(1e-6) < 1e-7


@pytest.mark.parametrize("kind", sorted(STRUCTURES))
def test_strain_vector_jacobian_product_equals_contracted_jacobian(kind):
    rng = np.random.default_rng(15)
    atoms = STRUCTURES[kind](rng)
    calculator = lodekit.LodeSphericalExpansion(exponent=1, **HYPERS)
    centres = np.arange(len(atoms))[1::2]
    problem = kspace_problem(calculator, atoms, centres)
    jacobian = DIRECT.jacobian(problem, True)[1]
    upstream = rng.normal(size=(len(centres), *jacobian.shape[3:]))
    virial = DIRECT.vjp(problem, upstream, True)[1]
    expected = np.einsum("iabslm,islm->ab", jacobian, upstream)
    np.testing.assert_allclose(virial, expected, rtol=0, atol=1e-12 * np.abs(expected).max())


def test_public_vector_jacobian_product_is_the_gradient_of_a_linear_model():
    """E = sum_i w_(Z_i) · c_i over two structures: the method's forces and strain derivative
    against central finite differences of E itself (positions and cell deformations)."""
    rng = np.random.default_rng(16)
    frames = [triclinic_box(rng), triclinic_box(rng)]
    calculator = lodekit.LodeSphericalExpansion(exponent=4, **HYPERS)  # with a k = 0 term
    reference = calculator.compute(frames)
    types = reference.neighbor_types
    weights = [rng.normal(size=(len(types), *v.shape[1:])) for v in reference.values]

    def energy(structures):
        expansion = calculator.compute(structures)
        rows = np.searchsorted(types, expansion.samples[:, 2])
        return sum(np.sum(w[rows] * v) for w, v in zip(weights, expansion.values, strict=True))

    rows = np.searchsorted(types, reference.samples[:, 2])
    gradients = calculator.vector_jacobian_product(frames, [w[rows] for w in weights])
    h = 1e-5
    for s, atoms in enumerate(frames):
        for j, alpha in [(0, 0), (3, 1), (len(atoms) - 1, 2)]:
            moved = [frame.copy() for frame in frames]
            moved[s].positions[j, alpha] += h
            plus = energy(moved)
            moved[s].positions[j, alpha] -= 2 * h
            fd = (plus - energy(moved)) / (2 * h)
            assert gradients["positions"][s][j, alpha] == pytest.approx(fd, rel=1e-6, abs=1e-8)
        for a, b in [(0, 0), (0, 2), (2, 1)]:
            values = []
            for sign in (1, -1):
                deformation = np.eye(3)
                deformation[a, b] += sign * h
                moved = [frame.copy() for frame in frames]
                moved[s].set_cell(atoms.cell.array @ deformation.T, scale_atoms=True)
                values.append(energy(moved))
            fd = (values[0] - values[1]) / (2 * h)
            assert gradients["strain"][s, a, b] == pytest.approx(fd, rel=1e-6, abs=1e-8)


def test_vector_jacobian_product_errors():
    rng = np.random.default_rng(17)
    atoms = cubic_box(rng)
    calculator = lodekit.LodeSphericalExpansion(exponent=1, **HYPERS)
    values = calculator.compute(atoms).values
    with pytest.raises(lodekit.InputError, match=r"`upstream\[1\]` has shape"):
        calculator.vector_jacobian_product(atoms, [values[0], values[1][:3], *values[2:]])
    with pytest.raises(lodekit.InputError, match="list of 4 arrays"):
        calculator.vector_jacobian_product(atoms, values[:2])
    bad = [v.copy() for v in values]
    bad[0][0, 0, 0, 0] = np.nan
    with pytest.raises(lodekit.InputError, match="NaN"):
        calculator.vector_jacobian_product(atoms, bad)


def _fd_check(calculator, atoms, rng, h, tolerance, strain=True):
    """The public product against central differences of sum G · c (positions, strain)."""
    reference = calculator.compute(atoms)
    weights = [rng.normal(size=v.shape) for v in reference.values]

    def energy(structure):
        return sum(
            np.sum(w * v)
            for w, v in zip(weights, calculator.compute(structure).values, strict=True)
        )

    gradients = calculator.vector_jacobian_product(atoms, weights)
    positions = gradients["positions"][0]
    for j in range(0, len(atoms), 2):
        for alpha in range(3):
            moved = [atoms.copy(), atoms.copy()]
            moved[0].positions[j, alpha] += h
            moved[1].positions[j, alpha] -= h
            fd = (energy(moved[0]) - energy(moved[1])) / (2 * h)
            assert abs(positions[j, alpha] - fd) < tolerance * np.abs(positions).max()
    if not strain:
        return
    for a, b in [(0, 0), (1, 0), (2, 2), (0, 2)]:
        values = []
        for sign in (1, -1):
            deformation = np.eye(3)
            deformation[a, b] += sign * h
            moved = atoms.copy()
            moved.set_cell(atoms.cell.array @ deformation.T, scale_atoms=True)
            values.append(energy(moved))
        fd = (values[0] - values[1]) / (2 * h)
        assert (
            abs(gradients["strain"][0, a, b] - fd) < tolerance * np.abs(gradients["strain"]).max()
        )


@pytest.mark.parametrize("exponent", [0, 1, 3, 6])
def test_molecule_gradients_match_finite_differences(exponent):
    rng = np.random.default_rng(18)
    atoms = molecule(rng, 9)
    calculator = lodekit.LodeSphericalExpansion(
        smearing=0.8, exponent=exponent, max_radial=3, max_angular=3, radius=3.5
    )
    _fd_check(calculator, atoms, rng, 1e-5, 1e-7, strain=False)


def test_molecule_gradients_across_the_multipole_switch():
    """A pair on either side of d_switch: the tail's derivative is used beyond it."""
    rng = np.random.default_rng(19)
    calculator = lodekit.LodeSphericalExpansion(
        smearing=0.5, exponent=1, max_radial=2, max_angular=2, radius=1.5
    )
    d_switch = calculator.molecule_field.d_switch
    atoms = molecule(rng, 4)
    atoms.positions[3] = atoms.positions[0] + [d_switch + 0.7, 0.3, -0.2]
    atoms.positions[2] = atoms.positions[0] + [d_switch - 0.4, 0.1, 0.5]
    _fd_check(calculator, atoms, rng, 1e-5, 1e-7, strain=False)


@pytest.mark.parametrize("exponent", [1, 3, 6])
def test_range_separated_gradients_match_finite_differences(exponent):
    rng = np.random.default_rng(21)
    atoms = cubic_box(rng)
    calculator = lodekit.LodeSphericalExpansion(
        smearing=0.3, exponent=exponent, max_radial=3, max_angular=3, radius=4.0, accuracy=1e-6
    )
    assert calculator.plan(atoms)[0]["method"] == "range_separated"
    # no pair may cross the real-space cutoff within +-h, or the sum itself jumps there
    _fd_check(calculator, atoms, rng, 1e-6, 1e-6)
