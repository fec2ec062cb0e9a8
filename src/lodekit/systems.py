"""Atomic structures: the one place where user-given geometry is validated.

A :class:`System` is an immutable, validated copy of one structure: positions (Å), atomic
numbers, cell (rows are lattice vectors, Å) and periodic boundary conditions. Everything
downstream may trust it: finite float64 positions, known elements, a non-singular cell
when periodic in three directions, two independent periodic vectors for a slab, no two atoms
on top of each other.

Three kinds of structure are accepted: isolated molecules (``pbc`` all False), bulk (all
True) and slabs (exactly two periodic axes; :attr:`System.is_slab`). A slab's non-periodic
cell vector is ignored (it may be zero, or not orthogonal to the plane): the slab normal is
the unit vector along the cross product of the two periodic vectors (:meth:`System.slab_frame`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from ase.data import atomic_numbers as _SYMBOL_TO_Z
from scipy.spatial import cKDTree

from .errors import InputError, describe

__all__ = ["BOUNDARIES", "System", "as_systems", "ase_weights", "stress_volume"]

#: The kinds of boundary a structure can have: bulk ("periodic", all three axes), a slab (two)
#: and a molecule (none); :attr:`System.boundary`. The one vocabulary for them (code paths of
#: the calculators, the kinds a model was trained on).
BOUNDARIES = ("periodic", "slab", "molecule")

#: Two atoms closer than this (Å, periodic images included) are "on top of each other".
MIN_DISTANCE = 1e-4

#: Largest |coordinate| accepted (Å): far beyond any structure, and small enough that
#: squared distances cannot overflow.
MAX_COORDINATE = 1e8

_MAX_Z = 118


def _as_numbers(types, n_atoms: int, name: str) -> np.ndarray:
    if isinstance(types, np.ndarray) and types.dtype.kind in "iu" and types.shape == (n_atoms,):
        # atomic numbers as an integer array (ase's): checked at once, not atom by atom
        inside = (types >= 1) & (types <= _MAX_Z)
        if inside.all():
            return types.astype(np.int64)
    values = list(types) if not isinstance(types, np.ndarray) else types.tolist()
    if len(values) != n_atoms:
        raise InputError(
            f"`{name}` has {len(values)} entries but there are {n_atoms} positions; "
            "give one element per atom"
        )
    numbers = np.empty(n_atoms, dtype=np.int64)
    for i, value in enumerate(values):
        if isinstance(value, str):
            if value not in _SYMBOL_TO_Z or _SYMBOL_TO_Z[value] == 0:
                raise InputError(f"`{name}[{i}]` is {value!r}, which is not a known element symbol")
            numbers[i] = _SYMBOL_TO_Z[value]
        else:
            try:
                z = int(value)
            except (TypeError, ValueError):
                raise InputError(
                    f"`{name}[{i}]` is {describe(value)}; expected an element symbol or "
                    "an atomic number"
                ) from None
            if z != value or not 1 <= z <= _MAX_Z:
                raise InputError(
                    f"`{name}[{i}]` is {describe(value)}, which is not a known element: "
                    f"atomic numbers must be integers in 1..{_MAX_Z}"
                )
            numbers[i] = z
    return numbers


def _as_pbc(pbc) -> tuple[bool, bool, bool]:
    try:
        flags = np.broadcast_to(np.asarray(pbc, dtype=bool), (3,))
    except ValueError:
        raise InputError(
            f"`pbc` is {describe(pbc)}; expected a bool or a sequence of three bools"
        ) from None
    if flags.sum() == 1:
        raise InputError(
            f"`pbc` is {flags.tolist()}: one periodic axis (a wire) is not supported; use "
            "pbc=True (bulk), two periodic axes (a slab) or pbc=False (isolated molecule)"
        )
    return tuple(bool(f) for f in flags)


def _check_slab_cell(matrix: np.ndarray, pbc: tuple[bool, bool, bool]) -> None:
    a1, a2 = matrix[[axis for axis in range(3) if pbc[axis]]]
    lengths = np.linalg.norm(a1) * np.linalg.norm(a2)
    if lengths == 0.0 or np.linalg.norm(np.cross(a1, a2)) <= 1e-10 * lengths:
        raise InputError(
            f"`cell` {matrix.tolist()} with `pbc` {list(pbc)}: the two periodic lattice "
            "vectors must be non-zero and not parallel (a slab needs a two-dimensional lattice)"
        )


def _as_cell(cell, periodic: bool) -> np.ndarray:
    if cell is None:
        cell = np.zeros((3, 3))
    try:
        matrix = np.array(cell, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"`cell` is {describe(cell)}; expected a 3x3 array of floats") from None
    if matrix.shape == (3,):
        matrix = np.diag(matrix)
    if matrix.shape != (3, 3):
        raise InputError(
            f"`cell` has shape {matrix.shape}; expected (3, 3) with lattice vectors as rows"
        )
    if not np.all(np.isfinite(matrix)):
        raise InputError(f"`cell` contains NaN or infinite values: {matrix.tolist()}")
    if np.abs(matrix).max() > MAX_COORDINATE:
        raise InputError(
            f"`cell` {matrix.tolist()} has entries larger than {MAX_COORDINATE:g} Å: lattice "
            f"vectors must be within ±{MAX_COORDINATE:g} Å (as positions)"
        )
    if periodic:
        lengths = np.linalg.norm(matrix, axis=1)
        volume = abs(np.linalg.det(matrix))
        if lengths.min() == 0.0 or volume <= 1e-10 * np.prod(lengths):
            raise InputError(
                f"`cell` {matrix.tolist()} is singular (volume {volume:.3g} Å^3): a periodic "
                "structure needs three linearly independent lattice vectors"
            )
    return matrix


@dataclass(frozen=True, eq=False)
class System:
    """One validated atomic structure.

    Parameters
    ----------
    positions : array_like, shape (n_atoms, 3)
        Cartesian positions in Å. Periodic positions may lie outside the cell.
    types : sequence, length n_atoms
        Element symbols or atomic numbers.
    cell : array_like, shape (3, 3), optional
        Lattice vectors as rows, Å. Ignored (and may be zero) when ``pbc`` is False.
    pbc : bool or sequence of 3 bool
        Periodicity: all axes (bulk), none (molecule) or exactly two (a slab, periodic along
        those two cell vectors; the third cell vector is then ignored and may be zero).
    weights : array_like, shape (n_atoms,), optional
        A finite float per atom that scales the atom's density in every expansion (e.g. a
        charge in e, for the potential of a charge distribution); docs/conventions.md. None
        (the default) means every weight is 1, computed without any weighting at all.

    Attributes
    ----------
    positions : ndarray, shape (n_atoms, 3)
        Float64 copy; wrapped into the cell along the periodic axes (fractional coordinates
        in [0, 1)), which leaves every lattice sum unchanged. A slab's atoms keep their
        height above the plane.
    numbers : ndarray of int64, shape (n_atoms,)
    cell : ndarray, shape (3, 3)
    pbc : tuple of 3 bool
    periodic : bool
        True for bulk only (all three axes periodic); slabs have :attr:`is_slab`.
    weights : ndarray, shape (n_atoms,), or None
        Float64 copy of the per-atom weights; None when all are 1.
    """

    positions: np.ndarray
    numbers: np.ndarray
    cell: np.ndarray
    periodic: bool
    pbc: tuple
    weights: np.ndarray | None

    def __init__(self, positions, types, cell=None, pbc=False, weights=None):
        try:
            pos = np.array(positions, dtype=np.float64)
        except (TypeError, ValueError):
            raise InputError(
                f"`positions` is {describe(positions)}; expected an (n_atoms, 3) array of floats"
            ) from None
        if pos.ndim != 2 or pos.shape[1] != 3:
            raise InputError(f"`positions` has shape {pos.shape}; expected (n_atoms, 3)")
        if pos.shape[0] == 0:
            raise InputError("`positions` is empty; a structure needs at least one atom")
        bad = ~(np.abs(pos) <= MAX_COORDINATE).all(axis=1)  # NaN compares False
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InputError(
                f"`positions[{i}]` is {pos[i].tolist()}: positions must be finite and within "
                f"±{MAX_COORDINATE:g} Å ({int(bad.sum())} atom(s) with NaN, infinite or "
                "larger coordinates)"
            )
        numbers = _as_numbers(types, pos.shape[0], "types")
        flags = _as_pbc(pbc)
        periodic = all(flags)
        matrix = _as_cell(cell, periodic)
        if any(flags):
            if not periodic:
                _check_slab_cell(matrix, flags)
            basis = _wrapping_basis(matrix, flags)
            frac = np.linalg.solve(basis.T, pos.T).T
            wrapped = frac[:, list(flags)]
            wrapped -= np.floor(wrapped)
            wrapped[wrapped >= 1.0] = 0.0  # floor of -tiny gives exactly 1.0
            frac[:, list(flags)] = wrapped
            pos = frac @ basis
        else:
            matrix = np.zeros((3, 3)) if cell is None else matrix
        if weights is not None:
            weights = _as_weights(weights, pos.shape[0])
        for array in (pos, numbers, matrix, weights):
            if array is not None:
                array.setflags(write=False)
        object.__setattr__(self, "positions", pos)
        object.__setattr__(self, "numbers", numbers)
        object.__setattr__(self, "cell", matrix)
        object.__setattr__(self, "periodic", periodic)
        object.__setattr__(self, "pbc", flags)
        object.__setattr__(self, "weights", weights)
        self._check_overlaps()

    @property
    def is_slab(self) -> bool:
        """Whether exactly two axes are periodic."""
        return sum(self.pbc) == 2

    @property
    def boundary(self) -> str:
        """This structure's entry of :data:`BOUNDARIES`."""
        if self.periodic:
            return "periodic"
        return "slab" if self.is_slab else "molecule"

    @property
    def is_molecule(self) -> bool:
        """Whether no axis is periodic."""
        return not any(self.pbc)

    def slab_frame(self) -> tuple[np.ndarray, np.ndarray, float]:
        """The plane of a slab: its lattice, unit normal and cell area.

        Returns
        -------
        lattice : ndarray, shape (2, 3)
            The two periodic cell vectors (Å), in the order of the cell rows.
        normal : ndarray, shape (3,)
            Unit vector along lattice[0] x lattice[1].
        area : float
            |lattice[0] x lattice[1]|, Å^2.
        """
        if not self.is_slab:
            raise ValueError(f"slab_frame() needs a slab; this structure has pbc {self.pbc}")
        lattice = self.cell[list(self.pbc)]
        cross = np.cross(lattice[0], lattice[1])
        area = float(np.linalg.norm(cross))
        return lattice, cross / area, area

    @classmethod
    def from_ase(cls, atoms, weights=None) -> System:
        """Validated copy of an :class:`ase.Atoms` (the caller's object is not touched).

        Parameters
        ----------
        atoms : ase.Atoms
        weights : None, str or array_like of shape (n_atoms,)
            Per-atom weights (see :class:`System`): an array, or the name of one of the
            atoms' per-atom arrays (``atoms.arrays``, e.g. ``"initial_charges"``, which ASE
            stores only once set: an unset ``"initial_charges"`` reads as zeros, as
            ``atoms.get_initial_charges()`` does). None: all weights 1.
        """
        if isinstance(weights, str):
            weights = ase_weights(atoms, weights)
        return cls(
            positions=atoms.get_positions(),
            types=atoms.get_atomic_numbers(),
            cell=atoms.cell.array,
            pbc=atoms.pbc,
            weights=weights,
        )

    def __len__(self) -> int:
        return self.positions.shape[0]

    @property
    def volume(self) -> float:
        """Cell volume in Å^3 (bulk systems only: a slab has an :meth:`slab_frame` area)."""
        if not self.periodic:
            raise ValueError(f"volume is defined for bulk structures only (pbc {self.pbc})")
        return float(abs(np.linalg.det(self.cell)))

    def _check_overlaps(self) -> None:
        pos = self.positions
        if len(pos) < 2 and not any(self.pbc):
            return
        if any(self.pbc):
            # A periodic image can only coincide with an atom near a face of the cell: add
            # shifted copies of the atoms within MIN_DISTANCE of a face, then search pairs.
            basis = _wrapping_basis(self.cell, self.pbc)
            inv = np.linalg.inv(basis)
            frac = pos @ inv
            heights = 1.0 / np.linalg.norm(inv, axis=0)
            tol = MIN_DISTANCE / heights
            near = frac < tol
            shifts = [np.zeros(3, dtype=int)]
            for ax in np.flatnonzero(self.pbc):
                shifts += [s + np.eye(3, dtype=int)[ax] for s in shifts]
            images, owners = [pos], [np.arange(len(pos))]
            for shift in shifts[1:]:
                mask = np.all(near | (shift == 0), axis=1)
                if mask.any():
                    images.append(pos[mask] + shift @ basis)
                    owners.append(np.flatnonzero(mask))
            all_pos, all_owner = np.concatenate(images), np.concatenate(owners)
            if heights[list(self.pbc)].min() < MIN_DISTANCE:
                raise InputError(f"`cell` {self.cell.tolist()} is too thin")
        else:
            all_pos, all_owner = pos, np.arange(len(pos))
        # a k-d tree at every size: 20 µs at 10 points, 90 µs at 200 (comparing all pairs
        # costs 1.5 ms at 250, most of it page faults on the (n, n, 3) differences)
        pairs = cKDTree(all_pos).query_pairs(MIN_DISTANCE, output_type="ndarray")
        if len(pairs):
            i, j = sorted((int(all_owner[pairs[0, 0]]), int(all_owner[pairs[0, 1]])))
            where = "a periodic image of itself" if i == j else f"atom {j}"
            raise InputError(
                f"`positions`: atom {i} lies on top of {where} (closer than {MIN_DISTANCE} Å); "
                "atoms must be at distinct positions"
            )


def _as_weights(weights, n_atoms: int) -> np.ndarray:
    """The validated float64 copy of ``weights`` (n_atoms,)."""
    try:
        values = np.array(weights, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(
            f"`weights` is {describe(weights)}; expected one float per atom ({n_atoms} atoms)"
        ) from None
    if values.shape != (n_atoms,):
        raise InputError(
            f"`weights` is {describe(weights)} of shape {values.shape}; expected shape "
            f"({n_atoms},): one float per atom"
        )
    bad = ~np.isfinite(values)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(
            f"`weights[{i}]` is {values[i]}: weights must be finite ({int(bad.sum())} "
            "NaN or infinite value(s))"
        )
    return values


def ase_weights(atoms, name: str, *, required: bool = False) -> np.ndarray:
    """The per-atom array ``name`` of an ase.Atoms, as validated weights.

    The one reading of a calculator's ``weights`` option (:meth:`System.from_ase`, the
    recipes, the feature stores).

    Parameters
    ----------
    atoms : ase.Atoms
    name : str
        A key of ``atoms.arrays`` (e.g. ``"initial_charges"``).
    required : bool
        Refuse an unset ``"initial_charges"`` too, which ASE otherwise reads as zeros (a
        dataset frame without its charges column is a missing value, not a neutral frame).

    Returns
    -------
    ndarray of float64, shape (n_atoms,)

    Raises
    ------
    InputError
        No per-atom array ``name``, not one number per atom, or a non-finite value.
    """
    if name == "initial_charges" and not required:
        return _as_weights(atoms.get_initial_charges(), len(atoms))
    if name not in atoms.arrays:
        present = sorted(k for k in atoms.arrays if k not in ("positions", "numbers"))
        aside = "" if required else " (and 'initial_charges', read as zeros when unset)"
        raise InputError(
            f"`weights` is {name!r} but these atoms have no per-atom array of that name; "
            f"arrays present: {present or 'none'}{aside}"
        )
    values = np.asarray(atoms.arrays[name])
    if values.ndim != 1:
        raise InputError(
            f"`weights` is {name!r}, an array of shape {values.shape}; a weight array must "
            "hold one number per atom (shape (n_atoms,))"
        )
    return _as_weights(values, len(atoms))


def stress_volume(cell, pbc) -> float | None:
    """The volume (Å^3) that turns dE/d eps into a stress, ASE's convention: |det(cell)|, for
    bulk and for slabs alike (a slab's non-periodic vector only sets that volume); None when
    there is none: a molecule, or a slab whose non-periodic vector is zero or in its plane.

    Parameters
    ----------
    cell : array_like, shape (3, 3)
        Rows are the cell vectors (Å).
    pbc : bool or sequence of 3 bool
    """
    if not np.any(pbc):
        return None
    cell = np.asarray(cell, dtype=np.float64)
    volume = abs(float(np.linalg.det(cell)))
    # relative to the largest volume these lengths can span (a box)
    if volume == 0.0 or volume <= 1e-10 * np.prod(np.linalg.norm(cell, axis=1)):
        return None
    return volume


def _wrapping_basis(cell: np.ndarray, pbc) -> np.ndarray:
    """The cell, or for a slab the cell with its non-periodic row replaced by the unit normal
    of the plane: a non-singular basis whose periodic rows are the lattice."""
    if all(pbc):
        return cell
    basis = np.array(cell, dtype=np.float64)
    a1, a2 = basis[list(pbc)]
    cross = np.cross(a1, a2)
    basis[pbc.index(False)] = cross / np.linalg.norm(cross)
    return basis


def as_systems(structures, name: str = "structures", weights=None) -> list[System]:
    """Normalise one structure or a sequence of them to a list of :class:`System`.

    Accepts :class:`System`, :class:`ase.Atoms`, or a sequence of either. ``weights`` (None
    or the name of a per-atom array) is read from ase.Atoms (:meth:`System.from_ase`); a
    :class:`System` keeps its own weights.
    """
    if isinstance(structures, System) or _is_ase(structures):
        structures = [structures]
    if not isinstance(structures, Sequence) or isinstance(structures, (str, bytes)):
        raise InputError(
            f"`{name}` is {describe(structures)}; expected an ase.Atoms, a lodekit.System, "
            "or a list of them"
        )
    if len(structures) == 0:
        raise InputError(f"`{name}` is empty; give at least one structure")
    out = []
    for i, item in enumerate(structures):
        if isinstance(item, System):
            out.append(item)
        elif _is_ase(item):
            try:
                out.append(System.from_ase(item, weights=weights))
            except InputError as err:
                raise InputError(f"`{name}[{i}]`: {err}") from None
        else:
            raise InputError(
                f"`{name}[{i}]` is {describe(item)}; expected an ase.Atoms or a lodekit.System"
            )
    return out


def _is_ase(obj) -> bool:
    try:
        from ase import Atoms
    except ImportError:  # pragma: no cover - ase is a core dependency
        return False
    return isinstance(obj, Atoms)
