"""Real-space evaluation of LODE: each neighbour's field projected on the centre's basis.

A radially symmetric field f(|r - d|) of an atom at displacement d from the centre projects on
R_n Y_lm as 4 pi Y_lm(d̂) Q_nl(|d|) (math.md §4.2). Q_nl is tabulated once per calculator with
piecewise Chebyshev polynomials up to ``d_switch``, beyond which the exact multipole series of
the 1/r^p tail takes over (or zero, for fields that decay faster than any power).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..basis.chebyshev import ChebyshevTable
from ..basis.field_projection import FieldProjection
from ..basis.multipoles import MultipoleTail
from ..basis.radial import RadialBasis
from .jacobian import Jacobian, pair_jacobian
from .pairs import accumulate_pairs, pair_gradients, selected_pairs

__all__ = [
    "RadialField",
    "StackedField",
    "SwitchedField",
    "molecule_jacobian",
    "molecule_pair_blocks",
    "molecule_pair_gradients",
    "molecule_sum",
    "periodic_pair_gradients",
    "periodic_pair_sum",
]

#: Largest number of (centre, atom) pairs formed at once for molecules.
_PAIRS_PER_BLOCK = 1 << 18


class RadialField:
    """4 pi Q_nl(d) of one field for one basis, on all d >= 0.

    Parameters
    ----------
    basis : RadialBasis
    max_angular : int
    fourier : callable
        k -> f̂(k) of the field.
    sharpest_width : float
        Smallest Gaussian width (Å) in the field; sets where f̂ has decayed.
    d_switch : float
        Table range (Å); beyond it, ``tail`` (or zero when None).
    tail : MultipoleTail or None
    accuracy : float
        Accuracy of the table relative to its largest value.
    """

    def __init__(
        self,
        basis: RadialBasis,
        max_angular: int,
        fourier: Callable,
        sharpest_width: float,
        d_switch: float,
        tail: MultipoleTail | None,
        accuracy: float,
    ):
        # exp(-k^2 w^2 / 2) < 1e-17 beyond k_max: the quadrature needs nothing further out
        k_max = np.sqrt(2 * 40.0) / sharpest_width
        self.exact = FieldProjection(basis, max_angular, fourier, k_max, d_switch)
        self.d_switch = float(d_switch)
        self.table = ChebyshevTable(self.exact, self.d_switch, accuracy)
        self.tail = tail

    def __call__(self, d: np.ndarray) -> np.ndarray:
        """4 pi Q_nl(d), shape (n_d, L + 1, n)."""
        d = np.asarray(d, dtype=np.float64)
        near = d <= self.d_switch
        if near.all():
            return 4 * np.pi * self.table(d)
        out = np.zeros((len(d), *self.table._shape))
        out[near] = self.table(d[near])
        if self.tail is not None:
            out[~near] = self.tail(d[~near])
        return 4 * np.pi * out

    def with_derivative(self, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(4 pi Q_nl(d), its d-derivative), for :func:`~.pairs.pair_gradients`."""
        return self(d), self.derivative(d)

    def derivative(self, d: np.ndarray) -> np.ndarray:
        """d/dd of 4 pi Q_nl(d), shape (n_d, L + 1, n)."""
        d = np.asarray(d, dtype=np.float64)
        near = d <= self.d_switch
        out = np.zeros((len(d), *self.table._shape))
        out[near] = self.table.derivative(d[near])
        if self.tail is not None and not near.all():
            out[~near] = self.tail.derivative(d[~near])
        return 4 * np.pi * out


class SwitchedField:
    """A radial field times a C2 switch s(d): 1 below ``start``, 0 beyond ``start + width``,
    s = 1 - 10 x^3 + 15 x^4 - 6 x^5 with x = (d - start) / width in between.

    Cutting a short-ranged sum at a pair distance makes it jump when a pair crosses the
    cutoff (by up to what was neglected); switched, the sum and its first two derivatives
    stay continuous, which molecular dynamics needs to conserve energy.
    """

    def __init__(self, field, start: float, width: float):
        self.field, self.start, self.width = field, float(start), float(width)

    def switch(self, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = np.clip((d - self.start) / self.width, 0.0, 1.0)
        value = 1.0 - x**3 * (10.0 - 15.0 * x + 6.0 * x * x)
        slope = -30.0 * x * x * (1.0 - x) ** 2 / self.width
        return value, slope

    def __call__(self, d: np.ndarray) -> np.ndarray:
        return self.field(d) * self.switch(d)[0][:, None, None]

    def with_derivative(self, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        values, slopes = self.field.with_derivative(d)
        s, ds = self.switch(d)
        return values * s[:, None, None], slopes * s[:, None, None] + values * ds[:, None, None]


class StackedField:
    """Several radial fields evaluated at the same distances, their radial axes side by side
    (field-major): one pair list and one set of Y_lm serve every field (several exponents)."""

    def __init__(self, fields):
        self.fields = tuple(fields)

    def __call__(self, d: np.ndarray) -> np.ndarray:
        return np.concatenate([field(d) for field in self.fields], axis=-1)

    def with_derivative(self, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        parts = [field.with_derivative(d) for field in self.fields]
        return (
            np.concatenate([value for value, _ in parts], axis=-1),
            np.concatenate([slope for _, slope in parts], axis=-1),
        )


def molecule_pair_blocks(positions: np.ndarray, species_index, n_species: int, centres: np.ndarray):
    """Blocks of (rows, i, j, vectors, target): every centre with every other atom, a bounded
    number of pairs at a time; target = (centre row - first row of the block) x species +
    species of j."""
    n_atoms = len(positions)
    block = max(1, _PAIRS_PER_BLOCK // max(n_atoms, 1))
    for start in range(0, len(centres), block):
        rows = np.arange(start, min(start + block, len(centres)))
        i = np.repeat(centres[rows], n_atoms)
        row = np.repeat(rows - start, n_atoms)
        j = np.tile(np.arange(n_atoms), len(rows))
        other = i != j
        i, j, row = i[other], j[other], row[other]
        yield rows, i, j, positions[j] - positions[i], row * n_species + species_index[j]


def molecule_sum(
    positions: np.ndarray,
    species_index: np.ndarray,
    n_species: int,
    centres: np.ndarray,
    field: RadialField,
    max_angular: int,
    n_radial: int,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """Sum over every other atom of the molecule (no images, no background), each atom's
    field times its weight (``weights`` (n_atoms,), None: 1).

    Returns
    -------
    ndarray, shape (n_centres, n_species, (max_angular+1)^2, n_radial)
    """
    n_lm = (max_angular + 1) ** 2
    out = np.zeros((len(centres), n_species, n_lm, n_radial))
    for rows, _i, j, vectors, target in molecule_pair_blocks(
        positions, species_index, n_species, centres
    ):
        n_rows = len(rows) * n_species
        pair_weights = None if weights is None else weights[j]
        part = accumulate_pairs(n_rows, target, vectors, field, max_angular, n_radial, pair_weights)
        out[rows] = part.reshape(len(rows), n_species, n_lm, n_radial)
    return out


def periodic_pair_sum(
    system,
    species_index: np.ndarray,
    n_species: int,
    centres: np.ndarray,
    field: RadialField,
    cutoff: float,
    max_angular: int,
    n_radial: int,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """Sum of a short-ranged field over all periodic images within ``cutoff``, each atom's
    field times its weight (``weights`` (n_atoms,), None: 1).

    The centre's own zero-distance term is not included (the caller adds it in closed form);
    its periodic images are.

    Returns
    -------
    ndarray, shape (n_centres, n_species, (max_angular+1)^2, n_radial)
    """
    n_lm = (max_angular + 1) ** 2
    _i, j, vectors, target = selected_pairs(system, species_index, n_species, centres, cutoff)
    out = accumulate_pairs(
        len(centres) * n_species,
        target,
        vectors,
        field,
        max_angular,
        n_radial,
        None if weights is None else weights[j],
    )
    return out.reshape(len(centres), n_species, n_lm, n_radial)


def _scatter(i, j, vectors, per_pair, grad, strain):
    """Add pair gradients dE/d(r_j - r_i) to atoms and to the strain derivative."""
    np.add.at(grad, j, per_pair)
    np.add.at(grad, i, -per_pair)
    strain += per_pair.T @ vectors


def molecule_pair_gradients(
    positions: np.ndarray,
    species_index: np.ndarray,
    n_species: int,
    centres: np.ndarray,
    field: RadialField,
    max_angular: int,
    upstream: np.ndarray,
    weights: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """dE/dr (n_atoms, 3) and dE/d eps (3, 3) of E = sum upstream · molecule_sum(...).

    ``upstream`` has the shape of :func:`molecule_sum`'s result; ``weights`` as there.
    """
    grad, strain = np.zeros((len(positions), 3)), np.zeros((3, 3))
    g = upstream.reshape(len(centres) * n_species, *upstream.shape[2:])
    for rows, i, j, vectors, target in molecule_pair_blocks(
        positions, species_index, n_species, centres
    ):
        # block targets count from the block's first row
        block_g = g[rows[0] * n_species : (rows[-1] + 1) * n_species]
        per_pair = pair_gradients(
            block_g,
            target,
            vectors,
            field.with_derivative,
            max_angular,
            None if weights is None else weights[j],
        )
        _scatter(i, j, vectors, per_pair, grad, strain)
    return grad, strain


def periodic_pair_gradients(
    system,
    species_index: np.ndarray,
    n_species: int,
    centres: np.ndarray,
    field: RadialField,
    cutoff: float,
    max_angular: int,
    upstream: np.ndarray,
    weights: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """dE/dr and dE/d eps of E = sum upstream · periodic_pair_sum(...) (``weights`` as there).

    The pairs are those of the forward sum (within ``cutoff``); with a :class:`SwitchedField`
    that vanishes at the cutoff, the sum and this gradient are continuous as pairs cross it.
    """
    i, j, vectors, target = selected_pairs(system, species_index, n_species, centres, cutoff)
    g = upstream.reshape(len(centres) * n_species, *upstream.shape[2:])
    grad, strain = np.zeros((len(system), 3)), np.zeros((3, 3))
    per_pair = pair_gradients(
        g,
        target,
        vectors,
        field.with_derivative,
        max_angular,
        None if weights is None else weights[j],
    )
    _scatter(i, j, vectors, per_pair, grad, strain)
    return grad, strain


def molecule_jacobian(
    system,
    centres: np.ndarray,
    channels,
    field,
    n_radial: int,
    max_angular: int,
    with_strain: bool,
) -> Jacobian:
    """Dense Jacobian of an isolated molecule's coefficients: the pairs' tabulated
    projections ``field`` (``n_radial`` functions) differentiated exactly, each pair term
    scaled by its neighbour's weight (``channels``: a
    :class:`~lodekit.expansion.channels.Channels` of ``system``)."""
    index, count = channels.index, channels.count
    n_lm = (max_angular + 1) ** 2
    parts = [Jacobian.empty(len(centres), count, n_lm, n_radial, with_strain)]
    for rows, i, j, vectors, target in molecule_pair_blocks(
        system.positions, index, count, centres
    ):
        per_pair = pair_jacobian(vectors, field.with_derivative, max_angular)
        if channels.weights is not None:
            per_pair *= channels.weights[j][:, None, None, None]
        parts.append(
            Jacobian.from_pairs(
                len(centres),
                count,
                rows[0] + target // count,
                i,
                j,
                index[j],
                vectors,
                per_pair,
                with_strain,
            )
        )
    return Jacobian.merge(parts)
