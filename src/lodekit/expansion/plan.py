"""How a periodic LODE sum is evaluated: pure k-space, or range-separated (math.md §4.3)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

__all__ = [
    "PERIODIC_METHODS",
    "PeriodicPlan",
    "choose_split",
    "kspace_cutoff_for",
    "remainder_range",
]

#: How a periodic structure can be evaluated.
PERIODIC_METHODS = ("kspace", "range_separated")

# Rough costs on one core (seconds per unit), measured on the development machine with the
# benchmarks of this repository: one (centre x species x k x coefficient) multiply-add of the
# k-space product, one (atom x k) phase, one (pair x coefficient) real-space contribution.
_COST_KSPACE = 1.0e-10
_COST_PHASE = 5.0e-9
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

    def as_dict(self) -> dict:
        return asdict(self)


def kspace_cutoff_for(accuracy: float, smearing: float) -> float:
    """k_cutoff (1/Å) whose truncation error is below ``accuracy`` relative to the largest
    coefficient: the measured error stays below exp(-(k_c sigma)^2 / 2) for p = 0..6 on random,
    liquid and crystalline cells (tests/test_accuracy.py)."""
    return float(np.sqrt(2.0 * np.log(1.0 / accuracy)) / smearing)


def choose_split(
    smearing: float,
    accuracy: float,
    volume: float,
    n_atoms: int,
    n_centres: int,
    n_species: int,
    n_coefficients: int,
    basis_width: float,
    max_split: float,
) -> float:
    """Pick the smearing of the k-space part that minimises the estimated cost.

    Candidates are smearing * 2^(j/4) up to ``max_split``, so that tables of the remainder can
    be cached across structures.
    """
    best = None
    split = smearing
    while split <= max_split * (1 + 1e-12):
        k_cut = kspace_cutoff_for(0.5 * accuracy, split)
        n_k = volume * k_cut**3 / (12 * np.pi**2)
        cost = n_k * (_COST_KSPACE * n_centres * n_species * n_coefficients + _COST_PHASE * n_atoms)
        if split > smearing:
            r_cut = remainder_range(split, basis_width, accuracy)
            pairs = n_centres * n_atoms / volume * 4 / 3 * np.pi * r_cut**3
            cost += _COST_PAIR * pairs * n_coefficients
        if best is None or cost < best[0]:
            best = (cost, split)
        split *= 2**0.25
    return best[1]


def remainder_range(split: float, basis_width: float, accuracy: float) -> float:
    """Distance beyond which the projected remainder is below ``accuracy`` (an estimate; the
    calculator refines it from the tabulated remainder)."""
    return float(np.sqrt(2 * (split**2 + basis_width**2) * np.log(10.0 / accuracy)))
