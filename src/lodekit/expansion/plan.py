"""How a periodic LODE sum is evaluated: pure k-space, or range-separated (math.md §4.3)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

__all__ = [
    "KSPACE_METHODS",
    "PERIODIC_METHODS",
    "PeriodicPlan",
    "choose_kspace_method",
    "choose_split",
    "kspace_cost",
    "kspace_cutoff_for",
    "nufft_width",
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
# Non-uniform FFTs (finufft, measured on the same machine): one point x w^3 of spreading or
# interpolation, w the kernel width; one (upsampled grid point x log2 of the grid) of FFT.
_COST_SPREAD = 1.0e-9
_COST_FFT = 3.0e-10

#: How the k-space part can be evaluated: the direct sum over k-vectors, or non-uniform FFTs.
KSPACE_METHODS = ("direct", "nufft")


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
    kspace_method : {"direct", "nufft"}
        How the k-space sum is evaluated: a sum over k-vectors (cost ~ atoms x k-vectors),
        or non-uniform FFTs (~ atoms + grid log grid per coefficient channel).
    nufft_eps : float
        Relative tolerance of the transforms for "nufft" (0 for "direct").
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


def nufft_width(eps: float) -> int:
    """Spreading kernel width (grid points per dimension) of finufft at tolerance eps."""
    return int(np.ceil(-np.log10(eps))) + 1


def kspace_cost(
    method: str,
    cell: np.ndarray,
    k_cutoff: float,
    n_atoms: int,
    n_centres: int,
    n_species: int,
    n_coefficients: int,
    eps: float,
) -> float:
    """Estimated seconds of the k-space sum by ``method`` ("direct" or "nufft")."""
    volume = abs(np.linalg.det(cell))
    if method == "direct":
        n_k = volume * k_cutoff**3 / (12 * np.pi**2)
        return n_k * (_COST_KSPACE * n_centres * n_species * n_coefficients + _COST_PHASE * n_atoms)
    n_max = np.floor(k_cutoff * np.linalg.norm(cell, axis=1) / (2.0 * np.pi))
    # finufft's upsampled grid: twice the modes per dimension
    grid = float(np.prod(2.0 * (2.0 * n_max + 1.0)))
    width = nufft_width(eps) ** 3
    fft = _COST_FFT * grid * np.log2(max(grid, 2.0))
    transforms = -(-n_species * n_coefficients // 2)  # two real channels per transform
    return transforms * (_COST_SPREAD * n_centres * width + fft) + n_species * (
        _COST_SPREAD * n_atoms * width + fft
    )


def choose_kspace_method(methods, cell, k_cutoff, n_atoms, n_centres, n_species, n_coeff, eps):
    """The cheapest of ``methods`` for one k-space sum, and its estimated cost."""
    costs = {
        m: kspace_cost(m, cell, k_cutoff, n_atoms, n_centres, n_species, n_coeff, eps)
        for m in methods
    }
    method = min(costs, key=costs.get)
    return method, costs[method]


def choose_split(
    smearing: float,
    accuracy: float,
    cell: np.ndarray,
    n_atoms: int,
    n_centres: int,
    n_species: int,
    n_coefficients: int,
    basis_width: float,
    max_split: float,
    methods=("direct",),
    eps: float = 1e-12,
) -> tuple[float, str]:
    """Pick the smearing of the k-space part, and its method, that minimise the estimated cost.

    Candidates are smearing * 2^(j/4) up to ``max_split``, so that tables of the remainder can
    be cached across structures; each is costed with the cheapest of ``methods``.

    Returns
    -------
    (split smearing in Å, k-space method)
    """
    volume = abs(np.linalg.det(cell))
    best = None
    split = smearing
    while split <= max_split * (1 + 1e-12):
        k_cut = kspace_cutoff_for(0.5 * accuracy, split)
        method, cost = choose_kspace_method(
            methods, cell, k_cut, n_atoms, n_centres, n_species, n_coefficients, eps
        )
        if split > smearing:
            r_cut = remainder_range(split, basis_width, accuracy)
            pairs = n_centres * n_atoms / volume * 4 / 3 * np.pi * r_cut**3
            cost += _COST_PAIR * pairs * n_coefficients
        if best is None or cost < best[0]:
            best = (cost, split, method)
        split *= 2**0.25
    return best[1], best[2]


def remainder_range(split: float, basis_width: float, accuracy: float) -> float:
    """Distance beyond which the projected remainder is below ``accuracy`` (an estimate; the
    calculator refines it from the tabulated remainder)."""
    return float(np.sqrt(2 * (split**2 + basis_width**2) * np.log(10.0 / accuracy)))
