"""lodekit's Ewald sum against pymatgen, GROMACS frames and the shared reference energies."""

import ase
import ase.io
import numpy as np
import pytest

from lodekit import InputError
from lodekit.datasets import ewald, ewald_energy, random_point_charges
from tests.conftest import bench_system, shared_file


def test_against_pymatgen_on_generated_and_triclinic_boxes():
    pymatgen_ewald = pytest.importorskip("pymatgen.analysis.ewald")
    from pymatgen.io.ase import AseAtomsAdaptor

    frames = random_point_charges(3, seed=4, n_charges=16, box_range=(8.0, 11.0))
    skewed = frames[0].copy()
    skewed.set_cell([[9.0, 0, 0], [2.5, 8.5, 0], [-1.5, 1.0, 9.5]], scale_atoms=True)
    for atoms in [*frames, skewed]:
        structure = AseAtomsAdaptor.get_structure(atoms)
        structure.add_oxidation_state_by_site(list(atoms.get_initial_charges()))
        reference = pymatgen_ewald.EwaldSummation(structure, acc_factor=14).total_energy
        ours = ewald_energy(atoms, coulomb=pymatgen_ewald.EwaldSummation.CONV_FACT)
        assert ours == pytest.approx(reference, rel=1e-9)


def test_against_gromacs_frames():
    path = shared_file("point_charges_gromacs", "coulomb_test_frames_jaxpme.xyz")
    frames = ase.io.read(path, index=":3")  # the cubic, fully periodic frames
    for atoms in frames:
        # GROMACS smooth PME is converged to about 1e-5 (README of the data set)
        assert ewald_energy(atoms) == pytest.approx(atoms.get_potential_energy(), rel=2e-5)


@pytest.mark.parametrize(
    ("name", "energy"), [("nacl64", -142.779814201899), ("water64", -584.915106431554)]
)
def test_against_shared_reference_energies(name, energy):
    """pymatgen, torch-pme and dscribe agree on these to 3e-13 (bench_systems README)."""
    atoms = bench_system(name)
    # the reference used pymatgen's e^2/(4 pi eps0) = 14.399645468667815 eV Å
    ours = ewald_energy(atoms, coulomb=14.399645468667815, accuracy=1e-14)
    assert ours == pytest.approx(energy, rel=1e-11)


def test_charged_cell_background_and_madelung():
    """Two opposite charges in rocksalt: E = -M N/2 / d per ion pair; a net charge adds the
    neutralising-background term (checked by the invariance under cell replication)."""
    from ase.build import bulk

    crystal = bulk("NaCl", "rocksalt", a=2.0)  # nearest neighbour 1 Å
    crystal.set_initial_charges([1, -1])
    energy = ewald_energy(crystal, coulomb=1.0, accuracy=1e-14)
    assert energy == pytest.approx(-1.747564594633, rel=1e-10)
    charged = ase.Atoms("Na", positions=[[0, 0, 0]], cell=np.eye(3) * 3.0, pbc=True)
    charged.set_initial_charges([1.0])
    single = ewald_energy(charged, coulomb=1.0, accuracy=1e-14)
    # a point charge in jellium: -xi / (2 L) with xi = 2.8372974794 (simple cubic)
    assert single == pytest.approx(-2.8372974794 / (2 * 3.0), rel=1e-9)


def test_generator_protocol():
    frames = random_point_charges(5, seed=11)
    again = random_point_charges(5, seed=11)
    for atoms, twin in zip(frames, again, strict=True):
        np.testing.assert_array_equal(atoms.positions, twin.positions)
        assert len(atoms) == 64 and atoms.get_initial_charges().sum() == 0
        side = atoms.cell.lengths()[0]
        assert 12.0 <= side <= 20.0
        d = atoms.get_all_distances(mic=True)
        assert d[np.triu_indices(64, 1)].min() >= 2.5
        assert atoms.info["energy"] == ewald_energy(atoms)


def test_ewald_errors():
    atoms = ase.Atoms("Na", positions=[[0, 0, 0]])
    with pytest.raises(InputError, match=r"pbc \[False, False, False\]: the Ewald sum needs"):
        ewald_energy(atoms, [1.0])
    # a slab is neither summed as a molecule nor as bulk: it is slab_ewald's exact 2-D sum,
    # with its lattice in any two rows of the cell
    from lodekit.datasets import slab_ewald

    first = ase.Atoms(
        "NaCl", positions=[[0, 0, 0], [1, 2, 0.5]], cell=np.eye(3) * 4, pbc=[True, True, False]
    )
    reference = slab_ewald(first, [1.0, -1.0])
    bulk = ewald_energy(ase.Atoms(first, pbc=True), [1.0, -1.0])
    assert abs(bulk - reference["energy"]) > 1e-3 * abs(reference["energy"])
    rotated = ase.Atoms(
        "NaCl",
        positions=[[0, 0, 0], [2, 0.5, 1]],  # (x, y, z) -> (y, z, x): the normal is y
        cell=np.eye(3) * 4,
        pbc=[True, False, True],
    )
    assert ewald_energy(first, [1.0, -1.0]) == reference["energy"]
    assert ewald_energy(rotated, [1.0, -1.0]) == pytest.approx(reference["energy"], rel=1e-12)
    forces = ewald(rotated, [1.0, -1.0])["forces"]
    np.testing.assert_allclose(forces[:, [2, 0, 1]], reference["forces"], rtol=0, atol=1e-10)
    with pytest.raises(InputError, match="needs a neutral slab"):
        ewald_energy(first, [1.0, 1.0])
    box = ase.Atoms("NaCl", positions=[[0, 0, 0], [1, 1, 1]], cell=np.eye(3) * 4, pbc=True)
    with pytest.raises(InputError, match="`charges` has shape"):
        ewald_energy(box, [1.0])
