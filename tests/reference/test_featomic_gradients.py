"""Gradients against featomic 0.6.7's gradient blocks (positions for both expansions, strain
for the density expansion; featomic has no LODE strain gradients): the blocks of
``compute(..., gradients=[...])``, the dense k-space LODE Jacobian, and the SOAP
vector-Jacobian product."""

import numpy as np
import pytest

import lodekit
from lodekit.expansion.kspace import KSPACE_BACKENDS
from tests.helpers import (
    cubic_box,
    featomic_lode,
    featomic_soap,
    kspace_problem,
    molecule,
    three_species_box,
    triclinic_box,
)

GRADIENTS = ["positions", "strain"]
LODE_HYPERS = dict(smearing=0.9, max_radial=3, max_angular=3, radius=4.0, k_cutoff=4.0)
STRUCTURES = {"cubic": cubic_box, "triclinic": triclinic_box, "three_species": three_species_box}


def _compare_gradient_blocks(reference, ours, parameters, tolerance):
    """Same keys, same gradient samples (as sets) and values within ``tolerance`` relative to
    the largest reference gradient."""
    assert reference.keys == ours.keys
    for parameter in parameters:
        scale = max(np.abs(b.gradient(parameter).values).max() for b in reference.blocks())
        for key, block in reference.items():
            expected, mine = block.gradient(parameter), ours.block(key).gradient(parameter)
            assert expected.components == mine.components
            rows = {tuple(s): i for i, s in enumerate(mine.samples.values.tolist())}
            assert set(rows) == {tuple(s) for s in expected.samples.values.tolist()}, key
            order = [rows[tuple(s)] for s in expected.samples.values.tolist()]
            difference = np.abs(expected.values - mine.values[order]).max(initial=0.0)
            assert difference < tolerance * scale, (parameter, key, difference / scale)


@pytest.mark.parametrize("make", [three_species_box, triclinic_box])
@pytest.mark.parametrize("cutoff_function", ["step", "shifted_cosine"])
def test_soap_gradient_blocks_equal_featomic(make, cutoff_function):
    atoms = make(np.random.default_rng(8))
    hypers = dict(
        cutoff=3.5,
        cutoff_function=cutoff_function,
        cutoff_width=0.6,
        smearing=0.4,
        max_radial=3,
        max_angular=3,
    )
    reference = featomic_soap(atoms, weight=0.8, gradients=GRADIENTS, **hypers)
    calculator = lodekit.SphericalExpansion(spline_accuracy=None, center_atom_weight=0.8, **hypers)
    ours = calculator.compute(atoms, gradients=GRADIENTS).to_tensormap()
    _compare_gradient_blocks(reference, ours, GRADIENTS, 1e-12)


@pytest.mark.parametrize("exponent", [1, 3, 6])
def test_lode_position_gradient_blocks_equal_featomic(exponent):
    atoms = triclinic_box(np.random.default_rng(9))
    reference = featomic_lode(
        atoms, exponent=exponent, weight=1.0, gradients=["positions"], **LODE_HYPERS
    )
    calculator = lodekit.LodeSphericalExpansion(exponent=exponent, **LODE_HYPERS)
    ours = calculator.compute(atoms, gradients=["positions"]).to_tensormap()
    _compare_gradient_blocks(reference, ours, ["positions"], 1e-9)


@pytest.mark.parametrize("kind", sorted(STRUCTURES))
@pytest.mark.parametrize("exponent", [1, 3, 6])
def test_lode_kspace_position_gradients_match_featomic(kind, exponent):
    pytest.importorskip("featomic")
    atoms = STRUCTURES[kind](np.random.default_rng(13))
    calculator = lodekit.LodeSphericalExpansion(exponent=exponent, **LODE_HYPERS)
    # the dense k-space Jacobian (in k_cutoff mode the k = 0, centre and background terms do
    # not depend on positions)
    jacobian = KSPACE_BACKENDS["direct"].jacobian(
        kspace_problem(calculator, atoms, np.arange(len(atoms))), False
    )[0]
    types = np.unique(atoms.numbers)
    reference = featomic_lode(
        atoms, exponent=exponent, weight=1.0, gradients=["positions"], **LODE_HYPERS
    )
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


@pytest.mark.parametrize("kind", ["triclinic", "molecule"])
def test_soap_vector_jacobian_product_matches_featomic(kind):
    pytest.importorskip("featomic")
    rng = np.random.default_rng(31)
    atoms = triclinic_box(rng) if kind == "triclinic" else molecule(rng, 9)
    hypers = dict(cutoff=3.5, smearing=0.4, max_radial=3, max_angular=3, cutoff_width=0.5)
    calculator = lodekit.SphericalExpansion(spline_accuracy=None, **hypers)
    reference = featomic_soap(
        atoms, cutoff_function="shifted_cosine", weight=1.0, gradients=["positions"], **hypers
    )
    ours = calculator.compute(atoms)
    types = ours.neighbor_types
    weights = [rng.normal(size=v.shape) for v in ours.values]
    expected = np.zeros((len(atoms), 3))
    for key, block in reference.items():
        l = int(key["o3_lambda"])
        a = int(np.searchsorted(types, int(key["neighbor_type"])))
        centres = np.asarray(block.samples.values)[:, 1]
        gradient = block.gradient("positions")
        rows = np.asarray(gradient.samples.values)
        w = weights[l][centres[rows[:, 0]], a]  # (rows, 2l+1, n)
        np.add.at(expected, rows[:, 2], np.einsum("gxmn,gmn->gx", np.asarray(gradient.values), w))
    gradients = calculator.vector_jacobian_product(atoms, weights)
    scale = np.abs(expected).max()
    assert np.abs(gradients["positions"][0] - expected).max() < 1e-9 * scale
