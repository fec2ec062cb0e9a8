"""Symmetries of slabs (two periodic axes) for SOAP and LODE: in-plane and normal translations,
rotations about the normal and about any axis (Wigner-D equivariance, positions and cell
rotated together), the mirror in the slab plane, permutations and in-plane supercells."""

import numpy as np
import pytest

import lodekit
from lodekit.testing import assert_equivariant, random_rotation
from tests.helpers import three_species_slab, transformed

#: LODE slabs are computed to an accuracy: a supercell changes the in-plane lines, so it
#: agrees to that accuracy, every exact symmetry to rounding
LODE_ACCURACY = 1e-9

CALCULATORS = {
    "soap": lodekit.SphericalExpansion(
        cutoff=4.2,
        cutoff_function="shifted_cosine",
        cutoff_width=0.8,
        smearing=0.35,
        max_radial=6,
        max_angular=5,
        spline_accuracy=None,
    ),
    "lode-p1": lodekit.LodeSphericalExpansion(
        smearing=0.9,
        exponent=1,
        max_radial=3,
        max_angular=4,
        radius=4.0,
        accuracy=LODE_ACCURACY,
    ),
    "lode-p3": lodekit.LodeSphericalExpansion(
        smearing=0.9,
        exponent=3,
        max_radial=3,
        max_angular=4,
        radius=4.0,
        accuracy=LODE_ACCURACY,
        center_atom_weight=0.4,
    ),
}


def scale(expansion):
    return max(np.abs(v).max() for v in expansion.values)


@pytest.fixture(scope="module", params=sorted(CALCULATORS))
def slab(request):
    calculator = CALCULATORS[request.param]
    atoms = three_species_slab(np.random.default_rng(4))
    return calculator, atoms, calculator.compute(atoms)


def test_translation_in_plane_and_along_the_normal(slab):
    calculator, atoms, original = slab
    moved = atoms.copy()
    a1, a2 = atoms.cell.array[:2]
    # far outside the cell in the plane, and 7 Å higher
    moved.positions += 3.37 * a1 - 2.21 * a2 + [0.0, 0.0, 7.0]
    result = calculator.compute(moved)
    for a, b in zip(original.values, result.values, strict=True):
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-11 * scale(original))


@pytest.mark.parametrize("about", ["normal", "any axis"])
def test_rotation_equivariance(slab, about):
    calculator, atoms, original = slab
    if about == "normal":
        angle = 0.83
        c, s = np.cos(angle), np.sin(angle)
        rotation = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    else:  # the slab's normal then lies along no axis
        rotation = random_rotation(np.random.default_rng(9))
    result = calculator.compute(transformed(atoms, rotation))
    assert_equivariant(original, result, rotation, atol=1e-11 * scale(original))


def test_mirror_in_the_slab_plane(slab):
    calculator, atoms, original = slab
    mirror = np.diag([1.0, 1.0, -1.0])  # the normal is z
    result = calculator.compute(transformed(atoms, mirror))
    assert_equivariant(original, result, mirror, atol=1e-11 * scale(original))
    # the slab is not mirror-symmetric itself: the check compares different numbers
    assert np.abs(result.values[1] - original.values[1]).max() > 1e-3 * scale(original)


def test_permutation(slab):
    calculator, atoms, original = slab
    order = np.random.default_rng(6).permutation(len(atoms))
    result = calculator.compute(atoms[order])
    for a, b in zip(original.values, result.values, strict=True):
        np.testing.assert_allclose(b, a[order], rtol=0, atol=1e-11 * scale(original))


def test_in_plane_supercell(slab):
    calculator, atoms, original = slab
    double = atoms.repeat((2, 1, 1))
    assert double.pbc.tolist() == [True, True, False]
    result = calculator.compute(double)
    n = len(atoms)
    tolerance = 1e-11 if isinstance(calculator, lodekit.SphericalExpansion) else LODE_ACCURACY
    for a, b in zip(original.values, result.values, strict=True):
        np.testing.assert_allclose(b[:n], a, rtol=0, atol=tolerance * scale(original))
        np.testing.assert_allclose(b[n:], a, rtol=0, atol=tolerance * scale(original))
