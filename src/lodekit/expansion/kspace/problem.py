"""One structure's k-space sum as a single object: what every k-space backend receives."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .layout import KspaceLayout, half_space_kvectors, species_indicator

__all__ = ["KspaceProblem", "KspaceWorkload"]


@dataclass(frozen=True, eq=False)
class KspaceWorkload:
    """The sizes a backend's cost model needs, known before the plan fixes k_cutoff.

    Attributes
    ----------
    cell : ndarray, shape (3, 3)
        Lattice vectors as rows (Å).
    n_atoms, n_centres, n_species : int
    n_coefficients : int
        (max_angular + 1)^2 x n_radial: coefficients per (centre, species).
    n_kvectors : float or None
        The number of k-vectors summed over when it is not the half sphere of ``cell`` (a
        slab's tier holds some lines of its cell only).
    """

    cell: np.ndarray
    n_atoms: int
    n_centres: int
    n_species: int
    n_coefficients: int
    n_kvectors: float | None = None

    @property
    def volume(self) -> float:
        """Cell volume, Å^3."""
        return abs(np.linalg.det(self.cell))


@dataclass(frozen=True, eq=False)
class KspaceProblem:
    """Every input of one structure's k-space sum (math.md §4.1).

    c^{i,a}_{nlm} = (4 pi / V) sum_{0<|k|<k_cutoff} ĝ_p(k; smearing) I_nl(k) Y_lm(k̂)
    Re[i^l sum_{j in a} exp(i k·(r_i - r_j))], without the k = 0 term (see
    :mod:`~lodekit.expansion.kspace.corrections`). Built by the LODE calculator from a
    structure and its plan; backends read it and never change it.

    Attributes
    ----------
    positions : ndarray, shape (n_atoms, 3)
        Å.
    species_index : ndarray of int, shape (n_atoms,)
        Channel (0..n_species-1) of every atom.
    n_species : int
    centres : ndarray of int, shape (n_centres,)
    cell : ndarray, shape (3, 3)
        Lattice vectors as rows (Å).
    basis
        The radial basis (``size`` functions; its k-space integrals give I_nl).
    max_angular : int
    smearing : float
        Gaussian smearing of the field handled in k-space (Å): the split smearing of a
        range-separated plan.
    exponent : int or tuple of int
        p of the 1/r^p field; a tuple computes several fields in one sum, their radial axes
        side by side (``n_radial`` is then ``len(exponent) x basis.size``, exponent-major).
    k_cutoff : float
        1/Å.
    tolerance : float
        Relative tolerance of an approximate backend (the NUFFT's ``eps``); 0 for exact ones.
    n_threads : int
        Threads the backend may use (0: its default; the NUFFT's is every core, the direct
        sum's one).
    miller : ndarray of int (n_k, 3) or None
        The Miller indices summed over, when not the whole half k-sphere of ``cell`` within
        ``k_cutoff``: a slab's sum takes whole lines of constant in-plane index (h, k) from
        several stretched cells (:mod:`~lodekit.expansion.kspace.slab`). Sorted
        lexicographically, each line's third index one contiguous run.
    weights : ndarray, shape (n_atoms,), or None
        Weight w_j of every atom's density: the structure factors become
        rho_a(k) = sum_{j in a} w_j exp(i k·r_j) (:meth:`indicator`), the k = 0 terms take the
        weighted totals (:attr:`counts`), and every pair (i, j) term of a gradient carries w_j.
        None: all weights 1 (the unweighted code, unchanged).
    """

    positions: np.ndarray
    species_index: np.ndarray
    n_species: int
    centres: np.ndarray
    cell: np.ndarray
    basis: object
    max_angular: int
    smearing: float
    exponent: int | tuple
    k_cutoff: float
    tolerance: float = 0.0
    n_threads: int = 0
    miller: np.ndarray | None = None
    weights: np.ndarray | None = None

    @property
    def n_atoms(self) -> int:
        return len(self.positions)

    @property
    def n_centres(self) -> int:
        return len(self.centres)

    @property
    def n_lm(self) -> int:
        return (self.max_angular + 1) ** 2

    @property
    def n_radial(self) -> int:
        if isinstance(self.exponent, tuple):
            return self.basis.size * len(self.exponent)
        return self.basis.size

    @property
    def coefficient_shape(self) -> tuple[int, int, int, int]:
        """(n_centres, n_species, (max_angular+1)^2, n_radial)."""
        return (self.n_centres, self.n_species, self.n_lm, self.n_radial)

    @property
    def volume(self) -> float:
        """Cell volume, Å^3."""
        return float(abs(np.linalg.det(self.cell)))

    @property
    def counts(self) -> np.ndarray:
        """Number of atoms of every species (with weights: the sum of their weights),
        (n_species,) as floats."""
        return np.bincount(
            self.species_index, weights=self.weights, minlength=self.n_species
        ).astype(np.float64)

    @property
    def workload(self) -> KspaceWorkload:
        """The sizes of this problem for the backends' cost models."""
        return KspaceWorkload(
            self.cell,
            self.n_atoms,
            self.n_centres,
            self.n_species,
            self.n_lm * self.n_radial,
            None if self.miller is None else float(len(self.miller)),
        )

    def kvectors(self) -> np.ndarray:
        """Miller indices summed over, (n_k, 3): ``miller`` if given, else the half k-sphere
        (:func:`half_space_kvectors`)."""
        if self.miller is not None:
            return self.miller
        return half_space_kvectors(self.cell, self.k_cutoff)

    def layout(self) -> KspaceLayout:
        """The k-dependent factor F_k of this problem."""
        return KspaceLayout(self.cell, self.basis, self.max_angular, self.smearing, self.exponent)

    def fractional(self) -> np.ndarray:
        """Fractional coordinates of all atoms, (n_atoms, 3)."""
        return self.positions @ np.linalg.inv(self.cell)

    def indicator(self) -> np.ndarray:
        """(n_species, n_atoms) matrix with a 1 (with weights: w_j) where atom j belongs to
        channel a."""
        return species_indicator(self.species_index, self.n_species, self.weights)
