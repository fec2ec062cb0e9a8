"""Smoke test of the experiment pipeline (quick mode checks the pipeline, not the paper)."""

import json

from lodekit.cli import main


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


def test_dimers_quick(tmp_path):
    out = tmp_path / "dimers"
    assert main(["reproduce", "dimers", "--quick", "--out", str(out), "--quiet"]) == 0
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


def test_missing_data_gives_one_clear_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LODEKIT_DATA", str(tmp_path / "nowhere"))
    out = tmp_path / "water"
    assert main(["reproduce", "water", "--quick", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not exist" in err[0] and "LODEKIT_DATA" in err[0]
    assert not out.exists()
