"""Reciprocal-space evaluation of the periodic LODE coefficients (math.md §4.1).

c^{i,a}_{nlm} = (4 pi / V) sum_{0<|k|<k_c} ĝ_p(k) I_nl(k) Y_lm(k̂) Re[i^l S^a_i(k)]

Only half of the k-sphere is enumerated (k and -k give complex-conjugate structure factors),
which doubles the prefactor. Writing rho_a(k) = sum_{j in a} exp(-i k·r_j) = A_a - i B_a with
A_a = sum cos(k·r_j), B_a = sum sin(k·r_j), the centre's factor S^a_i = exp(i k·r_i) rho_a is

    Re S^a_i = cos_i A_a + sin_i B_a,      Im S^a_i = sin_i A_a - cos_i B_a,

and Re[i^l S] is (Re S, -Im S, -Re S, Im S) for l mod 4 = (0, 1, 2, 3). Moving A and B into the
k-dependent factor F_k = ĝ I Y (signs included) turns the whole sum into one dense product

    c_even[i, a] = sum_k cos_ik (A_a F_k) + sin_ik (B_a F_k)
    c_odd[i, a]  = sum_k sin_ik (A_a F_k) - cos_ik (B_a F_k)

i.e. [cos | sin] (centres, 2 k) @ G (2 k, species x lm x n), done over chunks of k-vectors so
that memory stays bounded whatever the cell size. exp(i k·r_j) is never evaluated with a
transcendental call per (atom, k): with k = h b1 + k b2 + l b3 it is the product of per-axis
powers exp(2 pi i h f_1) exp(2 pi i k f_2) exp(2 pi i l f_3) of the fractional coordinates f,
tabulated once per atom. Cells whose k-vectors share norms are summed shell by shell
(:mod:`~lodekit.expansion.kspace.shells`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np

from ..workspace import scratch
from .base import KspaceBackend
from .direct_gradients import (
    kspace_gradient,
    kspace_strain_gradient,
    kspace_vjp,
    kspace_weight_vjp,
    weighted_pair_terms,
)
from .layout import CHUNK_ELEMENTS, contract_block, phase_factors
from .problem import KspaceProblem, KspaceWorkload
from .shells import ShellTables, shell_sum, shell_tables, shell_vjp

__all__ = ["DirectBackend", "batched_kspace_sum", "kspace_sum"]

# Rough costs on one core (seconds per unit), measured on the development machine with the
# benchmarks of this repository: one (centre x species x k x coefficient) multiply-add of the
# k-space product, one (atom x k) phase.
_COST_KSPACE = 1.0e-10
_COST_PHASE = 5.0e-9


def kspace_sum(problem: KspaceProblem) -> np.ndarray:
    """The k-space sum of math.md §4.1 (without the k = 0 and centre terms).

    Returns
    -------
    ndarray, shape (n_centres, n_species, (max_angular+1)^2, n_radial)
    """
    n_centres, n_species, n_lm, n_rad = problem.coefficient_shape
    n_atoms = problem.n_atoms
    centres = problem.centres
    layout, hkl, kept = _tables_of_cell(problem)
    if n_centres == 0 or len(hkl) == 0:
        return np.zeros((n_centres, n_species, n_lm, n_rad))
    frac = problem.fractional()
    indicator = problem.indicator()
    all_centres = n_centres == n_atoms and np.array_equal(centres, np.arange(n_atoms))
    chunk = max(32, CHUNK_ELEMENTS // max(n_atoms, n_species * n_lm * n_rad))
    if isinstance(kept, ShellTables):
        return shell_sum(
            kept,
            layout,
            frac,
            indicator,
            None if all_centres else centres,
            chunk,
            max(1, problem.n_threads),
        )
    kept_factor = kept

    n_even = layout.n_even
    n_columns = n_species * n_lm * n_rad
    # every large array of the loop is a kept work array (see lodekit.expansion.workspace)
    out = scratch("direct.sum", (n_centres, n_columns))
    for start in range(0, len(hkl), chunk):
        block = hkl[start : start + chunk]
        n_k = len(block)
        if kept_factor is not None:
            factor = kept_factor[start : start + chunk]
        else:
            _, factor = layout.factor(block, out=scratch("direct.factor", (n_k, n_lm, n_rad)))
        phases = phase_factors(frac, block, out=scratch("direct.phases", (n_atoms, n_k), complex))
        rho = indicator @ phases  # sum_j exp(i k·r_j) = A + i B, (species, k)
        centre_phases = phases if all_centres else phases[centres]
        if start == 0:
            contract_block(centre_phases, rho, factor, n_even, out=out)
        else:
            out += contract_block(
                centre_phases, rho, factor, n_even, out=scratch("direct.block", out.shape)
            )

    result = np.empty((n_centres, n_species, n_lm, n_rad))
    result[:, :, layout.parity] = out.reshape(n_centres, n_species, n_lm, n_rad)
    return result


def batched_kspace_sum(problems: list[KspaceProblem]) -> list[np.ndarray] | None:
    """:func:`kspace_sum` of frames of one cell and size, with the same centres and
    hyperparameters, whose k-vectors go shell by shell, as one batch
    (:func:`~lodekit.expansion.kspace.shells.shell_sum` of frames); None for problems that
    cannot share one."""
    if len(problems) < 2:
        return None
    first = problems[0]
    layout, hkl, kept = _tables_of_cell(first)
    if not (isinstance(kept, ShellTables) and first.n_centres and len(hkl)):
        return None
    key = _table_key(first)
    for problem in problems[1:]:
        if (
            _table_key(problem) != key
            or problem.n_atoms != first.n_atoms
            or problem.n_species != first.n_species
            or not np.array_equal(problem.centres, first.centres)
        ):
            return None
    n_atoms = first.n_atoms
    all_centres = first.n_centres == n_atoms and np.array_equal(first.centres, np.arange(n_atoms))
    frac = np.stack([problem.fractional() for problem in problems])
    indicator = np.stack([problem.indicator() for problem in problems])
    n_columns = first.n_species * first.n_lm * first.n_radial
    chunk = max(32, CHUNK_ELEMENTS // max(len(problems) * n_atoms, n_columns))
    centres = None if all_centres else first.centres
    values = shell_sum(kept, layout, frac, indicator, centres, chunk, max(1, first.n_threads))
    return list(values)


#: Largest k-space tables (bytes) kept for the next structure of the same cell.
_KEPT_FACTOR_BYTES = 1 << 23
#: Cells whose factors are kept (the most recently used).
_KEPT_CELLS = 4
_KEPT: OrderedDict = OrderedDict()
_KEPT_LOCK = threading.Lock()


def _table_key(problem: KspaceProblem) -> tuple:
    """What the k-space tables of ``problem`` depend on. The basis object itself is part of
    the key: held in :data:`_KEPT`, its id cannot be reused."""
    return (
        problem.cell.tobytes(),
        problem.k_cutoff,
        problem.smearing,
        problem.exponent,
        problem.max_angular,
        problem.basis,
    )


def _tables_of_cell(problem: KspaceProblem):
    """(layout, Miller indices, tables): the k-dependent tables of the sum, kept between
    structures of one cell and hyperparameters (the frames of a constant-volume trajectory).

    The tables are :class:`ShellTables` when the cell's k-vectors share norms enough for the
    shell-by-shell sum (the Miller indices are then sorted by norm), else F (n_k, lm sorted by
    parity, n) when it fits one chunk, else None: the caller builds F chunk by chunk. Each
    is kept when small enough.
    """
    layout = problem.layout()
    if problem.miller is not None:
        return layout, problem.miller, None
    key = _table_key(problem)
    with _KEPT_LOCK:
        kept = _KEPT.get(key)
        if kept is not None:
            _KEPT.move_to_end(key)
            return layout, *kept
    hkl = problem.kvectors()
    n_columns = problem.n_lm * problem.n_radial
    tables = shell_tables(layout, hkl) if len(hkl) else None
    if tables is not None:
        hkl, size = tables.hkl, tables.nbytes
    else:
        chunk = max(32, CHUNK_ELEMENTS // max(problem.n_atoms, problem.n_species * n_columns))
        if not len(hkl) or len(hkl) > chunk or 8 * len(hkl) * n_columns > _KEPT_FACTOR_BYTES:
            # F is built chunk by chunk (or there is no k-vector: a cell smaller than the
            # cutoff's wavelength); the k-vectors and the verdict "no shells" are kept, so
            # that the next frame (and this one's gradients) skip the shell search
            tables, size = None, hkl.nbytes
        else:
            _, tables = layout.factor(hkl)
            tables.flags.writeable = False
            size = tables.nbytes
    if size <= _KEPT_FACTOR_BYTES:
        hkl.flags.writeable = False  # shared by the threads of later calls
        with _KEPT_LOCK:
            _KEPT[key] = (hkl, tables)
            while len(_KEPT) > _KEPT_CELLS:
                _KEPT.popitem(last=False)
    return layout, hkl, tables


class DirectBackend(KspaceBackend):
    """The sum over k-vectors: exact, cost ~ centres x k-vectors x coefficients (N^2 at fixed
    density and smearing); the only backend with a dense Jacobian of its own."""

    def cost(self, workload: KspaceWorkload, k_cutoff: float, tolerance: float) -> float:
        n_k = workload.n_kvectors
        if n_k is None:
            n_k = workload.volume * k_cutoff**3 / (12 * np.pi**2)
        return n_k * (
            _COST_KSPACE * workload.n_centres * workload.n_species * workload.n_coefficients
            + _COST_PHASE * workload.n_atoms
        )

    def value(self, problem: KspaceProblem) -> np.ndarray:
        return kspace_sum(problem)

    def values(self, problems: list[KspaceProblem]) -> list[np.ndarray]:
        batched = batched_kspace_sum(problems)
        return [self.value(problem) for problem in problems] if batched is None else batched

    def vjp(self, problem: KspaceProblem, upstream: np.ndarray, with_strain: bool):
        layout, _, tables = _tables_of_cell(problem)
        if isinstance(tables, ShellTables) and len(problem.centres):
            n_rows = problem.n_centres * problem.n_species
            n_columns = problem.n_lm * problem.n_radial
            chunk = max(32, CHUNK_ELEMENTS // max(problem.n_atoms, n_rows, n_columns))
            return shell_vjp(problem, layout, tables, upstream, with_strain, chunk)
        return kspace_vjp(problem, upstream, with_strain)

    def weight_vjp(self, problem: KspaceProblem, upstream: np.ndarray) -> np.ndarray:
        return kspace_weight_vjp(problem, upstream)

    def jacobian(self, problem: KspaceProblem, with_strain: bool):
        strain = kspace_strain_gradient(problem) if with_strain else None
        _, _, tables = _tables_of_cell(problem)
        shells = tables if isinstance(tables, ShellTables) else None
        positions = weighted_pair_terms(
            kspace_gradient(problem, shells), problem.centres, problem.weights
        )
        return positions, strain
