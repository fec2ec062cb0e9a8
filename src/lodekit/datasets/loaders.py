"""Loaders of the paper's data sets (the shared copies, or any path the user gives)."""

from __future__ import annotations

import os
from pathlib import Path

import ase
import ase.io
import numpy as np

from ..errors import InputError

__all__ = ["default_data_dir", "load_dielectric_water", "load_ssi_dimers"]

_FILES = {
    "ssi_dimers": ("ssi_dimers", "ssi_dimers_gfn2.extxyz"),
    "water": ("water_bulk_dielectric", "coords_1000.xyz"),
}


def default_data_dir() -> Path:
    """Where the shared data sets are looked for when no path is given.

    ``$LODEKIT_DATA`` when set, else ``shared/data`` in the current folder or its parent
    (``../shared/data`` is where a checkout run from its root keeps them). The installed
    package never assumes where its own files sit.
    """
    if "LODEKIT_DATA" in os.environ:
        return Path(os.environ["LODEKIT_DATA"])
    here = Path.cwd()
    for folder in (here / "shared" / "data", here.parent / "shared" / "data"):
        if folder.is_dir():
            return folder
    return here.parent / "shared" / "data"


def _resolve(path, key: str) -> Path:
    if path is None:
        folder, name = _FILES[key]
        path = default_data_dir() / folder / name
    path = Path(path)
    if path.is_dir() and (path / _FILES[key][1]).is_file():
        # the data set's folder given instead of its file
        path = path / _FILES[key][1]
    if path.is_dir():
        raise InputError(
            f"`path` {str(path)!r} is a folder without {_FILES[key][1]!r}: give the data file "
            "(or the folder that holds it)"
        )
    if not path.is_file():
        raise InputError(
            f"`path` {str(path)!r} does not exist: give the data file explicitly "
            "(`--data` of `lodekit reproduce`), or set LODEKIT_DATA to the folder holding "
            "the shared data sets"
        )
    return path


def _read(path: Path, index=":") -> list[ase.Atoms]:
    try:
        return ase.io.read(path, index=index)
    except Exception as err:  # ase raises many types for unreadable files
        raise InputError(f"`path` {str(path)!r} is not a readable structure file: {err}") from None


def load_ssi_dimers(path=None, *, with_monomers: bool = True) -> dict:
    """Charged SSI dimers with GFN2-xTB binding curves (13 points per dimer).

    Returns
    -------
    dict
        ``frames`` (list of ase.Atoms, non-periodic), ``energy`` (binding energy, eV),
        ``dimer`` (dimer index per frame), ``distance`` (Å), ``is_monomer`` (bool). With
        ``with_monomers`` the two isolated monomers of every dimer are appended with binding
        energy 0 (the paper added them to the training set).
    """
    frames = _read(_resolve(path, "ssi_dimers"))
    energy, dimer, distance, monomer = [], [], [], []
    extra = []
    seen = set()
    for atoms in frames:
        info = atoms.info
        try:
            energy.append(float(info["binding_energy"]))
            dimer.append(int(info["dimer_index"]))
            distance.append(float(info["distance"]))
            n_a = int(info["n_A"])
        except KeyError as err:
            raise InputError(f"SSI dimer file lacks per-frame key {err}") from None
        monomer.append(False)
        if with_monomers and dimer[-1] not in seen:
            seen.add(dimer[-1])
            extra.append((atoms[:n_a], dimer[-1]))
            extra.append((atoms[n_a:], dimer[-1]))
    for atoms, index in extra:
        frames.append(atoms)
        energy.append(0.0)
        dimer.append(index)
        distance.append(np.inf)
        monomer.append(True)
    return {
        "frames": frames,
        "energy": np.array(energy),
        "dimer": np.array(dimer),
        "distance": np.array(distance),
        "is_monomer": np.array(monomer),
    }


def load_dielectric_water(path=None) -> dict:
    """Liquid water frames (32 H2O) with their electronic dielectric tensors.

    Returns
    -------
    dict
        ``frames`` (periodic ase.Atoms, positions as in the file: unwrapped) and ``epsilon``
        (n, 3, 3), symmetrised.
    """
    frames = _read(_resolve(path, "water"))
    try:
        epsilon = np.array([np.asarray(a.info["epsilon"], float).reshape(3, 3) for a in frames])
    except KeyError:
        raise InputError("water file lacks the per-frame `epsilon` key") from None
    for atoms in frames:
        atoms.pbc = True
    return {"frames": frames, "epsilon": 0.5 * (epsilon + epsilon.transpose(0, 2, 1))}
