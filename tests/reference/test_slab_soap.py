"""SOAP spherical expansion of slabs (two periodic axes): featomic 0.6.7 on the same atoms in
a 3-D box with vacuum wider than the cutoff (exact for a local descriptor). The symmetries of
slabs are in tests/consistency/test_slab_symmetry.py (with LODE); gradients (finite differences
of positions and all nine strain components) run on the registry's slab code paths:
tests/consistency/test_jacobians.py and tests/consistency/test_soap_gradients.py."""

import numpy as np
import pytest

import lodekit
from lodekit.systems import System
from tests.helpers import (
    featomic_soap,
    max_relative_difference,
    three_species_slab,
)

HYPERS = dict(
    cutoff=4.2,
    cutoff_function="shifted_cosine",
    cutoff_width=0.8,
    smearing=0.35,
    max_radial=6,
    max_angular=5,
)
SOAP = lodekit.SphericalExpansion(spline_accuracy=None, **HYPERS)


def in_vacuum_box(atoms):
    """The slab's atoms in a 3-D periodic box: the non-periodic cell vector stretched (kept
    tilted) until the vacuum between the slab and its images is wider than the cutoff."""
    system = System.from_ase(atoms)
    _, normal, _ = system.slab_frame()
    axis = system.pbc.index(False)
    heights = atoms.positions @ normal
    vector = atoms.cell.array[axis]
    height = abs(vector @ normal)
    vacuum = HYPERS["cutoff"] + 2.0
    box = atoms.copy()
    cell = atoms.cell.array.copy()
    cell[axis] = vector * (np.ptp(heights) + vacuum) / height
    box.set_cell(cell)
    box.pbc = True
    gap = abs(cell[axis] @ normal) - np.ptp(heights)
    assert gap > HYPERS["cutoff"] + 1.0
    return box


def scale(expansion):
    return max(np.abs(v).max() for v in expansion.values)


@pytest.mark.parametrize("periodic_rows", [(0, 1), (0, 2)], ids=["pbc-TTF", "pbc-TFT"])
@pytest.mark.parametrize("weight", [1.0, 0.3])
def test_slab_matches_featomic_in_a_vacuum_box(periodic_rows, weight):
    pytest.importorskip("featomic")
    atoms = three_species_slab(np.random.default_rng(11), periodic_rows)
    assert System.from_ase(atoms).is_slab
    reference = featomic_soap(in_vacuum_box(atoms), weight=weight, **HYPERS)
    calculator = lodekit.SphericalExpansion(
        center_atom_weight=weight, spline_accuracy=None, **HYPERS
    )
    ours = calculator.compute(atoms)
    assert max_relative_difference(reference, ours.to_tensormap()) < 1e-10
    # the cutoff reaches across the in-plane boundaries: the atoms as a molecule differ
    isolated = atoms.copy()
    isolated.pbc = False
    alone = calculator.compute(isolated)
    assert np.abs(alone.values[0] - ours.values[0]).max() > 1e-2 * scale(ours)


def test_periodic_rows_do_not_matter():
    """The same atoms with the lattice in rows (0, 1) or (0, 2) of the cell."""
    first = SOAP.compute(three_species_slab(np.random.default_rng(3), (0, 1)))
    second = SOAP.compute(three_species_slab(np.random.default_rng(3), (0, 2)))
    for a, b in zip(first.values, second.values, strict=True):
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-12 * scale(first))
