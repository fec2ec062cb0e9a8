"""Gradients of the SOAP expansion contracted with an upstream gradient: finite differences of
sum G · c (positions and strain; periodic and molecule; both cutoff functions; splined and
exact radial integrals) and featomic 0.6.7's position gradients."""

import numpy as np
import pytest

import lodekit
from tests.helpers import molecule, three_species_box, triclinic_box


def _energy(calculator, atoms, weights):
    return sum(
        np.sum(w * v) for w, v in zip(weights, calculator.compute(atoms).values, strict=True)
    )


@pytest.mark.parametrize("kind", ["triclinic", "three_species", "molecule"])
@pytest.mark.parametrize("cutoff_function", ["step", "shifted_cosine"])
@pytest.mark.parametrize("spline", [None, 1e-10])
def test_soap_vector_jacobian_product_matches_finite_differences(kind, cutoff_function, spline):
    rng = np.random.default_rng(30)
    atoms = {"triclinic": triclinic_box, "three_species": three_species_box}.get(
        kind, lambda r: molecule(r, 9)
    )(rng)
    calculator = lodekit.SphericalExpansion(
        cutoff=3.5,
        smearing=0.4,
        max_radial=3,
        max_angular=3,
        cutoff_function=cutoff_function,
        cutoff_width=0.8,
        spline_accuracy=spline,
    )
    reference = calculator.compute(atoms)
    weights = [rng.normal(size=v.shape) for v in reference.values]
    gradients = calculator.vector_jacobian_product(atoms, weights)
    scale = np.abs(gradients["positions"][0]).max()
    h = 1e-5
    tolerance = 1e-7 if spline is None else 1e-6
    for j in range(0, len(atoms), 3):
        for alpha in range(3):
            moved = [atoms.copy(), atoms.copy()]
            moved[0].positions[j, alpha] += h
            moved[1].positions[j, alpha] -= h
            fd = _energy(calculator, moved[0], weights) - _energy(calculator, moved[1], weights)
            fd /= 2 * h
            assert abs(gradients["positions"][0][j, alpha] - fd) < tolerance * scale
    if kind == "molecule":
        return
    for a, b in [(0, 0), (0, 1), (2, 1), (2, 2)]:
        values = []
        for sign in (1, -1):
            deformation = np.eye(3)
            deformation[a, b] += sign * h
            moved = atoms.copy()
            moved.set_cell(atoms.cell.array @ deformation.T, scale_atoms=True)
            values.append(_energy(calculator, moved, weights))
        fd = (values[0] - values[1]) / (2 * h)
        assert (
            abs(gradients["strain"][0, a, b] - fd) < tolerance * np.abs(gradients["strain"]).max()
        )


@pytest.mark.parametrize("kind", ["triclinic", "molecule"])
def test_soap_gradients_match_featomic(kind):
    featomic = pytest.importorskip("featomic")
    rng = np.random.default_rng(31)
    atoms = triclinic_box(rng) if kind == "triclinic" else molecule(rng, 9)
    hypers = dict(cutoff=3.5, smearing=0.4, max_radial=3, max_angular=3, cutoff_width=0.5)
    calculator = lodekit.SphericalExpansion(spline_accuracy=None, **hypers)
    reference = featomic.SphericalExpansion(
        cutoff={
            "radius": 3.5,
            "smoothing": {"type": "ShiftedCosine", "width": 0.5},
        },
        density={"type": "Gaussian", "width": 0.4},
        basis={
            "type": "TensorProduct",
            "max_angular": 3,
            "radial": {"type": "Gto", "max_radial": 3},
            "spline_accuracy": None,
        },
    ).compute(atoms, gradients=["positions"])
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
