"""Range separation and the accuracy option (math.md §4.3)."""

import numpy as np
import pytest
from ase.build import bulk

import lodekit
from lodekit import InputError
from tests.helpers import (
    cubic_box,
    featomic_lode,
    max_relative_difference,
    random_structure,
    three_species_box,
    triclinic_box,
)


def dense_box(rng):
    cell = [[10.0, 0.0, 0.0], [0.8, 9.6, 0.0], [-0.5, 0.4, 10.2]]
    return random_structure(rng, cell, ["O"] * 18 + ["H"] * 18 + ["Na"] * 4, min_distance=1.3)


@pytest.mark.parametrize("smearing", [0.3, 0.5])
@pytest.mark.parametrize("exponent", [1, 3, 6])
def test_range_separated_result_equals_converged_featomic(smearing, exponent):
    pytest.importorskip("featomic")
    atoms = dense_box(np.random.default_rng(21))
    hypers = dict(smearing=smearing, exponent=exponent, max_radial=4, max_angular=3, radius=3.5)
    calculator = lodekit.LodeSphericalExpansion(**hypers, accuracy=1e-10)
    plan = calculator.plan(atoms)[0]
    assert plan["method"] == "range_separated"
    assert plan["split_smearing"] > smearing
    # exp(-(k sigma)^2 / 2) = 1e-18 at the cutoff: featomic's sum is converged
    reference = featomic_lode(atoms, weight=1.0, k_cutoff=9.1 / smearing, **hypers)
    ours = calculator.compute(atoms)
    assert ours.info["structures"][0] == plan
    assert max_relative_difference(reference, ours.to_tensormap()) < 1e-8


STRUCTURES = {
    "three_species": three_species_box,
    "triclinic": triclinic_box,
    "dense": dense_box,
    "rocksalt": lambda rng: bulk("NaCl", "rocksalt", a=5.64).repeat((2, 2, 2)),
}


@pytest.mark.parametrize("kind", sorted(STRUCTURES))
@pytest.mark.parametrize("exponent", [0, 1, 2, 3, 4, 6])
def test_accuracy_option_meets_the_requested_accuracy(kind, exponent):
    atoms = STRUCTURES[kind](np.random.default_rng(5))
    hypers = dict(smearing=0.45, exponent=exponent, max_radial=4, max_angular=3, radius=4.0)
    tight = lodekit.LodeSphericalExpansion(**hypers, k_cutoff=9.5 / 0.45).compute(atoms)
    scale = max(np.abs(v).max() for v in tight.values)
    for accuracy in (1e-4, 1e-6, 1e-8):
        result = lodekit.LodeSphericalExpansion(**hypers, accuracy=accuracy).compute(atoms)
        error = max(np.abs(a - b).max() for a, b in zip(result.values, tight.values, strict=True))
        assert error <= accuracy * scale, (accuracy, result.info)


def test_accuracy_for_molecules_is_the_exact_path():
    rng = np.random.default_rng(0)
    atoms = three_species_box(rng)
    atoms.pbc = False
    calculator = lodekit.LodeSphericalExpansion(
        smearing=0.5, max_radial=3, max_angular=2, radius=3.0, accuracy=1e-6
    )
    assert calculator.plan(atoms) == [{"method": "molecule", "table_accuracy": 1e-13}]
    plain = lodekit.LodeSphericalExpansion(smearing=0.5, max_radial=3, max_angular=2, radius=3.0)
    for a, b in zip(calculator.compute(atoms).values, plain.compute(atoms).values, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (dict(accuracy=1e-15), "`accuracy` is 1e-15 but must be between 1e-14 and 0.1"),
        (dict(accuracy=0.5), "`accuracy` is 0.5 but must be between"),
        (dict(accuracy=-1.0), "`accuracy` is -1.0 but must be positive"),
        (dict(accuracy=1e-6, k_cutoff=5.0), "give one of them"),
    ],
)
def test_accuracy_errors(changes, message):
    with pytest.raises(InputError, match=message):
        lodekit.LodeSphericalExpansion(
            smearing=1.0, max_radial=2, max_angular=1, radius=3.0, **changes
        )


def test_smearing_larger_than_half_the_cell_height_cannot_be_met():
    atoms = bulk("Cu", "fcc", a=3.6)  # primitive cell, height ~2.1 Å
    calculator = lodekit.LodeSphericalExpansion(
        smearing=1.2, max_radial=2, max_angular=1, radius=3.0, accuracy=1e-6
    )
    with pytest.raises(InputError, match="must not exceed half the shortest cell height"):
        calculator.compute(atoms)


def test_accuracy_round_trips_through_json():
    calculator = lodekit.LodeSphericalExpansion(
        smearing=0.4, max_radial=2, max_angular=1, radius=3.0, accuracy=1e-7
    )
    again = lodekit.LodeSphericalExpansion.from_json(calculator.to_json())
    assert again == calculator and again.accuracy == 1e-7


def test_range_separated_energy_is_continuous_as_a_pair_crosses_the_cutoff():
    """Move an atom so that one pair sweeps through the switch and past the real-space cutoff:
    E = sum G · c must change by exactly the integral of its gradient (trapezoid rule over
    small steps). A hard cut would jump there by what was neglected, which with a loose
    accuracy of 1e-3 is far above the quadrature error."""
    from lodekit.neighbors import neighbor_pairs

    rng = np.random.default_rng(21)
    atoms = cubic_box(rng)
    calculator = lodekit.LodeSphericalExpansion(
        smearing=0.3, exponent=1, max_radial=2, max_angular=2, radius=3.0, accuracy=1e-3
    )
    plan = calculator.plan(atoms)[0]
    assert plan["method"] == "range_separated" and plan["switch_width"] > 0
    cutoff = plan["real_space_cutoff"]
    # the pair of atom 0 just outside the cutoff; atom 0 walks 0.9 Å towards it
    i, j, vectors = neighbor_pairs(lodekit.System.from_ase(atoms), cutoff + 0.5)
    mine = (i == 0) & (j != 0)
    distances = np.linalg.norm(vectors[mine], axis=1)
    target = np.argmin(np.abs(distances - (cutoff + 0.2)))
    direction = vectors[mine][target] / distances[target]
    upstream = [rng.normal(size=v.shape) for v in calculator.compute(atoms).values]

    steps = np.linspace(0.0, 0.9, 181)
    energies, slopes = [], []
    for t in steps:
        moved = atoms.copy()
        moved.positions[0] += t * direction
        values = calculator.compute(moved).values
        energies.append(sum(np.sum(g * v) for g, v in zip(upstream, values, strict=True)))
        gradient = calculator.vector_jacobian_product(moved, upstream)["positions"][0]
        slopes.append(gradient[0] @ direction)
    energies, slopes = np.array(energies), np.array(slopes)
    dt = steps[1] - steps[0]
    predicted = 0.5 * (slopes[1:] + slopes[:-1]) * dt
    mismatch = np.abs(np.diff(energies) - predicted).max()
    assert mismatch < 1e-6 * np.abs(energies).max(), mismatch
