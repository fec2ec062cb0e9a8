"""Pairs of atoms within a cutoff, periodic images included (vesin)."""

from __future__ import annotations

import numpy as np
from vesin import NeighborList

from .systems import System

__all__ = ["neighbor_pairs"]


def neighbor_pairs(system: System, cutoff: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Full list of ordered pairs (i, j) with 0 < |r_j + shift - r_i| < cutoff.

    Shifts run over the periodic axes only: all three for bulk, the two in-plane lattice
    vectors for a slab, none for a molecule.

    Parameters
    ----------
    system : System
    cutoff : float
        Å.

    Returns
    -------
    i, j : ndarray of int64, shape (n_pairs,)
    vectors : ndarray, shape (n_pairs, 3)
        r_j + shift - r_i in Å (the image of j as seen from i). An atom's own periodic
        images are included; the atom itself is not.
    """
    if system.is_slab:
        # vesin ignores the box vector of a non-periodic axis except for cell geometry: a
        # slab's may be zero or tilted, so it is replaced by the plane's unit normal
        _, normal, _ = system.slab_frame()
        box = np.array(system.cell)
        box[system.pbc.index(False)] = normal
    else:
        box = system.cell if system.periodic else np.zeros((3, 3))
    calculator = NeighborList(cutoff=float(cutoff), full_list=True)
    i, j, vectors = calculator.compute(
        points=system.positions, box=box, periodic=list(system.pbc), quantities="ijD"
    )
    return i.astype(np.int64), j.astype(np.int64), np.asarray(vectors, dtype=np.float64)
