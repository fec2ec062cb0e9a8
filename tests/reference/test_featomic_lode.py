"""Periodic LODE coefficients against featomic 0.6.7 (math.md §4.1, §7.1)."""

import numpy as np
import pytest

import lodekit
from tests.helpers import (
    cubic_box,
    featomic_lode,
    max_relative_difference,
    random_structure,
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


@pytest.mark.parametrize("n_threads", [1, 2])
def test_frames_of_one_cell_summed_as_a_batch_match_featomic(monkeypatch, n_threads):
    """Bulk frames of one cell and size share one batch of k-space products (kspace/shells.py,
    frames axis). Frames with moved and relabelled atoms, with a structure of another cell and
    one of the same cell but another size in between, batches of at most two frames: every
    row against featomic's value for that frame, in the order given."""
    from lodekit.expansion import lode
    from lodekit.expansion.kspace import direct

    batched = []
    original = direct.shell_sum

    def spy(tables, layout, frac, *args):
        batched.append(frac.shape[0] if frac.ndim == 3 else 1)
        return original(tables, layout, frac, *args)

    monkeypatch.setattr(direct, "shell_sum", spy)
    monkeypatch.setattr(lode, "BATCH_ATOMS", 24)  # two frames of 12 atoms
    rng = np.random.default_rng(21)
    base = cubic_box(rng)
    frames = []
    for _ in range(5):
        frame = base.copy()
        frame.positions += rng.normal(scale=0.1, size=frame.positions.shape)
        numbers = frame.numbers.copy()
        rng.shuffle(numbers)
        frame.numbers = numbers
        frames.append(frame)
    other_cell = [[6.5, 0.0, 0.0], [1.7, 6.1, 0.0], [-1.1, 0.9, 7.2]]
    frames.insert(1, random_structure(rng, other_cell, ["Na"] * 5 + ["Cl"] * 5, 1.8))
    frames.insert(4, base[:-1])  # the same cell, 11 atoms
    hypers = dict(smearing=0.9, exponent=1, max_radial=4, max_angular=3, radius=4.5, k_cutoff=4.5)
    ours = lodekit.LodeSphericalExpansion(**hypers).compute(frames, n_threads=n_threads)
    # the five 12-atom frames went in batches of two (the threads cut them once more)
    assert sorted(batched, reverse=True)[:3] == [2, 2, 1]
    reference = featomic_lode(frames, weight=1.0, **hypers)
    assert max_relative_difference(reference, ours.to_tensormap()) < 1e-10
    # structures larger than a batch: one per batch (a lone one too), none left empty
    monkeypatch.setattr(lode, "BATCH_ATOMS", 5)
    ours = lodekit.LodeSphericalExpansion(**hypers).compute(frames, n_threads=n_threads)
    assert max_relative_difference(reference, ours.to_tensormap()) < 1e-10
    single = lodekit.LodeSphericalExpansion(**hypers).compute(frames[0], n_threads=n_threads)
    assert (
        max_relative_difference(
            featomic_lode(frames[0], weight=1.0, **hypers), single.to_tensormap()
        )
        < 1e-10
    )
