"""The interface every k-space backend implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import replace

import numpy as np

from .problem import KspaceProblem, KspaceWorkload

__all__ = ["KspaceBackend"]

#: Largest (centres x atoms x coefficients) block of the default :meth:`weight_vjp`.
_WEIGHT_BLOCK = 1 << 23


class KspaceBackend(ABC):
    """One way of evaluating the k-space sum of a :class:`KspaceProblem`, with its gradients.

    A backend is stateless; one instance per name lives in
    :data:`~lodekit.expansion.kspace.KSPACE_BACKENDS`. The k = 0 term and the range-separation
    remainder are not part of it (:mod:`~lodekit.expansion.kspace.corrections` adds them).
    """

    #: What the user must install when :meth:`available` is False (for the error message).
    requirement = ""

    def available(self) -> bool:
        """Whether the backend can run in this environment."""
        return True

    def tolerance(self, requested: float) -> float:
        """The relative tolerance the backend runs at when ``requested`` is asked for: 0 for
        exact backends (the default), the clamped value for approximate ones."""
        return 0.0

    @abstractmethod
    def cost(self, workload: KspaceWorkload, k_cutoff: float, tolerance: float) -> float:
        """Estimated seconds of one evaluation of the sum (one core); the planner picks the
        cheapest backend and split with it."""

    @abstractmethod
    def value(self, problem: KspaceProblem) -> np.ndarray:
        """The k-space coefficients, shape (n_centres, n_species, (max_angular+1)^2,
        n_radial)."""

    def values(self, problems: list[KspaceProblem]) -> list[np.ndarray]:
        """:meth:`value` of several problems, in order. Backends that can share work between
        the frames of one cell (one batch of products) override it; the default is a loop."""
        return [self.value(problem) for problem in problems]

    @abstractmethod
    def vjp(
        self, problem: KspaceProblem, upstream: np.ndarray, with_strain: bool
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Gradients of E = sum upstream · c_kspace.

        Parameters
        ----------
        upstream : ndarray, shape (n_centres, n_species, (max_angular+1)^2, n_radial)
            dE/dc.
        with_strain : bool
            Also compute dE/d eps.

        Returns
        -------
        (ndarray (n_atoms, 3), ndarray (3, 3) or None)
            dE/dr_j (E per Å) and dE/d eps_ab for r -> (1 + eps) r (None without
            ``with_strain``).
        """

    @abstractmethod
    def jacobian(
        self, problem: KspaceProblem, with_strain: bool
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Dense derivatives of the k-space coefficients.

        Returns
        -------
        (ndarray, ndarray or None)
            d c / d r_j, shape (n_centres, n_atoms, 3, n_species, lm, n_radial), and
            d c / d eps_ab, shape (n_centres, 3, 3, n_species, lm, n_radial) (None without
            ``with_strain``).
        """

    def weight_vjp(self, problem: KspaceProblem, upstream: np.ndarray) -> np.ndarray:
        """dE/dw_j (n_atoms,) of E = sum upstream · c_kspace, ``upstream`` of the coefficients'
        shape.

        The default evaluates :meth:`value` with one unit-weight channel per atom (blocks of
        atoms; the sum is linear in the weights): exact, about one evaluation per block.
        Backends override it with the adjoint of their own sum."""
        n_atoms = problem.n_atoms
        out = np.zeros(n_atoms)
        n_coefficients = problem.n_lm * problem.n_radial
        step = max(1, _WEIGHT_BLOCK // max(1, problem.n_centres * n_coefficients))
        for start in range(0, n_atoms, step):
            atoms = np.arange(start, min(start + step, n_atoms))
            index = np.zeros(n_atoms, dtype=np.int64)
            index[atoms] = np.arange(len(atoms))
            weights = np.zeros(n_atoms)
            weights[atoms] = 1.0
            per_atom = replace(problem, species_index=index, n_species=len(atoms), weights=weights)
            block = self.value(per_atom)  # (centres, atoms, lm, n)
            g = upstream[:, problem.species_index[atoms]]
            out[atoms] = np.einsum("ijfn,ijfn->j", g, block)
        return out
