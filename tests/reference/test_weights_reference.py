"""Per-atom weights against independent references.

- featomic 0.6.7 accepts coincident atoms: an atom of weight 2 (or 3) is the same atom
  duplicated (twice) at its own position, for LODE's k-space sum and for SOAP.
- With charges as weights, one channel (``species_channels=False``) and p = 1, the l = 0
  coefficient of a single narrow Gaussian basis function is the electrostatic potential at
  the atom (tin-foil Ewald, from ``lodekit.datasets.ewald_energy``; the exact 2-D Ewald sum
  of a slab; a direct Coulomb sum for a molecule): the field of the other atoms is harmonic
  around the centre, so its spherical average over every shell equals its value at the
  centre, and
  c_000 = V(r_i) sqrt(4 pi) ∫ r^2 R_0 dr = V(r_i) (4 pi r0^2)^(3/4) exactly (math.md §7.2).
"""

import logging

import numpy as np
import pytest
from scipy.special import erf

import lodekit
from lodekit.datasets import ewald_energy
from tests.helpers import (
    cubic_box,
    featomic_lode,
    featomic_soap,
    molecule,
    random_structure,
    slab,
)


def _by_atom(tensormap, n_atoms, types, max_angular, n_radial):
    """featomic's blocks as lodekit's per-l arrays (n_atoms, n_types, 2l+1, n)."""
    out = [np.zeros((n_atoms, len(types), 2 * l + 1, n_radial)) for l in range(max_angular + 1)]
    for key, block in tensormap.items():
        a = list(types).index(key["neighbor_type"])
        out[key["o3_lambda"]][block.samples.column("atom"), a] = block.values
    return out


def _duplicated(atoms):
    """Atom 2 twice and atom 5 three times (the copies appended), and the weights that stand
    for them."""
    weights = np.ones(len(atoms))
    weights[2], weights[5] = 2.0, 3.0
    return atoms + atoms[[2]] + atoms[[5]] + atoms[[5]], weights


@pytest.mark.parametrize("exponent", [1, 4])
def test_lode_integer_weights_equal_duplicated_atoms_in_featomic(exponent):
    atoms = cubic_box(np.random.default_rng(3))
    duplicated, weights = _duplicated(atoms)
    hypers = dict(smearing=0.9, exponent=exponent, max_radial=2, max_angular=2, radius=3.0)
    # center_atom_weight 1: a duplicated centre sees its own field once and its copy's
    # once, the weighted centre its own field twice
    reference = featomic_lode(duplicated, weight=1.0, k_cutoff=4.0, **hypers)
    calculator = lodekit.LodeSphericalExpansion(k_cutoff=4.0, **hypers)
    ours = calculator.compute(lodekit.System.from_ase(atoms, weights=weights))
    theirs = _by_atom(reference, len(duplicated), ours.neighbor_types, 2, 3)
    scale = np.abs(ours.values[0]).max()
    # the agreement with featomic math.md §4.1 states: 1e-12 for p = 1, 1e-9 for p = 2..6
    tolerance = 1e-12 if exponent == 1 else 1e-9
    for l in range(3):
        difference = np.abs(theirs[l][: len(atoms)] - ours.values[l]).max()
        assert difference < tolerance * scale, l
    # the same structure behind a frame of the same cell with other weights: the two are
    # summed as one batch on one thread (one k-space product per shell for both), rows in
    # order
    other = lodekit.System.from_ase(atoms, weights=np.linspace(-1.0, 2.0, len(atoms)))
    both = calculator.compute([other, lodekit.System.from_ase(atoms, weights=weights)], n_threads=1)
    for l in range(3):
        difference = np.abs(theirs[l][: len(atoms)] - both.values[l][len(atoms) :]).max()
        assert difference < tolerance * scale, l


def test_soap_integer_weights_equal_duplicated_atoms_in_featomic():
    atoms = cubic_box(np.random.default_rng(3))
    duplicated, weights = _duplicated(atoms)
    hypers = dict(
        cutoff=3.5,
        cutoff_function="shifted_cosine",
        cutoff_width=0.8,
        smearing=0.4,
        max_radial=3,
        max_angular=2,
    )
    # featomic warns about the coincident atoms, which is the point here
    logging.getLogger().setLevel(logging.ERROR)
    reference = featomic_soap(duplicated, weight=1.0, **hypers)
    calculator = lodekit.SphericalExpansion(spline_accuracy=None, **hypers)
    ours = calculator.compute(lodekit.System.from_ase(atoms, weights=weights))
    theirs = _by_atom(reference, len(duplicated), ours.neighbor_types, 2, 4)
    scale = np.abs(ours.values[0]).max()
    for l in range(3):
        assert np.abs(theirs[l][: len(atoms)] - ours.values[l]).max() < 1e-12 * scale, l


#: One Gaussian basis function of width R0 (max_radial 0): c_000 = V (4 pi R0^2)^(3/4).
R0 = 0.15
#: The atoms' smearing: erfc(d_min / (sqrt 2 SIGMA)) < 1e-18 at the closest approach 1.8 Å,
#: so the smeared charges' potential is the point charges' at every atom.
SIGMA = 0.2


def _potential_calculator(smearing=SIGMA, **hypers):
    return lodekit.LodeSphericalExpansion(
        smearing=smearing,
        exponent=1,
        max_radial=0,
        max_angular=0,
        radius=R0,
        center_atom_weight=0.0,
        weights="initial_charges",
        species_channels=False,
        **hypers,
    )


def _site_potentials(calculator, atoms):
    c = calculator.compute(atoms).values[0][:, 0, 0, 0]
    return c / (4 * np.pi * R0**2) ** 0.75


def test_weighted_p1_l0_coefficient_is_the_ewald_site_potential():
    rng = np.random.default_rng(7)
    atoms = random_structure(
        rng, [[7.5, 0.3, 0.0], [0.0, 7.0, 0.5], [0.4, 0.0, 6.8]], ["Na", "Cl"] * 6, 1.8
    )
    q = rng.normal(size=len(atoms))
    q -= q.mean()  # neutral: no background, every boundary convention agrees
    atoms.set_initial_charges(q)
    # the Ewald energy is quadratic in the charges: its central difference in q_i is the
    # potential at atom i exactly, up to rounding
    h = 1e-2
    expected = np.empty(len(atoms))
    for i in range(len(atoms)):
        plus, minus = q.copy(), q.copy()
        plus[i] += h
        minus[i] -= h
        expected[i] = (
            ewald_energy(atoms, plus, accuracy=1e-14, coulomb=1.0)
            - ewald_energy(atoms, minus, accuracy=1e-14, coulomb=1.0)
        ) / (2 * h)
    # a converged sum (range-separated at this smearing), and featomic's truncated one
    for hypers in (dict(accuracy=1e-12), dict(k_cutoff=45.0)):
        potentials = _site_potentials(_potential_calculator(**hypers), atoms)
        np.testing.assert_allclose(
            potentials, expected, rtol=0, atol=1e-9 * np.abs(expected).max(), err_msg=hypers
        )


def test_weighted_p1_l0_coefficient_is_the_coulomb_potential_of_a_molecule():
    rng = np.random.default_rng(8)
    atoms = molecule(rng, 9)  # atoms 1 Å apart at least
    q = rng.normal(size=len(atoms))  # a molecule needs no neutrality
    atoms.set_initial_charges(q)
    d = np.linalg.norm(atoms.positions[:, None] - atoms.positions[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    # a smearing of 0.1 Å: no neighbour's charge reaches into the basis function (at 1 Å its
    # density is exp(-50) of its peak), so the field is harmonic there
    sigma = 0.1
    expected = (q[None, :] * erf(d / (np.sqrt(2) * sigma)) / d).sum(axis=1)
    potentials = _site_potentials(_potential_calculator(smearing=sigma), atoms)
    np.testing.assert_allclose(potentials, expected, rtol=0, atol=1e-10 * np.abs(expected).max())


def test_weighted_p1_l0_coefficients_of_a_slab_give_its_potential_differences():
    """A neutral slab against the exact 2-D Ewald sum (``ewald_energy`` of a slab), which takes
    neutral charge sets only: its central difference along q_i - q_k (neutral) is the
    potential difference V_i - V_k."""
    rng = np.random.default_rng(9)
    atoms = slab(rng)  # 8 atoms 1.6 Å apart at least
    q = rng.normal(size=len(atoms))
    q -= q.mean()
    atoms.set_initial_charges(q)
    potentials = _site_potentials(_potential_calculator(accuracy=1e-11), atoms)
    h = 1e-2
    for i, k in [(0, 1), (2, 7), (5, 3)]:
        step = np.zeros(len(atoms))
        step[i], step[k] = h, -h
        expected = (
            ewald_energy(atoms, q + step, accuracy=1e-13, coulomb=1.0)
            - ewald_energy(atoms, q - step, accuracy=1e-13, coulomb=1.0)
        ) / (2 * h)
        # within 1e-10: the LODE slab's accuracy, 1e-11 of its largest coefficient
        assert abs(potentials[i] - potentials[k] - expected) < 1e-9 * np.abs(potentials).max()
