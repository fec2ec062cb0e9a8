"""Recipes (lodekit.features.recipe): JSON, validation, multi-block columns, the shipped paper
recipes, a multi-block recipe through store, fit and predict; and dataset scans
(lodekit.batch)."""

import json

import ase.io
import numpy as np
import pytest

import lodekit
from lodekit.batch import StructureSource, featurize
from lodekit.batch.fit_predict import fit_store, predict_structures
from lodekit.errors import InputError
from lodekit.features import DEFAULT_RECIPE, Recipe, lode_nu1, power_spectrum
from lodekit.recipes import paper_recipe, paper_recipe_path, paper_recipes
from tests.helpers import three_species_box, triclinic_box

LODE = {
    "calculator": "lode_spherical_expansion",
    "smearing": 1.0,
    "max_radial": 2,
    "max_angular": 2,
    "radius": 3.0,
}
SOAP = {
    "calculator": "spherical_expansion",
    "cutoff": 3.0,
    "smearing": 0.4,
    "max_radial": 2,
    "max_angular": 2,
}


def single(kind, **calculator):
    return {"blocks": [{"kind": kind, "expansion": {**LODE, **calculator}}]}


#: SOAP power spectrum + LODE nu = 1 split by centre species (the LODE block only).
MULTI = {
    "blocks": [
        {"kind": "power_spectrum", "expansion": SOAP},
        {"kind": "nu1", "expansion": LODE, "center_types": [1, 8]},
    ]
}


def test_recipe_round_trip_and_defaults():
    recipe = Recipe.from_dict(single("nu1"))
    again = Recipe.from_json(recipe.to_json())
    assert again == recipe
    assert again.to_dict() == recipe.to_dict()
    assert recipe.to_dict()["blocks"][0]["expansion"]["exponent"] == 1  # defaults recorded
    default = Recipe.coerce(None)
    assert default == Recipe.from_dict(DEFAULT_RECIPE)
    assert [b.kind.name for b in default.blocks] == ["power_spectrum"]
    assert default.calculators == [
        lodekit.LodeSphericalExpansion(smearing=1.0, max_radial=6, max_angular=4, radius=5.0)
    ]
    multi = Recipe.from_dict({**MULTI, "description": "two blocks"})
    assert Recipe.from_json(multi.to_json()) == multi
    assert multi.to_dict()["description"] == "two blocks"
    assert multi.to_dict()["blocks"][1]["center_types"] == [1, 8]
    assert isinstance(multi.calculators[0], lodekit.SphericalExpansion)
    equivariant = Recipe.from_dict(
        {"blocks": [{"kind": "equivariant", "first": SOAP, "second": LODE, "o3_lambda": 2}]}
    )
    assert equivariant.to_dict()["blocks"][0]["o3_sigma"] == 1
    assert Recipe.from_json(equivariant.to_json()) == equivariant
    # identical calculators are one expansion
    shared = Recipe.from_dict(
        {
            "blocks": [
                {"kind": "nu1", "expansion": LODE},
                {"kind": "power_spectrum", "expansion": LODE},
            ]
        }
    )
    assert len(shared.calculators) == 1


BLOCK = MULTI["blocks"][1]


@pytest.mark.parametrize(
    ("recipe", "message"),
    [
        ([1, 2], "`recipe` holds [1, 2]; expected a JSON object"),
        ({**LODE, "features": "nu1"}, 'a recipe is {"blocks"'),
        ({"blocks": [], "x": 1}, "has key(s) ['blocks', 'x']"),
        ({"blocks": []}, "`recipe.blocks` is []; expected a non-empty list"),
        ({"blocks": [{**BLOCK, "kind": "bispectrum"}]}, "`recipe.blocks[0].kind` is 'bispectrum'"),
        (
            {"blocks": [{**BLOCK, "o3_lambda": 1}]},
            "`recipe.blocks[0]` has unknown key(s) ['o3_lambda']",
        ),
        ({"blocks": [{"kind": "rho_x_v", "density": SOAP}]}, "lacks 'potential'"),
        (
            {"blocks": [{"kind": "rho_x_v", "density": LODE, "potential": LODE}]},
            "`recipe.blocks[0].density.calculator` is 'lode_spherical_expansion'",
        ),
        (single("nu1", calculator="lode"), "`recipe.blocks[0].expansion.calculator` is 'lode'"),
        (single("nu1", smoothing=1.0), "expansion` has unknown key(s) ['smoothing']"),
        (
            {"blocks": [{"kind": "nu1", "expansion": {"calculator": "lode_spherical_expansion"}}]},
            "lacks ['smearing'",
        ),
        (single("nu1", smearing=-1.0), "`smearing` is -1.0 but must be positive"),
        (
            {"blocks": [{**BLOCK, "center_types": [8, 1]}]},
            "`recipe.blocks[0].center_types` is [8, 1]",
        ),
        (
            {"blocks": [{"kind": "equivariant", "first": SOAP, "second": LODE, "o3_lambda": 9}]},
            "o3_lambda is 9 but must be between 0 and 4",
        ),
        ({"blocks": [{"kind": "equivariant", "first": SOAP, "second": LODE}]}, "lacks 'o3_lambda'"),
        ("{not json", "`recipe` is not valid JSON"),
    ],
)
def test_recipe_errors_name_the_problem(recipe, message):
    with pytest.raises(InputError) as info:
        Recipe.coerce(recipe)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_fixed_species_give_zero_channels_and_the_same_numbers():
    rng = np.random.default_rng(0)
    water, mixed = triclinic_box(rng), three_species_box(rng)
    species = [1, 6, 7, 8]
    for kind, invariant in (("nu1", lode_nu1), ("power_spectrum", power_spectrum)):
        recipe = Recipe.from_dict(single(kind))
        # one call with every species present is the reference for the water rows
        together = invariant(recipe.calculators[0].compute([water, mixed]))
        alone = recipe.compute([water], species, first_system=5)
        rows = together.samples[:, 0] == 0
        np.testing.assert_allclose(alone.values, together.values[rows], rtol=0, atol=1e-12)
        np.testing.assert_array_equal(alone.samples[:, 0], 5)
        np.testing.assert_array_equal(alone.properties, together.properties)
        properties, names = recipe.properties(species)
        np.testing.assert_array_equal(properties, alone.properties)
        assert names == alone.property_names
    nu1 = Recipe.from_dict(single("nu1")).compute([water], species)
    carbon = nu1.properties[:, 0] == 6
    assert np.all(nu1.values[:, carbon] == 0.0)
    with pytest.raises(InputError, match=r"species \[6, 7\] that are not in `species`"):
        Recipe.from_dict(single("power_spectrum")).compute([mixed], [1, 8])


def test_multi_block_columns_are_the_blocks_in_order():
    rng = np.random.default_rng(4)
    frames = [triclinic_box(rng) for _ in range(2)]
    recipe = Recipe.from_dict(MULTI)
    features = recipe.compute(frames)
    soap = lodekit.SphericalExpansion(**{k: v for k, v in SOAP.items() if k != "calculator"})
    lode = lodekit.LodeSphericalExpansion(**{k: v for k, v in LODE.items() if k != "calculator"})
    first = power_spectrum(soap.compute(frames))
    second = lode_nu1(lode.compute(frames)).by_center_type([1, 8])
    np.testing.assert_array_equal(features.values, np.hstack([first.values, second.values]))
    np.testing.assert_array_equal(features.samples, first.samples)
    assert recipe.widths([1, 8]) == [first.n_features, second.n_features]
    properties, names = recipe.properties([1, 8])
    assert names[0] == "block" and "center_type" in names and "l" in names
    np.testing.assert_array_equal(properties[:, 0], np.repeat([0, 1], recipe.widths([1, 8])))
    # the nu1 block's own properties, -1 in the columns of the power spectrum
    nu1_rows = properties[properties[:, 0] == 1]
    for column, name in enumerate(second.property_names):
        np.testing.assert_array_equal(nu1_rows[:, names.index(name)], second.properties[:, column])
    assert np.all(nu1_rows[:, names.index("l")] == -1)
    assert features.metadata["recipe"] == recipe.to_dict()
    with pytest.raises(InputError, match=r"centre species \[1\] outside the center_types \[8\]"):
        Recipe.from_dict(
            {"blocks": [{"kind": "nu1", "expansion": LODE, "center_types": [8]}]}
        ).compute(frames)


def test_recipe_vjp_is_the_transpose_of_its_jvp():
    """Through several blocks, a shared expansion, centre splits and zero channels: the
    recipe's JVP from the expansions' position Jacobians, and <vjp(g), t> = <g, jvp(t)>."""
    rng = np.random.default_rng(6)
    atoms = triclinic_box(rng)
    recipe = Recipe.from_dict(
        {
            "blocks": [
                *MULTI["blocks"],
                {"kind": "power_spectrum", "expansion": LODE},
                {"kind": "rho_x_v", "density": SOAP, "potential": LODE, "center_types": [1, 8]},
                {"kind": "equivariant", "first": SOAP, "second": LODE, "o3_lambda": 1},
            ]
        }
    )
    expanded = recipe.expand(atoms, [1, 6, 8])
    tangents = [
        [rng.normal(size=(len(e), 1, len(types), *v.shape[2:])) for v in e.values]
        for e, types in zip(expanded.expansions, expanded.neighbor_types, strict=True)
    ]
    jvp = recipe.jvp(expanded, tangents)[:, 0]
    values = recipe.forward(expanded).values
    assert jvp.shape == values.shape
    grad = rng.normal(size=values.shape)
    upstream = recipe.vjp(expanded, grad)
    left = sum(
        np.sum(u * t[:, 0])
        for up, te in zip(upstream, tangents, strict=True)
        for u, t in zip(up, te, strict=True)
    )
    assert left == pytest.approx(np.sum(grad * jvp), rel=1e-11)


def test_multi_block_recipe_through_store_fit_and_predict(tmp_path):
    """SOAP power spectrum + LODE nu = 1: featurize -> store -> fit -> predict."""
    from lodekit import load_model, save_model
    from lodekit.datasets import random_point_charges

    boxes = random_point_charges(12, seed=1, n_charges=8, box_range=(7.5, 9.5), min_distance=1.7)
    energies = np.array([b.info["energy"] for b in boxes])
    recipe = {
        "blocks": [
            {"kind": "power_spectrum", "expansion": {**SOAP, "max_angular": 1}},
            {"kind": "nu1", "expansion": {**LODE, "max_angular": 0}, "center_types": [11, 17]},
        ]
    }
    store = featurize(boxes, tmp_path / "s", recipe, chunk_size=5, n_workers=1, progress=False)
    assert store.recipe == Recipe.from_dict(recipe).to_dict()
    loaded = store.load()
    direct = Recipe.from_dict(recipe).compute(boxes)
    np.testing.assert_allclose(loaded.values, direct.values, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(loaded.properties, direct.properties)
    model = fit_store(store, energies, alpha=1e-8)
    save_model(tmp_path / "m.npz", model, model.metadata_)
    again = load_model(tmp_path / "m.npz")
    assert Recipe.from_dict(again.metadata_["recipe"]) == Recipe.from_dict(recipe)
    predicted = predict_structures(again, boxes, chunk_size=4, n_workers=1)
    x = loaded.by_center_type(model.metadata_["center_types"]).values
    expected = model.predict(x, loaded.samples[:, 0], loaded.samples[:, 2])
    np.testing.assert_allclose(predicted, expected, rtol=1e-10, atol=1e-10)
    # and the model is a model: training error far below the spread of the energies
    assert np.sqrt(np.mean((predicted - energies) ** 2)) < 0.2 * energies.std()


def test_paper_recipes_are_shipped_for_every_experiment_model():
    from lodekit.experiments import dimers, point_charges, water

    shipped = paper_recipes()
    for experiment, module in [
        ("point_charges", point_charges),
        ("dimers", dimers),
        ("water", water),
    ]:
        assert set(module.PAPER) <= set(shipped[experiment])
        for name in shipped[experiment]:
            recipe = paper_recipe(experiment, name)
            assert json.loads(paper_recipe_path(experiment, name).read_text())["blocks"]
            assert Recipe.from_json(recipe.to_json()) == recipe
    with pytest.raises(InputError, match="is not a shipped recipe"):
        paper_recipe("dimers", "nothing")
    # the point-charge LODE models split by centre species, the SOAP models do not
    assert paper_recipe("point_charges", "lode_nu1_s1").blocks[0].center_types == (11, 17)
    assert paper_recipe("point_charges", "soap_rc3").blocks[0].center_types is None


def test_scan_counts_fingerprints_and_reports_bad_files(tmp_path):
    rng = np.random.default_rng(1)
    frames = [triclinic_box(rng) for _ in range(3)]
    ase.io.write(tmp_path / "a.extxyz", frames)
    ase.io.write(tmp_path / "b.extxyz", frames[:1])
    source = StructureSource.scan([tmp_path / "a.extxyz", str(tmp_path / "b.extxyz")])
    assert [r["n_frames"] for r in source.records] == [3, 1]
    assert source.records[0]["name"] == str((tmp_path / "a.extxyz").resolve())
    assert source.species.tolist() == [1, 8]
    assert source.n_atoms.tolist() == [13] * 4
    assert source.records[1]["sha256"] != source.records[0]["sha256"]
    again = StructureSource.scan(frames)
    assert again.records[0]["sha256"] != source.records[0]["sha256"]  # positions rounded
    assert [i for i, _ in source.systems(wanted={1, 3}) if _ is not None] == [1, 3]

    (tmp_path / "garbage.extxyz").write_text("this is\nnot a structure\n")
    (tmp_path / "empty.extxyz").write_text("")
    for path, message in [
        (tmp_path / "none.extxyz", "does not exist"),
        (tmp_path / "garbage.extxyz", "is not a readable structure file"),
        (tmp_path, "is a directory"),
    ]:
        with pytest.raises(InputError, match=message) as info:
            StructureSource.scan([path], argument="INPUT")
        assert str(info.value).startswith("`INPUT`") and "\n" not in str(info.value)
    with pytest.raises(InputError, match="mixes file paths and structures"):
        StructureSource.scan([tmp_path / "a.extxyz", frames[0]])
    with pytest.raises(InputError, match="is not a readable structure file: Empty file"):
        StructureSource.scan(tmp_path / "empty.extxyz")


def test_targets_from_info_or_calculator_results(tmp_path):
    rng = np.random.default_rng(2)
    frames = [triclinic_box(rng) for _ in range(2)]
    for i, atoms in enumerate(frames):
        atoms.info["energy"] = -1.5 * i
        atoms.info["charge_total"] = float(i)
    path = tmp_path / "t.extxyz"
    ase.io.write(path, frames)  # extxyz moves "energy" to a calculator result on reading
    source = StructureSource.scan(path)
    np.testing.assert_array_equal(source.targets("energy"), [0.0, -1.5])
    np.testing.assert_array_equal(source.targets("charge_total"), [0.0, 1.0])
    with pytest.raises(InputError, match=r"`--target` 'dipole' is not in atoms\.info"):
        source.targets("dipole")
    assert json.loads(json.dumps(source.records)) == source.records
