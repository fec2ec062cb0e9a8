"""Work limits: periodic sums are estimated before they run and refused above a limit.

A small smearing or a large ``k_cutoff`` makes the number of k-vectors grow as
V k_c^3 / (12 pi^2) (half sphere); a dense Jacobian holds n_centres x n_atoms x 3 x
coefficients numbers. Both are estimated from the plan before any work starts, and an
:class:`~lodekit.errors.InputError` naming the estimate and the way out is raised above
:data:`WORK_LIMITS`. Raise the limits for one block of code with :func:`work_limits`::

    with lodekit.expansion.limits.work_limits(max_kvectors=5e7):
        calculator.compute(big_cell)
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, fields, replace

import numpy as np

from .._validation import positive_float
from ..errors import InputError

__all__ = [
    "WORK_LIMITS",
    "WorkLimits",
    "check_dense_jacobian",
    "check_kspace_work",
    "check_pairs",
    "estimated_kvectors",
    "estimated_pairs",
    "work_limits",
]


@dataclass(frozen=True)
class WorkLimits:
    """Largest work one structure may ask for.

    Attributes
    ----------
    max_kvectors : float
        k-vectors of one k-space sum (half sphere). Default 2^22 (about 4.2 M): 100 MB of Miller
        indices and, measured, 30 s to 2 min of k-dependent factors on one core; 10x the
        largest benchmark (10^5 atoms of water at k_cutoff 1.2 pi, about 0.45 M).
    max_seconds : float
        Estimated seconds (one core) of one k-space sum by the backend's cost model
        (:meth:`~lodekit.expansion.kspace.KspaceBackend.cost`). Default 3600.
    max_jacobian_bytes : float
        Memory of one structure's dense Jacobian (positions and strain). Default 8 GiB.
    max_pairs : float
        Estimated (centre, neighbour) pairs of one real-space sum (SOAP, isolated molecules
        in LODE). Default 10^8: several GB of pair data; 400x the largest benchmark (SOAP on
        4096 water atoms at cutoff 5 Å, about 2.5 10^5 pairs).
    """

    max_kvectors: float = float(1 << 22)
    max_seconds: float = 3600.0
    max_jacobian_bytes: float = float(8 << 30)
    max_pairs: float = 1e8


#: The limits in force (module-wide; change them with :func:`work_limits`).
WORK_LIMITS = WorkLimits()


@contextlib.contextmanager
def work_limits(**limits):
    """Context manager that replaces some of :data:`WORK_LIMITS` (keywords: the attributes
    of :class:`WorkLimits`, positive numbers) and restores them on exit."""
    global WORK_LIMITS
    names = {f.name for f in fields(WorkLimits)}
    for name, value in limits.items():
        if name not in names:
            raise InputError(f"`{name}` is not a work limit; expected one of {sorted(names)}")
        limits[name] = positive_float(name, value)
    previous = WORK_LIMITS
    WORK_LIMITS = replace(previous, **limits)
    try:
        yield WORK_LIMITS
    finally:
        WORK_LIMITS = previous


def estimated_kvectors(volume: float, k_cutoff: float) -> float:
    """Reciprocal-lattice vectors in the half sphere |k| < k_cutoff: V k_c^3 / (12 pi^2)."""
    return float(volume * k_cutoff**3 / (12 * np.pi**2))


def check_kspace_work(volume: float, k_cutoff: float, seconds: float, way_out: str) -> None:
    """Raise an InputError when one k-space sum exceeds :data:`WORK_LIMITS`.

    ``way_out`` says which arguments reduce the work (it depends on the calculator's mode).
    """
    n_k = estimated_kvectors(volume, k_cutoff)
    limits = WORK_LIMITS
    if n_k <= limits.max_kvectors and seconds <= limits.max_seconds:
        return
    raise InputError(
        f"the k-space sum with k_cutoff {k_cutoff:.4g} 1/Å in a {volume:.4g} Å^3 cell needs "
        f"about {n_k:.3g} k-vectors and {seconds:.3g} s (estimated), above the limits "
        f"max_kvectors={limits.max_kvectors:.3g}, max_seconds={limits.max_seconds:.3g}: "
        f"{way_out}; or raise the limits with lodekit.expansion.limits.work_limits(...)"
    )


def check_slab_lines(area: float, k_cutoff: float, way_out: str) -> None:
    """Raise an InputError when a slab's in-plane lines alone (each holds one k-vector at
    least) exceed ``max_kvectors``: checked before they are enumerated. A half disc of
    radius k_c holds about A k_c^2 / (8 pi) lines of an in-plane cell of area A."""
    n_lines = float(area * k_cutoff**2 / (8.0 * np.pi))
    if n_lines <= WORK_LIMITS.max_kvectors:
        return
    raise InputError(
        f"the slab's k-space sum with k_cutoff {k_cutoff:.4g} 1/Å over an in-plane area of "
        f"{area:.4g} Å^2 needs about {n_lines:.3g} in-plane lines of k-vectors (estimated), "
        f"above the limit max_kvectors={WORK_LIMITS.max_kvectors:.3g}: {way_out}; or raise "
        "the limits with lodekit.expansion.limits.work_limits(...)"
    )


def check_dense_jacobian(shape: tuple[int, ...], with_strain: bool) -> None:
    """Raise an InputError when a dense Jacobian of ``shape`` (n_centres, n_atoms, 3,
    n_species, lm, n_radial) would exceed ``max_jacobian_bytes``."""
    n_centres, _, _, *rest = shape
    count = float(np.prod(shape, dtype=np.float64))
    if with_strain:
        count += n_centres * 9.0 * float(np.prod(rest, dtype=np.float64))
    size = 8.0 * count
    if size <= WORK_LIMITS.max_jacobian_bytes:
        return
    raise InputError(
        f"`gradients`: the dense Jacobian of {shape[0]} centres x {shape[1]} atoms x 3 x "
        f"{int(np.prod(rest))} coefficients needs {size / 2**30:.3g} GiB, above the limit "
        f"max_jacobian_bytes={WORK_LIMITS.max_jacobian_bytes / 2**30:.3g} GiB: use "
        "vector_jacobian_product for forces and stress, select fewer atoms, or raise the "
        "limit with lodekit.expansion.limits.work_limits(max_jacobian_bytes=...)"
    )


def estimated_pairs(positions: np.ndarray, cell: np.ndarray, pbc, cutoff: float):
    """Pairs of atoms (periodic images included) closer than ``cutoff``, at the average
    density: n^2 (4/3 pi cutoff^3) / V, with V the cell volume (``pbc`` True or all three
    True), for a slab (two axes True) the area of its lattice times the atoms' height range
    (plus 1 Å), for molecules the bounding box (padded by 1 Å) and at most n (n - 1)."""
    n_atoms = len(positions)
    sphere = 4.0 / 3.0 * np.pi * float(cutoff) ** 3
    flags = np.broadcast_to(np.asarray(pbc, dtype=bool), (3,))
    if flags.all():
        return n_atoms * n_atoms * sphere / abs(np.linalg.det(cell))
    if flags.any():
        a1, a2 = np.asarray(cell)[flags]
        cross = np.cross(a1, a2)
        area = float(np.linalg.norm(cross))
        height = float(np.ptp(positions @ (cross / area))) + 1.0
        return n_atoms * n_atoms * sphere / (area * height)
    box = float(np.prod(np.ptp(positions, axis=0) + 1.0))
    return float(n_atoms * min(n_atoms - 1.0, n_atoms * sphere / box))


def check_pairs(count: float, what: str, way_out: str) -> None:
    """Raise an InputError when ``count`` estimated pairs exceed ``max_pairs``."""
    if count <= WORK_LIMITS.max_pairs:
        return
    raise InputError(
        f"{what} needs about {count:.3g} atom pairs (estimated), above the limit "
        f"max_pairs={WORK_LIMITS.max_pairs:.3g}: {way_out}; or raise the limit with "
        "lodekit.expansion.limits.work_limits(max_pairs=...)"
    )
