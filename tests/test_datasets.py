"""Loaders of the shared data sets: contents and errors."""

import numpy as np
import pytest

from lodekit import InputError
from lodekit.datasets import load_dielectric_water, load_ssi_dimers


def test_ssi_dimers():
    data = load_ssi_dimers()
    n_dimers = len(np.unique(data["dimer"]))
    assert n_dimers == 650
    assert data["is_monomer"].sum() == 2 * n_dimers
    assert np.all(data["energy"][data["is_monomer"]] == 0)
    assert not any(frame.pbc.any() for frame in data["frames"][:20])
    # points of one dimer come 13 at a time, nearest first
    first = np.flatnonzero((data["dimer"] == data["dimer"][0]) & ~data["is_monomer"])
    assert len(first) == 13


def test_dielectric_water():
    data = load_dielectric_water()
    assert len(data["frames"]) == 1000 and data["epsilon"].shape == (1000, 3, 3)
    trace = np.trace(data["epsilon"], axis1=1, axis2=2)
    assert trace.mean() == pytest.approx(5.468, abs=2e-3)
    assert trace.std() == pytest.approx(0.139, abs=2e-3)
    assert np.allclose(data["epsilon"], data["epsilon"].transpose(0, 2, 1))


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_ssi_dimers(tmp_path / "nothing.extxyz")
    bad = tmp_path / "bad.xyz"
    bad.write_text("this is not\nan xyz file\n")
    with pytest.raises(InputError, match="not a readable structure file"):
        load_dielectric_water(bad)


def test_folder_instead_of_file(tmp_path):
    from lodekit.datasets.loaders import default_data_dir

    folder = default_data_dir() / "water_bulk_dielectric"
    assert len(load_dielectric_water(folder)["frames"]) == 1000
    with pytest.raises(InputError, match=r"is a folder without 'coords_1000\.xyz'"):
        load_dielectric_water(tmp_path)
