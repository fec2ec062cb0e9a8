"""The direct k-space sum shell by shell, for cells whose k-vectors share few norms.

The factor F_k[lm, n] = Y_lm(k̂) R_ln(|k|) (signs and 8 pi / V in Y) depends on |k| only
through R. In a cubic, tetragonal or hexagonal cell many k-vectors share one norm (a shell:
water512's 6 900 half-sphere vectors lie on 220 shells), and the sum of
:mod:`~lodekit.expansion.kspace.direct` factorises:

    c[i, a, lm, n] = sum_s R_ln(k_s) Q_s[i, a, lm],
    Q_s[i, a, lm]  = sum_{k in s} Y_lm(k̂) {Re | Im}[P_i(k) conj(rho_a(k))]

Q_s is one product per shell of (cos, sin) of P against Y weighted by the structure factors,
(centres, 2 m_s) x (2 m_s, species x lm), without the radial index; the radial sum is one
product per l over the shells. Per centre that is 2 x 2 k x species x lm + 2 x shells x
species x lm x n multiply-adds, against 2 x 2 k x species x lm x n for the plain product:
about n_radial times fewer when the shells are large.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...basis.spherical_harmonics import real_spherical_harmonics
from ..workspace import scratch
from .layout import KspaceLayout, _radial_factor, axis_tables, phase_factors, shell_starts

__all__ = ["MIN_SHELL_SIZE", "ShellTables", "shell_sum", "shell_tables"]

#: Mean number of k-vectors per shell from which the shell-by-shell sum is used: below it
#: the per-shell products are too thin to run at BLAS speed. Measured on one thread, LODE H1
#: (ms, shell sum against plain product): 1536 atoms, cubic (37 per shell) 170 / 454,
#: tetragonal (7.3) 281 / 403, hexagonal (5.2) 406 / 378; 192 atoms, cubic (18.5) 4.7 / 7.6,
#: tetragonal (5.5) 8.3 / 7.7.
MIN_SHELL_SIZE = 7


@dataclass(frozen=True, eq=False)
class ShellTables:
    """The k-dependent pieces of one cell's sum, k-vectors sorted by norm.

    Attributes
    ----------
    hkl : ndarray of int (n_k, 3)
        Miller indices, sorted by |k|.
    starts : ndarray of int (n_shells + 1,)
        Shell s holds k-vectors ``starts[s]:starts[s + 1]``.
    ylm : ndarray (n_k, lm sorted by parity)
        Signed Y_lm(k̂) (parity signs and 8 pi / V included, as in :class:`KspaceLayout`).
    radial : ndarray (n_shells, L + 1, n_radial)
        ĝ_p(k_s) I_nl(k_s) of every shell.
    """

    hkl: np.ndarray
    starts: np.ndarray
    ylm: np.ndarray
    radial: np.ndarray

    @property
    def n_shells(self) -> int:
        return len(self.starts) - 1


def shell_tables(layout: KspaceLayout, hkl: np.ndarray) -> ShellTables | None:
    """The shell tables of ``hkl``, or None when its shells hold fewer than
    :data:`MIN_SHELL_SIZE` k-vectors on average (then the plain product is faster)."""
    kvec = hkl @ layout.recip
    knorm = np.sqrt(np.einsum("ij,ij->i", kvec, kvec))
    order = np.argsort(knorm, kind="stable")
    starts = shell_starts(knorm[order])
    if len(hkl) < MIN_SHELL_SIZE * len(starts):
        return None
    hkl, kvec, knorm = hkl[order], kvec[order], knorm[order]
    unique = knorm[starts]
    radial = _radial_factor(
        unique, layout.basis, layout.max_angular, layout.smearing, layout.exponent
    )
    ylm = real_spherical_harmonics(kvec, layout.max_angular)[:, layout.parity] * layout.sign
    bounds = np.append(starts, len(hkl))
    for array in (hkl, bounds, ylm, radial):
        array.flags.writeable = False
    return ShellTables(hkl, bounds, ylm, radial)


def shell_sum(
    tables: ShellTables,
    layout: KspaceLayout,
    frac: np.ndarray,
    indicator: np.ndarray,
    centres: np.ndarray | None,
    chunk: int,
) -> np.ndarray:
    """The k-space sum of :func:`~lodekit.expansion.kspace.direct.kspace_sum`, shell by shell.

    Parameters
    ----------
    tables : ShellTables
    layout : KspaceLayout
    frac : ndarray (n_atoms, 3)
        Fractional coordinates.
    indicator : ndarray (n_species, n_atoms)
        Channel membership of every atom.
    centres : ndarray of int (n_centres,) or None
        None when every atom is a centre, in order.
    chunk : int
        Most k-vectors per pass (whole shells; a larger single shell is one pass).

    Returns
    -------
    ndarray (n_centres, n_species, (max_angular + 1)^2, n_radial), lm in natural order.
    """
    n_species, n_atoms = indicator.shape
    n_centres = n_atoms if centres is None else len(centres)
    n_lm = tables.ylm.shape[1]
    n_rad = tables.radial.shape[2]
    n_even = layout.n_even
    width = n_lm * n_species
    # the sum accumulates as (lm sorted by parity, species, centres, n): each l is then one
    # contiguous block, the output of one product over the shells
    acc = scratch("shells.acc", (n_lm, n_species, n_centres, n_rad))
    acc.fill(0.0)
    l_sorted = layout.l_sorted
    l_blocks = np.flatnonzero(np.diff(l_sorted)) + 1
    l_blocks = list(zip(np.concatenate([[0], l_blocks]), np.append(l_blocks, n_lm), strict=True))
    bounds = tables.starts
    axes = axis_tables(frac, tables.hkl)
    first = 0
    while first < tables.n_shells:
        last = int(np.searchsorted(bounds, bounds[first] + chunk, side="right")) - 1
        last = max(last, first + 1)
        k0, k1 = int(bounds[first]), int(bounds[last])
        n_k = k1 - k0
        phases = phase_factors(
            frac,
            tables.hkl[k0:k1],
            out=scratch("shells.phases", (n_atoms, n_k), complex),
            tables=axes,
        )
        rho = indicator @ phases  # (species, k): A + i B
        centre_phases = phases if centres is None else phases[centres]
        # (cos, sin) interleaved along k, as complex128 viewed as float64
        trig = centre_phases.view(np.float64)
        # rows 2k (multiply cos) and 2k + 1 (multiply sin) of the weights; columns (lm, a)
        ylm = tables.ylm[k0:k1]
        a_re, b_im = rho.real.T[:, None, :], rho.imag.T[:, None, :]  # (k, 1, species)
        y_even, y_odd = ylm[:, :n_even, None], ylm[:, n_even:, None]
        g = scratch("shells.g", (n_k, 2, n_lm, n_species))
        np.multiply(y_even, a_re, out=g[:, 0, :n_even])
        np.multiply(y_odd, -b_im, out=g[:, 0, n_even:])
        np.multiply(y_even, b_im, out=g[:, 1, :n_even])
        np.multiply(y_odd, a_re, out=g[:, 1, n_even:])
        g = g.reshape(2 * n_k, width)
        q = scratch("shells.q", (last - first, width, n_centres))
        for s in range(first, last):
            lo, hi = 2 * (int(bounds[s]) - k0), 2 * (int(bounds[s + 1]) - k0)
            # Q_s^T = G_s^T (width, 2 m_s) @ trig_s^T (2 m_s, centres)
            np.matmul(g[lo:hi].T, trig[:, lo:hi].T, out=q[s - first])
        q = q.reshape(last - first, n_lm, n_species * n_centres)
        radial = tables.radial[first:last]
        for a, b in l_blocks:
            l = int(l_sorted[a])
            # sum over shells: (lm block x species x centres, shells) @ (shells, n)
            block = q[:, a:b].reshape(last - first, -1)
            product = scratch("shells.product", (block.shape[1], n_rad))
            np.matmul(block.T, radial[:, l, :], out=product)
            acc[a:b] += product.reshape(b - a, n_species, n_centres, n_rad)
        first = last
    result = np.empty((n_centres, n_species, n_lm, n_rad))
    result[:, :, layout.parity] = acc.transpose(2, 1, 0, 3)
    return result
