"""Sparse feature Jacobians (rows by (environment, atom) pair, the chain rule on the expansions'
sparse Jacobians): against the dense forward products over every atom, against central
differences of the features, and through kernel force training."""

import numpy as np
import pytest

import lodekit
from lodekit.features import FEATURE_KINDS, Recipe
from lodekit.features.kinds import FeatureKind
from lodekit.features.sparse_jvp import row_tangent
from lodekit.interatomic import LodePotential
from lodekit.models import AdditiveKernelRidge, SparseJacobian, StructureRidge
from tests.helpers import random_structure, triclinic_box

SOAP = {"calculator": "spherical_expansion", "cutoff": 3.0, "smearing": 0.4, "max_radial": 2,
        "max_angular": 2, "spline_accuracy": None}  # fmt: skip
LODE = {"calculator": "lode_spherical_expansion", "smearing": 0.8, "max_radial": 2,
        "max_angular": 2, "radius": 3.5}  # fmt: skip

#: Every feature kind: the SOAP power spectrum split by centre type, rho x V, LODE nu = 1 and
#: its power spectrum, and lambda = 1 equivariants of SOAP x LODE and of SOAP with itself
ALL_KINDS = {
    "blocks": [
        {"kind": "power_spectrum", "expansion": SOAP, "center_types": [1, 8]},
        {"kind": "rho_x_v", "density": SOAP, "potential": LODE},
        {"kind": "nu1", "expansion": LODE},
        {"kind": "power_spectrum", "expansion": LODE},
        {"kind": "equivariant", "first": SOAP, "second": LODE, "o3_lambda": 1},
        {"kind": "equivariant", "first": SOAP, "second": SOAP, "o3_lambda": 1, "o3_sigma": -1},
    ]
}


def _molecule():
    """13 atoms (O, H) in a 9 Å box, not periodic: many pairs beyond the 3 Å SOAP cutoff."""
    atoms = random_structure(
        np.random.default_rng(3), np.eye(3) * 9.0, ["O"] * 5 + ["H"] * 8, min_distance=1.0,
        pbc=False,
    )  # fmt: skip
    atoms.cell = np.zeros((3, 3))
    return atoms


STRUCTURES = {"bulk": lambda: triclinic_box(np.random.default_rng(2)), "molecule": _molecule}


def _dense_jacobian(recipe, expanded, n_atoms):
    """The dense reference: every expansion's Jacobian made dense over (centres, 3 x atoms),
    then the recipe's forward products (Recipe.jvp)."""
    tangents = []
    for expansion in expanded.expansions:
        gradient = expansion.gradients["positions"]
        tangent = []
        for values in gradient.values:
            dense = np.zeros((len(expansion), n_atoms, *values.shape[1:]))
            dense[gradient.samples[:, 0], gradient.samples[:, 2]] = values
            tangent.append(dense.reshape(len(expansion), 3 * n_atoms, *values.shape[2:]))
        tangents.append(tangent)
    out = recipe.jvp(expanded, tangents)
    return out.reshape(out.shape[0], n_atoms, 3, out.shape[2])


@pytest.mark.parametrize("structure", list(STRUCTURES))
def test_sparse_jacobian_matches_dense_products_and_finite_differences(structure):
    """Every feature kind, on a triclinic cell and on a molecule: the sparse rows equal the
    dense forward products over every atom (1e-12 of the largest entry) and the dense form
    built from them equals central differences of the features (h = 1e-5). The species list
    holds C, absent from the structures: its channels are zero, and so are their rows."""
    atoms = STRUCTURES[structure]()
    potential = LodePotential(StructureRidge(), ALL_KINDS, species=[1, 6, 8])
    jacobian = potential.feature_jacobian(atoms, sparse=True)
    assert isinstance(jacobian, SparseJacobian) and jacobian.strain is None
    assert len(np.unique(jacobian.keys, axis=0)) == len(jacobian.keys)
    expanded = potential._expand(atoms, gradients=["positions"])
    reference = _dense_jacobian(potential.recipe, expanded, len(atoms))
    scale = np.abs(reference).max()
    dense = jacobian.to_dense()
    assert np.abs(dense - reference).max() < 1e-12 * scale
    np.testing.assert_array_equal(dense, potential.feature_jacobian(atoms))
    h = 1e-5
    for j, alpha in [(0, 0), (6, 1), (12, 2)]:
        moved = [atoms.copy(), atoms.copy()]
        moved[0].positions[j, alpha] += h
        moved[1].positions[j, alpha] -= h
        fd = (potential._forward(moved[0])[1] - potential._forward(moved[1])[1]) / (2 * h)
        assert np.abs(dense[:, j, alpha] - fd).max() < 1e-7 * scale


def test_soap_rows_are_the_pairs_within_the_cutoff():
    """A SOAP-only recipe on the molecule keeps exactly the (centre, atom) pairs closer than
    the cutoff plus each centre that has one (brute-force distances), fewer than atoms x
    atoms; the rows of LODE cover every pair."""
    atoms = _molecule()
    soap = {"blocks": [{"kind": "power_spectrum", "expansion": SOAP}]}
    jacobian = LodePotential(StructureRidge(), soap).feature_jacobian(atoms, sparse=True)
    distances = atoms.get_all_distances()
    within = distances < SOAP["cutoff"]
    np.fill_diagonal(within, False)
    # a centre with no neighbour has a constant environment: no row, not even its own
    np.fill_diagonal(within, within.any(axis=1))
    expected = {(int(i), int(j)) for i, j in zip(*np.nonzero(within), strict=True)}
    assert {tuple(k) for k in jacobian.keys.tolist()} == expected
    assert len(jacobian.keys) < 0.6 * len(atoms) ** 2
    lode = {"blocks": [{"kind": "nu1", "expansion": LODE}]}
    rows = LodePotential(StructureRidge(), lode).feature_jacobian(atoms, sparse=True).keys
    assert len(rows) == len(atoms) ** 2


@pytest.mark.parametrize("name", ["power_spectrum", "rho_x_v", "equivariant"])
def test_kind_sparse_passes_match_the_generic_fallback(name):
    """Each kind's own sparse pass against FeatureKind's default (its dense jvp over the
    atoms of the rows, kept on the rows): same rows, same values."""
    atoms = _molecule()
    block = next(b for b in ALL_KINDS["blocks"] if b["kind"] == name)
    recipe = Recipe.from_dict({"blocks": [{k: v for k, v in block.items() if k != "center_types"}]})
    expanded = recipe.expand(atoms, gradients=["positions"])
    kind = FEATURE_KINDS[name]
    inputs = recipe._inputs(0, expanded)
    tangents = [
        row_tangent(expanded.expansions[i], expanded.species, expanded.neighbor_types[i])
        for i in recipe._uses[0]
    ]
    options = recipe.blocks[0].options
    keys, values = kind.sparse_jvp(inputs, tangents, **options)
    fallback_keys, fallback = FeatureKind.sparse_jvp(kind, inputs, tangents, **options)
    order, fallback_order = np.lexsort(keys.T[::-1]), np.lexsort(fallback_keys.T[::-1])
    np.testing.assert_array_equal(keys[order], fallback_keys[fallback_order])
    scale = np.abs(fallback).max()
    assert np.abs(values[order] - fallback[fallback_order]).max() < 1e-12 * scale


def test_sparse_jacobian_container():
    """Dense round trip, the sum over environments, the strain rows and bad input."""
    rng = np.random.default_rng(0)
    dense = rng.normal(size=(4, 5, 3, 6))
    dense[0, 3] = 0.0
    strain = rng.normal(size=(4, 3, 3, 6))
    jacobian = SparseJacobian.from_dense(dense, strain)
    np.testing.assert_array_equal(jacobian.to_dense(), dense)
    np.testing.assert_allclose(jacobian.summed(), dense.sum(axis=0), rtol=1e-14)
    stacked = jacobian.with_strain_rows(0.5)
    np.testing.assert_array_equal(stacked.to_dense(), np.concatenate([dense, 0.5 * strain], axis=1))
    only = jacobian.with_strain_rows(0.5, positions=False)
    np.testing.assert_array_equal(only.to_dense(), 0.5 * strain)
    with pytest.raises(lodekit.InputError, match="keys"):
        SparseJacobian(np.array([[0, 5]]), np.zeros((1, 3, 6)), 4, 5)
    with pytest.raises(lodekit.InputError, match="values"):
        SparseJacobian(np.array([[0, 1]]), np.zeros((1, 2, 6)), 4, 5)
    with pytest.raises(lodekit.InputError, match="no strain"):
        SparseJacobian(np.array([[0, 1]]), np.zeros((1, 3, 6)), 4, 5).with_strain_rows()


def _force_frames(n_frames):
    from ase.calculators.lj import LennardJones

    rng = np.random.default_rng(0)
    frames = []
    for _ in range(n_frames):
        atoms = random_structure(rng, np.eye(3) * 6.5, ["O"] * 4 + ["H"] * 6, min_distance=1.6)
        atoms.calc = LennardJones(sigma=1.6, epsilon=0.1, rc=4.0, smooth=True)
        atoms.info["energy"] = atoms.get_potential_energy()
        atoms.arrays["forces"] = atoms.get_forces()
        frames.append(atoms)
    return frames


def test_kernel_force_rows_from_sparse_and_dense_jacobians_agree():
    """AdditiveKernelRidge's force rows from SparseJacobians (contracted row by row) equal
    those from dense Jacobians, with two normalised blocks, a standardised linear block and
    zeta = 2; the fitted weights agree, and the rows give the potential's forces (its
    backward chain, independent of both)."""
    frames = _force_frames(4)
    recipe = {
        "blocks": [
            {"kind": "power_spectrum", "expansion": SOAP},
            {"kind": "rho_x_v", "density": SOAP, "potential": LODE},
            {"kind": "nu1", "expansion": LODE},
        ]
    }
    probe = LodePotential(StructureRidge(), recipe, species=[1, 8])
    features = probe.recipe.compute(frames, [1, 8])
    x, groups, centres = features.values, features.samples[:, 0], features.samples[:, 2]
    energies = np.array([a.info["energy"] for a in frames])
    forces = [a.arrays["forces"] for a in frames]
    sparse = [probe.feature_jacobian(a, sparse=True) for a in frames]
    dense = [j.to_dense() for j in sparse]
    options = dict(zeta=2, alpha=1e-8, n_sparse=25, feature_blocks=probe.recipe.widths([1, 8]),
                   linear_blocks=[2], standardize_linear=True)  # fmt: skip
    model = AdditiveKernelRidge(**options).fit(x, energies, groups, centres)
    for a in range(len(frames)):
        members = groups == a
        from_dense = model._derivative_rows(x[members], dense[a].reshape(10, -1, x.shape[1]))
        from_sparse = model._sparse_derivative_rows(x[members], sparse[a])
        assert np.abs(from_sparse - from_dense).max() < 1e-12 * np.abs(from_dense).max()
    a = 2
    rows = model._sparse_derivative_rows(x[groups == a], sparse[a])
    predicted = LodePotential(model, recipe, species=[1, 8]).compute(frames[a], stress=False)
    np.testing.assert_allclose(
        -(rows @ model.weights_).reshape(-1, 3), predicted["forces"], rtol=0,
        atol=1e-10 * np.abs(predicted["forces"]).max(),
    )  # fmt: skip
    fitted = [
        AdditiveKernelRidge(**options).fit(
            x, energies, groups, centres, forces=forces, feature_jacobians=jacobians
        )
        for jacobians in (dense, sparse)
    ]
    np.testing.assert_allclose(fitted[1].weights_, fitted[0].weights_, rtol=1e-8, atol=1e-10)
    narrow = [SparseJacobian(j.keys, j.values[:, :, :5], 10, 10) for j in sparse]
    with pytest.raises(lodekit.InputError, match=r"environments, atoms, features"):
        AdditiveKernelRidge(**options).fit(
            x, energies, groups, centres, forces=forces, feature_jacobians=narrow
        )


@pytest.mark.parametrize("model", ["kernel", "linear"])
def test_training_on_forces_and_stress_gives_the_model_of_dense_jacobians(model):
    """Regression guard: lodekit's training path (sparse Jacobians, strain as three more rows)
    fits the model that the dense Jacobians gave before (positions and strain / n_atoms
    stacked as before): forces of two cells, the stress of one of them and of a third cell
    without forces, a fourth cell by its energy only."""
    from lodekit.interatomic.labels import Labels
    from lodekit.interatomic.training import _derivative_targets, train_potential

    frames = _force_frames(4)
    energies = np.array([a.info["energy"] for a in frames])
    forces = [a.arrays["forces"] for a in frames[:2]] + [None, None]
    stress = [None, 0.01 * np.eye(3), 0.02 * np.eye(3) + 0.001, None]
    labels = Labels(energies, forces, stress, np.array([len(a) for a in frames]))
    recipe = Recipe.from_dict({"blocks": [{"kind": "power_spectrum", "expansion": SOAP},
                                          {"kind": "nu1", "expansion": LODE}]})  # fmt: skip
    options = dict(model=model, alphas=[1e-8], force_weights=[0.3], n_sparse=20)
    potential, _ = train_potential(frames, labels, recipe, **options)

    # the same fit from dense Jacobians, as the training path built them before
    probe = LodePotential(potential.model, recipe, species=[1, 8])
    features = recipe.compute(frames, [1, 8])
    targets = _derivative_targets(frames, labels, True)

    def dense(a):
        if stress[a] is None:
            out = probe.feature_jacobian(frames[a])
        else:
            positions, strain = probe.feature_jacobian(frames[a], strain=True)
            if forces[a] is None:
                positions = positions[:, :0]
            out = np.concatenate([positions, strain / len(frames[a])], axis=1)
        return out.sum(axis=0) if model == "linear" else out

    reference = type(potential.model)(**potential.model.get_params())
    name = "feature_jacobians" if model == "kernel" else "feature_derivatives"
    reference.fit(
        features.values, energies, features.samples[:, 0], features.samples[:, 2],
        forces=targets, force_weight=[0.3], structure_weights=1.0 / labels.n_atoms,
        **{name: dense},
    )  # fmt: skip
    attribute = "weights_" if model == "kernel" else "coef_"
    got, expected = getattr(potential.model, attribute), getattr(reference, attribute)
    np.testing.assert_allclose(got, expected, rtol=1e-8, atol=1e-12 * np.abs(expected).max())
