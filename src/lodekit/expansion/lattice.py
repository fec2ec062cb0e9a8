"""A short, nearly orthogonal basis of a lattice (the lattice is physical, not its basis).

Periodic sums depend only on the lattice the cell rows generate; the bounds the k-space
planner derives from the rows (cell heights, Miller-index ranges, grid sizes) do not. A
skewed basis of a cubic lattice has tiny heights and huge rows: it would be refused or
enumerated wastefully. :func:`reduced_cell` gives an equivalent short basis.
"""

from __future__ import annotations

import numpy as np

__all__ = ["reduced_cell"]

# A replacement row must be shorter by this relative margin (1 % of its squared length):
# bases that are reduced or nearly so (cubic, hexagonal with a1·a2 ~ -|a|^2/2 up to rounding,
# ...) are returned unchanged, so that their results stay the same bit for bit; a nearly
# reduced basis costs at most a few per cent more k-vectors in the enumeration box.
_MARGIN = 1e-2
_MAX_SWEEPS = 1000


def _pair_step(rows: np.ndarray, i: int, j: int) -> bool:
    """Shorten row i by the nearest integer multiple of row j (Gauss/Lagrange step)."""
    multiple = np.rint(rows[i] @ rows[j] / (rows[j] @ rows[j]))
    if multiple == 0:
        return False
    candidate = rows[i] - multiple * rows[j]
    if candidate @ candidate < (1 - _MARGIN) * (rows[i] @ rows[i]):
        rows[i] = candidate
        return True
    return False


def _triple_step(rows: np.ndarray, i: int) -> bool:
    """Shorten row i by ± each of the two others (the 3-d Minkowski conditions)."""
    j, k = (m for m in range(3) if m != i)
    for s in (-1.0, 1.0):
        for t in (-1.0, 1.0):
            candidate = rows[i] + s * rows[j] + t * rows[k]
            if candidate @ candidate < (1 - _MARGIN) * (rows[i] @ rows[i]):
                rows[i] = candidate
                return True
    return False


def reduced_cell(cell: np.ndarray) -> np.ndarray:
    """A reduced basis of the lattice spanned by the rows of ``cell``.

    Rows are replaced by shorter integer combinations of the rows (each step unimodular, the
    determinant is kept, orientation included) until no pair or triple step shortens any row:
    pairwise Gauss-reduced and satisfying the Minkowski conditions |a_i ± a_j ± a_k| >= |a_i|,
    each up to a margin of 1 % in squared length.

    Parameters
    ----------
    cell : ndarray, shape (3, 3)
        Lattice vectors as rows (Å), non-singular.

    Returns
    -------
    ndarray, shape (3, 3)
        ``cell`` itself (the same object) when it is already reduced, else a new array.
    """
    rows = np.array(cell, dtype=np.float64)
    changed_any = False
    for _ in range(_MAX_SWEEPS):
        changed = False
        for i in range(3):
            for j in range(3):
                if i != j:
                    changed |= _pair_step(rows, i, j)
        for i in range(3):
            changed |= _triple_step(rows, i)
        changed_any |= changed
        if not changed:
            break
    return rows if changed_any else cell
