"""Accumulation of pair contributions Y_lm(d̂) F_nl(|d|) into per-centre coefficients."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..basis.spherical_harmonics import real_spherical_harmonics

__all__ = ["accumulate_pairs"]

#: Pairs handled at once: small enough that the (pairs, lm, n) work array stays in cache.
PAIR_CHUNK = 1024


def accumulate_pairs(
    n_rows: int,
    target: np.ndarray,
    vectors: np.ndarray,
    radial: Callable[[np.ndarray], np.ndarray],
    max_angular: int,
    n_radial: int,
) -> np.ndarray:
    """out[target[p], lm, n] += Y_lm(vectors[p]) radial(|vectors[p]|)[l, n] over all pairs.

    Parameters
    ----------
    n_rows : int
        Number of output rows (centre x species channels).
    target : ndarray of int, shape (n_pairs,)
        Output row of every pair.
    vectors : ndarray, shape (n_pairs, 3)
        Non-zero pair vectors (Å).
    radial : callable
        distances (m,) -> array (m, max_angular + 1, n_radial).

    Returns
    -------
    ndarray, shape (n_rows, (max_angular + 1)^2, n_radial)
    """
    n_lm = (max_angular + 1) ** 2
    out = np.zeros((n_rows, n_lm, n_radial))
    order = np.argsort(target, kind="stable")
    target, vectors = target[order], vectors[order]
    distances = np.linalg.norm(vectors, axis=1)
    for start in range(0, len(target), PAIR_CHUNK):
        sl = slice(start, start + PAIR_CHUNK)
        values = radial(distances[sl])
        ylm = real_spherical_harmonics(vectors[sl], max_angular)
        contrib = np.empty((len(values), n_lm, n_radial))
        for l in range(max_angular + 1):
            lm = slice(l * l, (l + 1) ** 2)
            np.multiply(ylm[:, lm, None], values[:, l, None, :], out=contrib[:, lm])
        rows, first = np.unique(target[sl], return_index=True)
        out[rows] += np.add.reduceat(contrib, first, axis=0)
    return out
