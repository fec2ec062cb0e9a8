"""What every k-space backend leaves out: the k = 0 term and the range-separation remainder.

The k-space sum of :class:`~lodekit.expansion.kspace.problem.KspaceProblem` runs over
0 < |k| < k_cutoff. The periodic coefficients add (math.md §4.1, §4.3):

- the k = 0 term (4 pi / V) N_a ĝ_p(0) I_n0(0) / sqrt(4 pi) of the k-space field (N_a the
  number of atoms of channel a, or with per-atom weights their sum), finite for
  p = 0 and p > 3 (for 1 <= p <= 3 it diverges and is dropped: a neutralising background);
- for a range-separated plan, the short-ranged remainder g_p(smearing) - g_p(split): its sum
  over pairs within the real-space cutoff, its value at the centre itself (zero distance, in
  closed form), and, for 1 <= p <= 3, minus its k = 0 term, which the pair sum contains but the
  background convention of the k-space sum drops.

Both k = 0 terms scale as 1/V and do not depend on positions: under r -> (1 + eps) r their
derivative is -delta_ab times themselves. :class:`PeriodicCorrections` holds these terms for
one structure and adds them to the value, the Jacobian and the vector-Jacobian product alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...density import fourier_difference_at_zero, fourier_transform_at_zero
from ..jacobian import Jacobian, cutoff_pair_jacobian
from ..pairs import pair_contractions, selected_pairs
from ..realspace import SwitchedField, periodic_pair_gradients, periodic_pair_sum
from .problem import KspaceProblem

__all__ = ["PeriodicCorrections", "Remainder", "k_zero_term"]


def k_zero_term(problem: KspaceProblem, g0: float) -> np.ndarray:
    """(4 pi / V) N_a ĝ(0) I_n0(0) / sqrt(4 pi) for every species, shape (n_species, n_radial).

    ``g0`` is the field's Fourier transform at k = 0 (Å^3 times the field's units).
    """
    return problem.counts[:, None] * _k_zero_unit(problem, g0)[None, :]


def _k_zero_unit(problem: KspaceProblem, g0: float) -> np.ndarray:
    """The k = 0 term of one atom of unit weight, (n_radial,)."""
    i0 = problem.basis.kspace_integral(np.zeros(1), 0)[0, 0]
    return (4 * np.pi / problem.volume) * g0 * i0 / np.sqrt(4 * np.pi)


def _stacked_k_zero(problem: KspaceProblem, smearing: float, remainder):
    """(k_zero, remainder_k_zero) of a problem with several exponents, each (n_species,
    n_exponents x n_radial), exponent-major; an exponent without the term contributes zeros."""
    k_zero, dropped = [], []
    for p in problem.exponent:
        g0 = fourier_transform_at_zero(problem.smearing, p)
        k_zero.append(k_zero_term(problem, g0 if np.isfinite(g0) else 0.0))
        dg0 = 0.0
        if remainder is not None and 1 <= p <= 3:
            dg0 = fourier_difference_at_zero(smearing, problem.smearing, p)
        dropped.append(k_zero_term(problem, dg0))
    return np.concatenate(k_zero, axis=1), np.concatenate(dropped, axis=1)


@dataclass(frozen=True, eq=False)
class Remainder:
    """The short-ranged remainder of a range-separated plan.

    Attributes
    ----------
    field : SwitchedField
        Projection of g_p(smearing) - g_p(split) on the basis, switched off at ``cutoff``.
    cutoff : float
        Pair cutoff (Å).
    centre_self : ndarray, shape (n_radial,)
        The remainder's value at the centre itself, C_n(smearing) - C_n(split).
    """

    field: SwitchedField
    cutoff: float
    centre_self: np.ndarray


@dataclass(frozen=True, eq=False)
class PeriodicCorrections:
    """The terms of one periodic structure besides the k-space sum (module docstring).

    Attributes
    ----------
    system : System
        The structure (the remainder's pairs are found in it).
    problem : KspaceProblem
        Its k-space problem (species, centres, basis, the k-space smearing).
    k_zero : ndarray (n_species, n_radial) or None
        The k = 0 term of the k-space field; None where it diverges (1 <= p <= 3).
    remainder : Remainder or None
        None without range separation.
    remainder_k_zero : ndarray (n_species, n_radial) or None
        The k = 0 term of the remainder, subtracted (range separation with 1 <= p <= 3).
    k_zero_unit, remainder_k_zero_unit : ndarray (n_radial,) or None
        The same two terms for one atom of unit weight (their derivatives with respect to the
        weights).
    """

    system: object
    problem: KspaceProblem
    k_zero: np.ndarray | None
    remainder: Remainder | None
    remainder_k_zero: np.ndarray | None
    k_zero_unit: np.ndarray | None = None
    remainder_k_zero_unit: np.ndarray | None = None

    @classmethod
    def build(cls, system, problem: KspaceProblem, smearing: float, remainder=None):
        """The corrections of ``problem``, whose field has the full ``smearing`` (Å) and,
        when ``remainder`` is given, the split smearing ``problem.smearing``.

        For a slab (``system.is_slab``) there is no k = 0 term: the whole G = 0 line,
        k = 0 included, is the slab's normal line
        (:class:`~lodekit.expansion.kspace.slab.NormalLine`), whose convention is written for
        the full field, remainder included."""
        if getattr(system, "is_slab", False):
            return cls(system, problem, None, remainder, None)
        if isinstance(problem.exponent, tuple):
            k_zero, dropped = _stacked_k_zero(problem, smearing, remainder)
            return cls(system, problem, k_zero, remainder, dropped)
        g0 = fourier_transform_at_zero(problem.smearing, problem.exponent)
        k_zero = k_zero_term(problem, g0) if np.isfinite(g0) else None
        k_zero_unit = _k_zero_unit(problem, g0) if np.isfinite(g0) else None
        dropped = dropped_unit = None
        if remainder is not None and 1 <= problem.exponent <= 3:
            dg0 = fourier_difference_at_zero(smearing, problem.smearing, problem.exponent)
            dropped = k_zero_term(problem, dg0)
            dropped_unit = _k_zero_unit(problem, dg0)
        return cls(system, problem, k_zero, remainder, dropped, k_zero_unit, dropped_unit)

    def add_values(self, coeffs: np.ndarray) -> np.ndarray:
        """Add the terms to k-space coefficients (n_centres, n_species, lm, n), in place."""
        problem, remainder = self.problem, self.remainder
        if self.k_zero is not None:
            coeffs[:, :, 0, :] += self.k_zero[None]
        if remainder is None:
            return coeffs
        coeffs += periodic_pair_sum(
            self.system,
            problem.species_index,
            problem.n_species,
            problem.centres,
            remainder.field,
            remainder.cutoff,
            problem.max_angular,
            problem.n_radial,
            problem.weights,
        )
        rows = np.arange(problem.n_centres)
        centre_self = remainder.centre_self
        if problem.weights is not None:
            centre_self = problem.weights[problem.centres, None] * centre_self
        coeffs[rows, problem.species_index[problem.centres], 0, :] += centre_self
        if self.remainder_k_zero is not None:
            coeffs[:, :, 0, :] -= self.remainder_k_zero[None]
        return coeffs

    def jacobian(self, positions: np.ndarray, strain: np.ndarray | None) -> Jacobian:
        """The full Jacobian from the k-space one (dense d c / d r, and d c / d eps or None,
        as :meth:`KspaceBackend.jacobian` gives them; ``strain`` is changed in place)."""
        problem, remainder = self.problem, self.remainder
        if strain is not None:
            k_zero = np.zeros((problem.n_species, problem.n_radial))
            if self.k_zero is not None:
                k_zero += self.k_zero
            if self.remainder_k_zero is not None:
                k_zero -= self.remainder_k_zero
            for a in range(3):  # ~ 1/V: d/d eps_ab = -delta_ab times itself
                strain[:, a, a, :, 0, :] -= k_zero[None]
        jacobian = Jacobian.from_dense(positions, strain)
        if remainder is None:
            return jacobian
        pairs = cutoff_pair_jacobian(
            self.system,
            problem.species_index,
            problem.n_species,
            problem.centres,
            remainder.cutoff,
            remainder.field.with_derivative,
            problem.max_angular,
            strain is not None,
            problem.weights,
        )
        return Jacobian.merge([jacobian, pairs])

    def vjp(self, upstream: np.ndarray, gradient: np.ndarray, strain: np.ndarray | None):
        """Add the terms' share to a k-space vector-Jacobian product.

        ``upstream`` is dE/dc (n_centres, n_species, lm, n); ``gradient`` (n_atoms, 3) and
        ``strain`` ((3, 3) or None) are the backend's and are changed in place. Returns them.
        """
        problem, remainder = self.problem, self.remainder
        at_zero = upstream[:, :, 0, :]
        if strain is not None and self.k_zero is not None:
            # the k = 0 term scales as 1/V: d/d eps_ab = -delta_ab times itself
            strain -= np.eye(3) * np.sum(at_zero * self.k_zero[None])
        if remainder is None:
            return gradient, strain
        pair_gradient, pair_strain = periodic_pair_gradients(
            self.system,
            problem.species_index,
            problem.n_species,
            problem.centres,
            remainder.field,
            remainder.cutoff,
            problem.max_angular,
            upstream,
            problem.weights,
        )
        gradient += pair_gradient
        if strain is not None:
            strain += pair_strain
            if self.remainder_k_zero is not None:
                # the subtracted k = 0 term of the remainder, also ~ 1/V
                strain += np.eye(3) * np.sum(at_zero * self.remainder_k_zero[None])
        return gradient, strain

    def weight_vjp(self, upstream: np.ndarray) -> np.ndarray:
        """dE/dw (n_atoms,) of the terms' share of E = sum upstream · c, ``upstream`` dE/dc
        (n_centres, n_species, lm, n): the k = 0 terms (linear in the channels' total
        weights), the remainder's pairs (each times its neighbour's weight) and the
        remainder's value at the centre (times the centre's weight)."""
        problem, remainder = self.problem, self.remainder
        out = np.zeros(problem.n_atoms)
        # sum over centres of dE/dc[i, a, l = 0]: every atom of channel a adds its unit term
        at_zero = upstream[:, :, 0, :].sum(axis=0)  # (n_species, n)
        if self.k_zero_unit is not None:
            out += (at_zero @ self.k_zero_unit)[problem.species_index]
        if self.remainder_k_zero_unit is not None:
            out -= (at_zero @ self.remainder_k_zero_unit)[problem.species_index]
        if remainder is None:
            return out
        _, j, vectors, target = selected_pairs(
            self.system,
            problem.species_index,
            problem.n_species,
            problem.centres,
            remainder.cutoff,
        )
        g = upstream.reshape(problem.n_centres * problem.n_species, *upstream.shape[2:])
        np.add.at(
            out, j, pair_contractions(g, target, vectors, remainder.field, problem.max_angular)
        )
        rows = np.arange(problem.n_centres)
        own = upstream[rows, problem.species_index[problem.centres], 0, :]
        np.add.at(out, problem.centres, own @ remainder.centre_self)
        return out
