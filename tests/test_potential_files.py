"""Potential files (issue 28): one .npz holds everything needed to predict energies, forces and
stress; they survive a round trip bit for bit and refuse what is not a potential."""

import zipfile

import ase.build
import ase.io
import numpy as np
import pytest

import lodekit
from lodekit.cli import main
from lodekit.datasets import rigid_ion_nacl
from lodekit.features import Recipe
from lodekit.interatomic import LodekitCalculator, load_potential
from lodekit.models import AdditiveKernelRidge, StructureRidge
from lodekit.persistence import ModelFileError
from tests.conftest import NACL_POTENTIAL_RECIPE

RECIPE = NACL_POTENTIAL_RECIPE  # SOAP power spectrum + LODE nu = 1 of a small NaCl model


@pytest.fixture(scope="module")
def trained():
    frames = rigid_ion_nacl(30, seed=5, rattle=0.15)
    recipe = Recipe.from_dict(RECIPE)
    x = recipe.compute(frames)
    energies = [a.info["energy"] for a in frames]
    args = (x.values, energies, x.samples[:, 0], x.samples[:, 2])
    return {
        "linear": StructureRidge(alpha=[1e-8, 1e-6]).fit(*args),
        "kernel": AdditiveKernelRidge(zeta=2, alpha=[1e-8, 1e-6], n_sparse=40).fit(*args),
        "recipe": recipe,
    }


def _probe():
    atoms = ase.build.bulk("NaCl", "rocksalt", a=5.8, cubic=True)
    atoms.rattle(0.1, seed=3)
    return atoms


@pytest.mark.parametrize("kind", ["linear", "kernel"])
def test_round_trip_gives_the_same_energy_forces_and_stress(trained, tmp_path, kind):
    potential = lodekit.LodePotential(
        trained[kind], trained["recipe"], species=[11, 17], references={11: -1.25, 17: 0.5}
    )
    path = potential.save(tmp_path / "p.npz", {"note": "test"})
    loaded = load_potential(path)
    assert loaded.references == {11: -1.25, 17: 0.5}
    assert loaded.species.tolist() == [11, 17]
    atoms = _probe()
    before, after = potential.compute(atoms), loaded.compute(atoms)
    assert before["energy"] == after["energy"]
    for key in ("forces", "stress"):
        assert np.array_equal(before[key], after[key])
    atoms.calc = LodekitCalculator.from_file(path)
    assert atoms.get_potential_energy() == before["energy"]
    assert np.array_equal(atoms.get_forces(), before["forces"])


def test_references_add_per_atom_energies_and_nothing_else(trained):
    plain = lodekit.LodePotential(trained["linear"], trained["recipe"], species=[11, 17])
    shifted = lodekit.LodePotential(
        trained["linear"], trained["recipe"], species=[11, 17], references={"11": 2.0, 17: -0.75}
    )
    atoms = _probe()  # 4 Na, 4 Cl
    a, b = plain.compute(atoms), shifted.compute(atoms)
    assert b["energy"] == pytest.approx(a["energy"] + 4 * 2.0 - 4 * 0.75, abs=1e-12)
    assert np.array_equal(a["forces"], b["forces"]) and np.array_equal(a["stress"], b["stress"])
    with pytest.raises(lodekit.InputError, match="`references` entry 'Na'"):
        lodekit.LodePotential(trained["linear"], trained["recipe"], references={"Na": 1.0})
    with pytest.raises(lodekit.InputError, match="`references` entry 17"):
        lodekit.LodePotential(trained["linear"], trained["recipe"], references={17: np.nan})


def test_a_structure_without_one_species_and_one_with_an_unknown_species(trained):
    # issue 28: a model trained on every species failed on a structure lacking one
    potential = lodekit.LodePotential(trained["kernel"], trained["recipe"], species=[11, 17])
    sodium = ase.Atoms("Na4Cl4", positions=_probe().positions, cell=_probe().cell, pbc=True)
    sodium.numbers[4:] = 11  # Na only: the Cl channels are empty
    result = potential.compute(sodium)
    # its forces are still the gradient of its energy (central differences, 1e-4 Å)
    step, atom = 1e-4, 2
    shifted = []
    for sign in (1, -1):
        moved = sodium.copy()
        moved.positions[atom, 0] += sign * step
        shifted.append(potential.compute(moved, forces=False, stress=False)["energy"])
    assert -(shifted[0] - shifted[1]) / (2 * step) == pytest.approx(
        result["forces"][atom, 0], abs=1e-6
    )
    with pytest.raises(lodekit.InputError, match=r"species \[8\]"):
        potential.compute(ase.Atoms("NaO", positions=[[0, 0, 0], [2, 0, 0]]))


def test_files_that_are_not_potentials_are_refused(trained, tmp_path):
    potential = lodekit.LodePotential(trained["linear"], trained["recipe"])
    with pytest.raises(lodekit.InputError, match="`potential` has no `species`"):
        potential.save(tmp_path / "a.npz")
    plain = lodekit.save_model(tmp_path / "model.npz", trained["linear"])
    with pytest.raises(ModelFileError, match="not a potential"):
        load_potential(plain)
    # an edited reference is caught by the header's checksum
    path = lodekit.LodePotential(
        trained["linear"], trained["recipe"], species=[11, 17], references={11: 1.0}
    ).save(tmp_path / "p.npz")
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    header_name = next(name for name in members if "header" in name)
    text = members[header_name].decode("latin-1")
    assert '\\"11\\": 1.0' in text or '"11": 1.0' in text
    members[header_name] = text.replace("1.0", "9.0", 1).encode("latin-1")
    with zipfile.ZipFile(tmp_path / "edited.npz", "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    with pytest.raises(ModelFileError):
        load_potential(tmp_path / "edited.npz")


def test_lodekit_predict_reads_a_potential_file(trained, tmp_path, capsys):
    potential = lodekit.LodePotential(
        trained["linear"], trained["recipe"], species=[11, 17], references={11: 0.5}
    )
    path = potential.save(tmp_path / "p.npz")
    frames = rigid_ion_nacl(3, seed=9)
    ase.io.write(tmp_path / "f.extxyz", frames)
    out = tmp_path / "pred.csv"
    assert main(["predict", str(path), str(tmp_path / "f.extxyz"), "--out", str(out)]) == 0
    rows = out.read_text().splitlines()[1:]
    values = [float(row.split(",")[-1]) for row in rows]
    # `predict` gives the model's energies; the potential adds the references on top. The
    # LODE block has accuracy 1e-8 and `predict` computes the frames in one batch (measured
    # agreement 1.5e-10 relative)
    expected = [potential.compute(a, forces=False)["energy"] - 4 * 0.5 for a in frames]
    np.testing.assert_allclose(values, expected, rtol=1e-8)
