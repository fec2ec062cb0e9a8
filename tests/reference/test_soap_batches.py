"""SOAP over a batch of structures: one compute equals the structures computed one by one,
and featomic 0.6.7 on the same list (issue 30: the batch runs as one pair list)."""

from concurrent.futures import ThreadPoolExecutor

import ase
import numpy as np
import pytest
from scipy.interpolate import CubicSpline

import lodekit
import lodekit.expansion.pairs as pairs_module
from lodekit.basis.spherical_harmonics import real_spherical_harmonics
from lodekit.basis.splines import TabulatedFunction
from tests.helpers import (
    cubic_box,
    featomic_soap,
    max_relative_difference,
    molecule,
    slab,
    three_species_box,
    triclinic_box,
)

HYPERS = dict(
    cutoff=4.2,
    cutoff_function="shifted_cosine",
    cutoff_width=0.8,
    smearing=0.35,
    max_radial=5,
    max_angular=4,
)


def mixed_batch(rng):
    """Different sizes, species subsets and boundaries: bulk, molecule, slab, a lone atom."""
    far = molecule(rng, 7)
    far += ase.Atoms("H", positions=[[30.0, 0.0, 0.0]])  # a centre with no neighbours
    lone = ase.Atoms("O", positions=[[0.0, 0.0, 0.0]])  # no pair at all
    return [three_species_box(rng), far, cubic_box(rng), slab(rng), lone, triclinic_box(rng)]


def channels(expansion, neighbor_types):
    """The per-l values laid out on ``neighbor_types`` (zeros for missing species)."""
    out = []
    for block in expansion.values:
        full = np.zeros((block.shape[0], len(neighbor_types), *block.shape[2:]))
        full[:, np.searchsorted(neighbor_types, expansion.neighbor_types)] = block
        out.append(full)
    return out


@pytest.mark.parametrize("weight", [1.0, 0.0])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_batch_equals_structures_one_by_one(weight, n_threads):
    structures = mixed_batch(np.random.default_rng(3))
    calculator = lodekit.SphericalExpansion(center_atom_weight=weight, **HYPERS)
    batch = calculator.compute(structures, n_threads=n_threads)
    types = batch.neighbor_types
    first = 0
    for index, atoms in enumerate(structures):
        alone = calculator.compute(atoms, n_threads=1)
        rows = slice(first, first + len(atoms))
        first += len(atoms)
        assert (batch.samples[rows, 0] == index).all()
        assert batch.samples[rows, 1:].tolist() == alone.samples[:, 1:].tolist()
        scale = max(np.abs(v).max() for v in alone.values)
        for a, b in zip(channels(alone, types), batch.values, strict=True):
            np.testing.assert_allclose(b[rows], a, rtol=0, atol=1e-13 * scale)
        mask = np.zeros((len(atoms), len(types)), dtype=bool)
        mask[:, np.searchsorted(types, alone.neighbor_types)] = alone.has_neighbors
        assert (batch.has_neighbors[rows] == mask).all()
    # the far H and the lone O have no neighbours: only their own channel, and only with weight
    lone_row = sum(len(s) for s in structures[:4])
    assert batch.has_neighbors[lone_row].sum() == (1 if weight else 0)


def test_batch_with_selected_atoms_and_small_chunks(monkeypatch):
    """Many chunks (a few pairs each) and threads give the numbers of one chunk."""
    structures = mixed_batch(np.random.default_rng(4))
    picks = [np.array([5, 0, 9]), None, np.array([], dtype=int), np.array([1]), None, None]
    calculator = lodekit.SphericalExpansion(**HYPERS)
    reference = calculator.compute(structures, selected_atoms=picks, n_threads=1)
    monkeypatch.setattr(pairs_module, "ROW_CHUNK_PAIRS", 7)
    monkeypatch.setattr(pairs_module, "MIN_THREAD_PAIRS", 1)  # threads even for small work
    monkeypatch.setattr(pairs_module, "MAX_PADDING", 1)  # halve chunks of uneven rows
    for n_threads in (1, 3):
        chunked = calculator.compute(structures, selected_atoms=picks, n_threads=n_threads)
        assert chunked.samples.tolist() == reference.samples.tolist()
        scale = max(np.abs(v).max() for v in reference.values)
        for a, b in zip(chunked.values, reference.values, strict=True):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-13 * scale)


def test_uneven_rows_are_split_and_give_the_same_numbers(monkeypatch):
    """Dimers far apart (one pair per row) beside a dense cell, in one chunk and in halves."""
    rng = np.random.default_rng(8)
    dimers = ase.Atoms(
        "CO" * 20,
        positions=[[12.0 * k, 0.0, 1.1 * (a % 2)] for k in range(20) for a in range(2)],
    )
    structures = [dimers, three_species_box(rng), dimers]
    calculator = lodekit.SphericalExpansion(**HYPERS)
    reference = calculator.compute(structures, n_threads=1)
    halves = []
    original = pairs_module.real_spherical_harmonics

    def counting(vectors, max_angular):
        halves.append(len(vectors))
        return original(vectors, max_angular)

    monkeypatch.setattr(pairs_module, "real_spherical_harmonics", counting)
    monkeypatch.setattr(pairs_module, "MAX_PADDING", 1)
    split = calculator.compute(structures, n_threads=1)
    assert len(halves) > 1  # the one chunk was cut
    scale = max(np.abs(v).max() for v in reference.values)
    for a, b in zip(split.values, reference.values, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-13 * scale)


@pytest.mark.parametrize("cutoff_function", ["step", "shifted_cosine"])
def test_batch_matches_featomic(cutoff_function):
    pytest.importorskip("featomic")
    rng = np.random.default_rng(6)
    # featomic takes bulk and molecules (not slabs) in one list; the same species in each, as
    # featomic keeps only the (centre, neighbour) species pairs that occur
    structures = [three_species_box(rng), molecule(rng, 12), three_species_box(rng)[:11]]
    hypers = {**HYPERS, "cutoff_function": cutoff_function}
    reference = featomic_soap(structures, weight=1.0, **hypers)
    ours = lodekit.SphericalExpansion(spline_accuracy=None, **hypers).compute(
        structures, n_threads=2
    )
    assert max_relative_difference(reference, ours.to_tensormap()) < 1e-10


def test_tabulated_function_is_scipys_cubic_spline():
    """The table's own evaluation (gather + Horner) against scipy on the same grid."""

    def function(x):
        return np.stack([np.sin(3 * x), np.exp(-x) * x**2, np.cos(x) ** 3], axis=1)

    table = TabulatedFunction(function, 4.0, 1e-9)
    grid = np.linspace(0.0, 4.0, table.n_points)
    spline = CubicSpline(grid, function(grid), axis=0)
    rng = np.random.default_rng(0)
    # inside, on the nodes, at both ends and past the end (the last cubic continues)
    x = np.concatenate([rng.uniform(0, 4.0, 5000), grid[::7], [0.0, 4.0, 4.01]])
    np.testing.assert_allclose(table(x), spline(x), rtol=0, atol=1e-14)
    assert table(x).shape == (len(x), 3)
    with pytest.raises(lodekit.InputError, match="`x` has negative entries"):
        table(np.array([-0.1]))


def test_spherical_harmonics_from_two_threads_at_once():
    """Concurrent calls (the batch's chunks) give the serial numbers: sphericart's work buffers
    are per OpenMP thread number, which two Python threads would share on one calculator."""
    rng = np.random.default_rng(2)
    inputs = [rng.normal(size=(3000, 3)) for _ in range(2)]
    serial = [real_spherical_harmonics(x, 12) for x in inputs]
    with ThreadPoolExecutor(2) as pool:
        for _ in range(50):
            results = list(pool.map(lambda x: real_spherical_harmonics(x, 12), inputs))
            for got, expected in zip(results, serial, strict=True):
                np.testing.assert_array_equal(got, expected)
