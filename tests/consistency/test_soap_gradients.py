"""Gradients of the SOAP expansion contracted with an upstream gradient: finite differences of
sum G · c (positions and strain; periodic, slab and molecule; both cutoff functions; splined
and exact radial integrals); featomic 0.6.7's position gradients:
tests/reference/test_featomic_gradients.py."""

import itertools

import numpy as np
import pytest

import lodekit
from tests.helpers import deformed, molecule, three_species_box, three_species_slab, triclinic_box


def _energy(calculator, atoms, weights):
    return sum(
        np.sum(w * v) for w, v in zip(weights, calculator.compute(atoms).values, strict=True)
    )


@pytest.mark.parametrize("kind", ["triclinic", "three_species", "slab", "molecule"])
@pytest.mark.parametrize("cutoff_function", ["step", "shifted_cosine"])
@pytest.mark.parametrize("spline", [None, 1e-10])
def test_soap_vector_jacobian_product_matches_finite_differences(kind, cutoff_function, spline):
    rng = np.random.default_rng(30)
    atoms = {
        "triclinic": triclinic_box,
        "three_species": three_species_box,
        "slab": three_species_slab,
    }.get(kind, lambda r: molecule(r, 9))(rng)
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
    # a slab: all nine components (shears along the normal included)
    components = [(0, 0), (0, 1), (2, 1), (2, 2)]
    if kind == "slab":
        components = list(itertools.product(range(3), range(3)))
    for a, b in components:
        values = [_energy(calculator, deformed(atoms, a, b, sign * h), weights) for sign in (1, -1)]
        fd = (values[0] - values[1]) / (2 * h)
        assert (
            abs(gradients["strain"][0, a, b] - fd) < tolerance * np.abs(gradients["strain"]).max()
        )
