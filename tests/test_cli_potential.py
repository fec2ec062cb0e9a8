"""``lodekit evaluate`` and ``lodekit md``: a potential's errors on labelled data, and molecular
dynamics with it.

The evaluate references are the potential's own predictions moved by known offsets, so every
error is known in closed form; it is also recomputed here with numpy from
``LodePotential.compute`` on the frames as read back from the files. The md tests check
conservation of the total energy (NVE), the files' rows and frames against the number of
steps, and the initial velocities against the documented recipe (numpy's Generator).
"""

from __future__ import annotations

import json
import re

import ase.build
import ase.io
import numpy as np
import pytest
from ase import units
from ase.calculators.singlepoint import SinglePointCalculator

from lodekit.cli import main
from lodekit.cli.md import _Drift, initial_momenta
from lodekit.datasets import rigid_ion_nacl
from lodekit.interatomic.labels import read_labels
from tests.conftest import nacl_potential

PNG = b"\x89PNG\r\n\x1a\n"
#: Per-atom energy error (eV/atom) given to frame i of the labelled data.
ENERGY_SHIFTS = [0.01, -0.02, 0.03, -0.005, 0.015, 0.0]
#: Force error (eV/Å) given to every Na and every Cl atom of the frames with forces.
FORCE_SHIFTS = {11: np.array([0.1, 0.0, 0.0]), 17: np.array([0.0, -0.2, 0.0])}
#: Stress error (eV/Å^3, Voigt xx yy zz yz xz xy) of the frames with a stress.
STRESS_SHIFT = np.array([1e-3, 0.0, 0.0, 0.0, -2e-3, 0.0])


@pytest.fixture(scope="module")
def potential(tmp_path_factory):
    path = tmp_path_factory.mktemp("potential") / "nacl.npz"
    return path, nacl_potential(path)


def _run(argv, capsys):
    capsys.readouterr()
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _labelled(potential, frames, first, *, forces, stress):
    """``frames`` with reference energies (info only, or a single-point calculator) that are
    the potential's own, shifted by ENERGY_SHIFTS[first + i] per atom, FORCE_SHIFTS and
    STRESS_SHIFT, with forces and stress on the frames flagged in ``forces`` and ``stress``."""
    out = []
    for i, atoms in enumerate(frames):
        atoms = atoms.copy()
        # the generator's own labels (rigid-ion energy, forces, stress) are replaced below
        for key in ("initial_charges", "forces"):
            atoms.arrays.pop(key, None)
        atoms.info.pop("stress", None)
        result = potential.compute(atoms)
        energy = result["energy"] - ENERGY_SHIFTS[first + i] * len(atoms)
        if not (forces[i] or stress[i]):
            atoms.info["energy"] = energy
            out.append(atoms)
            continue
        atoms.info.pop("energy", None)
        labels = {"energy": energy}
        if forces[i]:
            shift = np.array([FORCE_SHIFTS[z] for z in atoms.numbers])
            labels["forces"] = result["forces"] - shift
        if stress[i]:
            s = result["stress"]
            voigt = np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])
            labels["stress"] = voigt - STRESS_SHIFT
        atoms.calc = SinglePointCalculator(atoms, **labels)
        out.append(atoms)
    return out


@pytest.fixture(scope="module")
def data(potential, tmp_path_factory):
    """Two files: four 8-atom cells (forces on two, stress on one) and two 2-atom cells
    (forces and stress on one); returns the paths."""
    root = tmp_path_factory.mktemp("data")
    _, pot = potential
    cubic = rigid_ion_nacl(4, seed=9, rattle=0.1)
    small = []
    for k, a in enumerate((5.6, 5.8)):
        atoms = ase.build.bulk("NaCl", "rocksalt", a=a)
        atoms.rattle(0.05, seed=k)
        small.append(atoms)
    paths = [root / "cubic.extxyz", root / "small.extxyz"]
    ase.io.write(paths[0], _labelled(pot, cubic, 0, forces=[1, 0, 1, 0], stress=[1, 0, 0, 0]))
    ase.io.write(paths[1], _labelled(pot, small, 4, forces=[1, 0], stress=[1, 0]))
    return paths


def _numpy_metrics(pot, paths):
    """The errors recomputed from the frames as read back, with numpy."""
    energy, per_atom, forces, numbers, stress = [], [], [], [], []
    for path in paths:
        frames = ase.io.read(path, ":")
        labels = read_labels(frames)
        for atoms, e, f, s in zip(frames, labels.energy, labels.forces, labels.stress, strict=True):
            result = pot.compute(atoms)
            energy.append(result["energy"] - e)
            per_atom.append((result["energy"] - e) / len(atoms))
            if f is not None:
                forces.append(result["forces"] - f)
                numbers.append(atoms.numbers)
            if s is not None:
                d = result["stress"] - s
                stress.append([d[0, 0], d[1, 1], d[2, 2], d[1, 2], d[0, 2], d[0, 1]])
    forces, numbers = np.concatenate(forces), np.concatenate(numbers)
    rms = lambda x: float(np.sqrt(np.mean(np.square(x))))  # noqa: E731
    mae = lambda x: float(np.mean(np.abs(x)))  # noqa: E731
    return {
        "energy": {
            "rmse_eV": rms(energy),
            "mae_eV": mae(energy),
            "rmse_eV_per_atom": rms(per_atom),
            "mae_eV_per_atom": mae(per_atom),
        },
        "forces": {
            "rmse_eV_per_A": rms(forces),
            "mae_eV_per_A": mae(forces),
            "per_species": {
                name: {
                    "rmse_eV_per_A": rms(forces[numbers == z]),
                    "mae_eV_per_A": mae(forces[numbers == z]),
                    "atoms": int(np.sum(numbers == z)),
                }
                for name, z in (("Na", 11), ("Cl", 17))
            },
        },
        "stress": {"rmse_eV_per_A3": rms(stress), "mae_eV_per_A3": mae(stress)},
    }


def _close(actual, expected, **tolerance):
    if isinstance(expected, dict):
        assert set(actual) == set(expected)
        for key in expected:
            _close(actual[key], expected[key], **tolerance)
    else:
        assert actual == pytest.approx(expected, **tolerance)


def test_evaluate_metrics_match_numpy_and_the_known_offsets(potential, data, tmp_path, capsys):
    path, pot = potential
    out = tmp_path / "eval"
    code, stdout, err = _run(["evaluate", path, *data, "--out", out, "--quiet"], capsys)
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())

    # the same numbers from the frames as read back (the files round positions and forces to
    # 1e-8; both sides compute on the same rounded positions)
    _close(
        {key: metrics[key] for key in ("energy", "forces", "stress")},
        _numpy_metrics(pot, data),
        rel=1e-9,
        abs=1e-12,
    )

    # and in closed form: 6 structures (4 x 8 atoms, 2 x 2), forces on 8 + 8 + 2 atoms (half Na,
    # half Cl), stress on one 8-atom and one 2-atom cell
    shifts = np.array(ENERGY_SHIFTS)
    sizes = np.array([8, 8, 8, 8, 2, 2])
    assert metrics["counts"] == {
        "structures": 6,
        "atoms": 36,
        "structures_with_forces": 3,
        "atoms_with_forces": 18,
        "structures_with_stress": 2,
    }
    tolerance = {"abs": 1e-7}  # forces written to 1e-8 eV/Å
    assert metrics["energy"]["rmse_eV_per_atom"] == pytest.approx(
        np.sqrt(np.mean(shifts**2)), **tolerance
    )
    assert metrics["energy"]["mae_eV_per_atom"] == pytest.approx(
        np.mean(np.abs(shifts)), **tolerance
    )
    assert metrics["energy"]["rmse_eV"] == pytest.approx(
        np.sqrt(np.mean((shifts * sizes) ** 2)), **tolerance
    )
    forces = metrics["forces"]
    # Na: one component off by 0.1 of three; Cl: one off by 0.2
    assert forces["per_species"]["Na"]["rmse_eV_per_A"] == pytest.approx(
        np.sqrt(0.01 / 3), **tolerance
    )
    assert forces["per_species"]["Na"]["mae_eV_per_A"] == pytest.approx(0.1 / 3, **tolerance)
    assert forces["per_species"]["Cl"]["rmse_eV_per_A"] == pytest.approx(
        np.sqrt(0.04 / 3), **tolerance
    )
    assert forces["per_species"]["Cl"]["atoms"] == 9
    assert forces["rmse_eV_per_A"] == pytest.approx(np.sqrt((0.01 + 0.04) / 6), **tolerance)
    assert forces["mae_eV_per_A"] == pytest.approx((0.1 + 0.2) / 6, **tolerance)
    # two stresses, each off in two of six components
    assert metrics["stress"]["rmse_eV_per_A3"] == pytest.approx(
        np.sqrt(np.mean(STRESS_SHIFT**2)), abs=1e-9
    )

    for name in ("parity_energy.png", "parity_forces.png"):
        assert (out / name).read_bytes().startswith(PNG)
    assert metrics["plots"] == ["parity_energy.png", "parity_forces.png"]
    assert "forces (eV/Å)" in stdout and "Cl (eV/Å)" in stdout
    assert err == ""  # --quiet: no progress bar


def test_evaluate_without_forces_or_plots(potential, data, tmp_path, capsys):
    path, _ = potential
    frames = ase.io.read(data[0], ":")
    energies = read_labels(frames).energy
    for atoms, energy in zip(frames, energies, strict=True):  # energies only, another key
        atoms.calc = None
        atoms.info = {"dft": energy}
        atoms.arrays.pop("forces", None)
    ase.io.write(tmp_path / "e.extxyz", frames)
    out = tmp_path / "eval"
    argv = ["evaluate", path, tmp_path / "e.extxyz", "--out", out, "--quiet", "--no-plots"]
    code, stdout, err = _run([*argv, "--energy-key", "dft"], capsys)
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["forces"] is None and metrics["stress"] is None
    assert metrics["counts"]["structures_with_forces"] == 0
    assert metrics["energy"]["rmse_eV_per_atom"] == pytest.approx(
        np.sqrt(np.mean(np.square(ENERGY_SHIFTS[:4]))), abs=1e-7
    )
    assert sorted(p.name for p in out.iterdir()) == ["metrics.json"]
    assert "forces (eV/Å)" not in stdout


def test_evaluate_refuses_an_unknown_species_naming_file_frame_and_species(
    potential, data, tmp_path, capsys
):
    path, _ = potential
    frames = ase.io.read(data[0], ":")
    frames[2].numbers[0] = 19  # a K atom in frame 2
    ase.io.write(tmp_path / "k.extxyz", frames)
    code, out, err = _run(
        ["evaluate", path, data[1], tmp_path / "k.extxyz", "--out", tmp_path / "x"], capsys
    )
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1
    assert "k.extxyz" in err and "frame 2" in err and "K (Z=19)" in err
    assert not (tmp_path / "x").exists()


def _cell():
    atoms = ase.build.bulk("NaCl", "rocksalt", a=5.7, cubic=True)
    atoms.rattle(0.05, seed=1)
    return atoms


def _log(path):
    rows = [line.split() for line in path.read_text().splitlines() if not line.startswith("#")]
    return np.array(rows, dtype=float)


def test_md_nve_conserves_energy_and_writes_log_and_trajectory(potential, tmp_path, capsys):
    path, pot = potential
    ase.io.write(tmp_path / "s.extxyz", [_cell(), _cell()])
    out = tmp_path / "md"
    argv = ["md", path, tmp_path / "s.extxyz", "--steps", 20, "--dt", 1, "--out", out]
    code, stdout, err = _run([*argv, "--temperature", 300, "--seed", 4, "--interval", 5], capsys)
    assert code == 0, err
    assert "md" in err  # the progress bar

    log = _log(out / "md.log")
    assert log.shape == (5, 6)  # steps 0, 5, ..., 20
    np.testing.assert_array_equal(log[:, 0], [0, 5, 10, 15, 20])
    np.testing.assert_allclose(log[:, 1], log[:, 0] * 1.0)
    np.testing.assert_allclose(log[:, 4], log[:, 2] + log[:, 3], atol=3e-8)
    assert np.ptp(log[:, 4]) / 8 < 1e-3  # eV/atom over 20 fs

    frames = ase.io.read(out / "trajectory.extxyz", ":")
    assert len(frames) == 5
    masses = frames[0].get_masses()
    # frame 0: momenta of the documented recipe, the centre of mass at rest
    rng = np.random.default_rng(4)
    expected = np.sqrt(masses * units.kB * 300)[:, None] * rng.standard_normal((8, 3))
    expected -= masses[:, None] * expected.sum(axis=0) / masses.sum()
    np.testing.assert_allclose(frames[0].get_momenta(), expected, atol=1e-7)
    np.testing.assert_allclose(frames[0].get_momenta().sum(axis=0), 0.0, atol=1e-6)
    # temperature of 3N - 3 degrees of freedom
    kinetic = 0.5 * np.sum(expected**2 / masses[:, None])
    assert log[0, 3] == pytest.approx(kinetic, abs=2e-8)
    assert log[0, 5] == pytest.approx(2 * kinetic / (21 * units.kB), abs=1e-3)
    for frame, row in zip(frames, log, strict=True):
        result = pot.compute(frame, stress=False)  # positions as written (1e-8 Å)
        assert frame.get_potential_energy() == pytest.approx(row[2], abs=1e-7)
        assert frame.get_potential_energy() == pytest.approx(result["energy"], abs=1e-6)
        np.testing.assert_allclose(frame.get_forces(), result["forces"], atol=1e-6)
        assert frame.info["step"] == row[0]

    assert "20 steps of 1 fs" in stdout and "mean temperature" in stdout
    spread = float(re.search(r"max - min (\S+) eV", stdout)[1])
    # over every step, not only the logged ones; printed to 3 digits
    assert spread >= np.ptp(log[:, 4]) * (1 - 5e-3) - 1e-8
    assert spread / 8 < 1e-3


def test_md_without_temperature_starts_at_rest(potential, tmp_path, capsys):
    path, _ = potential
    ase.io.write(tmp_path / "s.extxyz", _cell())
    argv = ["md", path, tmp_path / "s.extxyz", "--steps", 3, "--dt", 0.5, "--quiet"]
    code, _, err = _run([*argv, "--interval", 1, "--out", tmp_path / "md"], capsys)
    assert code == 0 and err == ""
    log = _log(tmp_path / "md" / "md.log")
    assert log.shape == (4, 6) and log[0, 3] == 0.0 and log[-1, 1] == 1.5
    assert log[-1, 3] > 0  # the rattled atoms start to move


def test_md_langevin_runs_and_is_reproducible(potential, tmp_path, capsys):
    path, _ = potential
    ase.io.write(tmp_path / "s.extxyz", _cell())
    logs = []
    for name in ("a", "b"):
        argv = ["md", path, tmp_path / "s.extxyz", "--steps", 10, "--dt", 2, "--quiet"]
        argv += ["--thermostat", "langevin", "--temperature", 500, "--friction", 0.05]
        code, stdout, err = _run([*argv, "--interval", 5, "--out", tmp_path / name], capsys)
        assert code == 0, err
        assert "Langevin" in stdout and "drift" not in stdout
        logs.append((tmp_path / name / "md.log").read_text())
    assert logs[0] == logs[1]
    assert _log(tmp_path / "a" / "md.log").shape == (3, 6)
    assert len(ase.io.read(tmp_path / "a" / "trajectory.extxyz", ":")) == 3


def test_initial_momenta_follow_maxwell_boltzmann():
    # 3 x 20000 Gaussian momenta: the kinetic energy is 3/2 (N - 1) k T to 3 standard
    # deviations (relative sd sqrt(2 / (3N)) = 0.6 %)
    n, temperature = 20000, 450.0
    masses = np.where(np.arange(n) % 2, 22.99, 35.45)
    momenta = initial_momenta(masses, temperature, np.random.default_rng(0))
    np.testing.assert_allclose(momenta.sum(axis=0), 0.0, atol=1e-9)
    kinetic = 0.5 * np.sum(momenta**2 / masses[:, None])
    expected = 1.5 * (n - 1) * units.kB * temperature
    assert kinetic == pytest.approx(expected, rel=3 * np.sqrt(2 / (3 * n)))
    # each species' velocity variance is k T / m
    for m in (22.99, 35.45):
        v = momenta[masses == m] / m
        assert np.var(v) == pytest.approx(units.kB * temperature / m, rel=0.03)
    assert not np.any(initial_momenta(masses[:5], None, np.random.default_rng(0)))


def test_drift_is_the_least_squares_slope_and_the_extremes():
    rng = np.random.default_rng(3)
    t = np.arange(5000) * 0.5 + 1e6  # far from 0: the naive sums would lose digits
    e = -1234.5 + 3e-6 * (t - 1e6) + 1e-5 * rng.standard_normal(len(t))
    drift = _Drift()
    for ti, ei in zip(t, e, strict=True):
        drift.add(ti, ei, 300.0)
    assert drift.slope == pytest.approx(np.polyfit(t - 1e6, e, 1)[0], rel=1e-6)
    assert (drift.low, drift.high) == (e.min(), e.max())
    assert drift.temperature == pytest.approx(300.0)
