"""Invariants and lambda-equivariants under rotations and inversion; reductions; norms."""

import numpy as np
import pytest

import lodekit
from lodekit import InputError
from lodekit.features import equivariant_product, lode_nu1, normalize, power_spectrum
from lodekit.testing import random_rotation, wigner_d_real
from tests.helpers import molecule, three_species_box, transformed

SOAP = lodekit.SphericalExpansion(cutoff=3.5, smearing=0.4, max_radial=3, max_angular=3)
LODE = lodekit.LodeSphericalExpansion(smearing=0.8, max_radial=3, max_angular=3, radius=3.5)


def expansions(atoms):
    return SOAP.compute(atoms), LODE.compute(atoms)


@pytest.mark.parametrize("make", [three_species_box, molecule], ids=["periodic", "molecule"])
def test_invariants_do_not_change_under_rotation_and_inversion(make):
    rng = np.random.default_rng(3)
    atoms = make(np.random.default_rng(1))
    rho, v = expansions(atoms)
    for matrix in (random_rotation(rng), -np.eye(3), -random_rotation(rng)):
        rho_r, v_r = expansions(transformed(atoms, matrix))
        for before, after in [
            (power_spectrum(rho), power_spectrum(rho_r)),
            (power_spectrum(v), power_spectrum(v_r)),
            (power_spectrum(rho, v), power_spectrum(rho_r, v_r)),
            (lode_nu1(v), lode_nu1(v_r)),
        ]:
            scale = np.abs(before.values).max()
            np.testing.assert_allclose(after.values, before.values, rtol=0, atol=1e-10 * scale)


@pytest.mark.parametrize(
    ("o3_lambda", "o3_sigma"), [(0, 1), (1, 1), (1, -1), (2, 1), (2, -1), (3, 1), (3, -1)]
)
def test_equivariants_rotate_with_wigner_d(o3_lambda, o3_sigma):
    rng = np.random.default_rng(o3_lambda)
    atoms = three_species_box(np.random.default_rng(2))
    rho, v = expansions(atoms)
    features = equivariant_product(rho, v, o3_lambda=o3_lambda, o3_sigma=o3_sigma)
    scale = np.abs(features.values).max()
    rotation = random_rotation(rng)
    for matrix in (rotation, -rotation):
        rho_r, v_r = expansions(transformed(atoms, matrix))
        after = equivariant_product(rho_r, v_r, o3_lambda=o3_lambda, o3_sigma=o3_sigma)
        wigner = wigner_d_real(matrix, o3_lambda)[o3_lambda]
        expected = np.einsum("mk,ikq->imq", wigner, features.values)
        if matrix is not rotation:
            # under inversion T -> (-1)^(l1 + l2) T = (-1)^lambda sigma T, and the Wigner-D
            # matrix of an improper rotation already carries the (-1)^lambda
            expected = expected * o3_sigma
        np.testing.assert_allclose(after.values, expected, rtol=0, atol=1e-10 * scale)


def test_lambda_zero_product_is_the_power_spectrum():
    """<l m; l m' | 0 0> = (-1)^(l-m) delta_{m,-m'} / sqrt(2l+1) for complex harmonics, which in
    the real basis is (-1)^l delta_mm' / sqrt(2l+1): the lambda = 0 product of two expansions
    is (-1)^l / sqrt(2l+1) sum_m A^a_{nlm} B^b_{klm}, featomic's power spectrum. Both against
    that sum written out here, column by column as each result's properties label it (the
    two results order their columns differently)."""
    atoms = three_species_box(np.random.default_rng(5))
    rho, v = expansions(atoms)
    product = equivariant_product(rho, v, o3_lambda=0)
    spectrum = power_spectrum(rho, v)
    rho_types, v_types = list(rho.neighbor_types), list(v.neighbor_types)

    def written_out(l, a, n, b, k):
        first = rho.values[l][:, rho_types.index(a), :, n]
        second = v.values[l][:, v_types.index(b), :, k]
        return (-1) ** l / np.sqrt(2 * l + 1) * np.sum(first * second, axis=1)

    assert product.values.shape[1] == 1
    assert np.all(product.properties[:, 0] == product.properties[:, 1])  # l_1 = l_2
    expected = np.column_stack([written_out(*p[1:]) for p in product.properties])
    scale = np.abs(expected).max()
    np.testing.assert_allclose(product.values[:, 0, :], expected, rtol=0, atol=1e-12 * scale)
    expected = np.column_stack([written_out(*p) for p in spectrum.properties])
    np.testing.assert_allclose(spectrum.values, expected, rtol=0, atol=1e-12 * scale)
    # every (l, a, n, b, k) once in each
    assert len({tuple(p) for p in spectrum.properties}) == spectrum.values.shape[1]
    assert {tuple(p[1:]) for p in product.properties} == {tuple(p) for p in spectrum.properties}


def test_structure_sum_and_mean():
    frames = [three_species_box(np.random.default_rng(s)) for s in (1, 2, 3)]
    features = lode_nu1(LODE.compute(frames))
    total, mean = features.structure_sum(), features.structure_mean()
    assert total.values.shape == (3, features.n_features)
    assert total.sample_names == ("system",)
    for s in range(3):
        rows = features.samples[:, 0] == s
        np.testing.assert_allclose(total.values[s], features.values[rows].sum(axis=0))
        np.testing.assert_allclose(mean.values[s], features.values[rows].mean(axis=0))


def test_normalisation_is_rotation_invariant_and_unit():
    atoms = three_species_box(np.random.default_rng(6))
    rho, v = expansions(atoms)
    invariant = normalize(power_spectrum(rho))
    np.testing.assert_allclose(np.linalg.norm(invariant.values, axis=1), 1.0)
    tensor = equivariant_product(rho, v, o3_lambda=2)
    unit = normalize(tensor)
    self_product = np.einsum("imq,inq->imn", unit.values, unit.values)
    np.testing.assert_allclose(np.linalg.norm(self_product, axis=(1, 2)), 1.0)
    rotation = random_rotation(np.random.default_rng(0))
    rho_r, v_r = expansions(transformed(atoms, rotation))
    rotated = normalize(equivariant_product(rho_r, v_r, o3_lambda=2))
    wigner = wigner_d_real(rotation, 2)[2]
    np.testing.assert_allclose(
        rotated.values, np.einsum("mk,ikq->imq", wigner, unit.values), atol=1e-10
    )


def test_pseudo_scalars_of_two_expansions_do_not_exist():
    rho = SOAP.compute(three_species_box(np.random.default_rng(8)))
    with pytest.raises(InputError, match="no \\(l_1, l_2\\) pair gives o3_lambda=0"):
        equivariant_product(rho, o3_lambda=0, o3_sigma=-1)


def test_feature_errors():
    atoms = three_species_box(np.random.default_rng(7))
    rho = SOAP.compute(atoms)
    other = LODE.compute(atoms, selected_atoms=[0, 1])
    with pytest.raises(InputError, match="different centres"):
        power_spectrum(rho, other)
    with pytest.raises(InputError, match="`o3_lambda` is 9"):
        equivariant_product(rho, o3_lambda=9)
    with pytest.raises(InputError, match="`o3_sigma` is 0"):
        equivariant_product(rho, o3_lambda=1, o3_sigma=0)
    with pytest.raises(InputError, match="distinct_pairs"):
        power_spectrum(rho, LODE.compute(atoms), distinct_pairs=True)
