"""What the expansion calculators need from a radial basis: the :class:`RadialBasis` protocol.

A radial basis is a set of functions R_nl(r), n = 0..max_radial, orthonormal for each angular
channel l on [0, inf) with weight r^2 (they may depend on l). The calculators never look at how
the functions are built; they only use the integrals and scales below, all in Å units.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

__all__ = ["RadialBasis"]


class RadialBasis(ABC):
    """Abstract radial basis with ``max_radial + 1`` functions per angular channel.

    Parameters
    ----------
    max_radial : int
        Largest radial index; there are ``max_radial + 1`` functions for every l.
    radius : float
        Basis radius in Å (its meaning, width scale or support, is the basis's own).
    """

    #: Key of the basis in :data:`lodekit.basis.radial.RADIAL_BASES`.
    name: str = ""

    def __init__(self, max_radial: int, radius: float):
        self.max_radial = int(max_radial)
        self.radius = float(radius)

    @property
    def size(self) -> int:
        """Number of radial functions per angular channel."""
        return self.max_radial + 1

    def check(self, max_angular: int) -> None:
        """Raise :class:`~lodekit.errors.InputError` if the basis cannot be built up to
        ``max_angular`` (called by the calculators when they are constructed)."""
        return None

    def check_smearing(self, smearing: float) -> None:
        """Raise :class:`~lodekit.errors.InputError` if projecting Gaussians of width
        ``smearing`` (Å) on the basis would cost more than the basis allows (called by the
        calculators when they are constructed)."""
        return None

    @property
    @abstractmethod
    def decay_width(self) -> float:
        """Length w (Å) on which the basis fades out: the projection of a function of width s
        centred at distance d is taken as negligible once exp(-d^2 / (2 (s^2 + w^2))) is. A
        Gaussian basis gives its largest width; a basis with compact support its radius
        (conservative: it then overestimates ranges). Sets table ranges and range-separation
        cutoffs."""

    @abstractmethod
    def functions(self, r: np.ndarray, max_angular: int) -> np.ndarray:
        """R_nl(r) in Å^(-3/2), shape r.shape + (max_angular + 1, size)."""

    @abstractmethod
    def kspace_integral(self, k: np.ndarray, max_angular: int) -> np.ndarray:
        """I_nl(k) = ∫ r^2 R_nl(r) j_l(k r) dr for k >= 0 (1/Å).

        Returns
        -------
        ndarray, shape (n_k, max_angular + 1, size), units Å^(3/2)
        """

    @abstractmethod
    def kspace_integral_derivative(self, k: np.ndarray, max_angular: int) -> np.ndarray:
        """dI_nl/dk, shape (n_k, max_angular + 1, size), units Å^(5/2)."""

    @abstractmethod
    def gaussian_integral(self, d: np.ndarray, max_angular: int, smearing: float) -> np.ndarray:
        """J_nl(d): projection of an L2-normalised Gaussian of width ``smearing`` (Å) at
        distance d on R_nl Y_lm, divided by Y_lm(d̂) (the SOAP radial integral, math.md §5).

        Returns
        -------
        ndarray, shape (n_d, max_angular + 1, size), units Å^(3/2) (density L2-normalised)
        """

    @abstractmethod
    def gaussian_integral_derivative(
        self, d: np.ndarray, max_angular: int, smearing: float
    ) -> np.ndarray:
        """dJ_nl/dd, shape (n_d, max_angular + 1, size), units Å^(1/2)."""

    @abstractmethod
    def moments(self, max_order: int, max_angular: int) -> np.ndarray:
        """M_{k,l,n} = ∫ r^(2+k) R_nl(r) dr, k = 0..max_order: the multipole moments of the
        far-field series of a 1/r^p field (:class:`~lodekit.basis.multipoles.MultipoleTail`).

        Returns
        -------
        ndarray, shape (max_order + 1, max_angular + 1, size), units Å^(3/2 + k)
        """

    @abstractmethod
    def centre_moment(self, smearing: float, exponent: int) -> np.ndarray:
        """∫ r^2 R_n0(r) g_p(r) dr for the smeared power law g_p of ``lodekit.density``: an
        atom's own field on its own l = 0 functions. Shape (size,), units Å^(3/2 - p)."""

    @abstractmethod
    def far_field(self, smearing: float) -> tuple[float, int]:
        """(d_switch, n_terms): beyond d_switch (Å) the projection of a field smeared by
        ``smearing`` equals that of the bare 1/r^p to double precision, and the multipole
        series truncated after ``n_terms`` powers of r/d is exact there."""
