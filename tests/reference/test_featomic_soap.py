"""SOAP spherical expansion against featomic 0.6.7 (math.md §5)."""

import numpy as np
import pytest

import lodekit
from tests.helpers import featomic_soap, max_relative_difference, molecule, three_species_box

pytest.importorskip("featomic")


@pytest.mark.parametrize("periodic", [True, False])
@pytest.mark.parametrize("cutoff_function", ["step", "shifted_cosine"])
@pytest.mark.parametrize("weight", [1.0, 0.0, 0.3])
def test_soap_matches_featomic(periodic, cutoff_function, weight):
    rng = np.random.default_rng(11)
    atoms = three_species_box(rng) if periodic else molecule(rng, 12)
    hypers = dict(
        cutoff=4.2,
        cutoff_function=cutoff_function,
        cutoff_width=0.8,
        smearing=0.35,
        max_radial=6,
        max_angular=5,
    )
    reference = featomic_soap(atoms, weight=weight, **hypers)
    calculator = lodekit.SphericalExpansion(
        center_atom_weight=weight, spline_accuracy=None, **hypers
    )
    assert max_relative_difference(reference, calculator.compute(atoms).to_tensormap()) < 1e-10


def test_default_spline_is_within_its_stated_accuracy():
    """The splined radial integral stays within spline_accuracy of the closed form."""
    rng = np.random.default_rng(5)
    hypers = dict(cutoff=5.0, smearing=0.3, max_radial=6, max_angular=4)
    splined = lodekit.SphericalExpansion(spline_accuracy=1e-8, **hypers)
    exact = lodekit.SphericalExpansion(spline_accuracy=None, **hypers)
    distances = rng.uniform(0, 5.0, size=2000)
    reference = exact.radial_integral(distances)
    error = np.abs(splined.radial_integral(distances) - reference).max()
    assert error <= 1e-8 * np.abs(exact.radial_integral(np.linspace(0, 5, 2001))).max()
    assert error > 0  # really interpolated, not the closed form again
