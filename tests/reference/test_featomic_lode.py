"""Periodic LODE coefficients against featomic 0.6.7 (math.md §4.1, §7.1)."""

import numpy as np
import pytest

import lodekit
from tests.helpers import (
    cubic_box,
    featomic_lode,
    max_relative_difference,
    three_species_box,
    triclinic_box,
)

pytest.importorskip("featomic")

STRUCTURES = {"cubic": cubic_box, "triclinic": triclinic_box, "three_species": three_species_box}


@pytest.mark.parametrize("kind", sorted(STRUCTURES))
@pytest.mark.parametrize("exponent", [0, 1, 2, 3, 4, 6])
@pytest.mark.parametrize("weight", [1.0, 0.0, 0.3])
def test_lode_matches_featomic(kind, exponent, weight):
    atoms = STRUCTURES[kind](np.random.default_rng(7))
    hypers = dict(
        smearing=0.9, exponent=exponent, max_radial=5, max_angular=4, radius=4.5, k_cutoff=4.5
    )
    reference = featomic_lode(atoms, weight=weight, **hypers)
    ours = lodekit.LodeSphericalExpansion(center_atom_weight=weight, **hypers).compute(atoms)
    assert max_relative_difference(reference, ours.to_tensormap()) < 1e-10


def test_lode_matches_featomic_for_several_structures_and_selection():
    rng = np.random.default_rng(3)
    frames = [cubic_box(rng), cubic_box(rng)]
    hypers = dict(smearing=1.0, exponent=1, max_radial=3, max_angular=2, radius=4.0, k_cutoff=4.0)
    reference = featomic_lode(frames, weight=1.0, **hypers)
    calculator = lodekit.LodeSphericalExpansion(**hypers)
    assert max_relative_difference(reference, calculator.compute(frames).to_tensormap()) < 1e-10

    full = calculator.compute(frames)
    picked = calculator.compute(frames, selected_atoms=[[5, 0, 7], None])
    rows = [5, 0, 7, *range(12, 24)]
    for l in range(3):
        np.testing.assert_allclose(picked.values[l], full.values[l][rows], rtol=0, atol=1e-14)
    np.testing.assert_array_equal(picked.samples, full.samples[rows])
