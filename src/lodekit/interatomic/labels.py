"""Reference energies, forces and stress of training and test structures, read from where ASE
and extxyz files put them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..systems import stress_volume

__all__ = ["Labels", "read_labels"]


@dataclass
class Labels:
    """Reference values of a list of structures.

    energy : ndarray (n_structures,), eV
    forces : list of (ndarray (n_atoms_A, 3) in eV/Å, or None where a structure has none)
    stress : list of (ndarray (3, 3) in eV/Å^3, ASE's sign convention, or None; always None
        for a structure without a cell; a slab's is dE/d eps / |det(cell)|)
    n_atoms : ndarray (n_structures,)
    """

    energy: np.ndarray
    forces: list
    stress: list
    n_atoms: np.ndarray

    @property
    def n_with_forces(self) -> int:
        return sum(f is not None for f in self.forces)

    @property
    def n_with_stress(self) -> int:
        return sum(s is not None for s in self.stress)


def _lookup(atoms, key: str, where: str):
    """The value of ``key``: the per-frame keys of the file (info, arrays) first, then the
    results of an attached (single-point) calculator, where ASE's extxyz reader puts
    ``energy``, ``forces`` and ``stress``."""
    if where == "arrays" and key in atoms.arrays:
        return atoms.arrays[key]
    if where == "info" and key in atoms.info:
        return atoms.info[key]
    calc = getattr(atoms, "calc", None)
    results = getattr(calc, "results", None) or {}
    return results.get(key)


def read_labels(
    frames,
    *,
    energy_key: str = "energy",
    forces_key: str | None = "forces",
    stress_key: str | None = "stress",
    source: str = "structures",
) -> Labels:
    """Energies (required), and forces and stress where present, of every frame.

    Parameters
    ----------
    frames : list of ase.Atoms
    energy_key : str
        ``atoms.info`` key or calculator result of the total energy (eV).
    forces_key : str or None
        ``atoms.arrays`` key or calculator result of the forces (eV/Å); None: no forces.
    stress_key : str or None
        ``atoms.info`` key or calculator result of the stress (eV/Å^3, Voigt 6 or 3x3,
        ASE's convention); None: no stress. Read for periodic structures only: bulk, and
        slabs (two periodic axes), whose stress is dE/d eps / |det(cell)| as in ASE, so that
        a slab with a stress needs a third cell vector out of its plane.
    source : str
        How messages name the frames (e.g. the option and file).
    """
    energy, forces, stress = [], [], []
    for index, atoms in enumerate(frames):
        value = _lookup(atoms, energy_key, "info")
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise InputError(
                f"{source}: frame {index} has no energy under {energy_key!r} (looked in its "
                "info keys and calculator results); name it with --energy-key"
            ) from None
        if not np.isfinite(value):
            raise InputError(f"{source}: frame {index} has a non-finite energy ({value})")
        energy.append(value)
        f = None if forces_key is None else _lookup(atoms, forces_key, "arrays")
        if f is not None:
            f = np.asarray(f, dtype=np.float64)
            if f.shape != (len(atoms), 3) or not np.all(np.isfinite(f)):
                raise InputError(
                    f"{source}: frame {index}: forces {forces_key!r} have shape {f.shape}; "
                    f"expected ({len(atoms)}, 3) finite values"
                )
        forces.append(f)
        s = None
        if stress_key is not None and int(np.sum(atoms.pbc)) >= 2:
            s = _lookup(atoms, stress_key, "info")
        if s is not None:
            s = np.asarray(s, dtype=np.float64)
            if s.shape == (6,):
                xx, yy, zz, yz, xz, xy = s
                s = np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
            if s.shape != (3, 3) or not np.all(np.isfinite(s)):
                raise InputError(
                    f"{source}: frame {index}: stress {stress_key!r} has shape {s.shape}; "
                    "expected 6 (Voigt) or 3x3 finite values"
                )
            if not np.all(atoms.pbc) and stress_volume(atoms.cell.array, atoms.pbc) is None:
                raise InputError(
                    f"{source}: frame {index} is a slab (pbc {atoms.pbc.tolist()}) with a "
                    f"stress {stress_key!r}, but its cell {atoms.cell.array.tolist()} has no "
                    "volume: a slab's stress is dE/d eps / |det(cell)| (ASE's convention), "
                    "which needs a non-zero third cell vector out of its plane; give the "
                    "frame one, or fit no stress"
                )
        stress.append(s)
    return Labels(
        np.asarray(energy), forces, stress, np.array([len(a) for a in frames], dtype=np.int64)
    )
