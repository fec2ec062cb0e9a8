"""Structure validation: every user mistake gives an InputError naming the argument."""

import ase
import numpy as np
import pytest

import lodekit
from lodekit import InputError, System

LODE = lodekit.LodeSphericalExpansion(smearing=1.0, max_radial=2, max_angular=1, radius=3.0)
SOAP = lodekit.SphericalExpansion(cutoff=3.0, smearing=0.5, max_radial=2, max_angular=1)


def water_box():
    return ase.Atoms(
        "OHH", positions=[[1, 1, 1], [1.8, 1.5, 1], [0.3, 1.5, 1.2]], cell=np.eye(3) * 6, pbc=True
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(positions=[[0, 0, np.nan]], types=["H"]), r"`positions\[0\]` .* must be finite"),
        (dict(positions=[[0, 0, np.inf]], types=["H"]), r"`positions\[0\]` .* must be finite"),
        (dict(positions=[[0, 0]], types=["H"]), r"`positions` has shape \(1, 2\)"),
        (dict(positions=np.zeros((0, 3)), types=[]), "`positions` is empty"),
        (dict(positions=[[0, 0, 0]], types=["H", "H"]), "`types` has 2 entries"),
        (dict(positions=[[0, 0, 0]], types=["Xx"]), r"`types\[0\]` is 'Xx'.*not a known element"),
        (dict(positions=[[0, 0, 0]], types=[119]), r"`types\[0\]` is 119.*not a known element"),
        (dict(positions=[[0, 0, 0]], types=[0]), r"`types\[0\]` is 0.*not a known element"),
        (dict(positions=[[0, 0, 0]], types=[1.5]), r"`types\[0\]` is 1.5"),
        (
            dict(positions=[[0, 0, 0]], types=["H"], cell=np.ones((3, 3)), pbc=True),
            "`cell` .* is singular",
        ),
        (
            dict(positions=[[0, 0, 0]], types=["H"], cell=np.eye(2), pbc=True),
            r"`cell` has shape \(2, 2\)",
        ),
        (
            dict(positions=[[0, 0, 0]], types=["H"], cell=np.eye(3), pbc=[True, False, False]),
            r"`pbc` is \[True, False, False\]: one periodic axis \(a wire\) is not supported",
        ),
        (
            dict(
                positions=[[0, 0, 0]],
                types=["H"],
                cell=[[2, 0, 0], [4, 0, 0], [0, 0, 0]],
                pbc=[True, True, False],
            ),
            r"two periodic lattice vectors must be non-zero and not parallel",
        ),
        (
            dict(
                positions=[[0, 0, 5.0], [3.0, 0, 5.0]],
                types=["H", "H"],
                cell=[[3, 0, 0], [0, 3, 0], [0, 0, 0]],
                pbc=[True, True, False],
            ),
            "atom 0 lies on top of atom 1",
        ),
        (
            dict(positions=[[0, 0, 0], [1, 1, 1], [0, 0, 1e-6]], types=["H", "H", "O"]),
            "atom 0 lies on top of atom 2",
        ),
        (
            dict(
                positions=[[0, 0, 0], [3.0, 0, 0]], types=["H", "H"], cell=np.eye(3) * 3, pbc=True
            ),
            "atom 0 lies on top of atom 1",
        ),
    ],
)
def test_invalid_structures(kwargs, message):
    with pytest.raises(InputError, match=message):
        System(**kwargs)


def test_overlap_through_periodic_boundary_in_triclinic_cell():
    cell = np.array([[4.0, 0, 0], [1.5, 4.0, 0], [0.5, 0.7, 4.0]])
    with pytest.raises(InputError, match="lies on top of atom 1"):
        System([[0.0, 0.0, 0.0], cell[0] + cell[1] - 1e-7], ["H", "H"], cell=cell, pbc=True)


def test_errors_from_ase_atoms_name_the_structure():
    bad = water_box()
    bad.positions[1] = np.nan
    with pytest.raises(InputError, match=r"`structures\[1\]`: `positions\[1\]`"):
        LODE.compute([water_box(), bad])
    dummy = water_box()
    dummy.numbers[0] = 0  # ase's "X" placeholder
    with pytest.raises(InputError, match="not a known element"):
        SOAP.compute(dummy)


@pytest.mark.parametrize("bad", [None, "water.xyz", 42, [], [ase.Atoms("H"), "x"]])
def test_compute_rejects_non_structures(bad):
    with pytest.raises(InputError, match="structures"):
        SOAP.compute(bad)


def test_caller_objects_are_not_modified_and_unwrapped_positions_work():
    atoms = water_box()
    atoms.positions += [13.0, -7.0, 25.0]  # far outside the cell, as in the water data
    before = atoms.positions.copy()
    numbers = atoms.numbers.copy()
    wrapped = atoms.copy()
    wrapped.wrap()
    for calculator in (LODE, SOAP):
        result = calculator.compute(atoms)
        reference = calculator.compute(wrapped)
        for a, b in zip(result.values, reference.values, strict=True):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(atoms.positions, before)
    np.testing.assert_array_equal(atoms.numbers, numbers)


def test_plain_arrays_and_symbols():
    atoms = water_box()
    system = System(atoms.positions, ["O", "H", "H"], cell=atoms.cell.array, pbc=True)
    a, b = LODE.compute(system), LODE.compute(atoms)
    for x, y in zip(a.values, b.values, strict=True):
        np.testing.assert_array_equal(x, y)
    assert system.positions.flags.writeable is False


@pytest.mark.parametrize(
    ("selected", "message"),
    [
        ([0, 3], r"`selected_atoms\[0\]` contains 3, outside 0..2"),
        ([-1], r"`selected_atoms\[0\]` contains -1"),
        ([0, 0], "repeated atom indices"),
        ([[0], [1]], "one index array"),
        ([[0.5]], "1-d array of atom indices"),
        ("0", "expected None or one index array"),
    ],
)
def test_bad_selected_atoms(selected, message):
    with pytest.raises(InputError, match=message):
        LODE.compute(water_box(), selected_atoms=selected)


def test_slab_wrapping_keeps_height_and_in_plane_images():
    # a tilted, non-orthogonal third vector is ignored: wrapping acts in the plane only
    cell = [[4.0, 0.0, 0.0], [1.0, 3.0, 0.0], [2.0, 1.0, 7.0]]
    positions = np.array([[9.5, -2.0, 13.0], [0.5, 0.5, -4.0]])
    system = System(positions, ["O", "H"], cell=cell, pbc=[True, True, False])
    assert system.is_slab and not system.periodic and system.pbc == (True, True, False)
    lattice, normal, area = system.slab_frame()
    np.testing.assert_allclose(normal, [0, 0, 1])
    assert area == pytest.approx(12.0)
    np.testing.assert_array_equal(system.positions[:, 2], positions[:, 2])
    # each wrapped atom differs from its input by an in-plane lattice vector
    shift = np.linalg.lstsq(lattice.T, (positions - system.positions).T, rcond=None)[0].T
    np.testing.assert_allclose(shift, np.round(shift), atol=1e-12)
    frac = np.linalg.solve(lattice[:, :2].T, system.positions[:, :2].T).T
    assert np.all((frac >= 0) & (frac < 1))
    with pytest.raises(ValueError, match="volume is defined for bulk"):
        _ = system.volume


def test_slab_periodic_axes_in_any_rows():
    # periodic along the first and third rows: the normal is along a1 x a3
    cell = [[5.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 6.0]]
    system = System([[1.0, 2.0, 3.0]], ["H"], cell=cell, pbc=[True, False, True])
    _, normal, area = system.slab_frame()
    np.testing.assert_allclose(np.abs(normal), [0, 1, 0])
    assert area == pytest.approx(30.0)
    assert system.positions[0, 1] == 2.0


@pytest.mark.parametrize("rows", [(0, 1), (0, 2)])
def test_slab_neighbour_pairs_match_brute_force(rows):
    """vesin's list of a slab (in its own frame, rotated back) against all in-plane images."""
    from lodekit.neighbors import neighbor_pairs

    rng = np.random.default_rng(0)
    lattice = np.array([[5.0, 0.3, 0.4], [1.5, 5.0, -0.6]])  # a plane along no axis
    pbc = [axis in rows for axis in range(3)]
    cell = np.zeros((3, 3))
    cell[list(rows)] = lattice
    cell[pbc.index(False)] = [0.3, -0.2, 0.0]  # tilted, and ignored
    positions = rng.uniform(0, 1, (12, 2)) @ lattice + rng.uniform(-2, 2, (12, 1)) * [0, 0, 1]
    system = System(positions, ["H"] * 12, cell=cell, pbc=pbc)
    i, j, vectors = neighbor_pairs(system, 4.0)
    got = sorted((a, b, *np.round(v, 6)) for a, b, v in zip(i, j, vectors, strict=True))
    expected = []
    for a in range(12):
        for b in range(12):
            for n1 in range(-3, 4):
                for n2 in range(-3, 4):
                    d = system.positions[b] + n1 * lattice[0] + n2 * lattice[1]
                    d = d - system.positions[a]
                    if 0 < np.linalg.norm(d) < 4.0:
                        expected.append((a, b, *np.round(d, 6)))
    assert len(got) > 50
    assert got == sorted(expected)  # the same pairs, vectors to 1e-6 Å (rotated: ~1e-15)


def test_overlap_check_finds_an_image_overlap_across_a_triclinic_face():
    # the overlap search adds the periodic images of atoms near a face to its k-d tree
    rng = np.random.default_rng(7)
    cell = np.array([[14.0, 0, 0], [2.0, 13.0, 0], [1.0, 1.5, 12.0]])
    frac = rng.uniform(0.1, 0.9, size=(300, 3))
    frac[5] = [0.0, 0.3, 0.4]
    frac[17] = [1.0 - 1e-9, 0.3, 0.4]  # atom 5's image across the a face
    positions = frac @ cell
    System(np.delete(positions, 17, axis=0), ["H"] * 299, cell=cell, pbc=True)  # no overlap
    with pytest.raises(InputError, match="atom 5 lies on top of atom 17"):
        System(positions, ["H"] * 300, cell=cell, pbc=True)
