"""Ewald summation of point-charge energies (the reference of the point-charge experiment).

E = 1/2 sum'_{i,j,L} q_i q_j erfc(a r)/r + (2 pi / V) sum_{k != 0} exp(-k^2 / 4a^2) / k^2 |S(k)|^2
    - a / sqrt(pi) sum_i q_i^2 - pi Q^2 / (2 V a^2),

times e^2 / (4 pi eps0) = 14.399645 eV Å: tin-foil boundary conditions, a neutralising
background for a net charge Q. Real-space pairs come from vesin, the reciprocal sum reuses the
LODE k-space machinery (half space, per-axis phase tables), so the cost is O(N^1.5) at the
balanced splitting a = sqrt(pi) (N / V^2)^(1/6).
"""

from __future__ import annotations

import numpy as np
from scipy.special import erfc

from ..errors import InputError
from ..expansion.kspace import half_space_kvectors, phase_factors
from ..neighbors import neighbor_pairs
from ..systems import System

__all__ = ["COULOMB_CONSTANT", "ewald_energy"]

#: e^2 / (4 pi eps0) in eV Å (math.md §1).
COULOMB_CONSTANT = 14.399645

_K_CHUNK = 4096


def ewald_energy(structure, charges=None, *, accuracy: float = 1e-10, coulomb=COULOMB_CONSTANT):
    """Electrostatic energy (eV) of point charges in a periodic cell of any shape.

    Parameters
    ----------
    structure : ase.Atoms or System
        Periodic structure (Å).
    charges : array_like, shape (n_atoms,), optional
        Charges in e; default: the ``initial_charges`` of an ase.Atoms.
    accuracy : float
        Relative truncation of both sums: erfc(a r_c) and exp(-k_c^2 / 4a^2) equal it.
    coulomb : float
        e^2 / (4 pi eps0) in the wanted units (default eV Å).
    """
    if isinstance(structure, System):
        system = structure
        if charges is None:
            raise InputError("`charges` is required when `structure` is a lodekit.System")
    else:
        system = System.from_ase(structure)
        if charges is None:
            charges = structure.get_initial_charges()
    if not system.periodic:
        raise InputError("`structure` is not periodic: the Ewald sum needs a cell")
    q = np.asarray(charges, dtype=np.float64)
    if q.shape != (len(system),) or not np.all(np.isfinite(q)):
        raise InputError(
            f"`charges` has shape {q.shape}; expected {len(system)} finite values (one per atom)"
        )
    if not 1e-16 <= accuracy < 1:
        raise InputError(f"`accuracy` is {accuracy} but must be in [1e-16, 1)")
    volume = system.volume
    alpha = np.sqrt(np.pi) * (len(q) / volume**2) ** (1 / 6)
    log_acc = -np.log(accuracy)
    r_cut = np.sqrt(log_acc) / alpha
    k_cut = 2 * alpha * np.sqrt(log_acc)

    i, j, vectors = neighbor_pairs(system, r_cut)
    distance = np.linalg.norm(vectors, axis=1)
    real = 0.5 * np.sum(q[i] * q[j] * erfc(alpha * distance) / distance)

    hkl = half_space_kvectors(system.cell, k_cut)
    recip = 2 * np.pi * np.linalg.inv(system.cell).T
    frac = system.positions @ np.linalg.inv(system.cell)
    reciprocal = 0.0
    for start in range(0, len(hkl), _K_CHUNK):
        block = hkl[start : start + _K_CHUNK]
        k2 = np.einsum("ij,ij->i", block @ recip, block @ recip)
        structure_factor = q @ phase_factors(frac, block)
        # the half space counts each ±k pair once: 4 pi / V instead of 2 pi / V
        reciprocal += np.sum(np.exp(-k2 / (4 * alpha**2)) / k2 * np.abs(structure_factor) ** 2)
    reciprocal *= 4 * np.pi / volume
    self_energy = -alpha / np.sqrt(np.pi) * np.sum(q * q)
    background = -np.pi * q.sum() ** 2 / (2 * volume * alpha**2)
    return float(coulomb * (real + reciprocal + self_energy + background))
