"""Full Jacobians of the expansions: d c / d r_j and d c / d eps, stored sparsely by atom.

A coefficient c[i, a, lm, n] of centre i depends on the positions of the atoms j of species
a (and, through translation invariance, on r_i itself). The position Jacobian is therefore
kept as rows keyed by (centre row, atom) with all species channels, like featomic's
gradient samples (sample, system, atom); the strain Jacobian has one row per centre.

Strain: d c / d eps_ab for the homogeneous deformation r -> (1 + eps) r of positions and
cell. For a pair term f(v) with v = r_j + shift - r_i this is (df/dv_a) v_b.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse

from ..basis.spherical_harmonics import real_spherical_harmonics_with_gradients
from .pairs import PAIR_CHUNK, selected_pairs

__all__ = ["Jacobian", "cutoff_pair_jacobian", "pair_jacobian"]


def pair_jacobian(
    vectors: np.ndarray,
    radial_with_derivative: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
    max_angular: int,
) -> np.ndarray:
    """d/dv [Y_lm(v̂) F_nl(|v|)] = grad Y_lm(v) F_nl + v̂ Y_lm(v̂) F'_nl for every pair.

    Parameters
    ----------
    vectors : ndarray, shape (n_pairs, 3)
        Non-zero pair vectors (Å).
    radial_with_derivative : callable
        distances (m,) -> (F, dF/dd), each (m, max_angular + 1, n_radial).

    Returns
    -------
    ndarray, shape (n_pairs, 3, (max_angular + 1)^2, n_radial)
        Units of the coefficients per Å.
    """
    ls = np.arange(max_angular + 1)
    l_of_lm = np.repeat(ls, 2 * ls + 1)
    n_pairs = len(vectors)
    out = None
    for start in range(0, n_pairs, PAIR_CHUNK):
        v = vectors[start : start + PAIR_CHUNK]
        d = np.linalg.norm(v, axis=1)
        values, slopes = radial_with_derivative(d)
        if out is None:
            out = np.empty((n_pairs, 3, len(l_of_lm), values.shape[-1]))
        ylm, d_ylm = real_spherical_harmonics_with_gradients(v, max_angular)
        # both terms written into the output rows: no (pairs, 3, lm, n) temporaries
        target = out[start : start + len(v)]
        np.multiply(d_ylm[:, :, :, None], values[:, None, l_of_lm, :], out=target)
        radial = ylm[:, :, None] * slopes[:, l_of_lm, :]
        target += (v / d[:, None])[:, :, None, None] * radial[:, None]
    if out is None:
        n_rad = radial_with_derivative(np.ones(1))[0].shape[-1]
        out = np.empty((0, 3, len(l_of_lm), n_rad))
    return out


@dataclass
class Jacobian:
    """Gradients of the coefficients of one structure's selected centres.

    Attributes
    ----------
    keys : ndarray of int64, shape (n_rows, 2)
        (centre row, atom) of every position-gradient row, sorted.
    positions : ndarray, shape (n_rows, 3, n_species, (L+1)^2, n_radial)
        d c[row, a, lm, n] / d r_atom (coefficient units per Å).
    strain : ndarray, shape (n_centres, 3, 3, n_species, (L+1)^2, n_radial), or None
        d c / d eps_ab (axis 1 is a, axis 2 is b).
    """

    keys: np.ndarray
    positions: np.ndarray
    strain: np.ndarray | None

    @classmethod
    def empty(cls, n_centres, n_species, n_lm, n_rad, with_strain) -> Jacobian:
        return cls(
            np.zeros((0, 2), dtype=np.int64),
            np.zeros((0, 3, n_species, n_lm, n_rad)),
            np.zeros((n_centres, 3, 3, n_species, n_lm, n_rad)) if with_strain else None,
        )

    @classmethod
    def from_dense(cls, dense: np.ndarray, strain: np.ndarray | None) -> Jacobian:
        """From (n_centres, n_atoms, 3, n_species, lm, n): every (centre, atom) kept."""
        n_centres, n_atoms = dense.shape[:2]
        rows, atoms = np.meshgrid(np.arange(n_centres), np.arange(n_atoms), indexing="ij")
        keys = np.column_stack([rows.ravel(), atoms.ravel()]).astype(np.int64)
        return cls(keys, dense.reshape(n_centres * n_atoms, *dense.shape[2:]), strain)

    @classmethod
    def from_pairs(
        cls,
        n_centres: int,
        n_species: int,
        row: np.ndarray,
        i: np.ndarray,
        j: np.ndarray,
        species_j: np.ndarray,
        vectors: np.ndarray,
        per_pair: np.ndarray,
        with_strain: bool,
    ) -> Jacobian:
        """Scatter pair Jacobians d f_p / d v_p (n_pairs, 3, lm, n) of pairs v = r_j - r_i
        contributing to c[row, species_j]: +f' on atom j, -f' on the centre atom i."""
        n_pairs, _, n_lm, n_rad = per_pair.shape
        if n_pairs == 0:
            return cls.empty(n_centres, n_species, n_lm, n_rad, with_strain)
        n_atoms = int(max(i.max(), j.max())) + 1
        codes = np.concatenate([row * n_atoms + j, row * n_atoms + i])
        unique, inverse = np.unique(codes, return_inverse=True)
        keys = np.column_stack([unique // n_atoms, unique % n_atoms]).astype(np.int64)
        positions = _place_pairs(
            len(unique), n_species, inverse[:n_pairs], inverse[n_pairs:], species_j, per_pair
        )
        strain = None
        if with_strain:
            # d/d eps_ab of f(v) = f'_a v_b, summed per (row, species)
            target = row * n_species + species_j
            gather = scipy.sparse.csr_matrix(
                (np.ones(n_pairs), (target, np.arange(n_pairs))),
                shape=(n_centres * n_species, n_pairs),
            )
            outer = per_pair[:, :, None] * vectors[:, None, :, None, None]
            strain = (gather @ outer.reshape(n_pairs, -1)).reshape(
                n_centres, n_species, 3, 3, n_lm, n_rad
            )
            strain = strain.transpose(0, 2, 3, 1, 4, 5)
        return cls(keys, positions, strain)

    @classmethod
    def merge(cls, parts: list[Jacobian]) -> Jacobian:
        """Sum of several Jacobians of the same centres (rows with equal keys added)."""
        keys = np.concatenate([p.keys for p in parts])
        values = np.concatenate([p.positions for p in parts])
        unique, inverse = np.unique(keys, axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
        merge = scipy.sparse.csr_matrix(
            (np.ones(len(keys)), (inverse, np.arange(len(keys)))), shape=(len(unique), len(keys))
        )
        # explicit row size: with no pairs at all (one atom) there are no rows to infer it from
        row_size = int(np.prod(values.shape[1:]))
        summed = (merge @ values.reshape(len(keys), row_size)).reshape(
            len(unique), *values.shape[1:]
        )
        strains = [p.strain for p in parts if p.strain is not None]
        strain = sum(strains[1:], strains[0]) if strains else None
        return cls(unique.astype(np.int64), summed, strain)


def _place_pairs(n_keys, n_species, plus, minus, species_j, per_pair) -> np.ndarray:
    """(n_keys, 3, n_species, lm, n): +per_pair[p] at [plus[p], :, species_j[p]] and
    -per_pair[p] at [minus[p], :, species_j[p]], summed over the pairs p."""
    n_pairs, _, n_lm, n_rad = per_pair.shape
    flat = per_pair.reshape(n_pairs, -1)
    if len(np.unique(plus)) == n_pairs and not np.isin(plus, minus).any():
        # each neighbour row holds one pair (no periodic images of one atom, no image of the
        # centre itself): placed by a plain assignment; only the centres' own rows sum
        # pairs, by a small sparse product. 4 ms -> 2 ms on the 48-atom molecule of
        # benchmarks/bench_sparse_jacobian.py, and no transposed copy afterwards.
        out = np.zeros((n_keys, 3, n_species, n_lm, n_rad))
        out[plus, :, species_j] = per_pair
        own, slot = np.unique(minus, return_inverse=True)
        gather = scipy.sparse.csr_matrix(
            (np.ones(n_pairs), (slot.reshape(-1) * n_species + species_j, np.arange(n_pairs))),
            shape=(len(own) * n_species, n_pairs),
        )
        summed = (gather @ flat).reshape(len(own), n_species, 3, n_lm, n_rad)
        out[own] -= summed.transpose(0, 2, 1, 3, 4)
        return out
    # one sparse matrix scatters every pair into (key, species) rows with its sign
    destination = np.concatenate([plus, minus]) * n_species + np.concatenate([species_j, species_j])
    signs = np.concatenate([np.ones(n_pairs), -np.ones(n_pairs)])
    sources = np.concatenate([np.arange(n_pairs), np.arange(n_pairs)])
    scatter = scipy.sparse.csr_matrix(
        (signs, (destination, sources)), shape=(n_keys * n_species, n_pairs)
    )
    # species become the second axis afterwards
    summed = scatter @ flat
    positions = summed.reshape(n_keys, n_species, 3, n_lm, n_rad).transpose(0, 2, 1, 3, 4)
    return np.ascontiguousarray(positions)


def cutoff_pair_jacobian(
    system,
    species_index: np.ndarray,
    n_species: int,
    centres: np.ndarray,
    cutoff: float,
    radial_with_derivative,
    max_angular: int,
    with_strain: bool,
    weights: np.ndarray | None = None,
) -> Jacobian:
    """The Jacobian of a sum of pair terms Y_lm F_nl over the pairs within ``cutoff``
    (periodic images included), as :func:`~lodekit.expansion.pairs.selected_pairs` finds them;
    each pair's term times the neighbour's weight (``weights`` (n_atoms,), None: 1)."""
    i, j, vectors, target = selected_pairs(system, species_index, n_species, centres, cutoff)
    per_pair = pair_jacobian(vectors, radial_with_derivative, max_angular)
    if weights is not None:
        per_pair *= weights[j][:, None, None, None]
    return Jacobian.from_pairs(
        len(centres),
        n_species,
        target // n_species,
        i,
        j,
        species_index[j],
        vectors,
        per_pair,
        with_strain,
    )
