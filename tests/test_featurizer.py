"""Feature recipes (lodekit.featurizer) and dataset scans (lodekit.batch)."""

import json

import ase.io
import numpy as np
import pytest

import lodekit
from lodekit.batch import StructureSource
from lodekit.errors import InputError
from lodekit.features import lode_nu1, power_spectrum
from lodekit.featurizer import DEFAULT_HYPERS, Featurizer
from tests.helpers import three_species_box, triclinic_box

LODE = {
    "calculator": "lode_spherical_expansion",
    "smearing": 1.0,
    "max_radial": 2,
    "max_angular": 2,
    "radius": 3.0,
}


def test_recipe_round_trip_and_defaults():
    featurizer = Featurizer.from_hypers({**LODE, "features": "nu1"})
    again = Featurizer.from_hypers(featurizer.to_json())
    assert again == featurizer
    assert featurizer.hypers()["exponent"] == 1  # calculator defaults are recorded
    default = Featurizer.from_hypers(None)
    assert default.features == DEFAULT_HYPERS["features"] == "power_spectrum"
    assert default.calculator == lodekit.LodeSphericalExpansion(
        smearing=1.0, max_radial=6, max_angular=4, radius=5.0
    )
    soap = Featurizer.from_hypers(
        {"calculator": "spherical_expansion", "cutoff": 3.0, "smearing": 0.4, "max_radial": 2,
         "max_angular": 1}
    )  # fmt: skip
    assert isinstance(soap.calculator, lodekit.SphericalExpansion)


@pytest.mark.parametrize(
    ("hypers", "message"),
    [
        ([1, 2], "expected a JSON object"),
        ({**LODE, "calculator": "lode"}, "has calculator 'lode'"),
        ({**LODE, "features": "bispectrum"}, "has features 'bispectrum'"),
        ({**LODE, "smoothing": 1.0}, r"unknown key\(s\) \['smoothing'\]"),
        ({"calculator": "lode_spherical_expansion", "smearing": 1.0}, "lacks"),
        ({**LODE, "smearing": -1.0}, "`smearing` is -1.0 but must be positive"),
        ("{not json", "not valid JSON"),
    ],
)
def test_recipe_errors_name_the_problem(hypers, message):
    with pytest.raises(InputError, match=message):
        Featurizer.from_hypers(hypers)


def test_fixed_species_give_zero_channels_and_the_same_numbers():
    rng = np.random.default_rng(0)
    water, mixed = triclinic_box(rng), three_species_box(rng)
    species = [1, 6, 7, 8]
    for kind, invariant in (("nu1", lode_nu1), ("power_spectrum", power_spectrum)):
        featurizer = Featurizer.from_hypers({**LODE, "features": kind})
        # one call with every species present is the reference for the water rows
        together = invariant(featurizer.calculator.compute([water, mixed]))
        alone = featurizer.compute([water], species, first_system=5)
        rows = together.samples[:, 0] == 0
        np.testing.assert_allclose(alone.values, together.values[rows], rtol=0, atol=1e-12)
        np.testing.assert_array_equal(alone.samples[:, 0], 5)
        np.testing.assert_array_equal(alone.properties, together.properties)
        properties, names = featurizer.properties(species)
        np.testing.assert_array_equal(properties, alone.properties)
        assert names == alone.property_names
    nu1 = Featurizer.from_hypers({**LODE, "features": "nu1"}).compute([water], species)
    carbon = nu1.properties[:, 0] == 6
    assert np.all(nu1.values[:, carbon] == 0.0)
    with pytest.raises(InputError, match=r"species \[6, 7\] that are not in `species`"):
        Featurizer.from_hypers(LODE).compute([mixed], [1, 8])


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
