"""LODE with several exponents in one pass (``exponent=[...]``) against separate calls with one
exponent each, and its p = 1, 3 channels against featomic 0.6.7."""

import json

import numpy as np
import pytest

import lodekit
from lodekit.errors import InputError
from lodekit.expansion.kspace import KSPACE_BACKENDS
from lodekit.features import Recipe, lode_nu1, power_spectrum
from lodekit.persistence import load_expansion, save_expansion
from tests.helpers import (
    cubic_box,
    featomic_lode,
    molecule,
    random_structure,
    slab,
    three_species_box,
    triclinic_box,
)

EXPONENTS = [1, 0, 3, 6]  # not sorted: channels follow the given order
HYPERS = dict(smearing=1.0, max_radial=3, max_angular=3, radius=4.0, center_atom_weight=0.3)


def separate(structure, exponents, gradients=None, **hypers):
    """Per-l arrays of single-exponent calls, channels concatenated exponent-major, and the
    single-exponent expansions themselves."""
    parts = [
        lodekit.LodeSphericalExpansion(exponent=p, **hypers).compute(
            structure, gradients=gradients, n_threads=1
        )
        for p in exponents
    ]
    values = [
        np.concatenate([part.values[l] for part in parts], axis=1)
        for l in range(hypers["max_angular"] + 1)
    ]
    return values, parts


def assert_close(ours, reference, tolerance=1e-14):
    scale = max(np.abs(r).max() for r in reference)
    for mine, theirs in zip(ours, reference, strict=True):
        assert mine.shape == theirs.shape
        assert np.abs(mine - theirs).max(initial=0.0) <= tolerance * scale


def range_separated_box():
    rng = np.random.default_rng(11)
    cell = np.diag([8.0, 8.5, 9.0])
    return random_structure(rng, cell, ["O"] * 10 + ["H"] * 20, min_distance=1.0)


RANGE_SEPARATED = dict(smearing=0.4, max_radial=1, max_angular=2, radius=3.0, accuracy=1e-5)


@pytest.mark.parametrize(
    "method", ["direct", "nufft"] if KSPACE_BACKENDS["nufft"].available() else ["direct"]
)
def test_periodic_equals_single_exponent_calls(method):
    atoms = triclinic_box(np.random.default_rng(2))
    hypers = dict(HYPERS, k_cutoff=4.0, kspace_method=method)
    exponents = EXPONENTS if method == "direct" else [6, 1]
    calculator = lodekit.LodeSphericalExpansion(exponent=exponents, **hypers)
    expansion = calculator.compute(atoms, n_threads=1)
    reference, parts = separate(atoms, exponents, **hypers)
    assert_close(expansion.values, reference)
    types = parts[0].neighbor_types
    np.testing.assert_array_equal(expansion.neighbor_types, np.tile(types, len(exponents)))
    np.testing.assert_array_equal(expansion.exponents, np.repeat(exponents, len(types)))
    info = expansion.info["structures"][0]
    assert info["shared"] and info["kspace_method"] == method


def test_range_separated_equals_single_exponent_calls():
    atoms = range_separated_box()
    calculator = lodekit.LodeSphericalExpansion(exponent=[1, 6], **RANGE_SEPARATED)
    plan = calculator.plan(atoms)[0]
    assert plan["method"] == "range_separated" and plan["shared"]
    # the remainder's cutoff depends on p: one pair list up to the largest
    cutoffs = [entry["real_space_cutoff"] for entry in plan["per_exponent"]]
    assert len(set(cutoffs)) > 1 and plan["real_space_cutoff"] == max(cutoffs)
    expansion = calculator.compute(atoms, n_threads=1)
    reference, _ = separate(atoms, [1, 6], **RANGE_SEPARATED)
    assert_close(expansion.values, reference)


def test_slab_equals_single_exponent_calls():
    atoms = slab(np.random.default_rng(5))
    hypers = dict(HYPERS, max_radial=2, max_angular=2, accuracy=1e-6)
    calculator = lodekit.LodeSphericalExpansion(exponent=[1, 3], **hypers)
    expansion = calculator.compute(atoms, n_threads=1)
    reference, _ = separate(atoms, [1, 3], **hypers)
    assert_close(expansion.values, reference)
    # slabs are computed exponent by exponent (their G = 0 line depends on p)
    assert not expansion.info["structures"][0]["shared"]
    upstream = [np.random.default_rng(6).normal(size=v.shape) for v in expansion.values]
    assert_vjp_is_sum(calculator, atoms, upstream, [1, 3], hypers)


def assert_gradients_concatenate(expansion, parts):
    for name, axis in (("positions", 2), ("strain", 3)):
        ours = expansion.gradients[name]
        for part in parts:
            np.testing.assert_array_equal(ours.samples, part.gradients[name].samples)
        reference = [
            np.concatenate([part.gradients[name].values[l] for part in parts], axis=axis)
            for l in range(len(ours.values))
        ]
        assert_close(ours.values, reference)


def assert_vjp_is_sum(calculator, atoms, upstream, exponents, hypers):
    ours = calculator.vector_jacobian_product(atoms, upstream)
    n_species = upstream[0].shape[1] // len(exponents)
    gradient, strain = 0.0, 0.0
    for e, p in enumerate(exponents):
        single = lodekit.LodeSphericalExpansion(exponent=p, **hypers)
        block = [u[:, e * n_species : (e + 1) * n_species] for u in upstream]
        result = single.vector_jacobian_product(atoms, block)
        gradient = gradient + result["positions"][0]
        strain = strain + result["strain"]
    assert_close([ours["positions"][0], ours["strain"]], [gradient, strain])


def test_periodic_gradients_and_vjp():
    atoms = cubic_box(np.random.default_rng(8))
    hypers = dict(HYPERS, max_radial=2, max_angular=2, k_cutoff=3.5)
    calculator = lodekit.LodeSphericalExpansion(exponent=[1, 0, 6], **hypers)
    expansion = calculator.compute(atoms, gradients=["positions", "strain"], n_threads=1)
    _, parts = separate(atoms, [1, 0, 6], gradients=["positions", "strain"], **hypers)
    assert_gradients_concatenate(expansion, parts)
    upstream = [np.random.default_rng(9).normal(size=v.shape) for v in expansion.values]
    assert_vjp_is_sum(calculator, atoms, upstream, [1, 0, 6], hypers)


def test_molecule_values_gradients_and_vjp():
    atoms = molecule(np.random.default_rng(10), n_atoms=5)
    hypers = dict(HYPERS, max_radial=1, max_angular=2)
    calculator = lodekit.LodeSphericalExpansion(exponent=[6, 1], **hypers)
    expansion = calculator.compute(atoms, gradients=["positions", "strain"])
    assert expansion.info["structures"][0]["method"] == "molecule"
    reference, parts = separate(atoms, [6, 1], gradients=["positions", "strain"], **hypers)
    assert_close(expansion.values, reference)
    assert_gradients_concatenate(expansion, parts)
    upstream = [np.random.default_rng(12).normal(size=v.shape) for v in expansion.values]
    assert_vjp_is_sum(calculator, atoms, upstream, [6, 1], hypers)


@pytest.mark.slow
def test_range_separated_gradients_and_vjp():
    atoms = range_separated_box()
    calculator = lodekit.LodeSphericalExpansion(exponent=[1, 6], **RANGE_SEPARATED)
    expansion = calculator.compute(atoms, gradients=["positions", "strain"], n_threads=1)
    _, parts = separate(atoms, [1, 6], gradients=["positions", "strain"], **RANGE_SEPARATED)
    assert_gradients_concatenate(expansion, parts)
    upstream = [np.random.default_rng(13).normal(size=v.shape) for v in expansion.values]
    assert_vjp_is_sum(calculator, atoms, upstream, [1, 6], RANGE_SEPARATED)


def test_channels_match_featomic():
    pytest.importorskip("featomic")
    atoms = cubic_box(np.random.default_rng(7))
    hypers = dict(smearing=0.9, max_radial=3, max_angular=3, radius=4.5, k_cutoff=4.5)
    calculator = lodekit.LodeSphericalExpansion(exponent=[1, 3], **hypers)
    ours = calculator.compute(atoms).to_tensormap()
    assert ours.keys.names == ["o3_lambda", "o3_sigma", "center_type", "neighbor_type", "exponent"]
    for p in (1, 3):
        reference = featomic_lode(atoms, exponent=p, weight=1.0, **hypers)
        scale = max(np.abs(block.values).max() for block in reference.blocks())
        for key, block in reference.items():
            mine = ours.block(
                o3_lambda=int(key["o3_lambda"]),
                center_type=int(key["center_type"]),
                neighbor_type=int(key["neighbor_type"]),
                exponent=p,
            )
            assert block.samples == mine.samples
            assert np.abs(block.values - mine.values).max() < 1e-10 * scale


def test_hypers_round_trip_and_single_exponent_unchanged():
    calculator = lodekit.LodeSphericalExpansion(exponent=[6, 1], **HYPERS)
    text = calculator.to_json()
    assert json.loads(text)["exponent"] == [6, 1]
    again = lodekit.LodeSphericalExpansion.from_json(text)
    assert again == calculator and again.exponent == [6, 1]
    single = lodekit.LodeSphericalExpansion(exponent=3, **HYPERS)
    assert single.exponent == 3 and json.loads(single.to_json())["exponent"] == 3

    atoms = cubic_box(np.random.default_rng(1))
    hypers = dict(HYPERS, max_radial=2, max_angular=2, k_cutoff=3.5)
    one = lodekit.LodeSphericalExpansion(exponent=3, **hypers).compute(atoms)
    assert one.exponents is None and len(one.neighbor_types) == 2
    listed = lodekit.LodeSphericalExpansion(exponent=[3], **hypers).compute(atoms)
    np.testing.assert_array_equal(listed.exponents, [3, 3])
    assert_close(listed.values, one.values)


@pytest.mark.parametrize(
    "value, words",
    [
        ([], "non-empty"),
        ([1, 3, 1], "repeated"),
        ([1, 7], "entry 7"),
        ([1, -1], "entry -1"),
        ([1, True], "entry True"),
        ([1, 2.0], "entry 2.0"),
        (7, "between 0 and 6"),
        ("1", "integer"),
    ],
)
def test_invalid_exponents(value, words):
    with pytest.raises(InputError, match="`exponent`") as error:
        lodekit.LodeSphericalExpansion(exponent=value, **HYPERS)
    assert words in str(error.value)


def test_features_archive_and_tensormap(tmp_path):
    atoms = cubic_box(np.random.default_rng(3))
    hypers = dict(HYPERS, max_radial=2, max_angular=2, k_cutoff=3.5)
    expansion = lodekit.LodeSphericalExpansion(exponent=[1, 3], **hypers).compute(atoms)
    n_channels = len(expansion.neighbor_types)

    nu1 = lode_nu1(expansion)
    assert nu1.values.shape == (len(atoms), n_channels * 3)
    # the symmetric power spectrum keeps each unordered pair of (exponent, species) channels
    spectrum = power_spectrum(expansion)
    assert spectrum.values.shape[1] == 3 * (n_channels * (n_channels + 1) // 2) * 9
    full = power_spectrum(expansion, expansion)
    assert full.values.shape[1] == 3 * n_channels**2 * 9

    path = save_expansion(tmp_path / "several.npz", expansion)
    loaded = load_expansion(path)
    np.testing.assert_array_equal(loaded.exponents, expansion.exponents)
    assert loaded.hypers["exponent"] == [1, 3]
    assert_close(loaded.values, expansion.values, tolerance=0.0)

    tensormap = expansion.to_tensormap()
    assert len(tensormap.keys) == 2 * n_channels * 3


RECIPE_LODE = {
    "calculator": "lode_spherical_expansion",
    "smearing": 1.0,
    "max_radial": 2,
    "max_angular": 2,
    "radius": 3.0,
    "exponent": [1, 3],
}
RECIPE_SOAP = {
    "calculator": "spherical_expansion",
    "cutoff": 3.0,
    "smearing": 0.4,
    "max_radial": 2,
    "max_angular": 2,
}


def test_recipe_widens_channels_per_exponent():
    """A recipe's species list widens every exponent's channels: the water rows of one call
    with all species present are the reference."""
    rng = np.random.default_rng(0)
    water, mixed = triclinic_box(rng), three_species_box(rng)
    species = [1, 6, 7, 8]
    recipe = Recipe.from_dict({"blocks": [{"kind": "power_spectrum", "expansion": RECIPE_LODE}]})
    together = power_spectrum(recipe.calculators[0].compute([water, mixed]))
    alone = recipe.compute([water], species)
    rows = together.samples[:, 0] == 0
    np.testing.assert_allclose(alone.values, together.values[rows], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(alone.properties, together.properties)
    assert recipe.widths(species) == [together.n_features]


def test_recipe_gradients_with_several_exponents():
    """<vjp(g), t> = <g, jvp(t)>, and the sparse position Jacobian of the columns against
    central finite differences, with zero (absent species) channels."""
    rng = np.random.default_rng(6)
    atoms = triclinic_box(rng)
    species = [1, 6, 8]
    recipe = Recipe.from_dict(
        {
            "blocks": [
                {"kind": "power_spectrum", "expansion": RECIPE_LODE},
                {"kind": "rho_x_v", "density": RECIPE_SOAP, "potential": RECIPE_LODE},
                {"kind": "nu1", "expansion": RECIPE_LODE, "center_types": [1, 8]},
            ]
        }
    )
    expanded = recipe.expand(atoms, species, gradients=["positions"])
    tangents = [
        [rng.normal(size=(len(e), 1, len(types), *v.shape[2:])) for v in e.values]
        for e, types in zip(expanded.expansions, expanded.neighbor_types, strict=True)
    ]
    jvp = recipe.jvp(expanded, tangents)[:, 0]
    values = recipe.forward(expanded).values
    grad = rng.normal(size=values.shape)
    upstream = recipe.vjp(expanded, grad)
    left = sum(
        np.sum(u * t[:, 0])
        for up, te in zip(upstream, tangents, strict=True)
        for u, t in zip(up, te, strict=True)
    )
    assert left == pytest.approx(np.sum(grad * jvp), rel=1e-11)

    keys, jacobian = recipe.sparse_jvp(expanded)
    h, atom = 1e-5, 3
    shifted = []
    for sign in (1, -1):
        moved = atoms.copy()
        moved.positions[atom, 0] += sign * h
        shifted.append(recipe.compute([moved], species).values)
    difference = (shifted[0] - shifted[1]) / (2 * h)
    analytic = np.zeros_like(difference)
    rows = keys[:, 1] == atom
    analytic[keys[rows, 0]] = jacobian[rows, 0]
    assert np.abs(analytic - difference).max() < 1e-6 * np.abs(difference).max()


def test_torch_expansion_widens_every_exponent():
    torch = pytest.importorskip("torch")
    from lodekit.torch import expansion

    atoms = cubic_box(np.random.default_rng(14))
    hypers = dict(smearing=0.9, max_radial=1, max_angular=1, radius=3.0, k_cutoff=4.0)
    species = [3, 11, 17]
    positions = torch.tensor(atoms.positions, dtype=torch.float64, requires_grad=True)
    cell = torch.tensor(atoms.cell.array, dtype=torch.float64)
    several = lodekit.LodeSphericalExpansion(exponent=[1, 3], **hypers)
    out = expansion(several, positions, cell, atoms.numbers, species=species)
    parts = [
        expansion(
            lodekit.LodeSphericalExpansion(exponent=p, **hypers),
            positions,
            cell,
            atoms.numbers,
            species=species,
        )
        for p in (1, 3)
    ]
    reference = torch.cat(parts, dim=1)
    assert out.shape == reference.shape == (len(atoms), 6, 4, 2)
    # to rounding: a single exponent's shell sum may share its passes out to threads
    assert (out - reference).abs().max() <= 1e-14 * reference.abs().max()
    weights = torch.randn(
        out.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0)
    )
    (gradient,) = torch.autograd.grad((out * weights).sum(), positions)
    (expected,) = torch.autograd.grad((reference * weights).sum(), positions)
    assert torch.allclose(gradient, expected, rtol=0, atol=1e-13 * expected.abs().max())


@pytest.mark.parametrize(
    "boundary, species_channels", [("periodic", True), ("periodic", False), ("molecule", False)]
)
def test_weighted_densities(boundary, species_channels):
    """Per-atom weights (and one channel for all atoms) with several exponents: values, the
    weight Jacobian and the VJP (positions, strain, weights) against single exponents."""
    rng = np.random.default_rng(15)
    if boundary == "periodic":
        atoms = cubic_box(rng)
        hypers = dict(HYPERS, max_radial=2, max_angular=2, k_cutoff=3.5)
    else:
        atoms = molecule(rng, n_atoms=5)
        hypers = dict(HYPERS, max_radial=1, max_angular=1)
    atoms.set_initial_charges(rng.normal(size=len(atoms)))
    hypers = dict(hypers, weights="initial_charges", species_channels=species_channels)
    exponents = [1, 6]
    calculator = lodekit.LodeSphericalExpansion(exponent=exponents, **hypers)
    expansion = calculator.compute(atoms, gradients=["weights"], n_threads=1)
    reference, parts = separate(atoms, exponents, gradients=["weights"], **hypers)
    assert_close(expansion.values, reference)
    ours, theirs = expansion.gradients["weights"], [p.gradients["weights"] for p in parts]
    for l in range(len(ours.values)):
        wide = np.zeros_like(ours.values[l])
        for e, gradient in enumerate(theirs):
            rows = np.searchsorted(
                ours.samples[:, 0] * len(atoms) + ours.samples[:, 2],
                gradient.samples[:, 0] * len(atoms) + gradient.samples[:, 2],
            )
            n = gradient.values[l].shape[1]
            wide[rows, e * n : (e + 1) * n] = gradient.values[l]
        assert_close([ours.values[l]], [wide])

    upstream = [rng.normal(size=v.shape) for v in expansion.values]
    result = calculator.vector_jacobian_product(atoms, upstream, with_weights=True)
    n = upstream[0].shape[1] // len(exponents)
    total = {"positions": 0.0, "strain": 0.0, "weights": 0.0}
    for e, p in enumerate(exponents):
        single = lodekit.LodeSphericalExpansion(exponent=p, **hypers)
        part = single.vector_jacobian_product(
            atoms, [u[:, e * n : (e + 1) * n] for u in upstream], with_weights=True
        )
        total["positions"] = total["positions"] + part["positions"][0]
        total["strain"] = total["strain"] + part["strain"]
        total["weights"] = total["weights"] + part["weights"][0]
    assert_close(
        [result["positions"][0], result["strain"], result["weights"][0]],
        [total["positions"], total["strain"], total["weights"]],
    )
