"""How a periodic LODE sum is evaluated: pure k-space, or range-separated (math.md §4.3)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .kspace import KSPACE_BACKENDS, KspaceWorkload

__all__ = [
    "PERIODIC_METHODS",
    "PeriodicPlan",
    "choose_kspace_method",
    "choose_split",
    "kspace_cutoff_for",
    "remainder_range",
]

#: How a periodic structure can be evaluated.
PERIODIC_METHODS = ("kspace", "range_separated")

# Rough cost on one core (seconds) of one (pair x coefficient) real-space contribution, measured
# on the development machine with the benchmarks of this repository; the k-space backends
# carry their own cost models (KspaceBackend.cost).
_COST_PAIR = 6.0e-9


@dataclass(frozen=True)
class PeriodicPlan:
    """What the periodic calculator does for one structure.

    Attributes
    ----------
    method : {"kspace", "range_separated"}
    k_cutoff : float
        Reciprocal-space cutoff (1/Å) of the k-space part.
    split_smearing : float
        Smearing (Å) of the field handled in k-space; equals ``smearing`` for "kspace".
    real_space_cutoff : float
        Pair cutoff (Å) of the short-ranged remainder; 0 for "kspace".
    kspace_method : str
        The backend that evaluates the k-space sum, a key of
        :data:`~lodekit.expansion.kspace.KSPACE_BACKENDS` ("direct": a sum over k-vectors,
        cost ~ atoms x k-vectors; "nufft": non-uniform FFTs, ~ atoms + grid log grid per
        coefficient channel).
    nufft_eps : float
        Relative tolerance the backend runs at (the NUFFT's ``eps``; 0 for exact backends
        such as "direct").
    switch_width : float
        The remainder is switched off smoothly (C2) between ``real_space_cutoff -
        switch_width`` and ``real_space_cutoff`` (Å), so that energies and forces stay
        continuous when a pair crosses the cutoff; 0 for "kspace".
    accuracy : float or None
        The accuracy the plan was made for (None: featomic-compatible fixed k_cutoff).
    """

    method: str
    k_cutoff: float
    split_smearing: float
    real_space_cutoff: float
    accuracy: float | None
    switch_width: float = 0.0
    kspace_method: str = "direct"
    nufft_eps: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


def kspace_cutoff_for(accuracy: float, smearing: float) -> float:
    """k_cutoff (1/Å) whose truncation error is below ``accuracy`` relative to the largest
    coefficient: the measured error stays below exp(-(k_c sigma)^2 / 2) for p = 0..6 on random,
    liquid and crystalline cells (tests/test_accuracy.py)."""
    return float(np.sqrt(2.0 * np.log(1.0 / accuracy)) / smearing)


def choose_kspace_method(
    methods, workload: KspaceWorkload, k_cutoff: float, tolerance: float
) -> tuple[str, float]:
    """The cheapest of ``methods`` (keys of ``KSPACE_BACKENDS``) for one k-space sum.

    Each backend is costed at the tolerance it would run at for the ``tolerance`` requested.

    Returns
    -------
    (method, its estimated seconds)
    """
    costs = {}
    for method in methods:
        backend = KSPACE_BACKENDS[method]
        costs[method] = backend.cost(workload, k_cutoff, backend.tolerance(tolerance))
    method = min(costs, key=costs.get)
    return method, costs[method]


def choose_split(
    smearing: float,
    accuracy: float,
    workload: KspaceWorkload,
    basis_width: float,
    max_split: float,
    methods=("direct",),
    tolerance: float = 1e-12,
    occupied_volume: float | None = None,
) -> tuple[float, str]:
    """Pick the smearing of the k-space part, and its method, that minimise the estimated cost.

    Candidates are smearing * 2^(j/4) up to ``max_split``, so that tables of the remainder can
    be cached across structures; each is costed with the cheapest of ``methods`` (keys of
    ``KSPACE_BACKENDS``) at the requested ``tolerance`` of approximate backends. The
    remainder's pairs are counted at the density n_atoms / ``occupied_volume`` (default: the
    workload's cell volume; a slab's atoms fill only its thickness of the stretched cell).

    Returns
    -------
    (split smearing in Å, k-space method)
    """
    volume = workload.volume if occupied_volume is None else occupied_volume
    best = None
    split = smearing
    while split <= max_split * (1 + 1e-12):
        k_cut = kspace_cutoff_for(0.5 * accuracy, split)
        method, cost = choose_kspace_method(methods, workload, k_cut, tolerance)
        if split > smearing:
            r_cut = remainder_range(split, basis_width, accuracy)
            pairs = workload.n_centres * workload.n_atoms / volume * 4 / 3 * np.pi * r_cut**3
            cost += _COST_PAIR * pairs * workload.n_coefficients
        if best is None or cost < best[0]:
            best = (cost, split, method)
        split *= 2**0.25
    return best[1], best[2]


def remainder_range(split: float, basis_width: float, accuracy: float) -> float:
    """Distance beyond which the projected remainder is below ``accuracy`` (an estimate; the
    calculator refines it from the tabulated remainder)."""
    return float(np.sqrt(2 * (split**2 + basis_width**2) * np.log(10.0 / accuracy)))
