"""Errors of a potential against reference energies, forces and stress."""

from __future__ import annotations

import numpy as np

from .labels import Labels

__all__ = ["potential_errors"]


def _rmse(x) -> float | None:
    x = np.asarray(x, dtype=float)
    return None if x.size == 0 else float(np.sqrt(np.mean(x**2)))


def _mae(x) -> float | None:
    x = np.asarray(x, dtype=float)
    return None if x.size == 0 else float(np.mean(np.abs(x)))


def potential_errors(potential, frames, labels: Labels, progress=None) -> dict:
    """Energy, force and stress errors of ``potential`` on ``frames``.

    Returns
    -------
    dict
        ``overall``: ``energy_rmse`` / ``energy_mae`` (eV per structure),
        ``energy_rmse_per_atom`` / ``energy_mae_per_atom`` (eV/atom), ``force_rmse`` /
        ``force_mae`` (eV/Å over components, structures with reference forces), ``stress_rmse``
        (eV/Å^3, structures with reference stress), and the counts; ``per_species``: force
        RMSE and MAE over the components of each element's atoms; ``predictions``: the
        predicted energies (eV), and forces where references exist.
    """
    energy_error, per_atom = [], []
    force_error, force_species, stress_error = [], [], []
    predicted = {"energy": [], "forces": []}
    iterator = range(len(frames))
    if progress is not None:
        iterator = progress(iterator, desc="evaluating")
    for a in iterator:
        atoms = frames[a]
        want_forces = labels.forces[a] is not None
        want_stress = labels.stress[a] is not None
        result = potential.compute(atoms, forces=want_forces, stress=want_stress)
        predicted["energy"].append(result["energy"])
        energy_error.append(result["energy"] - labels.energy[a])
        per_atom.append(energy_error[-1] / len(atoms))
        if want_forces:
            predicted["forces"].append(result["forces"])
            force_error.append((result["forces"] - labels.forces[a]).ravel())
            force_species.append(np.repeat(atoms.numbers, 3))
        else:
            predicted["forces"].append(None)
        if want_stress:
            stress_error.append((result["stress"] - labels.stress[a]).ravel())
    forces = np.concatenate(force_error) if force_error else np.zeros(0)
    species = np.concatenate(force_species) if force_species else np.zeros(0, int)
    overall = {
        "n_structures": len(frames),
        "n_atoms": int(sum(len(a) for a in frames)),
        "n_force_structures": len(force_error),
        "n_stress_structures": len(stress_error),
        "energy_rmse": _rmse(energy_error),
        "energy_mae": _mae(energy_error),
        "energy_rmse_per_atom": _rmse(per_atom),
        "energy_mae_per_atom": _mae(per_atom),
        "force_rmse": _rmse(forces),
        "force_mae": _mae(forces),
        "stress_rmse": _rmse(np.concatenate(stress_error)) if stress_error else None,
    }
    per_species = {
        str(int(z)): {
            "force_rmse": _rmse(forces[species == z]),
            "force_mae": _mae(forces[species == z]),
            "n_components": int(np.sum(species == z)),
        }
        for z in np.unique(species)
    }
    return {"overall": overall, "per_species": per_species, "predictions": predicted}
