"""Analytic forces and stress of the Ewald sum and of the rigid-ion NaCl model against
pymatgen, GROMACS, the Madelung energy and central finite differences of the energies."""

import ase
import ase.build
import ase.io
import numpy as np
import pytest

from lodekit.datasets import (
    ewald,
    ewald_energy,
    random_point_charges,
    rigid_ion,
    rigid_ion_energy,
    rigid_ion_nacl,
)
from lodekit.datasets.rigid_ion import CHARGES
from lodekit.neighbors import neighbor_pairs
from lodekit.systems import System
from tests.conftest import shared_file

MADELUNG_NACL = 1.747564594633182


def finite_difference_forces(energy, atoms, h=1e-5):
    """-dE/dr_i by central differences (eV/Å), shape (n_atoms, 3)."""
    forces = np.zeros((len(atoms), 3))
    for i in range(len(atoms)):
        for axis in range(3):
            plus, minus = atoms.copy(), atoms.copy()
            plus.positions[i, axis] += h
            minus.positions[i, axis] -= h
            forces[i, axis] = -(energy(plus) - energy(minus)) / (2 * h)
    return forces


def finite_difference_stress(energy, atoms, h=1e-5):
    """(1/V) dE/d(strain) by central differences, cell and positions deformed by (I + strain)."""
    stress = np.zeros((3, 3))
    for a in range(3):
        for b in range(3):
            values = []
            for sign in (1, -1):
                deformation = np.eye(3)
                deformation[a, b] += sign * h
                strained = atoms.copy()
                strained.set_cell(atoms.cell.array @ deformation.T, scale_atoms=False)
                strained.positions = atoms.positions @ deformation.T
                values.append(energy(strained))
            stress[a, b] = (values[0] - values[1]) / (2 * h) / atoms.get_volume()
    return stress


def triclinic_nacl(seed=5):
    """A rattled, sheared 8-atom rock-salt cell with charges ±1."""
    rng = np.random.default_rng(seed)
    atoms = ase.build.bulk("NaCl", "rocksalt", a=5.7, cubic=True)
    atoms.set_cell(atoms.cell.array + rng.normal(scale=0.3, size=(3, 3)), scale_atoms=True)
    atoms.positions += rng.normal(scale=0.15, size=atoms.positions.shape)
    atoms.set_initial_charges([CHARGES[z] for z in atoms.numbers])
    return atoms


def test_forces_against_pymatgen():
    pymatgen_ewald = pytest.importorskip("pymatgen.analysis.ewald")
    from pymatgen.io.ase import AseAtomsAdaptor

    frames = random_point_charges(3, seed=4, n_charges=16, box_range=(8.0, 11.0))
    skewed = frames[0].copy()
    skewed.set_cell([[9.0, 0, 0], [2.5, 8.5, 0], [-1.5, 1.0, 9.5]], scale_atoms=True)
    conversion = pymatgen_ewald.EwaldSummation.CONV_FACT
    for atoms in [*frames, skewed]:
        structure = AseAtomsAdaptor.get_structure(atoms)
        structure.add_oxidation_state_by_site(list(atoms.get_initial_charges()))
        reference = pymatgen_ewald.EwaldSummation(structure, acc_factor=14, compute_forces=True)
        ours = ewald(atoms, coulomb=conversion, accuracy=1e-14)
        # measured: 4e-14 eV/Å of forces up to 4.5 eV/Å (2e-10 at the default accuracy 1e-10)
        np.testing.assert_allclose(ours["forces"], reference.forces, rtol=0, atol=1e-12)
        assert ours["energy"] == pytest.approx(reference.total_energy, rel=1e-12)
        assert np.abs(ours["forces"].sum(axis=0)).max() < 1e-12


def test_forces_and_virial_against_gromacs():
    """GROMACS (smooth PME) stores the virial 1/2 dE/d(strain) in eV as ``stress``."""
    path = shared_file("point_charges_gromacs", "coulomb_test_frames_torchpme.xyz")
    for atoms in ase.io.read(path, ":"):
        ours = ewald(atoms)
        forces, virial = atoms.get_forces(), atoms.get_stress(voigt=False)
        # measured: up to 1.2e-4 (forces) and 9e-5 (virial) of the largest entry, GROMACS'
        # PME accuracy (as in test_gromacs_forces.py)
        assert np.abs(ours["forces"] - forces).max() < 5e-4 * np.abs(forces).max()
        ours_virial = 0.5 * ours["stress"] * atoms.get_volume()
        assert np.abs(ours_virial - virial).max() < 5e-4 * np.abs(virial).max()


def test_perfect_rock_salt_stress_is_the_madelung_pressure():
    # E = -M k N / (2 r0) scales as 1 / length: dE/d(strain) = -E I / 3 by cubic symmetry
    crystal = ase.build.bulk("NaCl", "rocksalt", a=5.64, cubic=True)
    crystal.set_initial_charges([CHARGES[z] for z in crystal.numbers])
    ours = ewald(crystal, accuracy=1e-14)
    energy = -MADELUNG_NACL * 14.399645 * 4 / (5.64 / 2)
    assert ours["energy"] == pytest.approx(energy, rel=1e-12)
    expected = -energy / 3 / crystal.get_volume() * np.eye(3)
    # measured: 1.1e-14 eV/Å^3 of 0.066 eV/Å^3; forces 2e-16 eV/Å
    np.testing.assert_allclose(ours["stress"], expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ours["forces"], 0, atol=1e-12)


@pytest.mark.parametrize("net_charge", [0.0, 0.7])
def test_ewald_against_finite_differences(net_charge):
    """Triclinic rattled NaCl; a net charge brings in the neutralising background. The
    differences move alpha with the volume as ewald_energy does; the analytic stress holds it
    fixed, which the agreement confirms."""
    atoms = triclinic_nacl()
    charges = atoms.get_initial_charges()
    charges[0] += net_charge

    def energy(a):
        return ewald_energy(a, charges)

    ours = ewald(atoms, charges)
    assert ours["energy"] == energy(atoms)  # the same sums, to the last bit
    forces = finite_difference_forces(energy, atoms)
    stress = finite_difference_stress(energy, atoms)
    # measured (h = 1e-5): forces to 5e-10 eV/Å of up to 1.8 eV/Å, stress to 7.5e-12 eV/Å^3
    # of up to 0.09 eV/Å^3 (h = 1e-4: 7e-9 and 2e-9, the h^2 error of the differences)
    np.testing.assert_allclose(ours["forces"], forces, rtol=0, atol=1e-8)
    np.testing.assert_allclose(ours["stress"], stress, rtol=0, atol=2e-10)
    np.testing.assert_array_equal(ours["stress"], ours["stress"].T)
    # measured: 9e-16 eV/Å
    assert np.abs(ours["forces"].sum(axis=0)).max() < 1e-12


def test_rigid_ion_against_finite_differences():
    atoms = triclinic_nacl(seed=6)
    # the repulsion is truncated at 8 Å: keep every pair away from the step there
    _, _, vectors = neighbor_pairs(System.from_ase(atoms), 8.5)
    assert np.abs(np.linalg.norm(vectors, axis=1) - 8.0).min() > 1e-3
    ours = rigid_ion(atoms)
    assert ours["energy"] == rigid_ion_energy(atoms)
    forces = finite_difference_forces(rigid_ion_energy, atoms)
    stress = finite_difference_stress(rigid_ion_energy, atoms)
    # measured (h = 1e-5): forces to 5e-10 eV/Å of up to 0.5 eV/Å, stress to 7e-11 eV/Å^3
    # of up to 0.011 eV/Å^3 (h = 1e-4: 1.4e-8 and 5e-9, the h^2 error of the stiff repulsion)
    np.testing.assert_allclose(ours["forces"], forces, rtol=0, atol=1e-8)
    np.testing.assert_allclose(ours["stress"], stress, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(ours["stress"], ours["stress"].T)
    assert np.abs(ours["forces"].sum(axis=0)).max() < 1e-12  # measured: 7e-16 eV/Å


def test_generated_cells_carry_forces_and_stress_through_extxyz(tmp_path):
    frames = rigid_ion_nacl(2, seed=2)
    for atoms in frames:
        model = rigid_ion(atoms)
        assert atoms.info["energy"] == rigid_ion_energy(atoms)
        np.testing.assert_array_equal(atoms.arrays["forces"], model["forces"])
        np.testing.assert_array_equal(atoms.info["stress"], model["stress"])
    ase.io.write(tmp_path / "nacl.extxyz", frames)
    for atoms, back in zip(frames, ase.io.read(tmp_path / "nacl.extxyz", ":"), strict=True):
        assert back.get_potential_energy() == atoms.info["energy"]
        # extxyz writes per-atom values with 8 decimals
        np.testing.assert_allclose(back.get_forces(), atoms.arrays["forces"], atol=1e-8)
        np.testing.assert_allclose(back.get_stress(voigt=False), atoms.info["stress"], atol=1e-15)


def nacl_slab(seed=7, periodic_rows=(0, 1)):
    """Two rattled rock-salt (001) layers, periodic in a sheared 5.7 Å square, with a tilted
    third cell vector; ``periodic_rows`` (0, 2): the same slab with cell rows 1 and 2 swapped."""
    rng = np.random.default_rng(seed)
    atoms = ase.build.bulk("NaCl", "rocksalt", a=5.7, cubic=True)
    atoms.set_cell([[5.7, 0.0, 0.0], [0.6, 5.6, 0.0], [0.8, -0.5, 12.0]], scale_atoms=False)
    atoms.positions += rng.normal(scale=0.15, size=atoms.positions.shape)
    atoms.pbc = [True, True, False]
    if tuple(periodic_rows) == (0, 2):
        atoms.set_cell(atoms.cell.array[[0, 2, 1]])
        atoms.pbc = [True, False, True]
    return atoms


def test_rigid_ion_slab_against_a_tall_3d_cell():
    """The slab's energy and forces are the bulk model's in a cell 60 Å tall along the
    normal (more than the 8 Å repulsion cutoff of vacuum) with the Yeh-Berkowitz correction
    2 pi M_z^2 / V of the Ewald sum, which converges to the 2-D sum exponentially in the
    height (tests/reference/test_slab_ewald.py)."""
    atoms = nacl_slab()
    ours = rigid_ion(atoms)
    box = atoms.copy()
    box.set_cell([*atoms.cell.array[:2], [0.0, 0.0, 60.0]])
    box.pbc = True
    bulk = rigid_ion(box)
    q = np.array([CHARGES[z] for z in atoms.numbers])
    dipole, volume = q @ atoms.positions[:, 2], box.get_volume()
    energy = bulk["energy"] + 14.399645 * 2 * np.pi * dipole**2 / volume
    forces = bulk["forces"].copy()
    forces[:, 2] -= 14.399645 * 4 * np.pi * dipole / volume * q
    # measured: 1.5e-11 relative (energy), 9.5e-11 eV/Å of up to 1.2 eV/Å (forces), both
    # sums at their default accuracy 1e-10
    assert ours["energy"] == pytest.approx(energy, rel=1e-10)
    np.testing.assert_allclose(ours["forces"], forces, rtol=0, atol=1e-9)


@pytest.mark.parametrize("periodic_rows", [(0, 1), (0, 2)], ids=["pbc-TTF", "pbc-TFT"])
def test_rigid_ion_slab_against_finite_differences(periodic_rows):
    """Forces and all nine stress components of a slab (the third cell vector, tilted, only
    sets ASE's volume |det(cell)|); the slab with its lattice in rows (0, 2) is the same."""
    atoms = nacl_slab(periodic_rows=periodic_rows)
    ours = rigid_ion(atoms)
    assert ours["energy"] == rigid_ion_energy(atoms)
    forces = finite_difference_forces(rigid_ion_energy, atoms)
    stress = finite_difference_stress(rigid_ion_energy, atoms)
    # measured (h = 1e-5): forces to 4e-10 eV/Å, stress to 3.4e-11 eV/Å^3 of up to 0.0075
    np.testing.assert_allclose(ours["forces"], forces, rtol=0, atol=1e-8)
    np.testing.assert_allclose(ours["stress"], stress, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(ours["stress"], ours["stress"].T)
    if periodic_rows == (0, 2):
        same = rigid_ion(nacl_slab())
        assert ours["energy"] == pytest.approx(same["energy"], rel=1e-13)
        np.testing.assert_allclose(ours["forces"], same["forces"], rtol=0, atol=1e-12)
        np.testing.assert_allclose(ours["stress"], same["stress"], rtol=0, atol=1e-14)


def test_rigid_ion_slab_errors_and_missing_volume():
    from lodekit import InputError

    flat = nacl_slab()
    flat.cell[2] = [0.0, 0.0, 0.0]
    result = rigid_ion(flat)
    assert set(result) == {"energy", "forces"}
    assert result["energy"] == pytest.approx(rigid_ion(nacl_slab())["energy"], rel=1e-13)
    charged = nacl_slab()[1:]
    for function in (rigid_ion, rigid_ion_energy):
        with pytest.raises(InputError, match=r"`atoms` is a slab .* net charge -1 e"):
            function(charged)
