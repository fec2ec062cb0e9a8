"""Potential files: everything needed to predict energies, forces and stress, in one ``.npz``.

A potential file is a lodekit model file (:mod:`lodekit.persistence.model_archive`: arrays
plus a JSON header sealed by a checksum, never unpickled) whose metadata also holds the
feature recipe, the neighbour species, the per-species energy references and the units. It
is what ``lodekit train`` writes and what ``lodekit evaluate``, ``lodekit md``,
:meth:`LodePotential.from_file` and :meth:`LodekitCalculator.from_file` read. It also carries
the keys of ``lodekit fit`` files, so ``lodekit predict`` gives its energies.
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import InputError
from ..features.recipe import Recipe
from ..persistence import ModelFileError, load_model, save_model
from .potential import LodePotential

__all__ = ["POTENTIAL_UNITS", "load_potential", "save_potential"]

#: Units of every potential file (math.md's conventions).
POTENTIAL_UNITS = {"energy": "eV", "length": "Å", "forces": "eV/Å", "stress": "eV/Å^3"}


def save_potential(path: str | os.PathLike, potential: LodePotential, metadata=None):
    """Write ``potential`` to ``path`` (.npz), atomically.

    Parameters
    ----------
    path : path-like
    potential : LodePotential
        With its ``species`` set: a file must say which neighbour channels the model was
        trained with.
    metadata : dict, optional
        JSON-serialisable extras (training set, errors...), stored under ``"training"``.

    Returns
    -------
    Path
    """
    if potential.species is None:
        raise InputError(
            "`potential` has no `species`: build it with species=... (the neighbour species "
            "of the training set) before saving it"
        )
    species = [int(z) for z in potential.species]
    centers = sorted(int(z) for z in getattr(potential.model, "types_", species))
    record = {
        "created_by": "lodekit.interatomic.save_potential",
        "potential": {
            "units": POTENTIAL_UNITS,
            "references": {str(z): e for z, e in sorted(potential.references.items())},
        },
        # the keys `lodekit predict` reads (lodekit.batch.fit_predict)
        "recipe": potential.recipe.to_dict(),
        "species": species,
        "center_types": centers,
        "design": "plain",
        "target": "energy",
        "training": metadata or {},
    }
    return save_model(path, potential.model, record)


def load_potential(path: str | os.PathLike) -> LodePotential:
    """The :class:`LodePotential` in a file written by :func:`save_potential`.

    Raises :class:`~lodekit.persistence.ModelFileError` for a damaged file and for a model
    file that is not a potential (e.g. one written by ``lodekit fit``).
    """
    model = load_model(path)
    where = f"model file {str(path)!r}"
    metadata = model.metadata_
    entry = metadata.get("potential")
    if not isinstance(entry, dict):
        raise ModelFileError(
            f"{where} is a model file but not a potential (it has no energy references, units "
            "or species for forces): write potentials with `lodekit train` or "
            "LodePotential.save"
        )
    if entry.get("units") != POTENTIAL_UNITS:
        raise ModelFileError(f"{where}: units {entry.get('units')!r}; expected {POTENTIAL_UNITS}")
    try:
        recipe = Recipe.from_dict(metadata["recipe"], name="recipe")
        species = np.asarray(metadata["species"], dtype=np.int64)
        return LodePotential(model, recipe, species=species, references=entry["references"])
    except (InputError, KeyError, TypeError, ValueError) as err:
        raise ModelFileError(f"{where}: invalid potential ({err})") from None
