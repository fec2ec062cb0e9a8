"""Rotation, inversion, translation, permutation and supercell behaviour (math.md §7.3-7.4)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lodekit
from lodekit.testing import assert_equivariant, random_rotation
from tests.helpers import molecule, three_species_box, transformed, triclinic_box

LODE = lodekit.LodeSphericalExpansion(
    smearing=0.8, exponent=1, max_radial=4, max_angular=5, radius=4.0, k_cutoff=5.0
)
LODE_P3 = lodekit.LodeSphericalExpansion(
    smearing=0.8, exponent=3, max_radial=3, max_angular=4, radius=4.0, center_atom_weight=0.4
)
SOAP = lodekit.SphericalExpansion(cutoff=4.0, smearing=0.4, max_radial=5, max_angular=5)

CASES = {
    "lode-molecule": (LODE, molecule),
    "lode-p6-molecule": (
        lodekit.LodeSphericalExpansion(
            smearing=0.5, exponent=6, max_radial=3, max_angular=4, radius=3.0
        ),
        molecule,
    ),
    "lode-periodic": (LODE, triclinic_box),
    "lode-p3-periodic": (LODE_P3, three_species_box),
    "soap-periodic": (SOAP, three_species_box),
    "soap-molecule": (SOAP, molecule),
}


def scale(expansion):
    return max(np.abs(v).max() for v in expansion.values)


@pytest.mark.parametrize("case", sorted(CASES))
@settings(max_examples=4, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_rotation_equivariance(case, seed):
    calculator, make = CASES[case]
    rng = np.random.default_rng(seed)
    atoms = make(np.random.default_rng(1))
    rotation = random_rotation(rng)
    original = calculator.compute(atoms)
    rotated = calculator.compute(transformed(atoms, rotation))
    assert_equivariant(original, rotated, rotation, atol=1e-11 * scale(original))


@pytest.mark.parametrize("case", sorted(CASES))
def test_inversion_parity(case):
    calculator, make = CASES[case]
    atoms = make(np.random.default_rng(2))
    original = calculator.compute(atoms)
    inverted = calculator.compute(transformed(atoms, -np.eye(3)))
    for l, (a, b) in enumerate(zip(original.values, inverted.values, strict=True)):
        np.testing.assert_allclose(b, (-1) ** l * a, rtol=0, atol=1e-11 * scale(original))


@pytest.mark.parametrize("case", sorted(CASES))
def test_translation_and_permutation_invariance(case):
    calculator, make = CASES[case]
    rng = np.random.default_rng(4)
    atoms = make(rng)
    original = calculator.compute(atoms)
    moved = atoms.copy()
    moved.positions += rng.normal(size=3) * 10.0  # far outside the cell: not wrapped by us
    permutation = rng.permutation(len(atoms))
    shuffled = moved[permutation]
    result = calculator.compute(shuffled)
    for a, b in zip(original.values, result.values, strict=True):
        np.testing.assert_allclose(b, a[permutation], rtol=0, atol=1e-11 * scale(original))


@pytest.mark.parametrize("calculator", [LODE, LODE_P3, SOAP], ids=["lode", "lode-p3", "soap"])
def test_supercell_invariance(calculator):
    atoms = triclinic_box(np.random.default_rng(6))
    cell = calculator.compute(atoms)
    supercell = calculator.compute(atoms.repeat((2, 2, 2)))
    n = len(atoms)
    for a, b in zip(cell.values, supercell.values, strict=True):
        np.testing.assert_allclose(b[:n], a, rtol=0, atol=1e-11 * scale(cell))
        np.testing.assert_allclose(b[-n:], a, rtol=0, atol=1e-11 * scale(cell))


def test_gaussian_lode_in_large_box_equals_step_soap():
    """p = 0 LODE of a compact cluster in a big box is the SOAP density with a step cutoff."""
    rng = np.random.default_rng(8)
    atoms = molecule(rng, 6)
    atoms.positions -= atoms.positions.mean(axis=0)
    atoms.positions += 10.0
    atoms.cell = np.eye(3) * 20.0
    atoms.pbc = True
    smearing, radius = 0.5, 6.0
    lode = lodekit.LodeSphericalExpansion(
        smearing=smearing,
        exponent=0,
        max_radial=5,
        max_angular=4,
        radius=radius,
        k_cutoff=6.0 / smearing,
    ).compute(atoms)
    soap = lodekit.SphericalExpansion(
        cutoff=radius,
        cutoff_function="step",
        smearing=smearing,
        max_radial=5,
        max_angular=4,
        spline_accuracy=None,
    ).compute(atoms)
    assert atoms.get_all_distances().max() < radius  # every neighbour inside the cutoff
    for a, b in zip(lode.values, soap.values, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-4 * scale(soap))
