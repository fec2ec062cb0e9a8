"""Position gradients of periodic (k-space) LODE: finite differences, featomic 0.6.7, and the
vector-Jacobian product against the dense Jacobian."""

import numpy as np
import pytest

import lodekit
from lodekit.expansion.kspace_gradients import lode_kspace_gradient, lode_kspace_vjp
from lodekit.systems import System
from tests.helpers import cubic_box, three_species_box, triclinic_box

STRUCTURES = {"cubic": cubic_box, "triclinic": triclinic_box, "three_species": three_species_box}
HYPERS = dict(smearing=0.9, max_radial=3, max_angular=3, radius=4.0, k_cutoff=4.0)


def _jacobian(calculator, atoms, centres=None):
    """Dense d c / d r of the whole expansion (in k_cutoff mode the k = 0, centre and
    background terms do not depend on positions)."""
    system = System.from_ase(atoms)
    types = np.unique(system.numbers)
    centres = np.arange(len(system)) if centres is None else np.asarray(centres)
    return lode_kspace_gradient(
        system.positions,
        np.searchsorted(types, system.numbers),
        len(types),
        centres,
        system.cell,
        calculator._basis,
        calculator.max_angular,
        calculator.smearing,
        calculator.exponent,
        calculator.effective_k_cutoff,
    )


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
    system = System.from_ase(atoms)
    types = np.unique(system.numbers)
    centres = np.arange(len(atoms))[::2]
    jacobian = _jacobian(calculator, atoms, centres)
    upstream = rng.normal(size=(len(centres), *jacobian.shape[3:]))
    vjp = lode_kspace_vjp(
        system.positions,
        np.searchsorted(types, system.numbers),
        len(types),
        centres,
        system.cell,
        calculator._basis,
        calculator.max_angular,
        calculator.smearing,
        calculator.exponent,
        calculator.effective_k_cutoff,
        upstream,
    )
    expected = np.einsum("ijxalm,ialm->jx", jacobian, upstream)
    np.testing.assert_allclose(vjp, expected, rtol=0, atol=1e-12 * np.abs(expected).max())
    # no net force on a periodic system: translation invariance
    np.testing.assert_allclose(vjp.sum(axis=0), 0.0, atol=1e-11 * np.abs(expected).max())


@pytest.mark.parametrize("kind", sorted(STRUCTURES))
@pytest.mark.parametrize("exponent", [1, 3, 6])
def test_position_gradients_match_featomic(kind, exponent):
    pytest.importorskip("featomic")
    atoms = STRUCTURES[kind](np.random.default_rng(13))
    calculator = lodekit.LodeSphericalExpansion(exponent=exponent, **HYPERS)
    jacobian = _jacobian(calculator, atoms)
    types = np.unique(atoms.numbers)
    import featomic

    reference = featomic.LodeSphericalExpansion(
        k_cutoff=HYPERS["k_cutoff"],
        density={
            "type": "SmearedPowerLaw",
            "smearing": HYPERS["smearing"],
            "exponent": exponent,
            "center_atom_weight": 1.0,
        },
        basis={
            "type": "TensorProduct",
            "max_angular": HYPERS["max_angular"],
            "radial": {"type": "Gto", "max_radial": HYPERS["max_radial"], "radius": 4.0},
            "spline_accuracy": None,
        },
    ).compute(atoms, gradients=["positions"])
    scale = np.abs(jacobian).max()
    covered = np.zeros((*jacobian.shape[:2], len(types)), dtype=bool)
    for key, block in reference.items():
        l = int(key["o3_lambda"])
        a = int(np.searchsorted(types, int(key["neighbor_type"])))
        gradient = block.gradient("positions")
        centre_of_sample = np.asarray(block.samples.values)[:, 1]
        rows = np.asarray(gradient.samples.values)
        ours = jacobian[centre_of_sample[rows[:, 0]], rows[:, 2], :, a, l * l : (l + 1) ** 2, :]
        assert np.abs(np.asarray(gradient.values) - ours).max() < 1e-9 * scale
        covered[centre_of_sample[rows[:, 0]], rows[:, 2], a] = True
    # whatever featomic leaves out is zero here
    assert np.abs(jacobian.transpose(0, 1, 3, 2, 4, 5)[~covered]).max() < 1e-12 * scale
