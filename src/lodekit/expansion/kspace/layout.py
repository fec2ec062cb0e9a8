"""Building blocks shared by the k-space backends (math.md §4.1).

Half of the k-sphere (one of each ±k) as Miller indices, the per-atom phases exp(i k·r_j)
built from per-axis tables, and the k-dependent factor F_k = ĝ_p(k) I_nl(k) Y_lm(k̂) (parity
signs and 8 pi / V included) that every backend contracts with structure factors. See
:mod:`~lodekit.expansion.kspace.direct` for how the sum is written with them.
"""

from __future__ import annotations

import numpy as np

from ...basis.radial import RadialBasis
from ...basis.spherical_harmonics import (
    real_spherical_harmonics,
    real_spherical_harmonics_with_gradients,
)
from ...density import fourier_transform, fourier_transform_derivative
from ..workspace import scratch

__all__ = [
    "CHUNK_ELEMENTS",
    "KspaceLayout",
    "axis_tables",
    "contract_block",
    "half_space_kvectors",
    "phase_factors",
    "shell_starts",
    "species_indicator",
]

#: Largest number of doubles in one (centres x species, k-chunk) block.
CHUNK_ELEMENTS = 1 << 21


def half_space_kvectors(cell: np.ndarray, k_cutoff: float) -> np.ndarray:
    """Miller indices of reciprocal-lattice vectors with 0 < |k| < k_cutoff, one of each ±k.

    Parameters
    ----------
    cell : ndarray, shape (3, 3)
        Lattice vectors as rows (Å).
    k_cutoff : float
        1/Å.

    Returns
    -------
    ndarray of int, shape (n_k, 3)
        Sorted lexicographically (h, then k, then l): for fixed (h, k) the l-values are one
        contiguous run. The vectors are ``hkl @ (2 pi inv(cell).T)``.
    """
    recip = 2.0 * np.pi * np.linalg.inv(cell).T
    # |k·a_i| = 2 pi |n_i| <= |k| |a_i| bounds each integer index.
    n_max = np.floor(k_cutoff * np.linalg.norm(cell, axis=1) / (2.0 * np.pi)).astype(int)
    h = np.arange(0, n_max[0] + 1)
    k = np.arange(-n_max[1], n_max[1] + 1)
    l = np.arange(-n_max[2], n_max[2] + 1)
    hkl = np.stack(np.meshgrid(h, k, l, indexing="ij"), axis=-1).reshape(-1, 3)
    h, k, l = hkl.T
    half = (h > 0) | ((h == 0) & ((k > 0) | ((k == 0) & (l > 0))))
    hkl = hkl[half]
    kvec = hkl @ recip
    keep = np.einsum("ij,ij->i", kvec, kvec) < k_cutoff * k_cutoff
    return hkl[keep]


def shell_starts(sorted_norm: np.ndarray) -> np.ndarray:
    """First index of every shell of sorted norms: norms that agree to 1e-14 (one shell,
    computed in another order) are one shell. Shape (n_shells,)."""
    breaks = np.flatnonzero(np.diff(sorted_norm) > 1e-14 * sorted_norm[1:]) + 1
    return np.concatenate([[0], breaks])


def _per_distinct_norm(knorm: np.ndarray, function) -> list[np.ndarray]:
    """function(unique norms) -> arrays (n_unique, ...), scattered back to every k.

    Norms that agree to 1e-14 (one shell, summed in another order) share one evaluation: the
    hypergeometric functions are the expensive part of a k-chunk.
    """
    order = np.argsort(knorm, kind="stable")
    sorted_norm = knorm[order]
    starts = shell_starts(sorted_norm)
    which = np.repeat(np.arange(len(starts)), np.diff(np.concatenate([starts, [len(knorm)]])))
    results = []
    for table in function(sorted_norm[starts]):
        out = np.empty((len(knorm), *table.shape[1:]))
        out[order] = table[which]
        results.append(out)
    return results


def _radial_factor(
    knorm: np.ndarray, basis: RadialBasis, max_angular: int, smearing: float, exponent: int
) -> np.ndarray:
    """ĝ_p(k) I_nl(k), evaluated once per distinct norm; shape (n_k, L+1, n)."""

    def evaluate(unique):
        table = basis.kspace_integral(unique, max_angular)
        if isinstance(exponent, tuple):
            return [_stacked(table, unique, smearing, exponent, fourier_transform)]
        return [table * fourier_transform(unique, smearing, exponent)[:, None, None]]

    return _per_distinct_norm(knorm, evaluate)[0]


def _radial_factor_with_derivative(
    knorm: np.ndarray, basis: RadialBasis, max_angular: int, smearing: float, exponent: int
) -> tuple[np.ndarray, np.ndarray]:
    """(ĝ_p I_nl, d(ĝ_p I_nl)/dk), each (n_k, L+1, n)."""

    def evaluate(unique):
        if isinstance(exponent, tuple):
            integral = basis.kspace_integral(unique, max_angular)
            d_integral = basis.kspace_integral_derivative(unique, max_angular)
            return [
                _stacked(integral, unique, smearing, exponent, fourier_transform),
                _stacked(d_integral, unique, smearing, exponent, fourier_transform)
                + _stacked(integral, unique, smearing, exponent, fourier_transform_derivative),
            ]
        g = fourier_transform(unique, smearing, exponent)[:, None, None]
        dg = fourier_transform_derivative(unique, smearing, exponent)[:, None, None]
        integral = basis.kspace_integral(unique, max_angular)
        d_integral = basis.kspace_integral_derivative(unique, max_angular)
        return [g * integral, dg * integral + g * d_integral]

    radial, d_radial = _per_distinct_norm(knorm, evaluate)
    return radial, d_radial


def _stacked(table, knorm, smearing, exponents: tuple, transform) -> np.ndarray:
    """table (n_k, L+1, n) times transform(k, smearing, p) of every exponent p, the radial
    axes side by side, exponent-major: (n_k, L+1, n_exponents x n). Several exponents share
    every other factor of the k-space sum (phases, structure factors, Y_lm), so they are one
    sum with a longer radial axis (docs/conventions.md, "Several exponents")."""
    return np.concatenate(
        [table * transform(knorm, smearing, p)[:, None, None] for p in exponents], axis=-1
    )


def axis_tables(frac: np.ndarray, hkl: np.ndarray) -> tuple:
    """(lowest index per axis (3,), and per axis d the table exp(2 pi i n f_jd) for n from
    the lowest to the highest index of ``hkl`` on that axis, (n_atoms, n_values))."""
    lo, hi = hkl.min(axis=0), hkl.max(axis=0)
    return lo, *(
        np.exp(2j * np.pi * np.outer(frac[:, d], np.arange(lo[d], hi[d] + 1))) for d in range(3)
    )


def phase_factors(
    frac: np.ndarray, hkl: np.ndarray, out: np.ndarray | None = None, tables: tuple | None = None
) -> np.ndarray:
    """exp(2 pi i hkl·f_j) for every atom j and Miller triplet, shape (n_atoms, n_k).

    ``hkl`` may come in any order. ``out``, a complex (n_atoms, n_k) array, receives the
    result if given; ``tables``, :func:`axis_tables` of a superset of ``hkl``, saves their
    exponentials when many chunks of one set of k-vectors are done.
    """
    lo, t0, t1, t2 = axis_tables(frac, hkl) if tables is None else tables
    hi = lo + np.array([t0.shape[1], t1.shape[1], t2.shape[1]]) - 1
    if out is None:
        out = np.empty((frac.shape[0], len(hkl)), dtype=np.complex128)
    # exp(2 pi i (h f1 + k f2 + l f3)) from per-axis tables: one product per distinct (h, k),
    # then gathers along k, a few atoms at a time so that their table rows stay in cache
    # (one thread, 1536 atoms x 6902 k: 35 ms, against 47 ms for a loop over runs of l)
    width = hi[1] - lo[1] + 1
    hk, where = np.unique((hkl[:, 0] - lo[0]) * width + hkl[:, 1] - lo[1], return_inverse=True)
    h_index, k_index = np.divmod(hk, width)
    l_index = hkl[:, 2] - lo[2]
    for first in range(0, len(frac), _PHASE_ROWS):
        rows = slice(first, first + _PHASE_ROWS)
        np.take(t0[rows][:, h_index] * t1[rows][:, k_index], where, axis=1, out=out[rows])
        out[rows] *= np.take(t2[rows], l_index, axis=1)
    return out


#: Atoms per pass of :func:`phase_factors`.
_PHASE_ROWS = 16


def species_indicator(
    species_index: np.ndarray, n_species: int, weights: np.ndarray | None = None
) -> np.ndarray:
    """(n_species, n_atoms) matrix with a 1 (or the atom's weight w_j, when ``weights`` is
    given) where atom j belongs to channel a."""
    indicator = np.zeros((n_species, len(species_index)))
    indicator[species_index, np.arange(len(species_index))] = 1.0 if weights is None else weights
    return indicator


class KspaceLayout:
    """The k-dependent factor F_k = (8 pi / V) s_l Y_lm(k̂) ĝ_p(k) I_nl(k) of the k-space sum.

    s_l = (+1, -1, -1, +1) for l mod 4 = 0..3 turns Re[i^l S] into the cos/sin combinations
    of the module docstring; the factor 2 of 8 pi counts the -k half of the sphere. The lm
    axis is sorted by parity (even l first), so that the even and odd parts of F are two
    contiguous slices: even l multiply Re[exp(i k·(r_i - r_j))], odd l its Im.
    """

    def __init__(self, cell, basis: RadialBasis, max_angular: int, smearing: float, exponent: int):
        self.recip = 2.0 * np.pi * np.linalg.inv(cell).T
        self.volume = abs(np.linalg.det(cell))
        self.basis, self.max_angular = basis, max_angular
        self.smearing, self.exponent = smearing, exponent
        l_of_lm = np.repeat(np.arange(max_angular + 1), 2 * np.arange(max_angular + 1) + 1)
        even, odd = np.flatnonzero(l_of_lm % 2 == 0), np.flatnonzero(l_of_lm % 2 == 1)
        self.parity = np.concatenate([even, odd])
        self.n_even = len(even)
        sign = np.array([1.0, -1.0, -1.0, 1.0])[l_of_lm % 4] * (8.0 * np.pi / self.volume)
        self.sign = sign[self.parity]
        self.l_sorted = l_of_lm[self.parity]

    def l_blocks(self) -> list[tuple[int, int, int]]:
        """(l, first, last) of the lm entries of every l, lm sorted by parity (each l is one
        contiguous run there)."""
        breaks = np.flatnonzero(np.diff(self.l_sorted)) + 1
        starts = np.concatenate([[0], breaks]).tolist()
        stops = np.append(breaks, len(self.l_sorted)).tolist()
        return [(int(self.l_sorted[a]), a, b) for a, b in zip(starts, stops, strict=True)]

    def factor_parts(self, hkl: np.ndarray) -> dict:
        """The pieces of F and of dF/dk, lm sorted by parity, signs and 8 pi / V included.

        Keys: ``kvec`` (n_k, 3), ``unit`` (k̂), ``ylm`` (n_k, lm), ``d_ylm`` (n_k, 3, lm; the
        gradient with respect to k), ``radial`` and ``d_radial`` (n_k, lm, n: ĝ I of each lm's
        l and its k-derivative). F = ylm x radial and dF/dk_b = d_ylm_b x radial + k̂_b ylm x
        d_radial.
        """
        kvec = hkl @ self.recip
        knorm = np.sqrt(np.einsum("ij,ij->i", kvec, kvec))
        radial, d_radial = _radial_factor_with_derivative(
            knorm, self.basis, self.max_angular, self.smearing, self.exponent
        )
        ylm, d_ylm = real_spherical_harmonics_with_gradients(kvec, self.max_angular)
        return {
            "kvec": kvec,
            "unit": kvec / knorm[:, None],
            "ylm": ylm[:, self.parity] * self.sign,
            "d_ylm": d_ylm[:, :, self.parity] * self.sign,
            "radial": radial[:, self.l_sorted, :],
            "d_radial": d_radial[:, self.l_sorted, :],
        }

    def factor_derivative(self, hkl: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(k vectors, F, dF/dk_beta of shape (n_k, 3, lm sorted by parity, n_radial))."""
        parts = self.factor_parts(hkl)
        ylm, radial = parts["ylm"], parts["radial"]
        factor = ylm[:, :, None] * radial
        d_factor = parts["d_ylm"][:, :, :, None] * radial[:, None] + (
            parts["unit"][:, :, None, None] * (ylm[:, :, None] * parts["d_radial"])[:, None]
        )
        return parts["kvec"], factor, d_factor

    def factor_pieces(self, hkl: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """F = Y x R in two pieces, k last: signed Y_lm(k̂) (lm sorted by parity, n_k) and
        ĝ_p I_nl (L+1, n_radial, n_k). The row of channel (lm, n) is
        Y[lm] x R[l_sorted[lm], n]; the (n_k, lm, n) array F is never formed."""
        kvec = hkl @ self.recip
        knorm = np.sqrt(np.einsum("ij,ij->i", kvec, kvec))
        radial = _radial_factor(knorm, self.basis, self.max_angular, self.smearing, self.exponent)
        ylm = real_spherical_harmonics(kvec, self.max_angular)[:, self.parity] * self.sign
        return np.ascontiguousarray(ylm.T), np.ascontiguousarray(radial.transpose(1, 2, 0))

    def factor(
        self, hkl: np.ndarray, out: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(k vectors (n_k, 3), F (n_k, lm sorted by parity, n_radial)), F written into
        ``out`` if given."""
        kvec = hkl @ self.recip
        knorm = np.sqrt(np.einsum("ij,ij->i", kvec, kvec))
        radial = _radial_factor(knorm, self.basis, self.max_angular, self.smearing, self.exponent)
        ylm = real_spherical_harmonics(kvec, self.max_angular)[:, self.parity] * self.sign
        return kvec, np.multiply(ylm[:, :, None], radial[:, self.l_sorted, :], out=out)


#: From this many centres on, :func:`contract_block` uses one wide product against (cos, sin)
#: of P (twice the multiply-adds, at twice the rate of the narrow per-parity products): one
#: thread, 1536 centres x 1365 k-vectors, 73 ms against 79 ms; 192 x 867, 7.3 against 5.3 ms.
_WIDE_PRODUCT_CENTRES = 768


def _contract_wide(centre_phases, rho, factor, n_even, out) -> np.ndarray:
    """:func:`contract_block` as one product of (cos, sin) of P against every coefficient."""
    n_k, n_lm, n_rad = factor.shape
    n_species = rho.shape[0]
    a_re, b_im = rho.real.T[:, :, None, None], rho.imag.T[:, :, None, None]
    f_even, f_odd = factor[:, None, :n_even], factor[:, None, n_even:]
    g = scratch("contract.g", (n_k, 2, n_species, n_lm, n_rad))
    g[:, 0, :, :n_even] = a_re * f_even  # multiplies cos
    g[:, 0, :, n_even:] = -b_im * f_odd
    g[:, 1, :, :n_even] = b_im * f_even  # multiplies sin
    g[:, 1, :, n_even:] = a_re * f_odd
    # complex128 viewed as float64 interleaves (cos, sin) along k, matching g's axis 1
    return np.matmul(
        np.ascontiguousarray(centre_phases).view(np.float64), g.reshape(2 * n_k, -1), out=out
    )


def contract_block(
    centre_phases: np.ndarray,
    rho: np.ndarray,
    factor: np.ndarray,
    n_even: int,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """One k-chunk of the sum: sum_k F_k {Re | Im}[P_i(k) conj(rho_a(k))].

    Parameters
    ----------
    centre_phases : complex ndarray (n_centres, n_k)
        P_i = exp(i k·r_i).
    rho : complex ndarray (n_species, n_k)
        sum_{j in a} exp(i k·r_j) = A + i B.
    factor : ndarray (n_k, lm sorted by parity, n)
    n_even : int
        Number of even-l lm entries (they come first).
    out : ndarray (n_centres, n_species x lm x n), optional
        Receives the result (overwritten, not added to).

    Returns
    -------
    ndarray (n_centres, n_species x lm x n), lm sorted by parity: ``out`` if given.
    """
    n_k, n_lm, n_rad = factor.shape
    n_species = rho.shape[0]
    n_centres = centre_phases.shape[0]
    if out is None:
        out = np.empty((n_centres, n_species * n_lm * n_rad))
    if n_centres >= _WIDE_PRODUCT_CENTRES:
        return _contract_wide(centre_phases, rho, factor, n_even, out)
    # Re and Im of T = P_i conj(rho_a), one species at a time, then one product per parity:
    # even l take Re T, odd l Im T. Half the multiply-adds of contracting (cos, sin) of P
    # against every coefficient of both parities, and no array larger than P itself.
    cos, sin = centre_phases.real, centre_phases.imag
    f_even = scratch("contract.f_even", (n_k, n_even * n_rad))
    f_even[:] = factor[:, :n_even].reshape(n_k, -1)
    f_odd = scratch("contract.f_odd", (n_k, (n_lm - n_even) * n_rad))
    f_odd[:] = factor[:, n_even:].reshape(n_k, -1)
    real, imag, work = (scratch(f"contract.{name}", (n_centres, n_k)) for name in "riw")
    blocks = out.reshape(n_centres, n_species, n_lm, n_rad)
    for a in range(n_species):
        np.multiply(cos, rho[a].real, out=real)
        real += np.multiply(sin, rho[a].imag, out=work)
        np.multiply(sin, rho[a].real, out=imag)
        imag -= np.multiply(cos, rho[a].imag, out=work)
        blocks[:, a, :n_even] = (real @ f_even).reshape(n_centres, n_even, n_rad)
        blocks[:, a, n_even:] = (imag @ f_odd).reshape(n_centres, n_lm - n_even, n_rad)
    return out
