"""Real-space evaluation of LODE: each neighbour's field projected on the centre's basis.

A radially symmetric field f(|r - d|) of an atom at displacement d from the centre projects on
R_n Y_lm as 4 pi Y_lm(d̂) Q_nl(|d|) (math.md §4.2). Q_nl is tabulated once per calculator with
piecewise Chebyshev polynomials up to ``d_switch``, beyond which the exact multipole series of
the 1/r^p tail takes over (or zero, for fields that decay faster than any power).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..basis.chebyshev import ChebyshevTable
from ..basis.field_projection import FieldProjection
from ..basis.gto import GtoBasis
from ..basis.multipoles import MultipoleTail
from ..neighbors import neighbor_pairs
from .pairs import accumulate_pairs

__all__ = ["RadialField", "molecule_sum", "periodic_pair_sum"]

#: Largest number of (centre, atom) pairs formed at once for molecules.
_PAIRS_PER_BLOCK = 1 << 18


class RadialField:
    """4 pi Q_nl(d) of one field for one basis, on all d >= 0.

    Parameters
    ----------
    basis : GtoBasis
    max_angular : int
    fourier : callable
        k -> f̂(k) of the field.
    sharpest_width : float
        Smallest Gaussian width (Å) in the field; sets where f̂ has decayed.
    d_switch : float
        Table range (Å); beyond it, ``tail`` (or zero when None).
    tail : MultipoleTail or None
    accuracy : float
        Accuracy of the table relative to its largest value.
    """

    def __init__(
        self,
        basis: GtoBasis,
        max_angular: int,
        fourier: Callable,
        sharpest_width: float,
        d_switch: float,
        tail: MultipoleTail | None,
        accuracy: float,
    ):
        # exp(-k^2 w^2 / 2) < 1e-17 beyond k_max: the quadrature needs nothing further out
        k_max = np.sqrt(2 * 40.0) / sharpest_width
        self.exact = FieldProjection(basis, max_angular, fourier, k_max, d_switch)
        self.d_switch = float(d_switch)
        self.table = ChebyshevTable(self.exact, self.d_switch, accuracy)
        self.tail = tail

    def __call__(self, d: np.ndarray) -> np.ndarray:
        """4 pi Q_nl(d), shape (n_d, L + 1, n)."""
        d = np.asarray(d, dtype=np.float64)
        near = d <= self.d_switch
        if near.all():
            return 4 * np.pi * self.table(d)
        out = np.zeros((len(d), *self.table._shape))
        out[near] = self.table(d[near])
        if self.tail is not None:
            out[~near] = self.tail(d[~near])
        return 4 * np.pi * out


def molecule_sum(
    positions: np.ndarray,
    species_index: np.ndarray,
    n_species: int,
    centres: np.ndarray,
    field: RadialField,
    max_angular: int,
    n_radial: int,
) -> np.ndarray:
    """Sum over every other atom of the molecule (no images, no background).

    Returns
    -------
    ndarray, shape (n_centres, n_species, (max_angular+1)^2, n_radial)
    """
    n_atoms = len(positions)
    n_lm = (max_angular + 1) ** 2
    out = np.zeros((len(centres), n_species, n_lm, n_radial))
    block = max(1, _PAIRS_PER_BLOCK // max(n_atoms, 1))
    for start in range(0, len(centres), block):
        rows = np.arange(start, min(start + block, len(centres)))
        i = np.repeat(centres[rows], n_atoms)
        row = np.repeat(rows - start, n_atoms)
        j = np.tile(np.arange(n_atoms), len(rows))
        other = i != j
        i, j, row = i[other], j[other], row[other]
        vectors = positions[j] - positions[i]
        target = row * n_species + species_index[j]
        n_rows = len(rows) * n_species
        part = accumulate_pairs(n_rows, target, vectors, field, max_angular, n_radial)
        out[rows] = part.reshape(len(rows), n_species, n_lm, n_radial)
    return out


def periodic_pair_sum(
    system,
    species_index: np.ndarray,
    n_species: int,
    centres: np.ndarray,
    field: RadialField,
    cutoff: float,
    max_angular: int,
    n_radial: int,
) -> np.ndarray:
    """Sum of a short-ranged field over all periodic images within ``cutoff``.

    The centre's own zero-distance term is not included (the caller adds it in closed form);
    its periodic images are.

    Returns
    -------
    ndarray, shape (n_centres, n_species, (max_angular+1)^2, n_radial)
    """
    n_lm = (max_angular + 1) ** 2
    row_of_atom = np.full(len(system), -1)
    row_of_atom[centres] = np.arange(len(centres))
    i, j, vectors = neighbor_pairs(system, cutoff)
    keep = row_of_atom[i] >= 0
    i, j, vectors = i[keep], j[keep], vectors[keep]
    target = row_of_atom[i] * n_species + species_index[j]
    out = accumulate_pairs(len(centres) * n_species, target, vectors, field, max_angular, n_radial)
    return out.reshape(len(centres), n_species, n_lm, n_radial)
