"""Accumulation of pair contributions Y_lm(d̂) F_nl(|d|) into per-centre coefficients."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np

from ..basis.spherical_harmonics import (
    real_spherical_harmonics,
    real_spherical_harmonics_with_gradients,
)
from ..neighbors import neighbor_pairs
from .threads import thread_pool
from .workspace import scratch

__all__ = [
    "accumulate_pairs",
    "accumulate_rows",
    "pair_contractions",
    "pair_gradients",
    "parallel_map",
    "selected_pairs",
]

#: Pairs handled at once: small enough that the (pairs, lm, n) work array stays in cache.
PAIR_CHUNK = 1024

#: Pairs per chunk of :func:`accumulate_rows` (at most; fewer to give every thread two).
ROW_CHUNK_PAIRS = 2048

#: Largest (rows x widest row) / pairs of a chunk of :func:`accumulate_rows`; beyond it
#: the chunk is halved (memory and work of the zero-padded layout stay a few times the pairs').
MAX_PADDING = 4

#: Average pairs per output row above which one matrix product per row is faster.
DENSE_ROWS = 96


def selected_pairs(system, species_index, n_species: int, centres: np.ndarray, cutoff: float):
    """Pairs of the selected centres within ``cutoff`` (periodic images included).

    Returns
    -------
    i, j, vectors, target
        Centre atom, neighbour atom, r_j + shift - r_i (Å) and the output row of every pair,
        target = (row of i among ``centres``) x n_species + species channel of j.
    """
    row_of_atom = np.full(len(system), -1)
    row_of_atom[centres] = np.arange(len(centres))
    i, j, vectors = neighbor_pairs(system, cutoff)
    keep = (row_of_atom[i] >= 0) & (np.linalg.norm(vectors, axis=1) < cutoff)
    i, j, vectors = i[keep], j[keep], vectors[keep]
    return i, j, vectors, row_of_atom[i] * n_species + species_index[j]


def accumulate_pairs(
    n_rows: int,
    target: np.ndarray,
    vectors: np.ndarray,
    radial: Callable[[np.ndarray], np.ndarray],
    max_angular: int,
    n_radial: int,
    pair_weights: np.ndarray | None = None,
) -> np.ndarray:
    """out[target[p], lm, n] += Y_lm(vectors[p]) radial(|vectors[p]|)[l, n] over all pairs
    (times ``pair_weights[p]`` when given).

    Parameters
    ----------
    n_rows : int
        Number of output rows (centre x species channels).
    target : ndarray of int, shape (n_pairs,)
        Output row of every pair.
    vectors : ndarray, shape (n_pairs, 3)
        Non-zero pair vectors (Å).
    radial : callable
        distances (m,) -> array (m, max_angular + 1, n_radial).
    pair_weights : ndarray, shape (n_pairs,), or None
        A factor per pair (the neighbour's weight); None: 1.

    Returns
    -------
    ndarray, shape (n_rows, (max_angular + 1)^2, n_radial)
    """
    n_lm = (max_angular + 1) ** 2
    out = np.zeros((n_rows, n_lm, n_radial))
    if len(target) == 0:
        return out
    order = np.argsort(target, kind="stable")
    target, vectors = target[order], vectors[order]
    if pair_weights is not None:
        pair_weights = pair_weights[order]
    distances = np.linalg.norm(vectors, axis=1)
    if len(target) >= DENSE_ROWS * len(np.unique(target)):
        _accumulate_dense(
            out, target, vectors, distances, radial, max_angular, n_radial, pair_weights
        )
        return out
    for start in range(0, len(target), PAIR_CHUNK):
        sl = slice(start, start + PAIR_CHUNK)
        values = radial(distances[sl])
        if pair_weights is not None:
            values = values * pair_weights[sl, None, None]
        ylm = real_spherical_harmonics(vectors[sl], max_angular)
        contrib = np.empty((len(values), n_lm, n_radial))
        for l in range(max_angular + 1):
            lm = slice(l * l, (l + 1) ** 2)
            np.multiply(ylm[:, lm, None], values[:, l, None, :], out=contrib[:, lm])
        rows, first = np.unique(target[sl], return_index=True)
        out[rows] += np.add.reduceat(contrib, first, axis=0)
    return out


def accumulate_rows(
    n_rows: int,
    target: np.ndarray,
    vectors: np.ndarray,
    radial: Callable[[np.ndarray, np.ndarray], None],
    max_angular: int,
    n_radial: int,
    n_threads: int = 1,
    pair_weights: np.ndarray | None = None,
) -> tuple[list[np.ndarray], np.ndarray]:
    """:func:`accumulate_pairs` for many rows at once, as batched matrix products, split by l.

    Pairs are sorted by row (callers that pass them sorted save the sort) and cut into
    chunks of whole rows (about ``ROW_CHUNK_PAIRS`` pairs, so that a chunk's arrays stay in
    cache). In a chunk, the pairs of each row fill the first slots of a zero-padded
    (row, slot) layout, and out_l[row] = Y_l[row slots]^T @ F_l[row slots] is one batched
    matrix product per l (exactly the needed products; the empty slots add exact zeros).
    Chunks write disjoint rows, so they run in threads: numpy, BLAS and sphericart release
    the GIL.

    Parameters
    ----------
    n_rows, target, vectors, max_angular, n_radial
        As for :func:`accumulate_pairs`.
    radial : callable
        ``radial(distances, out)`` writes F for distances (m,) (Å) into ``out``, a
        C-contiguous array of shape (m, max_angular + 1, n_radial).
    n_threads : int
        Threads over chunks (1: all in the calling thread).
    pair_weights : ndarray, shape (n_pairs,), or None
        A factor per pair (the neighbour's weight); None: 1.

    Returns
    -------
    values : list of ndarray
        ``values[l]`` of shape (n_rows, 2l + 1, n_radial).
    counts : ndarray of int, shape (n_rows,)
        Pairs that landed in each row.
    """
    n_lm = (max_angular + 1) ** 2
    n_l = max_angular + 1
    out = [np.zeros((n_rows, 2 * l + 1, n_radial)) for l in range(n_l)]
    if len(target) > 1 and np.any(target[1:] < target[:-1]):
        order = np.argsort(target, kind="stable")
        target, vectors = target[order], vectors[order]
        if pair_weights is not None:
            pair_weights = pair_weights[order]
    starts = np.searchsorted(target, np.arange(n_rows + 1))
    counts = np.diff(starts)
    if len(target) == 0:
        return out, counts
    n_threads = _useful_threads(n_threads, len(target))
    # chunks of whole rows, each starting at the row that holds a multiple of ``wanted``
    # pairs; with threads, two chunks per thread at least, for balance
    wanted = ROW_CHUNK_PAIRS if n_threads == 1 else -(-len(target) // (2 * n_threads))
    wanted = max(1, min(ROW_CHUNK_PAIRS, wanted))
    bounds = np.searchsorted(starts, np.arange(0, len(target), wanted), side="right") - 1
    bounds = np.append(np.unique(bounds), n_rows).tolist()
    slot = np.arange(len(target)) - starts[target]

    def work(first_row: int, last_row: int) -> None:
        first, last = starts[first_row], starts[last_row]
        if first == last:
            return
        m, n_chunk_rows = last - first, last_row - first_row
        width = int(counts[first_row:last_row].max())
        v = vectors[first:last]
        values = scratch("pairs.values", (m, n_l, n_radial))
        radial(np.sqrt(np.einsum("px,px->p", v, v)), values)
        if pair_weights is not None:
            values *= pair_weights[first:last, None, None]
        ylm = real_spherical_harmonics(v, max_angular)
        place = (target[first:last] - first_row) * width + slot[first:last]
        # (row, slot, lm) and (row, slot, l, n): every product below is a BLAS-able matrix
        y_slots = scratch("pairs.y", (n_chunk_rows * width, n_lm))
        y_slots.fill(0.0)
        y_slots[place] = ylm
        f_slots = scratch("pairs.f", (n_chunk_rows * width, n_l, n_radial))
        f_slots.fill(0.0)
        f_slots[place] = values
        y_slots = y_slots.reshape(n_chunk_rows, width, n_lm)
        f_slots = f_slots.reshape(n_chunk_rows, width, n_l, n_radial)
        for l in range(n_l):
            np.matmul(
                y_slots[:, :, l * l : (l + 1) ** 2].transpose(0, 2, 1),
                f_slots[:, :, l, :],
                out=out[l][first_row:last_row],
            )

    jobs = _even_chunks(itertools.pairwise(bounds), starts, counts)
    parallel_map(lambda job: work(*job), jobs, n_threads, len(target))
    return out, counts


def _even_chunks(chunks, starts: np.ndarray, counts: np.ndarray) -> list[tuple[int, int]]:
    """Row ranges (first, last), each halved until its zero-padded layout (rows x widest row)
    is at most ``MAX_PADDING`` times its pairs: rows of very different lengths (a dense cell
    beside a sparse one) would otherwise pad every row to the longest."""
    out, todo = [], list(chunks)[::-1]
    while todo:
        first_row, last_row = todo.pop()
        n_pairs = int(starts[last_row] - starts[first_row])
        n_rows = last_row - first_row
        if n_pairs == 0:
            continue
        if n_rows > 1 and n_rows * int(counts[first_row:last_row].max()) > (
            MAX_PADDING * n_pairs + 64
        ):
            middle = (first_row + last_row) // 2
            todo += [(middle, last_row), (first_row, middle)]
            continue
        out.append((first_row, last_row))
    return out


#: Pairs per thread below which a second thread costs more (start-up, the GIL taken back
#: between numpy calls) than it gains.
MIN_THREAD_PAIRS = 12_000


def _useful_threads(n_threads: int, n_pairs: int) -> int:
    return max(1, min(n_threads, n_pairs // MIN_THREAD_PAIRS))


def parallel_map(function: Callable, jobs: list, n_threads: int, n_pairs: int) -> list:
    """``[function(job) for job in jobs]``, in threads when ``n_pairs`` (the work, in pairs)
    is enough to keep more than one busy.

    The threads are kept between calls (one pool per process and thread count), so that
    their :func:`scratch` buffers are reused.
    """
    n_threads = min(_useful_threads(n_threads, n_pairs), len(jobs))
    if n_threads <= 1:
        return [function(job) for job in jobs]
    return list(thread_pool("pairs", n_threads).map(function, jobs))


def _accumulate_dense(
    out, target, vectors, distances, radial, max_angular, n_radial, pair_weights=None
):
    """Many pairs per row: one BLAS product Y_row^T @ F_row per row.

    The product also forms the unused (lm, l' != l) blocks, (L+1) times the minimal work, but
    as a matrix product it runs far faster than the element-wise outer products.
    """
    n_lm = (max_angular + 1) ** 2
    l_of_lm = np.repeat(np.arange(max_angular + 1), 2 * np.arange(max_angular + 1) + 1)
    columns = l_of_lm[:, None] * n_radial + np.arange(n_radial)[None, :]  # (lm, n)
    lm_index = np.arange(n_lm)[:, None]
    bounds = np.flatnonzero(np.diff(target)) + 1
    starts = np.concatenate([[0], bounds])
    stops = np.concatenate([bounds, [len(target)]])
    chunk_start = 0
    while chunk_start < len(starts):
        # whole rows, about PAIR_CHUNK * 8 pairs at a time
        chunk_stop = np.searchsorted(stops, stops[chunk_start] + 8 * PAIR_CHUNK, side="right")
        chunk_stop = max(chunk_stop, chunk_start + 1)
        first, last = starts[chunk_start], stops[chunk_stop - 1]
        values = radial(distances[first:last])
        if pair_weights is not None:
            values = values * pair_weights[first:last, None, None]
        values = values.reshape(last - first, -1)
        ylm = real_spherical_harmonics(vectors[first:last], max_angular)
        for row_start, row_stop in zip(
            starts[chunk_start:chunk_stop] - first,
            stops[chunk_start:chunk_stop] - first,
            strict=True,
        ):
            product = ylm[row_start:row_stop].T @ values[row_start:row_stop]
            out[target[first + row_start]] += product[lm_index, columns]
        chunk_start = chunk_stop


def pair_gradients(
    upstream: np.ndarray,
    target: np.ndarray,
    vectors: np.ndarray,
    radial_with_derivative: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
    max_angular: int,
    pair_weights: np.ndarray | None = None,
) -> np.ndarray:
    """The transpose of :func:`accumulate_pairs`, differentiated: for every pair p,

    g_p = d/d vectors[p] sum_{lm n} upstream[target[p], lm, n] Y_lm(v̂) F_nl(|v|)
        = sum_lm [grad Y_lm(v) A_lm + v̂ Y_lm(v̂) B_lm],
    A_lm = sum_n G F_nl, B_lm = sum_n G F'_nl.

    Parameters
    ----------
    upstream : ndarray, shape (n_rows, (max_angular + 1)^2, n_radial)
        dE/d(out) of the forward accumulation.
    target, vectors
        As for :func:`accumulate_pairs`.
    radial_with_derivative : callable
        distances (m,) -> (F, dF/dd), each (m, max_angular + 1, n_radial): one call, so that
        the work they share (tables, cutoff factors) is done once.
    pair_weights : ndarray, shape (n_pairs,), or None
        The factor of every pair in the forward sum; None: 1.

    Returns
    -------
    ndarray, shape (n_pairs, 3)
        dE/d vectors[p]: add it to the neighbour, subtract it from the centre; the strain
        derivative is sum_p g_p (x) vectors[p].
    """
    out = np.zeros((len(target), 3))
    ls = np.arange(max_angular + 1)
    l_of_lm = np.repeat(ls, 2 * ls + 1)
    for start in range(0, len(target), PAIR_CHUNK):
        sl = slice(start, start + PAIR_CHUNK)
        v = vectors[sl]
        d = np.linalg.norm(v, axis=1)
        g = upstream[target[sl]]  # (pairs, lm, n)
        values, slopes = radial_with_derivative(d)
        with_radial = np.einsum("pfn,pfn->pf", g, values[:, l_of_lm, :])
        with_derivative = np.einsum("pfn,pfn->pf", g, slopes[:, l_of_lm, :])
        ylm, d_ylm = real_spherical_harmonics_with_gradients(v, max_angular)
        out[sl] = (
            np.einsum("pxf,pf->px", d_ylm, with_radial)
            + (v / d[:, None]) * (np.einsum("pf,pf->p", ylm, with_derivative)[:, None])
        )
    if pair_weights is not None:
        out *= pair_weights[:, None]
    return out


def pair_contractions(
    upstream: np.ndarray,
    target: np.ndarray,
    vectors: np.ndarray,
    radial: Callable[[np.ndarray], np.ndarray],
    max_angular: int,
) -> np.ndarray:
    """The transpose of :func:`accumulate_pairs` for each pair's own factor: for every pair p,
    sum_{lm n} upstream[target[p], lm, n] Y_lm(v̂_p) F_nl(|v_p|), the derivative of
    E = sum upstream · out with respect to ``pair_weights[p]``.

    Parameters
    ----------
    upstream : ndarray, shape (n_rows, (max_angular + 1)^2, n_radial)
    target, vectors, radial, max_angular
        As for :func:`accumulate_pairs`.

    Returns
    -------
    ndarray, shape (n_pairs,)
    """
    out = np.empty(len(target))
    ls = np.arange(max_angular + 1)
    l_of_lm = np.repeat(ls, 2 * ls + 1)
    for start in range(0, len(target), PAIR_CHUNK):
        sl = slice(start, start + PAIR_CHUNK)
        v = vectors[sl]
        values = radial(np.linalg.norm(v, axis=1))
        ylm = real_spherical_harmonics(v, max_angular)
        with_radial = np.einsum("pfn,pfn->pf", upstream[target[sl]], values[:, l_of_lm, :])
        out[sl] = np.einsum("pf,pf->p", ylm, with_radial)
    return out
