"""The direct k-space sum shell by shell, for cells whose k-vectors share few norms.

The factor F_k[lm, n] = Y_lm(k̂) R_ln(|k|) (signs and 8 pi / V in Y) depends on |k| only
through R. In a cubic, tetragonal or hexagonal cell many k-vectors share one norm (a shell:
water512's 6 902 half-sphere vectors lie on 186 shells), and the sum of
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

from ...basis.spherical_harmonics import real_spherical_harmonics_with_gradients
from ..threads import one_blas_thread, thread_pool
from ..workspace import scratch
from .direct_gradients import add_position_terms, strain_from_projections
from .layout import (
    KspaceLayout,
    _radial_factor_with_derivative,
    axis_tables,
    phase_factors,
    shell_starts,
)
from .problem import KspaceProblem

__all__ = ["MIN_SHELL_SIZE", "ShellTables", "shell_sum", "shell_tables", "shell_vjp"]

#: Mean number of k-vectors per shell from which the shell-by-shell sum is used: below it
#: the per-shell products are too thin to run at BLAS speed. Measured on one thread, LODE H1
#: (ms, shell sum against plain product): 1536 atoms, cubic (37 per shell) 170 / 454,
#: tetragonal (7.3) 281 / 403, hexagonal (5.2) 406 / 378; 192 atoms, cubic (18.5) 4.7 / 7.6,
#: tetragonal (5.5) 8.3 / 7.7.
MIN_SHELL_SIZE = 7


#: Shells whose Q is held at once by :func:`shell_sum`: at least ``_SHELL_GROUP``, more while
#: Q stays within ``_Q_BYTES``.
_SHELL_GROUP = 8
_Q_BYTES = 1 << 22


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
    d_ylm : ndarray (n_k, 3, lm sorted by parity)
        Gradient of the signed Y_lm with respect to k (for strain derivatives).
    d_radial : ndarray (n_shells, L + 1, n_radial)
        d(ĝ_p I_nl)/dk of every shell.
    """

    hkl: np.ndarray
    starts: np.ndarray
    ylm: np.ndarray
    radial: np.ndarray
    d_ylm: np.ndarray
    d_radial: np.ndarray

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.ylm, self.radial, self.d_ylm, self.d_radial))

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
    radial, d_radial = _radial_factor_with_derivative(
        unique, layout.basis, layout.max_angular, layout.smearing, layout.exponent
    )
    ylm, d_ylm = real_spherical_harmonics_with_gradients(kvec, layout.max_angular)
    ylm = ylm[:, layout.parity] * layout.sign
    d_ylm = d_ylm[:, :, layout.parity] * layout.sign
    bounds = np.append(starts, len(hkl))
    for array in (hkl, bounds, ylm, radial, d_ylm, d_radial):
        array.flags.writeable = False
    return ShellTables(hkl, bounds, ylm, radial, d_ylm, d_radial)


def _shell_chunks(tables: ShellTables, chunk: int):
    """(first shell, last shell, first k, last k) of passes of whole shells, about ``chunk``
    k-vectors each (a larger single shell is one pass)."""
    bounds = tables.starts
    first = 0
    while first < tables.n_shells:
        last = int(np.searchsorted(bounds, bounds[first] + chunk, side="right")) - 1
        last = max(last, first + 1)
        yield first, last, int(bounds[first]), int(bounds[last])
        first = last


def shell_sum(
    tables: ShellTables,
    layout: KspaceLayout,
    frac: np.ndarray,
    indicator: np.ndarray,
    centres: np.ndarray | None,
    chunk: int,
    n_threads: int = 1,
) -> np.ndarray:
    """The k-space sum of :func:`~lodekit.expansion.kspace.direct.kspace_sum`, shell by shell,
    of one structure or of several frames of one cell at once.

    Parameters
    ----------
    tables : ShellTables
    layout : KspaceLayout
    frac : ndarray (n_atoms, 3), or (n_frames, n_atoms, 3)
        Fractional coordinates (of every frame: all frames have the same number of atoms).
    indicator : ndarray (n_species, n_atoms), or (n_frames, n_species, n_atoms)
        Channel membership of every atom (its weight, with per-atom weights).
    centres : ndarray of int (n_centres,) or None
        None when every atom is a centre, in order; the same centres in every frame.
    chunk : int
        Most k-vectors per pass (whole shells; a larger single shell is one pass).
    n_threads : int
        Threads over the passes, when there are several (each thread with one BLAS thread
        and a part of the sum of its own).

    Returns
    -------
    ndarray (n_centres, n_species, (max_angular + 1)^2, n_radial), lm in natural order, or
    (n_frames, n_centres, ...) for frames.

    Notes
    -----
    Frames are one batch of products: each product below is one numpy call over all frames
    (a loop in C, without the GIL), so that the per-call cost of small structures is paid
    once per batch and the threads of a multi-structure call do not queue for the GIL.
    """
    single = frac.ndim == 2
    if single:
        frac, indicator = frac[None], indicator[None]
    n_frames, n_species, n_atoms = indicator.shape
    n_centres = n_atoms if centres is None else len(centres)
    n_lm = tables.ylm.shape[1]
    n_rad = tables.radial.shape[2]
    every_atom = frac.reshape(-1, 3)
    sums = _SumOfPasses(tables, layout, every_atom, indicator, centres)
    # passes are independent sums over disjoint shells: threads take whole passes. A sum of
    # one pass stays on one thread: cut further, its products are too small to gain from a
    # second thread (two threads, nacl64 / water64 LODE H1: 2.3-3.3 / 5.0-7.6 ms, against
    # 3.7-4.1 / 6.8-7.9 ms when every sum was cut into a pass per thread)
    passes = list(_shell_chunks(tables, chunk))
    n_parts = min(n_threads, len(passes))
    # the sum accumulates as (frame, species, lm sorted by parity, centres, n): each l of a
    # species is then one contiguous block per frame, the output of one product over the
    # shells. Each thread adds its passes into its own part; the parts belong to the
    # calling thread.
    parts = scratch("shells.parts", (n_parts, n_frames, n_species, n_lm, n_centres, n_rad))
    parts.fill(0.0)
    if n_parts == 1:
        for bounds in passes:
            sums.add(parts[0], *bounds)
    else:

        def run(part):
            for bounds in passes[part::n_parts]:
                sums.add(parts[part], *bounds)

        with one_blas_thread():
            list(thread_pool("kspace", n_parts).map(run, range(n_parts)))
    acc = parts[0] if n_parts == 1 else parts.sum(axis=0)
    result = np.empty((n_frames, n_centres, n_species, n_lm, n_rad))
    result[:, :, :, layout.parity] = acc.transpose(0, 3, 1, 2, 4)
    return result[0] if single else result


class _SumOfPasses:
    """The passes of :func:`shell_sum`: each adds the shells of one range of k-vectors."""

    def __init__(self, tables, layout, every_atom, indicator, centres):
        self.tables, self.layout = tables, layout
        self.every_atom, self.indicator, self.centres = every_atom, indicator, centres
        self.axes = axis_tables(every_atom, tables.hkl)
        self.l_blocks = layout.l_blocks()

    def add(self, acc: np.ndarray, first: int, last: int, k0: int, k1: int) -> None:
        """Add shells ``first:last`` (k-vectors ``k0:k1``) to ``acc`` (frames, species, lm
        sorted by parity, centres, n), with this thread's work arrays."""
        tables, indicator, centres = self.tables, self.indicator, self.centres
        n_frames, n_species, n_lm, n_centres, n_rad = acc.shape
        n_atoms = indicator.shape[2]
        n_even = self.layout.n_even
        width = n_lm * n_species
        bounds = tables.starts
        # shells per group: at least _SHELL_GROUP, more while Q stays within _Q_BYTES (small
        # structures: one group, few products)
        group_size = max(_SHELL_GROUP, _Q_BYTES // (8 * width * n_centres * n_frames))
        n_k = k1 - k0
        phases = phase_factors(
            self.every_atom,
            tables.hkl[k0:k1],
            out=scratch("shells.phases", (n_frames * n_atoms, n_k), complex),
            tables=self.axes,
        ).reshape(n_frames, n_atoms, n_k)
        rho = indicator @ phases  # (frames, species, k): A + i B
        centre_phases = phases if centres is None else phases[:, centres]
        # (cos, sin) interleaved along k, as complex128 viewed as float64
        trig = centre_phases.view(np.float64)
        # rows 2k (multiply cos) and 2k + 1 (multiply sin) of the weights; columns (a, lm):
        # lm innermost, so that the products below run over rows of (L+1)^2 / 2 values, not
        # of n_species (a loop of 2 elements per call of numpy's inner loop: 7 ms against
        # 1 ms for water64x8)
        ylm = tables.ylm[k0:k1]
        a_re = rho.real.transpose(0, 2, 1)[:, :, :, None]  # (frames, k, species, 1)
        b_im = rho.imag.transpose(0, 2, 1)[:, :, :, None]
        y_even, y_odd = ylm[None, :, None, :n_even], ylm[None, :, None, n_even:]
        g = scratch("shells.g", (n_frames, n_k, 2, n_species, n_lm))
        np.multiply(y_even, a_re, out=g[:, :, 0, :, :n_even])
        np.multiply(y_odd, -b_im, out=g[:, :, 0, :, n_even:])
        np.multiply(y_even, b_im, out=g[:, :, 1, :, :n_even])
        np.multiply(y_odd, a_re, out=g[:, :, 1, :, n_even:])
        g = g.reshape(n_frames, 2 * n_k, width)
        # Q of a group of shells at a time: its buffer stays a few MiB whatever the chunk
        for group in range(first, last, group_size):
            end = min(group + group_size, last)
            q = scratch("shells.q", (end - group, n_frames, width, n_centres))
            for s in range(group, end):
                lo, hi = 2 * (int(bounds[s]) - k0), 2 * (int(bounds[s + 1]) - k0)
                # Q_s^T = G_s^T (width, 2 m_s) @ trig_s^T (2 m_s, centres), every frame
                np.matmul(
                    g[:, lo:hi].transpose(0, 2, 1),
                    trig[:, :, lo:hi].transpose(0, 2, 1),
                    out=q[s - group],
                )
            # (frames, species, lm, centres, shells): per species a transposed matrix
            # (lm x centres, shells) per frame, which BLAS reads in place
            q = q.reshape(end - group, n_frames, n_species, n_lm, n_centres)
            q = q.transpose(1, 2, 3, 4, 0)
            radial = tables.radial[group:end]
            for l, a, b in self.l_blocks:
                product = scratch("shells.product", (n_frames, (b - a) * n_centres, n_rad))
                for species in range(n_species):
                    # sum over shells: (lm block x centres, shells) @ (shells, n)
                    block = q[:, species, a:b].reshape(n_frames, -1, end - group)
                    np.matmul(block, radial[:, l, :], out=product)
                    acc[:, species, a:b] += product.reshape(n_frames, b - a, n_centres, n_rad)


def shell_vjp(
    problem: KspaceProblem,
    layout: KspaceLayout,
    tables: ShellTables,
    upstream: np.ndarray,
    with_strain: bool,
    chunk: int,
):
    """:func:`~lodekit.expansion.kspace.direct_gradients.kspace_vjp` shell by shell.

    The k-space sum's adjoint needs, per k, H_ia(k) = sum_f G_ia[f] F_k[f] and (for the
    strain) A_lm(k) = sum_n R_ln Z_k[lm, n], B_lm(k) = sum_n R'_ln Z_k[lm, n]. With
    W^s_ia[lm] = sum_n G_ia[lm, n] R_ln(k_s) (and V^s with R'), H = sum_lm Y_lm W^s (even l
    real, odd l imaginary) and A, B are one product per shell of (cos, sin) of the centre
    phases against W^s, V^s: the radial index is summed once per shell, not once per k.

    Returns
    -------
    (ndarray (n_atoms, 3), ndarray (3, 3) or None)
        dE/dr and, with ``with_strain``, dE/d eps.
    """
    n_centres, n_species, n_lm, n_rad = problem.coefficient_shape
    n_atoms = problem.n_atoms
    n_even = layout.n_even
    frac, indicator = problem.fractional(), problem.indicator()
    grad = np.zeros((n_atoms, 3))
    strain = np.zeros((3, 3)) if with_strain else None
    g = np.ascontiguousarray(upstream[:, :, layout.parity, :])  # (centres, species, lm, n)
    rows = n_centres * n_species
    blocks = layout.l_blocks()
    # G per l as (centres x species x (2l + 1), n): the left side of the radial products
    g_by_l = [(l, a, b, g[:, :, a:b, :].reshape(-1, n_rad)) for l, a, b in blocks]
    radial_tables = [tables.radial] + ([tables.d_radial] if with_strain else [])
    axes = axis_tables(frac, tables.hkl)
    bounds = tables.starts
    for first, last, k0, k1 in _shell_chunks(tables, chunk):
        n_shells, n_k = last - first, k1 - k0
        # W (and V): (shells, centres x species, lm)
        projected = []
        for which, table in enumerate(radial_tables):
            w = scratch(f"shells.w{which}", (n_shells, rows, n_lm))
            for l, a, b, g_l in g_by_l:
                part = (g_l @ table[first:last, l, :].T).reshape(rows, b - a, n_shells)
                w[:, :, a:b] = part.transpose(2, 0, 1)
            projected.append(w)
        hkl = tables.hkl[k0:k1]
        phases = phase_factors(
            frac, hkl, out=scratch("shells.phases", (n_atoms, n_k), complex), tables=axes
        )
        rho = indicator @ phases
        ylm = tables.ylm[k0:k1]
        h = np.empty((rows, n_k), dtype=complex)
        w = projected[0]
        for s in range(first, last):
            lo, hi = int(bounds[s]) - k0, int(bounds[s + 1]) - k0
            h.real[:, lo:hi] = w[s - first, :, :n_even] @ ylm[lo:hi, :n_even].T
            h.imag[:, lo:hi] = -(w[s - first, :, n_even:] @ ylm[lo:hi, n_even:].T)
        kvec = hkl @ layout.recip
        centre_phases = add_position_terms(
            grad, problem, h.reshape(n_centres, n_species, n_k), phases, rho, kvec
        )
        if with_strain:
            strain += _strain_of_chunk(
                projected, centre_phases, rho, tables, layout, first, last, k0, k1, kvec
            )
    return grad, strain


def _strain_of_chunk(projected, centre_phases, rho, tables, layout, first, last, k0, k1, kvec):
    """dE/d eps of one pass of shells: A and B of :func:`shell_vjp`, then
    :func:`~lodekit.expansion.kspace.direct_gradients.strain_from_projections`."""
    n_centres = centre_phases.shape[0]
    n_species = rho.shape[0]
    n_lm = tables.ylm.shape[1]
    n_even = layout.n_even
    bounds = tables.starts
    trig = np.ascontiguousarray(centre_phases).view(np.float64)  # (cos, sin) interleaved
    # per shell, (cos, sin) rows of sum_i {cos, sin}_ik [W^s | V^s]_ia[lm]
    stacked = np.concatenate([w.reshape(len(w), n_centres, -1) for w in projected], axis=2)
    width = n_species * n_lm
    n_k = k1 - k0
    both = np.empty((n_k, 2, stacked.shape[2]))
    for s in range(first, last):
        lo, hi = int(bounds[s]) - k0, int(bounds[s + 1]) - k0
        product = trig[:, 2 * lo : 2 * hi].T @ stacked[s - first]  # (2 m_s, 2 x width)
        both[lo:hi] = product.reshape(hi - lo, 2, -1)
    a_re = rho.real.T[:, :, None]  # (k, species, 1)
    b_im = rho.imag.T[:, :, None]
    out = []
    for which in range(len(projected)):
        cos_part = both[:, 0, which * width : (which + 1) * width].reshape(n_k, n_species, n_lm)
        sin_part = both[:, 1, which * width : (which + 1) * width].reshape(n_k, n_species, n_lm)
        value = np.empty((n_k, n_lm))
        # Re[P conj(rho)] = cos A + sin B for even l, Im = sin A - cos B for odd l
        value[:, :n_even] = np.sum(
            cos_part[:, :, :n_even] * a_re + sin_part[:, :, :n_even] * b_im, axis=1
        )
        value[:, n_even:] = np.sum(
            sin_part[:, :, n_even:] * a_re - cos_part[:, :, n_even:] * b_im, axis=1
        )
        out.append(value)
    return strain_from_projections(kvec, tables.ylm[k0:k1], tables.d_ylm[k0:k1], out[0], out[1])
