"""Pairs of atoms within a cutoff, periodic images included (vesin)."""

from __future__ import annotations

import numpy as np

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
        return _slab_pairs(system, cutoff)
    box = system.cell if system.periodic else np.zeros((3, 3))
    calculator = _neighbor_list(cutoff)
    i, j, vectors = calculator.compute(
        points=system.positions, box=box, periodic=system.periodic, quantities="ijD"
    )
    return i.astype(np.int64), j.astype(np.int64), np.asarray(vectors, dtype=np.float64)


def _slab_pairs(system: System, cutoff: float):
    """:func:`neighbor_pairs` of a slab, in the frame where vesin takes one: the lattice in the
    xy plane as the first two box rows, the unit normal as the third, pbc (True, True, False)
    (vesin 0.4 refuses other orientations of a non-periodic axis). Vectors are rotated back."""
    lattice, normal, _ = system.slab_frame()
    x = lattice[0] / np.linalg.norm(lattice[0])
    frame = np.array([x, np.cross(normal, x), normal])  # rows: orthonormal, right-handed
    box = np.vstack([lattice @ frame.T, [0.0, 0.0, 1.0]])
    box[:2, 2] = 0.0  # in the plane to rounding: exactly
    calculator = _neighbor_list(cutoff)
    i, j, vectors = calculator.compute(
        points=system.positions @ frame.T, box=box, periodic=[True, True, False], quantities="ijD"
    )
    return i.astype(np.int64), j.astype(np.int64), np.asarray(vectors, dtype=np.float64) @ frame


def _neighbor_list(cutoff: float):
    """vesin's full neighbour list. Imported on first use: vesin imports torch when it is
    installed (3 s), which every command line that computes nothing (--help, an input
    error) would otherwise pay."""
    from vesin import NeighborList

    return NeighborList(cutoff=float(cutoff), full_list=True)
