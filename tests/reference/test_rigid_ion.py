"""The rigid-ion NaCl model (Ewald + Tosi-Fumi repulsion) against independent sums, and the
README's dynamics example run as written."""

import itertools
import re
from pathlib import Path

import ase.build
import numpy as np
import pytest

from lodekit import InputError
from lodekit.datasets import born_mayer_energy, rigid_ion_energy, rigid_ion_nacl
from lodekit.datasets.rigid_ion import TOSI_FUMI

#: Madelung constant of rock salt, referred to the nearest-neighbour distance.
MADELUNG_NACL = 1.747564594633182
COULOMB = 14.399645


def test_perfect_crystal_is_madelung_plus_the_shell_sum():
    # rock salt is the simple cubic lattice n r0 (n integer) with unlike ions where n1+n2+n3
    # is odd: per NaCl pair, E = -M k / r0 + sum_{n != 0, |n| r0 < 8 Å} of A e^(-|n| r0 / rho),
    # with A = A_+- for unlike sites and (A_++ + A_--) / 2 for like ones
    b, rho, s, c = (TOSI_FUMI[key] for key in ("b", "rho", "radius", "pauling"))
    a_pm = c[(11, 17)] * b * np.exp((s[11] + s[17]) / rho)
    a_like = sum(c[(z, z)] * b * np.exp(2 * s[z] / rho) for z in (11, 17)) / 2
    n = np.array(list(itertools.product(range(-6, 7), repeat=3)))
    n = n[np.any(n != 0, axis=1)]
    length, unlike = np.linalg.norm(n, axis=1), n.sum(axis=1) % 2 == 1
    for a in (5.5, 5.76, 6.0):
        r0 = a / 2
        inside = length * r0 < 8.0
        strength = np.where(unlike, a_pm, a_like)[inside]
        shells = np.sum(strength * np.exp(-length[inside] * r0 / rho))
        expected = -MADELUNG_NACL * COULOMB / r0 + shells
        crystal = ase.build.bulk("NaCl", "rocksalt", a=a, cubic=True)
        assert rigid_ion_energy(crystal) / 4 == pytest.approx(expected, rel=1e-10, abs=1e-8)


def test_repulsion_against_an_explicit_image_sum():
    rng = np.random.default_rng(3)
    atoms = ase.build.bulk("NaCl", "rocksalt", a=5.7, cubic=True)
    atoms.positions += rng.normal(scale=0.2, size=atoms.positions.shape)
    atoms.set_cell(atoms.cell + rng.normal(scale=0.3, size=(3, 3)), scale_atoms=True)
    b, rho, s, c = (TOSI_FUMI[key] for key in ("b", "rho", "radius", "pauling"))
    energy = 0.0
    for shift in itertools.product(range(-4, 5), repeat=3):
        offset = np.array(shift) @ atoms.cell.array
        for i, j in itertools.product(range(len(atoms)), repeat=2):
            if i == j and shift == (0, 0, 0):
                continue
            r = np.linalg.norm(atoms.positions[j] + offset - atoms.positions[i])
            zi, zj = sorted((atoms.numbers[i], atoms.numbers[j]))
            if r < 8.0:  # the model's cutoff
                energy += 0.5 * c[(zi, zj)] * b * np.exp((s[zi] + s[zj] - r) / rho)
    assert born_mayer_energy(atoms) == pytest.approx(energy, rel=1e-12)


def test_generated_cells_carry_their_energy_and_bad_input_is_named():
    frames = rigid_ion_nacl(3, seed=2, repeat=2)
    assert [len(a) for a in frames] == [64] * 3
    for atoms in frames:
        assert atoms.info["energy"] == rigid_ion_energy(atoms)
        assert np.array_equal(atoms.get_initial_charges(), np.where(atoms.numbers == 11, 1, -1))
    with pytest.raises(InputError, match=r"`structure` holds atomic numbers \[1, 8\]"):
        born_mayer_energy(ase.build.molecule("H2O"))
    with pytest.raises(InputError, match="`rattle`"):
        rigid_ion_nacl(1, rattle=-0.1)
    with pytest.raises(InputError, match="`lattice_range`"):
        rigid_ion_nacl(1, lattice_range=(6.0, 5.0))


@pytest.mark.slow
def test_readme_dynamics_example_runs_stable_nve(capsys):
    """The README's MD example, executed as written (about 20 s)."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    (code,) = [b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "VelocityVerlet" in b]
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)
    crystal = namespace["crystal"]
    # NVE conserves the model's energy; the ions neither collapse nor fly apart (the pure
    # Coulomb model of the former example collapsed to 0.09 Å)
    assert namespace["drift"] < 0.5  # meV/atom over 100 steps of 2 fs
    assert 50 < crystal.get_temperature() < 1000
    distances = crystal.get_all_distances(mic=True)[np.triu_indices(len(crystal), 1)]
    assert distances.min() > 2.2
    # and the model is the rigid-ion model: 64 ions, within 0.1 eV (1.6 meV/atom)
    assert abs(crystal.get_potential_energy() - rigid_ion_energy(crystal)) < 0.1
    assert "meV/atom" in capsys.readouterr().out
