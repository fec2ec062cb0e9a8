"""`lodekit fit` reports a cross-validated error and warns at the end of its alpha grid;
`lodekit predict` warns when a structure's periodicity differs from the training set's
(issue 27, faults 13 and 14)."""

import json
import re

import ase
import ase.io
import numpy as np
import pytest
from sklearn.linear_model import Ridge
from sklearn.model_selection import PredefinedSplit, cross_val_predict

from lodekit.batch import load_features
from lodekit.batch.fit_predict import DEFAULT_ALPHAS
from lodekit.cli import main
from lodekit.datasets import random_point_charges
from lodekit.persistence import load_model
from tests.conftest import POINT_CHARGE_BOXES, store_recipe

N_BOXES = 24
CV_LINE = re.compile(r"5-fold CV RMSE (\S+) \((\S+) % of the target's std\)")
TRAIN_LINE = re.compile(r"training RMSE (\S+) \((\S+) % of the target's std\)")


def run(capsys, argv):
    capsys.readouterr()
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def power_spectrum_store(tmp_path_factory):
    """Point-charge boxes featurised with the LODE power spectrum of the store tests: a
    recipe that fits its training set much better than it predicts held-out boxes."""
    tmp = tmp_path_factory.mktemp("fit_quality")
    boxes = random_point_charges(N_BOXES, seed=0, **POINT_CHARGE_BOXES)
    structures, recipe, store = tmp / "boxes.extxyz", tmp / "r.json", tmp / "store"
    ase.io.write(structures, boxes)
    recipe.write_text(json.dumps(store_recipe()))
    code = main(
        ["featurize", str(structures), "--out", str(store), "--recipe", str(recipe),
         "--workers", "1", "--quiet"]
    )  # fmt: skip
    assert code == 0
    return store, np.array([box.info["energy"] for box in boxes]), tmp


def design(store):
    """The linear model's environments: per-species feature columns, standardised over all
    environments (as ``fit`` does before its search); with structure and species labels."""
    features = load_features(store)
    x = features.by_center_type(np.unique(features.samples[:, 2]).tolist()).values
    std = x.std(axis=0)
    varying = std > 1e-12 * std.max()
    x = np.where(varying, (x - np.where(varying, x.mean(axis=0), 0)) / np.where(varying, std, 1), x)
    return x, features.samples[:, 0], features.samples[:, 2]


def model_folds():
    """The folds of the model's search (random_state 0): a permutation by numpy's
    default_rng(0), split in 5, handed to scikit-learn's PredefinedSplit."""
    fold_of = np.empty(N_BOXES, dtype=int)
    for k, fold in enumerate(np.array_split(np.random.default_rng(0).permutation(N_BOXES), 5)):
        fold_of[fold] = k
    return PredefinedSplit(fold_of)


def sklearn_cv_rmse(store, energies, alphas):
    """K-fold RMSE of every alpha by scikit-learn's Ridge on the linear model's structure
    design (per-structure sums of the standardised environments), in the model's folds.
    Every box holds 4 Na and 4 Cl, so the per-species baselines are one intercept here."""
    x, groups, _ = design(store)
    phi = np.zeros((N_BOXES, x.shape[1]))
    np.add.at(phi, groups, x)
    rmse = []
    for alpha in alphas:
        ridge = Ridge(alpha=alpha, solver="svd")
        predicted = cross_val_predict(ridge, phi, energies, cv=model_folds())
        rmse.append(np.sqrt(np.mean((predicted - energies) ** 2)))
    return np.array(rmse)


#: How close the model's K-fold RMSE is to scikit-learn's here: within 5 % (seen 1.6 %), not
#: 1e-6, because every box has the same composition (4 Na + 4 Cl): the per-species baseline
#: columns are rank-deficient and models/_ridge.py's QR projection then drops one more,
#: row-order dependent direction (a known fault, left for its own fix: it changes predictions).
CV_RTOL = 0.05


def fit(capsys, store, tmp, alphas=None):
    argv = ["fit", str(store), "--target", "energy", "--out", str(tmp / "m.npz")]
    code, out, err = run(capsys, argv + (["--alpha", *map(str, alphas)] if alphas else []))
    assert code == 0, err
    return out, err, load_model(tmp / "m.npz")


def test_fit_prints_the_cross_validated_error_beside_the_training_error(
    capsys, power_spectrum_store
):
    store, energies, tmp = power_spectrum_store
    out, _, model = fit(capsys, store, tmp)
    cv, cv_percent = map(float, CV_LINE.search(out).groups())
    train, train_percent = map(float, TRAIN_LINE.search(out).groups())
    reference = sklearn_cv_rmse(store, energies, DEFAULT_ALPHAS)
    chosen = DEFAULT_ALPHAS.index(model.alpha_)
    assert np.argmin(reference) == chosen
    np.testing.assert_allclose(cv, reference[chosen], rtol=CV_RTOL)
    np.testing.assert_allclose(cv_percent, 100 * cv / energies.std(), rtol=1e-2)
    # the point of the report: this recipe does far worse on held-out boxes than in training
    assert cv > 3 * train and cv_percent > 3 * train_percent
    # the whole curve is a fitted attribute, kept by the model file
    np.testing.assert_allclose(model.cv_rmse_, reference, rtol=CV_RTOL)
    np.testing.assert_array_equal(model.cv_alphas_, DEFAULT_ALPHAS)
    assert model.metadata_["cv_rmse"] == pytest.approx(cv, rel=1e-5)
    assert model.cv_rmse_[chosen] == pytest.approx(cv, rel=1e-5)


def test_fit_warns_when_the_chosen_alpha_is_an_end_of_its_grid(capsys, power_spectrum_store):
    store, energies, tmp = power_spectrum_store
    wide = [10.0**k for k in range(-4, 5)]
    reference = sklearn_cv_rmse(store, energies, wide)
    best = int(np.argmin(reference))
    assert 0 < best < len(wide) - 1  # an interior optimum on the wide grid
    cases = [
        (wide[best - 1 : best + 2], None),  # around the optimum: no warning
        (DEFAULT_ALPHAS, "largest"),  # the default grid stops below the optimum
        (wide[best + 1 :], "smallest"),
    ]
    for alphas, edge in cases:
        expected = sklearn_cv_rmse(store, energies, alphas)
        if edge is not None:  # the oracle agrees that the optimum is at that end
            assert np.argmin(expected) == (0 if edge == "smallest" else len(alphas) - 1)
        _, err, model = fit(capsys, store, tmp, alphas)
        assert model.alpha_ == alphas[int(np.argmin(expected))]
        if edge is None:
            assert err == "", err
        else:
            assert err.startswith(f"warning: the chosen alpha {model.alpha_:.3g} is the {edge}")
            assert f"{min(alphas):.3g} to {max(alphas):.3g}" in err and "--alpha" in err
            assert len(err.strip().splitlines()) == 1


def test_one_alpha_is_cross_validated_without_a_warning(capsys, power_spectrum_store):
    store, energies, tmp = power_spectrum_store
    out, err, _ = fit(capsys, store, tmp, [1e-2])
    assert err == ""
    cv = float(CV_LINE.search(out).group(1))
    np.testing.assert_allclose(cv, sklearn_cv_rmse(store, energies, [1e-2])[0], rtol=CV_RTOL)


def molecule(rng):
    """Four charges in vacuum (no cell): Na, Na, Cl, Cl, at least 2 Å apart."""
    positions = np.array([[0, 0, 0], [2.5, 0, 0], [0, 2.5, 0], [0, 0, 2.5]]) + rng.uniform(
        -0.2, 0.2, (4, 3)
    )
    return ase.Atoms("Na2Cl2", positions=positions, info={"energy": 0.0})


def test_predict_warns_when_periodicity_differs_from_the_training_set(capsys, power_spectrum_store):
    store, _, tmp = power_spectrum_store
    fit(capsys, store, tmp, [1e-2])
    model = load_model(tmp / "m.npz")
    assert model.metadata_["train_periodicity"] == {
        "periodic": N_BOXES,
        "slab": 0,
        "non_periodic": 0,
    }
    rng = np.random.default_rng(2)
    boxes = random_point_charges(2, seed=7, **POINT_CHARGE_BOXES)
    mixed = tmp / "mixed.extxyz"
    ase.io.write(mixed, [boxes[0], molecule(rng), boxes[1], molecule(rng)])
    only_boxes = tmp / "boxes2.extxyz"
    ase.io.write(only_boxes, boxes)

    code, out, err = run(capsys, ["predict", str(tmp / "m.npz"), str(only_boxes)])
    assert code == 0 and err == "", err
    code, out, err = run(capsys, ["predict", str(tmp / "m.npz"), str(mixed)])
    assert code == 0  # a warning, and the predictions all the same
    assert len(out.strip().splitlines()) == 1 + 4
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("warning: the model was trained on periodic structures only")
    assert "index 1, 3" in err and f"{str(mixed.resolve())!r} frame(s) 1, 3" in err

    # the reverse: a model of molecules applied to a box
    molecules = tmp / "molecules.extxyz"
    frames = [molecule(rng) for _ in range(6)]
    for k, atoms in enumerate(frames):
        atoms.info["energy"] = float(k)
    ase.io.write(molecules, frames)
    recipe = tmp / "mol.json"
    recipe.write_text(json.dumps(store_recipe()))
    code, _, err = run(
        capsys,
        ["featurize", str(molecules), "--out", str(tmp / "mstore"), "--recipe", str(recipe),
         "--workers", "1", "--quiet"],
    )  # fmt: skip
    assert code == 0, err
    code, _, err = run(
        capsys,
        ["fit", str(tmp / "mstore"), "--target", "energy", "--out", str(tmp / "mol.npz"),
         "--alpha", "1e-2"],
    )  # fmt: skip
    assert code == 0, err
    code, out, err = run(capsys, ["predict", str(tmp / "mol.npz"), str(mixed)])
    assert code == 0 and len(out.strip().splitlines()) == 5
    assert err.startswith("warning: the model was trained on non-periodic structures only")
    assert "index 0, 2" in err and len(err.strip().splitlines()) == 1


def test_slabs_are_a_periodicity_of_their_own(capsys, power_spectrum_store):
    """A slab is neither bulk nor a molecule: its own count in the model, its own warning,
    and a fingerprint of its own pbc (not that of a molecule with the same cell)."""
    from types import SimpleNamespace

    from lodekit.batch import StructureSource
    from lodekit.batch.fit_predict import fit_store, periodicity_mismatches
    from lodekit.cli.predict import _periodicity_warning
    from lodekit.errors import InputError
    from lodekit.systems import System
    from tests.helpers import three_species_box, three_species_slab

    rng = np.random.default_rng(4)
    slab = three_species_slab(rng)
    as_molecule = slab.copy()
    as_molecule.pbc = False
    frames = [three_species_box(rng), slab, as_molecule]
    source = StructureSource.scan(frames)
    assert source.boundaries.tolist() == ["periodic", "slab", "molecule"]
    assert source.periodic.tolist() == [True, False, False]
    # lodekit.System inputs too: the same positions and cell, only the pbc differs
    system = System.from_ase(slab)
    flat = System(system.positions, system.numbers, cell=system.cell, pbc=False)
    assert StructureSource.scan([system]).records != StructureSource.scan([flat]).records
    assert StructureSource.scan([system]).boundaries.tolist() == ["slab"]

    def trained_on(**counts):
        return SimpleNamespace(metadata_={"train_periodicity": counts})

    # a model of bulk (or of bulk and molecules, written before slabs had a count)
    trained, indices = periodicity_mismatches(trained_on(periodic=3, non_periodic=0), source)
    assert (trained, indices.tolist()) == ("periodic", [1, 2])
    trained, indices = periodicity_mismatches(trained_on(periodic=3, non_periodic=2), source)
    assert (trained, indices.tolist()) == ("periodic and non-periodic", [1])
    warning = _periodicity_warning(trained, indices, source)
    assert warning.startswith(
        "warning: the model was trained on periodic and non-periodic structures only, but 1 "
        "structure(s) are slabs (two periodic axes): index 1"
    )
    trained, indices = periodicity_mismatches(trained_on(periodic=0, slab=4), source)
    assert (trained, indices.tolist()) == ("slab", [0, 2])
    assert "are periodic or non-periodic (no cell)" in _periodicity_warning(
        trained, indices, source
    )

    store, energies, _ = power_spectrum_store
    kinds = ["periodic"] * (N_BOXES - 4) + ["slab"] * 4
    model = fit_store(store, energies, alpha=[1e-2], periodic=kinds)
    assert model.metadata_["train_periodicity"] == {
        "periodic": N_BOXES - 4,
        "slab": 4,
        "non_periodic": 0,
    }
    with pytest.raises(InputError, match=r"`periodic` holds \['bulk'\]; each entry must be"):
        fit_store(store, energies, alpha=[1e-2], periodic=["bulk"] * N_BOXES)
    with pytest.raises(InputError, match=r"`periodic` has shape \(2,\)"):
        fit_store(store, energies, alpha=[1e-2], periodic=[True, False])
