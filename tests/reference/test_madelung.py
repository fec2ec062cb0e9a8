"""Madelung constants from p = 1 LODE coefficients (math.md §7.2)."""

import numpy as np
import pytest
from ase.build import bulk

import lodekit

CHARGES = {"Na": 1, "Cl": -1, "Cs": 1, "Zn": 1, "S": -1}
R0 = 0.01  # GTO radius: a very narrow probe of the potential at the centre


def madelung_constant(atoms):
    d = atoms.get_all_distances(mic=True)
    nearest = d[d > 0].min()
    atoms = atoms.copy()
    atoms.set_cell(atoms.cell / nearest, scale_atoms=True)
    calculator = lodekit.LodeSphericalExpansion(
        smearing=0.1,
        exponent=1,
        max_radial=0,
        max_angular=0,
        radius=R0,
        center_atom_weight=0.0,
        k_cutoff=50.0,
    )
    expansion = calculator.compute(atoms)
    symbols = {z: s for z, s in zip(atoms.numbers, atoms.get_chemical_symbols(), strict=True)}
    charges = np.array([CHARGES[symbols[z]] for z in expansion.neighbor_types])
    centre = next(i for i, s in enumerate(atoms.get_chemical_symbols()) if CHARGES[s] > 0)
    potential = expansion.values[0][centre, :, 0, 0] @ charges
    return -((4 * np.pi * R0**2) ** -0.75) * potential


@pytest.mark.parametrize(
    ("atoms", "expected"),
    [
        (bulk("NaCl", "rocksalt", a=5.64), 1.747565),
        (bulk("CsCl", "cesiumchloride", a=4.1), 1.762675),
        (bulk("ZnS", "zincblende", a=5.4), 1.638055),
        (bulk("ZnS", "wurtzite", a=3.8, c=3.8 * np.sqrt(8 / 3)), 1.641322),
    ],
    ids=["NaCl", "CsCl", "zincblende", "wurtzite"],
)
def test_madelung_constant(atoms, expected):
    assert madelung_constant(atoms) == pytest.approx(expected, abs=5e-5)
