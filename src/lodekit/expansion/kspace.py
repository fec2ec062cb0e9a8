"""Reciprocal-space evaluation of the periodic LODE coefficients (math.md §4.1).

c^{i,a}_{nlm} = (4 pi / V) sum_{0<|k|<k_c} ĝ_p(k) I_nl(k) Y_lm(k̂) Re[i^l S^a_i(k)]

Only half of the k-sphere is enumerated (k and -k give complex-conjugate structure factors),
which doubles the prefactor. Writing rho_a(k) = sum_{j in a} exp(-i k·r_j) = A_a - i B_a with
A_a = sum cos(k·r_j), B_a = sum sin(k·r_j), the centre's factor S^a_i = exp(i k·r_i) rho_a is

    Re S^a_i = cos_i A_a + sin_i B_a,      Im S^a_i = sin_i A_a - cos_i B_a,

and Re[i^l S] is (Re S, -Im S, -Re S, Im S) for l mod 4 = (0, 1, 2, 3). The sum over k is then
two dense matrix products, (centres x species, k) @ (k, lm x n), one for even and one for odd
l, done over chunks of k-vectors so that memory stays bounded whatever the cell size.
"""

from __future__ import annotations

import numpy as np

from ..basis.gto import GtoBasis
from ..basis.radial_integrals import kspace_radial_integral
from ..basis.spherical_harmonics import real_spherical_harmonics
from ..density import fourier_transform

__all__ = ["half_space_kvectors", "lode_kspace_sum"]

#: Largest number of doubles in one (centres x species, k-chunk) block.
_CHUNK_ELEMENTS = 1 << 21


def half_space_kvectors(cell: np.ndarray, k_cutoff: float) -> np.ndarray:
    """Reciprocal-lattice vectors with 0 < |k| < k_cutoff, one of each ±k pair.

    Parameters
    ----------
    cell : ndarray, shape (3, 3)
        Lattice vectors as rows (Å).
    k_cutoff : float
        1/Å.

    Returns
    -------
    ndarray, shape (n_k, 3), sorted by increasing |k| (1/Å).
    """
    recip = 2.0 * np.pi * np.linalg.inv(cell).T
    # |k·a_i| = 2 pi |n_i| <= |k| |a_i| bounds each integer index.
    n_max = np.floor(k_cutoff * np.linalg.norm(cell, axis=1) / (2.0 * np.pi)).astype(int)
    h = np.arange(0, n_max[0] + 1)
    k = np.arange(-n_max[1], n_max[1] + 1)
    l = np.arange(-n_max[2], n_max[2] + 1)  # noqa: E741
    hkl = np.stack(np.meshgrid(h, k, l, indexing="ij"), axis=-1).reshape(-1, 3)
    half = (hkl[:, 0] > 0) | ((hkl[:, 0] == 0) & ((hkl[:, 1] > 0) | ((hkl[:, 1] == 0) & (hkl[:, 2] > 0))))
    kvec = hkl[half] @ recip
    norm2 = np.einsum("ij,ij->i", kvec, kvec)
    keep = norm2 < k_cutoff * k_cutoff
    kvec, norm2 = kvec[keep], norm2[keep]
    return kvec[np.argsort(norm2, kind="stable")]


def _radial_factor(
    knorm: np.ndarray, basis: GtoBasis, max_angular: int, smearing: float, exponent: int
) -> np.ndarray:
    """ĝ_p(k) I_nl(k) for sorted norms, evaluated once per distinct norm; (n_k, L+1, n)."""
    # norms that agree to 1e-14 (the same shell, summed in another order) share one value
    breaks = np.flatnonzero(np.diff(knorm) > 1e-14 * knorm[1:]) + 1
    starts = np.concatenate([[0], breaks])
    unique = knorm[starts]
    table = kspace_radial_integral(unique, basis, max_angular)
    table *= fourier_transform(unique, smearing, exponent)[:, None, None]
    counts = np.diff(np.concatenate([starts, [len(knorm)]]))
    return np.repeat(table, counts, axis=0)


def lode_kspace_sum(
    positions: np.ndarray,
    species_index: np.ndarray,
    n_species: int,
    centres: np.ndarray,
    cell: np.ndarray,
    basis: GtoBasis,
    max_angular: int,
    smearing: float,
    exponent: int,
    k_cutoff: float,
) -> np.ndarray:
    """The k-space sum of math.md §4.1 (without the k = 0 and centre terms).

    Parameters
    ----------
    positions : ndarray, shape (n_atoms, 3)
    species_index : ndarray of int, shape (n_atoms,)
        Channel (0..n_species-1) of every atom.
    centres : ndarray of int, shape (n_centres,)
    cell : ndarray, shape (3, 3)

    Returns
    -------
    ndarray, shape (n_centres, n_species, (max_angular+1)^2, n_radial)
    """
    n_lm = (max_angular + 1) ** 2
    n_rad = basis.size
    n_centres = len(centres)
    out = np.zeros((n_centres * n_species, n_lm, n_rad))
    if n_centres == 0:
        return out.reshape(n_centres, n_species, n_lm, n_rad)
    kvec = half_space_kvectors(cell, k_cutoff)
    volume = abs(np.linalg.det(cell))

    l_of_lm = np.repeat(np.arange(max_angular + 1), 2 * np.arange(max_angular + 1) + 1)
    even = np.flatnonzero(l_of_lm % 2 == 0)
    odd = np.flatnonzero(l_of_lm % 2 == 1)
    # Re[i^l S]: +Re, -Im, -Re, +Im for l mod 4 = 0..3; the factor 2 is the half space.
    sign = np.array([1.0, -1.0, -1.0, 1.0])[l_of_lm % 4] * (8.0 * np.pi / volume)

    indicator = np.zeros((n_species, len(positions)))
    indicator[species_index, np.arange(len(positions))] = 1.0

    chunk = max(64, _CHUNK_ELEMENTS // (n_centres * n_species))
    out_even = np.zeros((n_centres * n_species, len(even) * n_rad))
    out_odd = np.zeros((n_centres * n_species, len(odd) * n_rad))
    for start in range(0, len(kvec), chunk):
        k = kvec[start : start + chunk]
        knorm = np.sqrt(np.einsum("ij,ij->i", k, k))
        radial = _radial_factor(knorm, basis, max_angular, smearing, exponent)
        ylm = real_spherical_harmonics(k, max_angular) * sign
        factor = ylm[:, :, None] * radial[:, l_of_lm, :]  # (k, lm, n)

        phase = positions @ k.T
        cos, sin = np.cos(phase), np.sin(phase)
        a_re, b_im = indicator @ cos, indicator @ sin  # (species, k)
        cos_c, sin_c = cos[centres][:, None, :], sin[centres][:, None, :]
        re_s = (cos_c * a_re + sin_c * b_im).reshape(n_centres * n_species, -1)
        out_even += re_s @ factor[:, even, :].reshape(len(k), -1)
        if len(odd):
            im_s = (sin_c * a_re - cos_c * b_im).reshape(n_centres * n_species, -1)
            out_odd += im_s @ factor[:, odd, :].reshape(len(k), -1)

    out[:, even, :] = out_even.reshape(-1, len(even), n_rad)
    out[:, odd, :] = out_odd.reshape(-1, len(odd), n_rad)
    return out.reshape(n_centres, n_species, n_lm, n_rad)
