"""The experiment pipeline. CI (``-m "not slow"``) runs one experiment, point charges in quick
mode, and checks its numbers against bands stated below with their reasons; the quick runs of
the dimers and water experiments are marked ``slow``."""

import itertools
import json

import numpy as np
import pytest

import lodekit
from lodekit.cli import main
from lodekit.datasets import load_dielectric_water, load_ssi_dimers
from lodekit.datasets.loaders import default_data_dir
from lodekit.errors import InputError
from lodekit.experiments import dimers, point_charges, reproduce, water
from lodekit.features import power_spectrum
from lodekit.models import StructureRidge
from lodekit.recipes import paper_recipe_path


def _assert_table_is_the_metrics(out, record):
    """Every row of results.md shows the metrics.json curve of its model (3 digits)."""
    lines = (out / "results.md").read_text().splitlines()
    header = next(line for line in lines if line.startswith("| model |"))
    sizes = [cell.strip().removeprefix("n = ") for cell in header.split("|")[2:-2]]
    for model, curve in record["metrics"].items():
        row = next(line for line in lines if line.startswith(f"| {record['labels'][model]} |"))
        cells = [cell.strip() for cell in row.split("|")[2:-2]]
        assert cells == [f"{curve[n]:.3g}" if n in curve else "" for n in sizes], model


def test_point_charges_quick(tmp_path, capsys):
    """The CI smoke run of the experiments (about 45 s of one core): 300 boxes, 100 test."""
    out = tmp_path / "pc"
    assert main(["reproduce", "point-charges", "--quick", "--out", str(out), "--quiet"]) == 0
    for name in ("metrics.json", "results.md", "learning_curves.png", "config.json"):
        assert (out / name).stat().st_size > 0
    record = json.loads((out / "metrics.json").read_text())
    assert set(record["metrics"]) == set(record["paper"])
    assert record["config"]["seed"] == 0 and record["versions"]["lodekit"]
    _assert_table_is_the_metrics(out, record)
    # Bands (seed 0 gives 0.656, 0.631, 0.639 % and 24.7, 20.0, 15.0 % at 50, 100, 200 boxes).
    # LODE nu = 1, sigma 1 Å: the paper's smeared point-charge model, "below ~1 % with a
    # handful of structures"; its residual is the smearing, not the data (full run: flat at
    # 0.62-0.65 % from 100 to 1500 boxes), so it must not fall far below that either.
    lode = record["metrics"]["lode_nu1_s1"]
    for n in ("50", "100", "200"):
        assert 0.4 < lode[n] < 1.0, (n, lode[n])
    # SOAP r_c 9 Å stays far above it (paper: near 20 % at 1500 boxes; lodekit's full run
    # 13.6 % at 200 boxes and 7.6 % at 1500): between 10 and 30 % at 200 boxes, and at least
    # ten times the LODE error at every size.
    soap = record["metrics"]["soap_rc9"]
    assert 10.0 < soap["200"] < 30.0, soap["200"]
    assert all(soap[n] > 10 * lode[n] for n in lode)
    # SOAP r_c 3 Å is "almost useless (> 50 %)" at every size
    assert min(record["metrics"]["soap_rc3"].values()) > 50.0
    # its error comes from the smearing (paper) unless more radial functions learn it away
    assert record["metrics"]["lode_nu1_s05"]["200"] < lode["200"] / 2
    assert record["metrics"]["lode_nu1_s1_n4"]["200"] < lode["200"] / 2
    assert "| LODE nu=1, sigma 1 Å (linear) |" in capsys.readouterr().out
    # a quick report says, before its table, that it is not comparable with the paper's column
    # and where the full results are; the plot shows the paper's numbers (issue 27, 11-12)
    text = (out / "results.md").read_text()
    assert text.index("**Quick mode** (at most 200 training structures)") < text.index("| model |")
    assert "docs/results.md" in text and "n: training boxes" in text
    assert record["training_size"] == "training boxes"
    assert record["paper_values"]["soap_rc9"] == {"n_train": 1500, "low": 20.0, "high": 20.0}


@pytest.mark.slow
def test_dimers_quick(tmp_path, monkeypatch):
    # the data set given by `--data` (its folder); the default location must not be used
    folder = default_data_dir() / "ssi_dimers"
    monkeypatch.setenv("LODEKIT_DATA", str(tmp_path / "nowhere"))
    out = tmp_path / "dimers"
    args = ["reproduce", "dimers", "--quick", "--out", str(out), "--quiet", "--data", str(folder)]
    assert main(args) == 0
    record = json.loads((out / "metrics.json").read_text())
    assert set(record["metrics"]) == {"soap", "soap_lode1", "soap_lode2", "multiscale"}
    assert (out / "binding_curves.png").stat().st_size > 0
    assert len(record["config"]["binding_curve_dimers"]) == 4
    _assert_table_is_the_metrics(out, record)

    # The first point of the linear rho x V curve recomputed here from the data set: test set
    # the last 15 dimers of the file (without their monomers), training set the first 10 of
    # the other dimers in the seed-0 permutation (monomers included), features from the public
    # calculators, alpha searched holding out whole dimers, % RMSE = 100 RMSE / std.
    data = load_ssi_dimers(folder)
    n_test, n_train = (
        dimers.MODES["quick"]["n_test_dimers"],
        dimers.MODES["quick"]["train_dimers"][0],
    )
    ids = np.unique(data["dimer"])
    pool = ids[:-n_test][np.random.default_rng(0).permutation(len(ids) - n_test)]
    train = np.flatnonzero(np.isin(data["dimer"], pool[:n_train]))
    test = np.flatnonzero(np.isin(data["dimer"], ids[-n_test:]) & ~data["is_monomer"])
    # the hypers as the shipped recipe file states them, read as plain JSON
    (block,) = json.loads(paper_recipe_path("dimers", "multiscale").read_text())["blocks"]
    hypers = {role: dict(block[role]) for role in ("density", "potential")}
    assert hypers["density"].pop("calculator") == "spherical_expansion"
    assert hypers["potential"].pop("calculator") == "lode_spherical_expansion"
    soap = lodekit.SphericalExpansion(**hypers["density"])
    lode = lodekit.LodeSphericalExpansion(**hypers["potential"])
    frames = [data["frames"][i] for i in np.concatenate([train, test])]
    features = power_spectrum(soap.compute(frames), lode.compute(frames))
    structure = features.samples[:, 0]
    is_train = structure < len(train)
    model = StructureRidge(alpha=dimers.ALPHAS, baselines=False)
    model.fit(
        features.values[is_train],
        data["energy"][train],
        structure[is_train],
        cv_groups=data["dimer"][train],
    )
    truth = data["energy"][test]
    prediction = model.predict(features.values[~is_train], structure[~is_train] - len(train))
    error = 100 * np.sqrt(np.mean((prediction - truth) ** 2)) / np.std(truth)
    assert record["metrics"]["multiscale"][str(n_train)] == pytest.approx(error, rel=1e-8)


@pytest.mark.slow
def test_water_quick(tmp_path):
    out = tmp_path / "water"
    assert main(["reproduce", "water", "--quick", "--out", str(out), "--quiet"]) == 0
    record = json.loads((out / "metrics.json").read_text())
    assert set(record["metrics"]) == {"soap3", "soap4", "soap6", "lode3", "soap3_lode3"}
    assert set(record["config"]["lambda2_percent_rmse"]) == {"25", "50", "100"}
    assert set(record["config"]["lambda2_kernel_percent_rmse"]) == {"25", "50", "100"}
    assert "SA-GPR, zeta 2" in (out / "results.md").read_text()
    assert all(v > 0 for curve in record["metrics"].values() for v in curve.values())
    # already at 100 frames: the potential sees the density that SOAP(3 Å) cannot
    at_100 = {name: curve["100"] for name, curve in record["metrics"].items()}
    assert at_100["soap3_lode3"] < at_100["lode3"] < at_100["soap3"]


@pytest.mark.parametrize("mode", ["quick", "full"])
def test_water_featurises_only_the_frames_it_uses(mode):
    # against the loader itself: the test set is the file's last frames, the training sets
    # nest and come from the rest, and every kept frame carries its own epsilon
    data = load_dielectric_water()
    setup = water.build(mode, seed=3)
    config = water.MODES[mode]
    n_file, frames = len(data["frames"]), setup["frames"]
    assert len(frames) == config["n_test"] + max(config["sizes"])

    by_positions = {atoms.positions.tobytes(): i for i, atoms in enumerate(data["frames"])}

    def file_index(atoms):
        return by_positions[atoms.positions.tobytes()]

    test = [file_index(frames[i]) for i in setup["test"]]
    assert test == list(range(n_file - config["n_test"], n_file))
    sets = [setup["train_sets"][s] for s in config["sizes"]]
    for small, large in itertools.pairwise(sets):
        assert np.array_equal(small, large[: len(small)])
    train = [file_index(frames[i]) for i in sets[-1]]
    assert len(set(train)) == len(train) and max(train) < n_file - config["n_test"]
    for i in range(len(frames)):
        expected = np.trace(data["epsilon"][file_index(frames[i])])
        assert setup["targets"][i] == expected


def test_missing_data_gives_one_clear_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LODEKIT_DATA", str(tmp_path / "nowhere"))
    out = tmp_path / "water"
    assert main(["reproduce", "water", "--quick", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not exist" in err[0] and "LODEKIT_DATA" in err[0]
    assert not out.exists()


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (["--out", "FILE"], "`--out`"),
        (["--out", "FILE/report"], "`--out`"),
        (["--seed", "-1"], "`--seed`"),
        (["--data", "somewhere"], "`--data`"),
    ],
)
def test_bad_arguments_fail_before_any_work(tmp_path, monkeypatch, capsys, extra, named):
    # a full run takes up to an hour: a mistake must not surface only when the report is written
    def must_not_run(*args, **kwargs):
        raise AssertionError("the experiment started despite a bad argument")

    monkeypatch.setattr(point_charges, "build", must_not_run)
    afile = tmp_path / "a_file"
    afile.write_text("keep me")
    extra = [word.replace("FILE", str(afile)) for word in extra]
    if "--out" not in extra:
        extra += ["--out", str(tmp_path / "report")]
    assert main(["reproduce", "point-charges", "--quiet", *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and named in err[0]
    assert afile.read_text() == "keep me"
    assert not (tmp_path / "report").exists()


def test_data_path_reaches_the_loader(tmp_path, capsys):
    wrong = tmp_path / "not_here.xyz"
    assert (
        main(["reproduce", "water", "--quiet", "--out", str(tmp_path), "--data", str(wrong)]) == 2
    )
    assert str(wrong) in capsys.readouterr().err


@pytest.mark.parametrize(
    ("name", "mode", "seed", "named"),
    [
        ("point_charges", "quick", 0, "`name`"),
        ("water", "medium", 0, "`mode`"),
        ("water", "full", 1.5, "`seed`"),
        ("water", "full", True, "`seed`"),
    ],
)
def test_reproduce_names_the_bad_argument(tmp_path, name, mode, seed, named):
    with pytest.raises(InputError, match=named):
        reproduce(name, mode, out=tmp_path, seed=seed, progress=False)
