"""A rigid-ion model of NaCl: point charges ±1 e plus Born-Mayer-Huggins repulsion.

E = E_Ewald(q = ±1) + sum_{i<j} A_ij exp(-r_ij / rho),  A_ij = c_ij b exp((s_i + s_j) / rho),

with the repulsion parameters of Tosi & Fumi, J. Phys. Chem. Solids 25, 45 (1964): b = 0.338e-19 J
(0.2110 eV), rho = 0.317 Å, ionic radii s_Na = 1.170 Å, s_Cl = 1.585 Å, Pauling factors
c = 1.25 (Na-Na), 1.00 (Na-Cl), 0.75 (Cl-Cl). The dispersion terms of the full Tosi-Fumi
model are left out: the rock-salt crystal then has its energy minimum at a = 5.76 Å (-7.82 eV
per NaCl pair; experiment: 5.64 Å). A long-range (Coulomb) and a short-range (repulsion) part
that a potential must both learn before it can run dynamics.

Bulk cells take the 3-D Ewald sum (:func:`~lodekit.datasets.ewald.ewald`), slabs (two
periodic axes) the exact 2-D one (:func:`~lodekit.datasets.slab_ewald.slab_ewald`): a slab
must then be neutral (as many Na as Cl).
"""

from __future__ import annotations

import ase
import numpy as np

from ..errors import InputError
from ..neighbors import neighbor_pairs
from ..systems import System, stress_volume
from .ewald import ewald, ewald_energy

__all__ = [
    "CHARGES",
    "TOSI_FUMI",
    "born_mayer_energy",
    "rigid_ion",
    "rigid_ion_energy",
    "rigid_ion_nacl",
]

#: b (eV), rho (Å), ionic radii s (Å) and Pauling factors c of the Tosi-Fumi NaCl repulsion.
TOSI_FUMI = {
    "b": 0.338e-19 / 1.602176634e-19,
    "rho": 0.317,
    "radius": {11: 1.170, 17: 1.585},
    "pauling": {(11, 11): 1.25, (11, 17): 1.00, (17, 17): 0.75},
}

#: Charges (e) of the rigid ions.
CHARGES = {11: 1.0, 17: -1.0}


def born_mayer_energy(structure, *, cutoff: float = 8.0) -> float:
    """Tosi-Fumi repulsion energy (eV) of a periodic or finite structure of Na and Cl.

    Parameters
    ----------
    structure : ase.Atoms or System
        Positions in Å; only Na (11) and Cl (17).
    cutoff : float
        Pairs beyond it are left out (Å): at 8 Å the largest term is 4e-8 eV.
    """
    return _born_mayer(structure, cutoff, derivatives=False)["energy"]


def _born_mayer(structure, cutoff: float, derivatives: bool) -> dict:
    system = structure if isinstance(structure, System) else System.from_ase(structure)
    unknown = sorted(set(system.numbers.tolist()) - set(CHARGES))
    if unknown:
        raise InputError(f"`structure` holds atomic numbers {unknown}; the model knows Na, Cl")
    if not 3.0 <= cutoff <= 20.0:
        raise InputError(f"`cutoff` {cutoff!r} must be in [3, 20] Å")
    rho = TOSI_FUMI["rho"]
    # A_ij by atomic numbers: c_ij b exp((s_i + s_j) / rho)
    strength_of = np.zeros((18, 18))
    for (a, b), pauling in TOSI_FUMI["pauling"].items():
        sigma = TOSI_FUMI["radius"][a] + TOSI_FUMI["radius"][b]
        strength_of[a, b] = strength_of[b, a] = pauling * TOSI_FUMI["b"] * np.exp(sigma / rho)
    i, j, vectors = neighbor_pairs(system, cutoff)
    strength = strength_of[system.numbers[i], system.numbers[j]]
    distance = np.linalg.norm(vectors, axis=1)
    # the full list holds every pair twice
    result = {"energy": float(0.5 * np.sum(strength * np.exp(-distance / rho)))}
    if not derivatives:
        return result
    # the derivative of the truncated sum: the step of at most 4e-8 eV where a pair crosses
    # the cutoff is left out, as in any truncated pair potential
    # d/dv of 1/2 A exp(-r / rho) for the ordered pair (i, j), v = r_j + shift - r_i
    pair = (-0.5 * strength * np.exp(-distance / rho) / (rho * distance))[:, None] * vectors
    gradient = np.zeros((len(system), 3))
    for axis in range(3):
        gradient[:, axis] += np.bincount(j, pair[:, axis], minlength=len(system))
        gradient[:, axis] -= np.bincount(i, pair[:, axis], minlength=len(system))
    virial = pair.T @ vectors  # a strain maps every pair vector v to (I + strain) v
    result["forces"] = -gradient
    volume = system.volume if system.periodic else None
    if system.is_slab:
        volume = stress_volume(system.cell, system.pbc)
    if volume is not None:
        result["stress"] = 0.5 * (virial + virial.T) / volume
    return result


def _coulomb(atoms, derivatives: bool) -> dict:
    """Ewald sum of the ±1 e charges of ``atoms``: 3-D for bulk, 2-D for a slab."""
    charges = np.array([CHARGES.get(z, 0.0) for z in atoms.numbers])
    system = System.from_ase(atoms)
    if system.is_slab and charges.sum() != 0:
        raise InputError(
            f"`atoms` is a slab (pbc {list(system.pbc)}) of net charge {charges.sum():g} e "
            f"({int(np.sum(charges > 0))} Na, {int(np.sum(charges < 0))} Cl): the slab Ewald "
            "sum needs a neutral slab, as many Na as Cl"
        )
    if derivatives:
        return ewald(atoms, charges)
    return {"energy": ewald_energy(atoms, charges)}


def rigid_ion(atoms) -> dict:
    """Rigid-ion energy, forces and stress of a periodic Na/Cl structure (analytic).

    Ewald sum of the ±1 e charges (:func:`~lodekit.datasets.ewald.ewald`, or
    :func:`~lodekit.datasets.slab_ewald.slab_ewald` for a slab) plus the Tosi-Fumi
    repulsion (:func:`born_mayer_energy`); ``energy`` equals :func:`rigid_ion_energy` to
    the last bit.

    Parameters
    ----------
    atoms : ase.Atoms
        Periodic structure of Na and Cl (Å): bulk, or a neutral slab (two periodic axes).

    Returns
    -------
    dict
        ``"energy"``: float (eV); ``"forces"``: ndarray, shape (n_atoms, 3), eV/Å;
        ``"stress"``: ndarray, shape (3, 3), symmetric, (1/V) dE/d(strain) in eV/Å^3 (ASE's
        convention; for a slab V = |det(cell)|, and no stress when its third cell vector
        is zero or in the plane).
    """
    coulomb = _coulomb(atoms, derivatives=True)
    repulsion = _born_mayer(atoms, 8.0, derivatives=True)
    out = {
        "energy": coulomb["energy"] + repulsion["energy"],
        "forces": coulomb["forces"] + repulsion["forces"],
    }
    if "stress" in coulomb:
        out["stress"] = coulomb["stress"] + repulsion["stress"]
    return out


def rigid_ion_nacl(
    n_structures: int,
    *,
    seed: int = 0,
    repeat: int = 1,
    lattice_range: tuple[float, float] = (5.5, 6.0),
    rattle: float = 0.12,
) -> list[ase.Atoms]:
    """Rattled rock-salt NaCl cells with their rigid-ion energies.

    Parameters
    ----------
    n_structures : int
    seed : int
    repeat : int
        Copies of the 8-atom conventional cell along each axis.
    lattice_range : (float, float)
        The lattice constant is uniform in this range (Å).
    rattle : float
        Standard deviation of the Gaussian displacement of each atom, per axis (Å).

    Returns
    -------
    list of ase.Atoms
        Periodic cells with ``initial_charges`` (±1) and ``info["energy"]`` (eV): Ewald energy
        of the charges plus :func:`born_mayer_energy`; ``arrays["forces"]`` (n_atoms, 3), eV/Å,
        and ``info["stress"]`` (3, 3), eV/Å^3 in ASE's sign convention, from :func:`rigid_ion`.
        ``ase.io.write`` to extended XYZ keeps all three; ``ase.io.read`` returns them as a
        ``SinglePointCalculator`` (``get_potential_energy()``, ``get_forces()``,
        ``get_stress()``).
    """
    from ase.build import bulk

    if isinstance(n_structures, bool) or not isinstance(n_structures, int) or n_structures < 0:
        raise InputError(f"`n_structures` {n_structures!r} must be a non-negative integer")
    if isinstance(repeat, bool) or not isinstance(repeat, int) or not 1 <= repeat <= 8:
        raise InputError(f"`repeat` {repeat!r} must be an integer in 1..8")
    low, high = lattice_range
    if not 4.0 <= low <= high <= 8.0:
        raise InputError(f"`lattice_range` {lattice_range!r} must lie within [4, 8] Å")
    if not 0.0 <= rattle <= 0.5:
        raise InputError(f"`rattle` {rattle!r} must be in [0, 0.5] Å")
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(n_structures):
        atoms = bulk("NaCl", "rocksalt", a=rng.uniform(low, high), cubic=True)
        atoms = atoms.repeat(repeat)
        atoms.positions += rng.normal(scale=rattle, size=atoms.positions.shape)
        atoms.set_initial_charges([CHARGES[z] for z in atoms.numbers])
        result = rigid_ion(atoms)
        # plain info/arrays rather than a SinglePointCalculator: ase.io.write refuses a
        # calculator result whose key is also in atoms.info ("energy", which callers read),
        # while these three keys are the ones extxyz reads back into a calculator
        atoms.info["energy"] = result["energy"]
        atoms.arrays["forces"] = result["forces"]
        atoms.info["stress"] = result["stress"]
        frames.append(atoms)
    return frames


def rigid_ion_energy(atoms) -> float:
    """Rigid-ion energy (eV) of a periodic Na/Cl structure (bulk or a neutral slab): Ewald
    (±1 e) plus repulsion."""
    return _coulomb(atoms, derivatives=False)["energy"] + born_mayer_energy(atoms)
