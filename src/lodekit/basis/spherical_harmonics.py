"""Real spherical harmonics in featomic's convention, computed with sphericart.

Orthonormal on the unit sphere, m = -l..l, no Condon-Shortley phase in the real functions
(Y_1,-1 ∝ y, Y_1,0 ∝ z, Y_1,1 ∝ x); flat index l^2 + l + m (math.md §1).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import sphericart

__all__ = ["real_spherical_harmonics"]


@lru_cache(maxsize=16)
def _calculator(max_angular: int):
    return sphericart.SphericalHarmonics(max_angular)


def real_spherical_harmonics(vectors: np.ndarray, max_angular: int) -> np.ndarray:
    """Y_lm of the directions of ``vectors``.

    Parameters
    ----------
    vectors : ndarray, shape (n, 3)
        Non-zero Cartesian vectors (their length is irrelevant).
    max_angular : int
        Largest l.

    Returns
    -------
    ndarray, shape (n, (max_angular + 1)^2)
    """
    xyz = np.ascontiguousarray(vectors, dtype=np.float64).reshape(-1, 3)
    return _calculator(int(max_angular)).compute(xyz)
