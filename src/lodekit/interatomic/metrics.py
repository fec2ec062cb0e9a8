"""Errors of a potential against reference energies, forces and stress."""

from __future__ import annotations

import numpy as np

from ..errors import LodekitError
from .labels import Labels

__all__ = ["compute_metrics", "potential_errors", "predictions"]


def predictions(potential, frames, reference: Labels, progress=None, where=None) -> dict:
    """The potential's energies (n_structures,), and its forces and stress on the structures
    that have reference forces and stress (None elsewhere: they are not computed).

    ``where(index)``, when given, names frame ``index`` in the message of an error the
    potential raises on it (e.g. its file and position).
    """
    energy, forces, stress = [], [], []
    iterator = frames if progress is None else progress(frames, desc="evaluating")
    for atoms, f, s in zip(iterator, reference.forces, reference.stress, strict=True):
        want_forces, want_stress = f is not None, s is not None
        try:
            result = potential.compute(atoms, forces=want_forces, stress=want_stress)
        except LodekitError as err:
            if where is None:
                raise
            raise LodekitError(f"{where(len(energy))}: {err}") from None
        energy.append(result["energy"])
        forces.append(result["forces"] if want_forces else None)
        stress.append(result.get("stress") if want_stress else None)
    return {"energy": np.asarray(energy), "forces": forces, "stress": stress}


def potential_errors(potential, frames, reference: Labels, progress=None) -> dict:
    """:func:`compute_metrics` of the potential's :func:`predictions`."""
    return compute_metrics(frames, reference, predictions(potential, frames, reference, progress))


def _errors(difference: np.ndarray) -> tuple[float, float]:
    """RMSE and MAE of the entries of ``difference`` (any shape)."""
    return float(np.sqrt(np.mean(difference**2))), float(np.mean(np.abs(difference)))


def compute_metrics(frames, reference, predicted) -> dict:
    """The errors of ``predicted`` against ``reference``, as written to metrics.json.

    Energies: per structure (eV) and per atom (eV/atom, the error of each structure divided
    by its number of atoms). Forces (eV/Å): over every Cartesian component of every atom of
    the structures with reference forces, and per species (the atoms of each element).
    Stress (eV/Å^3): over the six independent components (xx, yy, zz, yz, xz, xy) of the
    periodic structures with a reference stress.
    """
    from ase.data import chemical_symbols

    error = predicted["energy"] - reference.energy
    rmse, mae = _errors(error)
    rmse_atom, mae_atom = _errors(error / reference.n_atoms)
    metrics = {
        "counts": {
            "structures": len(frames),
            "atoms": int(reference.n_atoms.sum()),
            "structures_with_forces": reference.n_with_forces,
            "atoms_with_forces": int(sum(len(f) for f in reference.forces if f is not None)),
            "structures_with_stress": reference.n_with_stress,
        },
        "energy": {
            "rmse_eV": rmse,
            "mae_eV": mae,
            "rmse_eV_per_atom": rmse_atom,
            "mae_eV_per_atom": mae_atom,
        },
        "forces": None,
        "stress": None,
    }
    with_forces = [i for i, f in enumerate(reference.forces) if f is not None]
    if with_forces:
        difference = np.concatenate(
            [predicted["forces"][i] - reference.forces[i] for i in with_forces]
        )
        numbers = np.concatenate([frames[i].numbers for i in with_forces])
        rmse, mae = _errors(difference)
        per_species = {}
        for z in np.unique(numbers):
            rmse_z, mae_z = _errors(difference[numbers == z])
            per_species[chemical_symbols[z]] = {
                "rmse_eV_per_A": rmse_z,
                "mae_eV_per_A": mae_z,
                "atoms": int(np.sum(numbers == z)),
            }
        metrics["forces"] = {"rmse_eV_per_A": rmse, "mae_eV_per_A": mae, "per_species": per_species}
    voigt = ([0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1])
    with_stress = [i for i, s in enumerate(reference.stress) if s is not None]
    if with_stress:
        difference = np.array(
            [(predicted["stress"][i] - reference.stress[i])[voigt] for i in with_stress]
        )
        rmse, mae = _errors(difference)
        metrics["stress"] = {"rmse_eV_per_A3": rmse, "mae_eV_per_A3": mae}
    return metrics
