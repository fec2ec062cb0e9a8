"""The interface every k-space backend implements."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from .problem import KspaceProblem, KspaceWorkload

__all__ = ["KspaceBackend"]


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
