"""LODE and SOAP with the monomial radial basis against featomic 0.6.7's ``Monomials``."""

import numpy as np
import pytest

import lodekit
from tests.helpers import (
    cubic_box,
    featomic_lode_monomials,
    featomic_soap_monomials,
    max_relative_difference,
    molecule,
    three_species_box,
    triclinic_box,
)

pytest.importorskip("featomic")

STRUCTURES = {"cubic": cubic_box, "triclinic": triclinic_box, "three_species": three_species_box}


def _lode_cases():
    """Every (weight, exponent, cell); the fast suite runs each exponent once, cells and
    weights taken in turn, and the rest of the grid is marked slow (about 2 s per case)."""
    kinds = sorted(STRUCTURES)
    for i, exponent in enumerate([0, 1, 2, 3, 4, 6]):
        for weight in (1.0, 0.3):
            for kind in kinds:
                fast = kind == kinds[i % 3] and weight == (1.0, 0.3)[i % 2]
                marks = () if fast else (pytest.mark.slow,)
                yield pytest.param(kind, exponent, weight, marks=marks)


@pytest.mark.parametrize(("kind", "exponent", "weight"), list(_lode_cases()))
def test_monomial_lode_matches_featomic(kind, exponent, weight):
    atoms = STRUCTURES[kind](np.random.default_rng(7))
    hypers = dict(
        smearing=0.9, exponent=exponent, max_radial=3, max_angular=4, radius=4.5, k_cutoff=4.5
    )
    # 4000 spline points: featomic's cubic spline of I_nl(k) is exact to ~1e-13
    reference = featomic_lode_monomials(atoms, weight=weight, n_points=4000, **hypers)
    calculator = lodekit.LodeSphericalExpansion(
        center_atom_weight=weight, radial_basis="monomials", **hypers
    )
    assert max_relative_difference(reference, calculator.compute(atoms).to_tensormap()) < 1e-10


@pytest.mark.parametrize("exponent", [1, pytest.param(6, marks=pytest.mark.slow)])
def test_range_separated_monomial_lode_equals_converged_featomic(exponent):
    from tests.reference.test_range_separation import dense_box

    atoms = dense_box(np.random.default_rng(21))
    hypers = dict(smearing=0.3, exponent=exponent, max_radial=3, max_angular=3, radius=3.5)
    calculator = lodekit.LodeSphericalExpansion(**hypers, accuracy=1e-10, radial_basis="monomials")
    plan = calculator.plan(atoms)[0]
    assert plan["method"] == "range_separated"
    # exp(-(k sigma)^2 / 2) = 1e-18 at the cutoff: featomic's sum is converged
    reference = featomic_lode_monomials(
        atoms, weight=1.0, k_cutoff=9.1 / 0.3, n_points=12000, **hypers
    )
    assert max_relative_difference(reference, calculator.compute(atoms).to_tensormap()) < 1e-8


@pytest.mark.parametrize(
    ("periodic", "cutoff_function", "spline_accuracy"),
    [
        (True, "step", None),
        (False, "shifted_cosine", None),
        pytest.param(True, "shifted_cosine", 1e-10, marks=pytest.mark.slow),
        pytest.param(False, "step", 1e-10, marks=pytest.mark.slow),
    ],
)
def test_monomial_soap_matches_featomic(periodic, cutoff_function, spline_accuracy):
    rng = np.random.default_rng(11)
    atoms = three_species_box(rng) if periodic else molecule(rng, 12)
    hypers = dict(
        cutoff=3.5,
        cutoff_function=cutoff_function,
        cutoff_width=0.8,
        smearing=0.4,
        max_radial=3,
        max_angular=4,
    )
    reference = featomic_soap_monomials(atoms, weight=0.3, **hypers)
    calculator = lodekit.SphericalExpansion(
        center_atom_weight=0.3,
        spline_accuracy=spline_accuracy,
        radial_basis="monomials",
        **hypers,
    )
    assert max_relative_difference(reference, calculator.compute(atoms).to_tensormap()) < 1e-10
