"""Real spherical harmonics in featomic's convention, computed with sphericart.

Orthonormal on the unit sphere, m = -l..l, no Condon-Shortley phase in the real functions
(Y_1,-1 ∝ y, Y_1,0 ∝ z, Y_1,1 ∝ x); flat index l^2 + l + m (math.md §1).
"""

from __future__ import annotations

import ctypes
import threading
from functools import lru_cache
from pathlib import Path

import numpy as np
import sphericart

__all__ = ["real_spherical_harmonics", "real_spherical_harmonics_with_gradients"]


_LOCAL = threading.local()


def _calculator(max_angular: int):
    """One sphericart calculator per l_max and per thread: a calculator keeps work buffers
    indexed by OpenMP thread number, which two Python threads calling it at once would both
    take as thread 0 and overwrite."""
    calculators = getattr(_LOCAL, "calculators", None)
    if calculators is None:
        calculators = _LOCAL.calculators = {}
    if max_angular not in calculators:
        calculators[max_angular] = sphericart.SphericalHarmonics(max_angular)
    return calculators[max_angular]


@lru_cache(maxsize=1)
def _single_thread_openmp():
    """``omp_set_num_threads`` of the OpenMP runtime that the sphericart wheel bundles.

    sphericart parallelises every call with OpenMP; for the few thousand vectors of one call
    here, waking the OpenMP team costs 100x the work (measured: 8 ms instead of 30 µs for 900
    vectors on 2 cores, worse when BLAS threads are spinning). The setting is per calling
    thread and only touches sphericart's private copy of libgomp.
    """
    libs = Path(sphericart.__file__).parent.parent / "sphericart.libs"
    for path in sorted(libs.glob("libgomp*.so*")):
        try:
            return ctypes.CDLL(str(path)).omp_set_num_threads
        except (OSError, AttributeError):  # pragma: no cover - other platforms
            continue
    return None


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
    set_threads = _single_thread_openmp()
    if set_threads is not None:
        set_threads(1)
    return _calculator(int(max_angular)).compute(xyz)


def real_spherical_harmonics_with_gradients(
    vectors: np.ndarray, max_angular: int
) -> tuple[np.ndarray, np.ndarray]:
    """Y_lm(r̂) and its gradient with respect to the Cartesian vector r.

    Returns
    -------
    (ndarray (n, (max_angular + 1)^2), ndarray (n, 3, (max_angular + 1)^2))
        The gradient is d Y_lm(r / |r|) / d r_alpha (units 1/length of r).
    """
    xyz = np.ascontiguousarray(vectors, dtype=np.float64).reshape(-1, 3)
    set_threads = _single_thread_openmp()
    if set_threads is not None:
        set_threads(1)
    return _calculator(int(max_angular)).compute_with_gradients(xyz)
