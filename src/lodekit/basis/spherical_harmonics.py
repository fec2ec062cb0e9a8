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
def _openmp_setters() -> tuple:
    """``omp_set_num_threads`` of every OpenMP runtime that sphericart's calls may bind to.

    sphericart parallelises every call with OpenMP; for the few thousand vectors of one call
    here, waking the OpenMP team costs 100x the work (measured: 8 ms instead of 30 µs for 900
    vectors on 2 cores, worse when BLAS threads are spinning), so every call runs on one
    thread. The wheel bundles its own libgomp, but a libgomp loaded into the global symbol
    scope first wins the binding: torch loads its own so (vesin imports torch when it is
    installed), and sphericart's parallel regions then run on torch's runtime, whose thread
    count the bundled copy does not set (measured with torch 2.13: a second OpenMP thread,
    and 8-10 ms per call on a loaded machine). Both are set: the setting is per calling
    thread and touches only those runtimes' defaults for this thread.
    """
    setters = []
    libs = Path(sphericart.__file__).parent.parent / "sphericart.libs"
    for path in sorted(libs.glob("libgomp*.so*")):
        try:
            setters.append(ctypes.CDLL(str(path)).omp_set_num_threads)
            break
        except (OSError, AttributeError):  # pragma: no cover - other platforms
            continue
    try:
        # the global scope's definition, if any (RTLD_GLOBAL libraries such as torch's)
        setters.append(ctypes.CDLL(None).omp_set_num_threads)
    except (OSError, AttributeError):
        pass
    return tuple(setters)


def _one_openmp_thread() -> None:
    for set_threads in _openmp_setters():
        set_threads(1)


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
    _one_openmp_thread()
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
    _one_openmp_thread()
    return _calculator(int(max_angular)).compute_with_gradients(xyz)
