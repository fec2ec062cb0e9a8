"""`lodekit featurize`, `lodekit fit` and `lodekit predict`: end to end, and bad inputs."""

import csv
import json

import ase.io
import numpy as np
import pytest

from lodekit.batch import FeatureStore, load_features
from lodekit.cli import _common as cli_common
from lodekit.cli import main
from lodekit.datasets import random_point_charges
from lodekit.persistence import load_model
from tests.conftest import POINT_CHARGE_BOXES, STORE_RECIPE, snapshot, store_recipe
from tests.helpers import triclinic_box

RECIPE = STORE_RECIPE

#: Sharp point charges, basis narrower than the closest approach: a linear model of LODE
#: nu = 1 is a point-charge model (README's example, smaller).
CHARGES = {
    "blocks": [
        {
            "kind": "nu1",
            "expansion": {
                "calculator": "lode_spherical_expansion",
                "smearing": 0.5,
                "max_radial": 2,
                "max_angular": 0,
                "radius": 2.0,
                "k_cutoff": 18.0,
            },
        }
    ]
}


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(5)
    structures = tmp_path / "water.extxyz"
    ase.io.write(structures, [triclinic_box(rng) for _ in range(3)])
    recipe = tmp_path / "r.json"
    recipe.write_text(json.dumps(RECIPE))
    return structures, recipe


def run(capsys, argv):
    capsys.readouterr()
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_featurize_then_bad_inputs_leave_the_store_intact(capsys, tmp_path, files, monkeypatch):
    monkeypatch.setattr(cli_common, "SCHEDULER_TIMEOUT", 1.0)  # seconds spent on a dead scheduler
    structures, recipe = files
    store = tmp_path / "store"
    good = ["featurize", str(structures), "--out", str(store), "--recipe", str(recipe)]
    code, out, _ = run(capsys, [*good, "--chunk-size", "2", "--workers", "1", "--quiet"])
    assert code == 0 and "3 structures" in out
    before = snapshot(store)

    garbage = tmp_path / "garbage.extxyz"
    garbage.write_text("12\nnot a comment line of extxyz\nH 0 0\n")
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('{"smearing": 1.0,')
    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps(store_recipe(cutoff_radius=4.0)))
    other = tmp_path / "other.json"
    other.write_text(json.dumps(store_recipe(smearing=0.7)))
    missing = str(tmp_path / "missing.extxyz")
    cases = [
        (["featurize", missing, "--out", str(store)], f"`INPUT` {missing!r} does not exist"),
        (
            ["featurize", str(structures), str(garbage), "--out", str(store)],
            f"`INPUT` {str(garbage)!r} is not a readable structure file",
        ),
        (
            [*good[:4], "--recipe", str(bad_json)],
            f"`--recipe` {str(bad_json)!r}: `recipe` is not valid JSON",
        ),
        (
            [*good[:4], "--recipe", str(unknown)],
            f"`--recipe` {str(unknown)!r}: `recipe.blocks[0].expansion` has unknown key(s) "
            "['cutoff_radius']",
        ),
        (
            [*good[:4], "--recipe", str(tmp_path / "none.json")],
            "cannot be read: No such file or directory",
        ),
        ([*good[:4], "--recipe", str(other)], "`--out` "),  # a store of another recipe
        ([*good, "--chunk-size", "0"], "`--chunk-size` is 0 but must be a positive integer"),
        ([*good, "--workers", "2", "--scheduler", "tcp://127.0.0.1:1"], "give one of them"),
    ]
    for argv, message in cases:
        code, _, err = run(capsys, argv)
        assert code == 2, argv
        assert err.startswith("lodekit featurize: error: ")
        assert message in err, err
        assert len(err.strip().splitlines()) == 1, err
        assert snapshot(store) == before
    code, _, err = run(capsys, [*good[:4], "--recipe", str(other)])
    assert "refusing to mix" in err
    assert "blocks[0].expansion.smearing: 1.0 there, 0.7 now" in err

    # an unreachable scheduler is reported in one line too
    code, _, err = run(capsys, [*good, "--scheduler", "tcp://127.0.0.1:1"])
    assert code == 2 and "`--scheduler` 'tcp://127.0.0.1:1' cannot be reached" in err
    assert len(err.strip().splitlines()) == 1


def test_fit_and_predict_point_charges(capsys, tmp_path):
    boxes = random_point_charges(24, seed=0, **POINT_CHARGE_BOXES)
    energies = np.array([box.info["energy"] for box in boxes])
    structures = tmp_path / "charges.extxyz"
    ase.io.write(structures, boxes)  # energies become calculator results in extxyz
    recipe = tmp_path / "charges.json"
    recipe.write_text(json.dumps(CHARGES))
    store, model_path = tmp_path / "store", tmp_path / "model.npz"
    code, _, _ = run(
        capsys,
        ["featurize", str(structures), "--out", str(store), "--recipe", str(recipe),
         "--chunk-size", "5", "--workers", "1", "--quiet"],
    )  # fmt: skip
    assert code == 0
    code, out, err = run(
        capsys, ["fit", str(store), "--target", "energy", "--out", str(model_path)]
    )
    assert code == 0, err
    assert "linear model on 24 structures" in out

    model = load_model(model_path)
    assert model.metadata_["recipe"] == FeatureStore(store).recipe
    assert model.metadata_["train_percent_rmse"] < 1.0  # % of the energies' spread
    features = load_features(store)
    x = features.by_center_type(model.metadata_["center_types"]).values
    in_memory = model.predict(x, features.samples[:, 0], features.samples[:, 2])
    rmse = np.sqrt(np.mean((in_memory - energies) ** 2))
    assert rmse < 0.01 * energies.std()

    predictions = tmp_path / "predictions.csv"
    code, _, err = run(
        capsys,
        ["predict", str(model_path), str(structures), "--out", str(predictions),
         "--chunk-size", "7", "--workers", "1"],
    )  # fmt: skip
    assert code == 0, err
    with predictions.open() as stream:
        rows = list(csv.DictReader(stream))
    assert [int(r["frame"]) for r in rows] == list(range(24))
    assert rows[0]["input"] == str(structures.resolve())
    predicted = np.array([float(r["energy"]) for r in rows])
    np.testing.assert_allclose(predicted, in_memory, rtol=1e-10, atol=1e-10)

    # printed rather than written, and through the kernel model
    kernel_path = tmp_path / "kernel.npz"
    code, _, err = run(
        capsys,
        ["fit", str(store), "--target", "energy", "--model", "kernel", "--structures",
         str(structures), "--out", str(kernel_path), "--alpha", "1e-6"],
    )  # fmt: skip
    assert code == 0, err
    code, out, _ = run(capsys, ["predict", str(kernel_path), str(structures), "--workers", "1"])
    assert code == 0
    printed = np.array([float(line.split(",")[-1]) for line in out.splitlines()[1:]])
    kernel = load_model(kernel_path)
    groups, species = features.samples[:, 0], features.samples[:, 2]
    np.testing.assert_allclose(
        printed, kernel.predict(features.values, groups, species), rtol=1e-10, atol=1e-10
    )

    # bad inputs: one line, exit code 2, earlier outputs untouched
    model_bytes, csv_bytes = model_path.read_bytes(), predictions.read_bytes()
    not_a_model = tmp_path / "not_a_model.npz"
    not_a_model.write_bytes(b"not a zip")
    water = tmp_path / "water.extxyz"
    ase.io.write(water, [triclinic_box(np.random.default_rng(0))])
    other = tmp_path / "other.extxyz"
    ase.io.write(other, boxes[:3])
    cases = [
        (["fit", str(tmp_path / "nowhere"), "--target", "energy", "--out", str(model_path)],
         "`STORE` "),
        (["fit", str(store), "--target", "dipole", "--out", str(model_path)],
         "`--target` 'dipole' is not in atoms.info"),
        (["fit", str(store), "--target", "energy", "--structures", str(other), "--out",
          str(model_path)], "`--structures` are not the structures featurised"),
        (["predict", str(not_a_model), str(structures), "--out", str(predictions)],
         f"`MODEL` {str(not_a_model)!r} is not a readable .npz archive"),
        (["predict", str(model_path), str(tmp_path / "none.xyz"), "--out", str(predictions)],
         "does not exist"),
        (["predict", str(model_path), str(water), "--out", str(predictions)],
         "species [1, 8] that the model was not trained on"),
        (["predict", str(model_path), str(structures), "--out", str(tmp_path / "no" / "p.csv")],
         f"the directory {str(tmp_path / 'no')!r} does not exist"),
        (["fit", str(store), "--target", "energy", "--out", str(tmp_path)],
         f"`--out` {str(tmp_path)!r} is a directory"),
    ]  # fmt: skip
    for argv, message in cases:
        code, _, err = run(capsys, argv)
        assert code == 2, argv
        assert message in err, err
        assert len(err.strip().splitlines()) == 1, err
    assert model_path.read_bytes() == model_bytes
    assert predictions.read_bytes() == csv_bytes


def test_fit_refuses_an_incomplete_store(capsys, tmp_path, files):
    structures, recipe = files
    store = tmp_path / "store"
    argv = ["featurize", str(structures), "--out", str(store), "--recipe", str(recipe)]
    assert main([*argv, "--chunk-size", "1", "--workers", "1", "--quiet"]) == 0
    import shutil

    shutil.rmtree(store / "chunks" / "000001")
    code, _, err = run(capsys, ["fit", str(store), "--target", "x", "--out", str(tmp_path / "m")])
    assert code == 2
    assert f"`STORE` {str(store)!r} is incomplete: 1 of 3 chunks are missing (1)" in err
    assert not (tmp_path / "m").exists()
