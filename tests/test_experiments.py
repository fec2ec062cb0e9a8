"""Smoke test of the experiment pipeline (quick mode checks the pipeline, not the paper)."""

import itertools
import json

import numpy as np
import pytest

from lodekit.cli import main
from lodekit.datasets import load_dielectric_water
from lodekit.datasets.loaders import default_data_dir
from lodekit.errors import InputError
from lodekit.experiments import point_charges, reproduce, water


def test_point_charges_quick(tmp_path, capsys):
    out = tmp_path / "pc"
    assert main(["reproduce", "point-charges", "--quick", "--out", str(out), "--quiet"]) == 0
    for name in ("metrics.json", "results.md", "learning_curves.png", "config.json"):
        assert (out / name).stat().st_size > 0
    record = json.loads((out / "metrics.json").read_text())
    assert set(record["metrics"]) == set(record["paper"])
    assert record["config"]["seed"] == 0 and record["versions"]["lodekit"]
    # the physics the quick mode must already show: a linear nu=1 model is nearly exact
    lode = record["metrics"]["lode_nu1_s1"]
    assert lode["100"] < 1.0 < record["metrics"]["soap_rc3"]["100"]
    # its error comes from the smearing (paper) unless more radial functions learn it away
    assert record["metrics"]["lode_nu1_s05"]["200"] < lode["200"] / 2
    assert record["metrics"]["lode_nu1_s1_n4"]["200"] < lode["200"] / 2
    assert "| LODE nu=1, sigma 1 Å (linear) |" in capsys.readouterr().out


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
        (["--out", "FILE"], "`out`"),
        (["--out", "FILE/report"], "`out`"),
        (["--seed", "-1"], "`seed`"),
        (["--data", "somewhere"], "`data`"),
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
