"""The exact 2-D (slab) Ewald sum against GROMACS's slab frames, the 3-D Ewald sum in a tall
cell with the Yeh-Berkowitz correction, finite differences and symmetries."""

import itertools

import ase
import ase.io
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from lodekit import InputError
from lodekit.datasets import COULOMB_CONSTANT, ewald, slab_ewald
from lodekit.systems import stress_volume
from tests.conftest import shared_file


def gromacs_slabs():
    path = shared_file("point_charges_gromacs", "coulomb_test_frames_jaxpme.xyz")
    frames = ase.io.read(path, index="3:")  # frames 4-6: pbc (T, T, F), 30 Å cell height
    assert all(atoms.pbc.tolist() == [True, True, False] for atoms in frames)
    return frames


def vacuum_3d(atoms, height, accuracy=1e-14):
    """3-D Ewald of the slab in a cell of ``height`` along the normal plus the
    Yeh-Berkowitz correction 2 pi M_z^2 / V (energy) and -4 pi q_i M_z / V (forces)."""
    q = atoms.get_initial_charges()
    cell = atoms.cell.array.copy()
    normal = np.cross(cell[0], cell[1])
    normal /= np.linalg.norm(normal)
    cell[2] = height * normal
    box = atoms.copy()
    box.set_cell(cell)
    box.pbc = True
    volume = abs(np.linalg.det(cell))
    dipole = q @ (atoms.positions @ normal)
    result = ewald(box, accuracy=accuracy)
    energy = result["energy"] + COULOMB_CONSTANT * 2 * np.pi * dipole**2 / volume
    forces = result["forces"] - COULOMB_CONSTANT * 4 * np.pi * dipole / volume * np.outer(q, normal)
    return energy, forces


def random_slab(rng, n=24, thickness=6.0):
    """Neutral random charges in a triclinic in-plane cell, with a third cell vector that is
    not along the normal (it must not matter)."""
    cell = np.array([[7.5, 0.0, 0.0], [2.1, 6.8, 0.0], [1.3, -0.9, 11.0]])
    for _ in range(1000):
        frac = rng.random((n, 2))
        positions = frac @ cell[:2] + np.outer(rng.random(n) * thickness, [0, 0, 1])
        atoms = ase.Atoms("Na" * n, positions=positions, cell=cell, pbc=[True, True, False])
        probe = atoms.copy()
        probe.cell[2] = [0, 0, 50.0]
        probe.pbc = True
        d = probe.get_all_distances(mic=True)[np.triu_indices(n, 1)]
        if d.min() > 1.0:
            break
    charges = rng.normal(size=n)
    atoms.set_initial_charges(charges - charges.mean())
    return atoms


def test_against_gromacs_slab_frames():
    for atoms in gromacs_slabs():
        result = slab_ewald(atoms)
        reference = atoms.get_potential_energy()
        # GROMACS computed these as 3-D PME with the Yeh-Berkowitz slab correction in the
        # 30 Å cell: our 3-D Ewald + YB at that height reproduces GROMACS to 1.2e-9 relative
        # (forces 6e-9 eV/Å, measured), so GROMACS's residual against the exact slab sum is
        # its finite vacuum, not PME: measured 7e-9, 1e-9 and 1.6e-7 relative (the last
        # frame is the thickest, 8.2 Å in a 10 Å cell), forces within 2.3e-6 eV/Å of up to
        # 5.6 eV/Å. Tolerances: 3x the worst measurement.
        assert result["energy"] == pytest.approx(reference, rel=5e-7)
        np.testing.assert_allclose(result["forces"], atoms.get_forces(), rtol=0, atol=7e-6)
        energy_30, forces_30 = vacuum_3d(atoms, atoms.cell[2, 2])
        assert energy_30 == pytest.approx(reference, rel=1e-8)
        np.testing.assert_allclose(forces_30, atoms.get_forces(), rtol=0, atol=3e-8)


def test_vacuum_3d_ewald_converges_to_the_slab_sum():
    """With the dipole correction the G = 0 part of the tall-cell sum is exact for any
    height; the replicas' in-plane modulations decay as exp(-|G_min| (h - thickness)), so
    the error falls exponentially. Measured on the thickest GROMACS frame (8.2 Å, 10 Å cell):
    relative energy error 7e-4, 7e-6, 3e-10, 4e-16 at h = 16, 24, 40, 80 Å; forces 1.7e-2,
    1e-4, 4e-9, 7e-15 eV/Å. (Below 16 Å the error is still large and changes sign: 7e-2,
    3e-3 at 10, 12 Å.)"""
    atoms = gromacs_slabs()[2]
    exact = slab_ewald(atoms, accuracy=1e-14)
    errors, force_errors = [], []
    for height in (16.0, 24.0, 40.0, 80.0):
        energy, forces = vacuum_3d(atoms, height)
        errors.append(abs(energy / exact["energy"] - 1))
        force_errors.append(np.abs(forces - exact["forces"]).max())
    assert all(b < 0.1 * a for a, b in itertools.pairwise(errors) if a > 1e-13)
    assert all(b < 0.1 * a for a, b in itertools.pairwise(force_errors))
    assert errors[-1] < 1e-12 and force_errors[-1] < 1e-11


def test_random_triclinic_slab_against_vacuum_3d():
    atoms = random_slab(np.random.default_rng(3))
    exact = slab_ewald(atoms, accuracy=1e-14)
    energy, forces = vacuum_3d(atoms, 80.0)
    assert exact["energy"] == pytest.approx(energy, rel=1e-11)
    np.testing.assert_allclose(exact["forces"], forces, rtol=0, atol=1e-10)


def test_forces_are_minus_the_energy_gradient():
    atoms = random_slab(np.random.default_rng(7), n=12)
    result = slab_ewald(atoms, accuracy=1e-14)
    step = 1e-5
    numeric = np.zeros((len(atoms), 3))
    for i in range(len(atoms)):
        for axis in range(3):
            moved = []
            for sign in (1, -1):
                trial = atoms.copy()
                trial.positions[i, axis] += sign * step
                moved.append(slab_ewald(trial, accuracy=1e-14)["energy"])
            numeric[i, axis] = -(moved[0] - moved[1]) / (2 * step)
    # central differences: O(step^2) ~ 1e-10 truncation, round-off ~ 1e-16 |E| / step ~ 1e-10
    np.testing.assert_allclose(result["forces"], numeric, rtol=0, atol=2e-8)
    # a neutral slab feels no net force (action = reaction, pair by pair)
    np.testing.assert_allclose(result["forces"].sum(axis=0), 0.0, atol=1e-10)


def strained(atoms, deformation):
    """``atoms`` with positions and the two in-plane vectors mapped by ``deformation``; the
    third cell vector is left alone (it does not enter the sum, only the stress's volume)."""
    out = atoms.copy()
    out.positions = atoms.positions @ deformation.T
    cell = atoms.cell.array.copy()
    cell[:2] = cell[:2] @ deformation.T
    out.set_cell(cell)
    return out


def test_stress_is_the_strain_derivative_of_the_energy():
    """All nine dE/d eps_ab by central differences of the energy, on a slab turned so that
    its normal is along no axis (shears along the normal slide the layers over each other),
    with a third cell vector neither zero nor along the normal."""
    rng = np.random.default_rng(5)
    atoms = random_slab(rng, n=12)
    turn = Rotation.random(random_state=4).as_matrix()
    atoms = strained(atoms, turn)
    atoms.cell[2] = atoms.cell.array[2] @ turn.T
    result = slab_ewald(atoms, accuracy=1e-14)
    volume = abs(np.linalg.det(atoms.cell.array))
    step = 1e-5
    numeric = np.zeros((3, 3))
    for a, b in itertools.product(range(3), range(3)):
        energies = []
        for sign in (1, -1):
            deformation = np.eye(3)
            deformation[a, b] += sign * step
            energies.append(slab_ewald(strained(atoms, deformation), accuracy=1e-14)["energy"])
        numeric[a, b] = (energies[0] - energies[1]) / (2 * step)
    # rotations leave the energy alone: the antisymmetric part of dE/d eps is zero
    np.testing.assert_allclose(numeric, numeric.T, rtol=0, atol=2e-8)
    # same error budget as the forces: truncation ~1e-10, round-off 1e-16 |E| / step ~ 1e-10
    # (measured 1.3e-9 eV on entries of up to 25 eV)
    np.testing.assert_allclose(result["stress"] * volume, numeric, rtol=0, atol=2e-8)
    np.testing.assert_array_equal(result["stress"], result["stress"].T)
    # another third vector out of the plane: only the volume changes
    taller = atoms.copy()
    taller.cell[2] = 2.5 * atoms.cell.array[2] + atoms.cell.array[0]
    other = slab_ewald(taller, accuracy=1e-14)
    np.testing.assert_allclose(
        other["stress"] * abs(np.linalg.det(taller.cell.array)), numeric, rtol=0, atol=2e-8
    )


def test_no_stress_without_a_third_cell_vector():
    atoms = random_slab(np.random.default_rng(2), n=8)
    for third in ([0.0, 0.0, 0.0], atoms.cell.array[0] - 2 * atoms.cell.array[1]):
        flat = atoms.copy()
        flat.cell[2] = third
        result = slab_ewald(flat)
        assert set(result) == {"energy", "forces"}
        assert stress_volume(flat.cell.array, flat.pbc) is None
    volume = stress_volume(atoms.cell.array, atoms.pbc)
    assert volume == pytest.approx(abs(np.linalg.det(atoms.cell.array)))


def test_invariances():
    rng = np.random.default_rng(11)
    atoms = random_slab(rng, n=16)
    reference = slab_ewald(atoms)

    moved = atoms.copy()
    moved.positions += [3.7, -1.2, 0.0]  # in-plane
    moved.positions += [0.0, 0.0, 4.4]  # the normal: also a symmetry of the slab
    result = slab_ewald(moved)
    assert result["energy"] == pytest.approx(reference["energy"], rel=1e-10)
    np.testing.assert_allclose(result["forces"], reference["forces"], atol=1e-10)

    angle = 0.7
    rotation = np.array(
        [[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]]
    )
    turned = atoms.copy()
    turned.set_cell(atoms.cell.array @ rotation.T)
    turned.positions = atoms.positions @ rotation.T
    result = slab_ewald(turned)
    assert result["energy"] == pytest.approx(reference["energy"], rel=1e-10)
    np.testing.assert_allclose(result["forces"], reference["forces"] @ rotation.T, atol=1e-10)

    order = rng.permutation(len(atoms))
    shuffled = atoms[order]
    result = slab_ewald(shuffled)
    assert result["energy"] == pytest.approx(reference["energy"], rel=1e-10)
    np.testing.assert_allclose(result["forces"], reference["forces"][order], atol=1e-10)

    # only the in-plane vectors matter: ASE's default zero third vector gives the same sum
    flat = atoms.copy()
    flat.cell[2] = [0.0, 0.0, 0.0]
    result = slab_ewald(flat)
    assert result["energy"] == reference["energy"]
    np.testing.assert_array_equal(result["forces"], reference["forces"])

    double = atoms.repeat((2, 1, 1))
    result = slab_ewald(double)
    assert result["energy"] == pytest.approx(2 * reference["energy"], rel=1e-10)
    np.testing.assert_allclose(result["forces"], np.tile(reference["forces"], (2, 1)), atol=1e-10)


def test_slab_ewald_errors():
    atoms = gromacs_slabs()[0]
    for pbc in ([True, True, True], [True, False, False], [False, True, True]):
        wrong = atoms.copy()
        wrong.pbc = pbc
        with pytest.raises(InputError, match=r"`structure` has pbc"):
            slab_ewald(wrong)
    with pytest.raises(InputError, match=r"`charges` sum to 1"):
        slab_ewald(atoms, np.r_[atoms.get_initial_charges()[:-1], 0.0])
    with pytest.raises(InputError, match=r"`charges` has shape \(3,\)"):
        slab_ewald(atoms, [1.0, -1.0, 0.0])
    with pytest.raises(InputError, match=r"`charges` has shape"):
        slab_ewald(atoms, np.r_[atoms.get_initial_charges()[:-1], np.nan])
    flat = atoms.copy()
    flat.set_cell([[4.0, 0, 0], [8.0, 0, 0], [0, 0, 30.0]])
    with pytest.raises(InputError, match=r"`structure` has in-plane cell vectors"):
        slab_ewald(flat)
    bad = atoms.copy()
    bad.positions[0, 2] = np.inf
    with pytest.raises(InputError, match=r"`structure` has non-finite"):
        slab_ewald(bad)
    with pytest.raises(InputError, match=r"`accuracy`"):
        slab_ewald(atoms, accuracy=0.0)
    with pytest.raises(InputError, match=r"`coulomb`"):
        slab_ewald(atoms, coulomb="eV")
    with pytest.raises(InputError, match=r"`structure` is"):
        slab_ewald(atoms.positions)
    twin = atoms.copy()
    twin.positions[1] = twin.positions[0] + twin.cell[0]
    with pytest.raises(InputError, match=r"same place"):
        slab_ewald(twin)


def test_work_limit():
    from lodekit.expansion.limits import work_limits

    atoms = gromacs_slabs()[0]
    with work_limits(max_pairs=100), pytest.raises(InputError, match="max_pairs"):
        slab_ewald(atoms)


def test_far_apart_layers_stay_finite():
    """Two ion layers 300 Å apart in a 4 Å cell: |G z| reaches about 500, where exp(|G| z)
    overflows unless rewritten with erfcx. Measured agreement with the 400 Å tall 3-D sum:
    3e-14 relative (energy), 3e-14 eV/Å (forces)."""
    rng = np.random.default_rng(1)
    positions = np.r_[rng.random((4, 3)) * [4, 4, 2], rng.random((4, 3)) * [4, 4, 2] + [0, 0, 300]]
    atoms = ase.Atoms("Na8", positions=positions, cell=[[4, 0, 0], [1, 3.8, 0], [0, 0, 0]])
    atoms.pbc = [True, True, False]
    atoms.set_initial_charges([1, -1, 1, -1, 1, 1, -1, -1])
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # underflow to 0 is fine
        exact = slab_ewald(atoms, accuracy=1e-14)
    energy, forces = vacuum_3d(atoms, 400.0)
    assert exact["energy"] == pytest.approx(energy, rel=1e-12)
    np.testing.assert_allclose(exact["forces"], forces, rtol=0, atol=1e-12)
